/**
 * Large buffers used again instead of allocated anew for each batch and each backfill chunk.
 * Node allocates a Buffer of more than a few KB outside the JavaScript heap and V8 counts those
 * bytes: a backfill that allocated (and grew, doubling) megabyte-sized buffers for every chunk
 * and every batch made V8 start a full mark-compact every few chunks (docs/benchmarks.md).
 *
 * A buffer is taken by one owner and given back once nothing reads it any more. Owners mark
 * themselves released (`RespWriter`, `CopyRows`) so that a late read throws instead of reading
 * bytes that belong to the buffer's next owner.
 */

/** sizes are powers of two from this one, so that any buffer given back fits later uses */
const MIN = 64 * 1024;
/** larger buffers are left to the garbage collector */
const MAX_POOLED = 32 * 1024 * 1024;
/** idle buffers kept, in bytes at most (peak memory stays bounded) */
const MAX_IDLE_BYTES = 48 * 1024 * 1024;

const idle: Buffer[] = [];
let idleBytes = 0;

/** A buffer of at least `min` bytes (contents undefined), taken from the idle ones when one fits. */
export function takeBuffer(min: number): Buffer {
  let best = -1;
  for (let i = 0; i < idle.length; i++) {
    const len = idle[i]!.length;
    if (len >= min && (best < 0 || len < idle[best]!.length)) best = i;
  }
  if (best >= 0) {
    const buf = idle[best]!;
    idle[best] = idle[idle.length - 1]!;
    idle.pop();
    idleBytes -= buf.length;
    return buf;
  }
  let size = MIN;
  while (size < min) size *= 2;
  // its own memory (never a slice of Node's shared pool): it may be given back
  return Buffer.allocUnsafeSlow(size);
}

/** Gives back a buffer `takeBuffer` returned; its owner must not read or write it afterwards. */
export function giveBuffer(buf: Buffer): void {
  if (buf.length < MIN || buf.length > MAX_POOLED || buf.byteOffset !== 0 || idle.includes(buf)) return;
  // room is made by dropping the smallest idle ones
  while (idle.length > 0 && idleBytes + buf.length > MAX_IDLE_BYTES) {
    let smallest = 0;
    for (let i = 1; i < idle.length; i++) if (idle[i]!.length < idle[smallest]!.length) smallest = i;
    if (idle[smallest]!.length >= buf.length) return; // this one is the smallest: not kept
    idleBytes -= idle[smallest]!.length;
    idle[smallest] = idle[idle.length - 1]!;
    idle.pop();
  }
  if (idleBytes + buf.length > MAX_IDLE_BYTES) return;
  idle.push(buf);
  idleBytes += buf.length;
}

/** Idle buffers and their bytes (tests). */
export function idleBuffers(): { count: number; bytes: number } {
  return { count: idle.length, bytes: idleBytes };
}
