import type { Lsn } from '../core/lsn.js';
import { ZERO_LSN } from '../core/lsn.js';
import type { Position } from '../core/position.js';
import type { CommandOrigin, RedisCommand } from '../core/command.js';
import { EncodedCommands, type OriginSource } from '../core/encoded-commands.js';

export type { CommandOrigin, OriginSource };

/**
 * What one Redis connection gets of a batch: its data commands are `commands` then `encoded`.
 * A lane that writes pre-encoded RESP (standalone, Sentinel) gets them encoded as they are
 * planned (`encoded`, `commands` empty); the others get arrays (`encoded` null).
 */
export interface LanePart {
  readonly commands: RedisCommand[];
  /** for each command, who to blame if Redis rejects it (null: bookkeeping) */
  readonly origins: (CommandOrigin | null)[];
  readonly encoded: EncodedCommands | null;
  /** key prefixes to remove before the MULTI (TRUNCATE) */
  readonly unlinkPrefixes: string[];
}

/**
 * Whole transactions (or chunks of one) that are applied together: one MULTI … EXEC per Redis
 * connection. A batch is open (takes more) until it is sealed: full, about to be applied, or
 * followed by a TRUNCATE (whose unlink must run before the next MULTI).
 */
export interface Batch {
  readonly id: string;
  readonly parts: Map<string, LanePart>;
  commandCount: number;
  /** approximate size of the batch's commands, in characters */
  bytes: number;
  /** complete transactions in the batch */
  transactions: number;
  /** end LSN of the last complete transaction: what may be confirmed once applied (0: none) */
  endLsn: Lsn;
  /** where the stream is once this batch is applied */
  position: Position | null;
  /** where each sink that took part is once this batch is applied: written with it */
  readonly sinkPositions: Map<string, Position>;
  lastCommitTime: bigint | null;
  /**
   * per sink, the commit time (Postgres microseconds) of each transaction it took changes from in
   * this batch (each chunk of a large one): the apply-latency metric, measured once Redis acknowledges
   */
  readonly commitTimes: Map<string, bigint[]>;
  /** "sink\0action" → changes, for metrics */
  readonly counts: Map<string, number>;
  readonly onApplied: (() => void)[];
  /** the batch will never be applied (Sluice stops with it queued or in flight): its waiters are told */
  readonly onDropped: ((err: Error) => void)[];
  sealed: boolean;
}

export interface BatchLimits {
  /** a batch is sealed once it holds this many commands (whole transactions only) */
  readonly maxCommands: number;
  /** … or this many bytes */
  readonly maxBytes: number;
}

/**
 * The queue of batches between planning and applying. Pure bookkeeping: no I/O, no clock;
 * batch ids come from the given factory so tests are deterministic.
 *
 *   plan ─► open batch ─(full / TRUNCATE / taken)─► sealed ─► next() ─► applying
 */
export class Batcher {
  private readonly queue: Batch[] = [];
  private commands = 0;
  private chars = 0;
  private readonly countKeys = new Map<string, Map<string, string>>();

  constructor(
    private readonly limits: BatchLimits,
    private readonly newId: () => string,
    /** whether a lane takes its commands pre-encoded (asked when its part of a batch is made) */
    private readonly encodes: (lane: string) => boolean = () => false,
  ) {}

  /** commands and bytes queued (not yet taken for applying) */
  get queued(): { commands: number; bytes: number; batches: number } {
    return { commands: this.commands, bytes: this.chars, batches: this.queue.length };
  }

  get isEmpty(): boolean {
    return this.queue.length === 0;
  }

  /** The batch planning goes into: the last one unless it is sealed. */
  open(position: Position | null): Batch {
    const last = this.queue[this.queue.length - 1];
    if (last && !last.sealed) return last;
    const b: Batch = {
      id: this.newId(),
      parts: new Map(),
      commandCount: 0,
      bytes: 0,
      transactions: 0,
      endLsn: ZERO_LSN,
      position,
      sinkPositions: new Map(),
      lastCommitTime: null,
      commitTimes: new Map(),
      counts: new Map(),
      onApplied: [],
      onDropped: [],
      sealed: false,
    };
    this.queue.push(b);
    return b;
  }

  /** The open batch takes nothing more (a TRUNCATE follows: its unlink runs before the next MULTI). */
  sealOpen(): void {
    const last = this.queue[this.queue.length - 1];
    if (last) last.sealed = true;
  }

  part(batch: Batch, lane: string): LanePart {
    let part = batch.parts.get(lane);
    if (!part) {
      part = { commands: [], origins: [], encoded: this.encodes(lane) ? new EncodedCommands() : null, unlinkPrefixes: [] };
      batch.parts.set(lane, part);
    }
    return part;
  }

  add(batch: Batch, part: LanePart, cmd: RedisCommand, origin: CommandOrigin | null): void {
    if (part.encoded !== null) part.encoded.push(cmd, origin);
    else {
      part.commands.push(cmd);
      part.origins.push(origin);
    }
    this.counted(batch, cmd);
  }

  /**
   * A command planned from `row` of `source`: a pre-encoded part resolves its origin only if it
   * is asked for (the planner gives arrays parts their origin itself: `add`).
   */
  addFromRow(batch: Batch, part: LanePart, cmd: RedisCommand, source: OriginSource, row: number): void {
    if (part.encoded !== null) part.encoded.pushRow(cmd, source, row);
    else {
      part.commands.push(cmd);
      part.origins.push(source.origin(row));
    }
    this.counted(batch, cmd);
  }

  /** A command the caller wrote into the part's `encoded` itself (about `size` bytes). */
  addedEncoded(batch: Batch, size: number): void {
    batch.commandCount++;
    this.commands++;
    batch.bytes += size;
    this.chars += size;
  }

  private counted(batch: Batch, cmd: RedisCommand): void {
    batch.commandCount++;
    this.commands++;
    let n = 0;
    for (let i = 1; i < cmd.length; i++) n += cmd[i]!.length;
    batch.bytes += n;
    this.chars += n;
  }

  count(batch: Batch, sink: string, action: string, n = 1): void {
    // the "sink\0action" key is made once, not once per change
    let bySink = this.countKeys.get(sink);
    if (!bySink) this.countKeys.set(sink, (bySink = new Map()));
    let k = bySink.get(action);
    if (k === undefined) bySink.set(action, (k = `${sink}\u0000${action}`));
    batch.counts.set(k, (batch.counts.get(k) ?? 0) + n);
  }

  /** After planning into `batch`: seal it when it is full. */
  settle(batch: Batch): void {
    if (batch.commandCount >= this.limits.maxCommands || batch.bytes >= this.limits.maxBytes) batch.sealed = true;
  }

  /** The next batch to apply (sealed as it is taken), or null. */
  next(): Batch | null {
    const b = this.queue.shift();
    if (!b) return null;
    b.sealed = true;
    this.commands -= b.commandCount;
    this.chars -= b.bytes;
    return b;
  }

  /** Would more intake overflow the queue? (`extraRows`/`extraBytes`: a transaction being received) */
  full(extraRows = 0, extraBytes = 0): boolean {
    return this.commands + extraRows >= this.limits.maxCommands || this.chars + extraBytes >= this.limits.maxBytes;
  }

  /** Drops every queued batch (stopping). Returns them so their waiters can be told. */
  clear(): Batch[] {
    const out = this.queue.splice(0);
    this.commands = 0;
    this.chars = 0;
    return out;
  }
}

/** How many data commands a part holds. */
export function partLength(part: LanePart): number {
  return part.commands.length + (part.encoded?.length ?? 0);
}

/** The part with every data command as an array (for a lane that takes no pre-encoded commands). */
export function asArrays(part: LanePart): LanePart {
  const e = part.encoded;
  if (e === null) return part;
  const commands = [...part.commands];
  const origins = [...part.origins];
  for (let i = 0; i < e.length; i++) {
    commands.push(e.command(i));
    origins.push(e.origin(i));
  }
  return { commands, origins, encoded: null, unlinkPrefixes: part.unlinkPrefixes };
}

/** Who to blame for the part's data command `i` (null: bookkeeping). */
export function partOrigin(part: LanePart, i: number): CommandOrigin | null {
  const n = part.commands.length;
  return i < n ? (part.origins[i] ?? null) : part.encoded!.origin(i - n);
}

/** The part's data command `i`. */
export function partCommand(part: LanePart, i: number): RedisCommand {
  const n = part.commands.length;
  return i < n ? part.commands[i]! : part.encoded!.command(i - n);
}

/** Splits a "sink\0action" count key. */
export function countKey(k: string): { sink: string; action: string } {
  const at = k.indexOf('\u0000');
  return { sink: k.slice(0, at), action: k.slice(at + 1) };
}
