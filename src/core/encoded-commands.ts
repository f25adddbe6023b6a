import type { CommandOrigin, RedisCommand } from './command.js';
import { RespWriter } from './resp-writer.js';

/**
 * The origins of many commands, resolved only when asked for (a command Redis refused, a recent
 * delivery): a backfill chunk's rows are parsed again from its COPY bytes instead of keeping a
 * change object per row alive until the batch is applied.
 */
export interface OriginSource {
  /** the sink every origin of the source names */
  readonly sink: string;
  /** the origin of the commands planned from `row`: equal (not identical) on every call */
  origin(row: number): CommandOrigin;
}

/**
 * 16 entries of 4 bytes: 64 bytes, the most V8 keeps inside its heap (typed_array_max_size_in_heap).
 * A larger typed array's memory is allocated outside the heap and counted as external memory: at
 * thousands of one-transaction batches a second, four 4 KB arrays per batch made V8 start a full
 * mark-compact about every 0.4 s (20–30 ms of stalls, the latency bench's p99). They grow by
 * doubling.
 */
const START = 16;

/**
 * A part's data commands encoded to RESP as they are planned, for the standalone lane's one
 * pre-encoded write: a batch holds one buffer instead of an array, strings and an origin object
 * per command until Redis acknowledges it (they were most of the garbage collector's work in a
 * backfill). Each command keeps the id of its origin (-1: bookkeeping); an id is a `CommandOrigin`
 * given as it is (stream changes), or a row of an `OriginSource`, resolved (once) when asked.
 */
export class EncodedCommands {
  /** pooled: given back by `release()` once the batch is applied */
  private readonly out = new RespWriter(64 * 1024, true);
  /** end offset of each command in `out` */
  private ends = new Uint32Array(START);
  /** origin id of each command (-1: none) */
  private ids = new Int32Array(START);
  /** per origin id: the index of its origin or source in `sources` */
  private idSource = new Int32Array(START);
  /** per origin id: the row of its source (-1: the source is the origin itself) */
  private idRow = new Int32Array(START);
  private readonly sources: (CommandOrigin | OriginSource)[] = [];
  private readonly resolved = new Map<number, CommandOrigin>();
  private origins = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** A command and its origin (null: bookkeeping); consecutive commands of one origin share its id. */
  push(cmd: readonly string[], origin: CommandOrigin | null): void {
    let id = -1;
    if (origin !== null) {
      const last = this.origins - 1;
      if (last >= 0 && this.idRow[last] === -1 && this.sources[this.idSource[last]!] === origin) id = last;
      else id = this.newId(this.sourceIndex(origin), -1);
    }
    this.append(cmd, id);
  }

  /** A command planned from `row` of `source`; consecutive commands of one row share its id. */
  pushRow(cmd: readonly string[], source: OriginSource, row: number): void {
    const last = this.origins - 1;
    const s = this.sourceIndex(source);
    const id = last >= 0 && this.idRow[last] === row && this.idSource[last] === s ? last : this.newId(s, row);
    this.append(cmd, id);
  }

  /** The writer, for one command written as bytes by the caller, then recorded with `endRow`. */
  get writer(): RespWriter {
    return this.out;
  }

  /** The command just written to `writer` was planned from `row` of `source`. */
  endRow(source: OriginSource, row: number): void {
    const last = this.origins - 1;
    const s = this.sourceIndex(source);
    const id = last >= 0 && this.idRow[last] === row && this.idSource[last] === s ? last : this.newId(s, row);
    this.record(id);
  }

  /** Who to blame for command `i` (null: bookkeeping); the same object on every call. */
  origin(i: number): CommandOrigin | null {
    const id = this.ids[i]!;
    if (id < 0) return null;
    const source = this.sources[this.idSource[id]!]!;
    const row = this.idRow[id]!;
    if (row < 0) return source as CommandOrigin;
    let o = this.resolved.get(id);
    if (o === undefined) this.resolved.set(id, (o = (source as OriginSource).origin(row)));
    return o;
  }

  /** The sink command `i` was planned for (null: bookkeeping), without resolving its origin. */
  originSink(i: number): string | null {
    const id = this.ids[i]!;
    return id < 0 ? null : this.sources[this.idSource[id]!]!.sink;
  }

  /** An id equal for the commands of one message (-1: bookkeeping), without resolving its origin. */
  originId(i: number): number {
    return this.ids[i]!;
  }

  /** Command `i` as data, decoded from its bytes (rare paths: a lost reply, the ioredis fallback). */
  command(i: number): RedisCommand {
    return decodeCommand(this.out.bytes(), i === 0 ? 0 : this.ends[i - 1]!, this.ends[i]!);
  }

  /** Every command as data. */
  commands(): RedisCommand[] {
    const out: RedisCommand[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.command(i));
    return out;
  }

  /** The RESP of every command, in order (a view: valid until the next push). */
  bytes(): Buffer {
    return this.out.bytes();
  }

  /**
   * The batch is applied and nothing reads these commands any more: their buffer is given back
   * to core/buffer-pool.ts (a read afterwards throws).
   */
  release(): void {
    this.out.release();
  }

  private sourceIndex(source: CommandOrigin | OriginSource): number {
    const n = this.sources.length;
    if (n > 0 && this.sources[n - 1] === source) return n - 1;
    this.sources.push(source);
    return n;
  }

  private newId(source: number, row: number): number {
    const id = this.origins++;
    if (id === this.idSource.length) {
      this.idSource = grow(this.idSource);
      this.idRow = grow(this.idRow);
    }
    this.idSource[id] = source;
    this.idRow[id] = row;
    return id;
  }

  private append(cmd: readonly string[], id: number): void {
    this.out.command(cmd);
    this.record(id);
  }

  /** the command just written ends here */
  private record(id: number): void {
    const i = this.count++;
    if (i === this.ends.length) {
      this.ends = grow(this.ends);
      this.ids = grow(this.ids);
    }
    this.ends[i] = this.out.size;
    this.ids[i] = id;
  }
}

function grow<T extends Uint32Array | Int32Array>(a: T): T {
  const next = new (a.constructor as new (n: number) => T)(a.length * 2);
  next.set(a);
  return next;
}

/** One RESP array of bulk strings (as `RespWriter.command` writes it) between `start` and `end`. */
export function decodeCommand(buf: Buffer, start: number, end: number): RedisCommand {
  let at = start;
  const line = (): number => {
    const cr = buf.indexOf(13, at);
    if (cr < 0 || cr >= end) throw new Error('malformed RESP command');
    const n = Number(buf.toString('latin1', at + 1, cr));
    at = cr + 2;
    return n;
  };
  if (buf[at] !== 42) throw new Error('malformed RESP command');
  const n = line();
  const cmd: RedisCommand = [];
  for (let k = 0; k < n; k++) {
    if (buf[at] !== 36) throw new Error('malformed RESP command');
    const len = line();
    cmd.push(buf.toString('utf8', at, at + len));
    at += len + 2;
  }
  if (at !== end) throw new Error('malformed RESP command');
  return cmd;
}
