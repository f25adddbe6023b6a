/*
 * RESP encoding of commands (arrays of bulk strings) into one buffer, for the apply lanes'
 * pre-encoded writes. Hand-written for the same reason as resp-connection.ts: no client library
 * exposes its encoder as a buffer a caller can fill with many transactions at once.
 */

import { giveBuffer, takeBuffer } from './buffer-pool.js';

/**
 * Strings up to this length are measured and copied in JS when they are ASCII: keys, markers,
 * positions and command names are, and a call into the runtime for each costs more than the copy.
 */
const SHORT = 48;
/** Longer strings are measured first (room for 3 bytes per unit would be too much slack) */
const LONG = 64 * 1024;

/** UTF-8 byte length; equal to the string's length exactly when it is ASCII */
function utf8Length(s: string): number {
  if (s.length > SHORT) return Buffer.byteLength(s, 'utf8');
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

function digits(n: number): number {
  let d = 1;
  while (n >= 10) (n = Math.floor(n / 10)), d++;
  return d;
}

/** writes `n` then CRLF at `off`; returns the offset after it */
function writeInt(buf: Buffer, off: number, n: number): number {
  const end = off + digits(n);
  for (let i = end - 1; i >= off; i--) (buf[i] = 48 + (n % 10)), (n = Math.floor(n / 10));
  buf[end] = 13;
  buf[end + 1] = 10;
  return end + 2;
}

const RELEASED = Buffer.alloc(0);

/**
 * Writes RESP into one buffer that grows (doubling) when a write does not fit. A pooled writer
 * takes its buffers from core/buffer-pool.ts and gives them back on `release()`.
 */
export class RespWriter {
  private buf: Buffer;
  private off = 0;

  /** `capacity`: the expected size (see `estimateSize`); a good guess saves the copies of growing */
  constructor(
    capacity = 4096,
    private readonly pooled = false,
  ) {
    this.buf = pooled ? takeBuffer(capacity) : Buffer.allocUnsafe(Math.max(64, capacity));
  }

  /** Gives a pooled writer's buffer back: nothing may be read from or written to it afterwards. */
  release(): void {
    if (this.buf === RELEASED) return;
    if (this.pooled) giveBuffer(this.buf);
    this.buf = RELEASED;
    this.off = 0;
  }

  /** an array header: `*n` CRLF */
  array(n: number): void {
    this.ensure(24);
    this.buf[this.off++] = 42; // '*'
    this.off = writeInt(this.buf, this.off, n);
  }

  /** a bulk string: `$len` CRLF bytes CRLF (UTF-8) */
  bulk(s: string): void {
    if (s.length > SHORT && s.length <= LONG) return this.bulkGuessed(s);
    const n = utf8Length(s);
    this.ensure(n + 24);
    const buf = this.buf;
    let off = this.off;
    buf[off++] = 36; // '$'
    off = writeInt(buf, off, n);
    if (n !== s.length) off += buf.write(s, off, n, 'utf8');
    else if (n > SHORT) off += buf.write(s, off, n, 'latin1'); // ASCII: the same bytes, a cheaper copy
    else for (let i = 0; i < n; i++) buf[off++] = s.charCodeAt(i);
    buf[off++] = 13;
    buf[off++] = 10;
    this.off = off;
  }

  /**
   * A longer string (a row's JSON) written at once as if it were ASCII, its header fixed after the
   * fact when it was not: one call into the runtime instead of two (measuring it first cost as
   * much as copying it).
   */
  private bulkGuessed(s: string): void {
    const len = s.length;
    this.ensure(3 * len + 24); // UTF-8 takes at most 3 bytes per UTF-16 unit
    const buf = this.buf;
    const start = this.off + 1;
    buf[this.off] = 36; // '$'
    const body = writeInt(buf, start, len);
    const n = buf.write(s, body, 'utf8');
    let end = body + n;
    if (n !== len) {
      const shift = digits(n) - digits(len);
      if (shift !== 0) buf.copyWithin(body + shift, body, body + n);
      writeInt(buf, start, n);
      end += shift;
    }
    buf[end] = 13;
    buf[end + 1] = 10;
    this.off = end + 2;
  }

  /** a bulk string of `buf`'s bytes from `start` to `end` */
  bulkBytes(buf: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(n + 24);
    const out = this.buf;
    out[this.off] = 36; // '$'
    let off = writeInt(out, this.off + 1, n);
    if (n > SHORT) {
      buf.copy(out, off, start, end);
      off += n;
    } else {
      for (let i = start; i < end; i++) out[off++] = buf[i]!;
    }
    out[off] = 13;
    out[off + 1] = 10;
    this.off = off + 2;
  }

  command(cmd: readonly string[]): void {
    this.array(cmd.length);
    for (const arg of cmd) this.bulk(arg);
  }

  /** bytes already encoded (a constant command) */
  raw(bytes: Buffer): void {
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.off);
    this.off += bytes.length;
  }

  /** bytes written so far */
  get size(): number {
    return this.off;
  }

  /** what was written so far (a view: valid until the next write) */
  bytes(): Buffer {
    if (this.buf === RELEASED) throw new Error('RespWriter: read after release');
    return this.buf.subarray(0, this.off);
  }

  /** what was written (a view: the writer must not be used afterwards) */
  finish(): Buffer {
    return this.bytes();
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    if (this.buf === RELEASED) throw new Error('RespWriter: write after release');
    const size = Math.max(this.buf.length * 2, this.off + n);
    const next = this.pooled ? takeBuffer(size) : Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.off);
    if (this.pooled) giveBuffer(this.buf);
    this.buf = next;
  }
}

/** About the size of the commands' encoding when they are ASCII (exact up to the length digits). */
export function estimateSize(commands: readonly (readonly string[])[]): number {
  let size = 0;
  for (const cmd of commands) {
    size += 8;
    for (const arg of cmd) size += arg.length + 10;
  }
  return size;
}

/** Encodes commands (arrays of strings) as RESP arrays of bulk strings, into one buffer. */
export function encodeCommands(commands: readonly (readonly string[])[]): Buffer {
  const w = new RespWriter(estimateSize(commands));
  for (const cmd of commands) w.command(cmd);
  return w.finish();
}
