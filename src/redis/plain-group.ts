import type { CommandOrigin, RedisCommand, RejectedCommand } from '../core/command.js';
import { ReplyError, type Reply } from './resp-connection.js';
import type { RespWriter } from './resp-writer.js';

/*
 * A plain slot group: the data commands and the positions, with no MULTI around them.
 *
 *   data commands · SET <position key> <position> GET (per sink)
 *
 * A slot's share of a batch is sent this way (`isPlainAt`) only when running any prefix of it again
 * leaves Redis as running it once would, and no reader can see half a transaction:
 *
 *   - every command is a data command that sets a key to a value (or removes it), whatever the
 *     key held (`IDEMPOTENT`), with its key as its first argument;
 *   - no key appears twice (so sending the group again cannot put back an older value of a key
 *     it wrote later in the group);
 *   - no transaction has two commands in it (a transaction stays atomic per hash slot).
 *
 * Such a group whose outcome is unknown (a lost connection) or that Redis refused in part (a
 * slot moved or migrating, OOM) is simply sent again: its keys end as one run would leave them,
 * and the lane's one batch at a time means nothing later was written to the slot meanwhile. The
 * positions go in a second write, once every data command of the slot ran, so a position Redis
 * shows covers data Redis holds; each is written by `SET … GET`, and its value before stands in
 * for the batch marker (`PlainTails`). Most groups of a batch spread over a Cluster hold one
 * command: with one sink they cost two commands instead of a MULTI's five, and Redis queues
 * nothing.
 *
 * A plain slot's states within one batch (cluster-apply-lane.ts `sendToNode`):
 *
 *   pending ──data write──► data ran ──tail write──► applied
 *      ▲  │                    │                │
 *      │  │ a command refused  │ tail refused,  │ reply lost: `marked` (the tail may have run,
 *      │  │ (MOVED, ASK, OOM); │ or reply lost  │  so finding its own value is no loss)
 *      │  │ reply lost         │                │
 *      └──┴────────────────────┴────────────────┘  sent again whole, after a backoff or a new slot map
 *
 * A command Redis found wrong (WRONGTYPE…) is no refusal: it is reported with the slot once its
 * tail ran, as a MULTI reports it.
 */

/** Commands whose second run changes nothing (ZADD only without INCR: checked apart). */
const IDEMPOTENT = new Set(['SET', 'DEL', 'UNLINK', 'HSET', 'HMSET', 'HDEL', 'SADD', 'SREM', 'ZADD', 'ZREM', 'JSON.SET', 'JSON.DEL', 'EXPIRE', 'PEXPIRE', 'EXPIREAT', 'PEXPIREAT', 'PERSIST']);

/** Whether the `n` commands whose indices are `order[from…]` (a slot of cluster-batch.ts SlotLayout) may go plain (see above). */
export function isPlainAt(commands: readonly RedisCommand[], origins: readonly (CommandOrigin | null)[], order: Int32Array, from: number, n: number): boolean {
  if (n === 1) {
    const i = order[from]!;
    return plainCommand(commands[i]!, origins[i] ?? null);
  }
  if (n > 64 || n === 0) return false;
  for (let k = 0; k < n; k++) {
    const i = order[from + k]!;
    const cmd = commands[i]!;
    const origin = origins[i] ?? null;
    if (!plainCommand(cmd, origin)) return false;
    for (let m = 0; m < k; m++) {
      const j = order[from + m]!;
      if (commands[j]![1] === cmd[1] || origins[j]!.meta.commitLsn === origin!.meta.commitLsn) return false;
    }
  }
  return true;
}

function plainCommand(cmd: RedisCommand, origin: CommandOrigin | null): boolean {
  const name = cmd[0];
  if (origin === null || name === undefined || cmd.length < 2) return false;
  const upper = name.length <= 9 && name === name.toUpperCase() ? name : name.toUpperCase();
  if (!IDEMPOTENT.has(upper)) return false;
  if (upper === 'ZADD') return !cmd.some((a, i) => i > 1 && a.toUpperCase() === 'INCR');
  if (upper === 'DEL' || upper === 'UNLINK') return cmd.length === 2;
  if (upper === 'SET') return !cmd.some((a, i) => i > 2 && a.toUpperCase() === 'GET');
  return true;
}

/** Errors that say Redis did not run a command for now (the slot elsewhere, memory, state), not that the command is wrong. */
const REFUSALS = new Set(['MOVED', 'ASK', 'TRYAGAIN', 'CLUSTERDOWN', 'OOM', 'READONLY', 'LOADING', 'MASTERDOWN', 'NOREPLICAS', 'BUSY', 'NOPERM', 'NOAUTH', 'MISCONF', 'EXECABORT']);

export function isRefusal(message: string): boolean {
  const space = message.indexOf(' ');
  return REFUSALS.has(space < 0 ? message : message.slice(0, space));
}

/**
 * Checks the replies to a plain slot's data commands (`n` of them, indices `order[from…]`) from
 * `replies[offset]`: a command Redis found wrong (WRONGTYPE…) is added to `rejected`, as in a
 * MULTI; the first refusal (`isRefusal`) is returned: the slot is then sent again whole, and its
 * tail is not written.
 */
export function checkPlainData(
  replies: readonly Reply[],
  offset: number,
  origins: readonly (CommandOrigin | null)[],
  order: Int32Array,
  from: number,
  n: number,
  rejected: RejectedCommand[],
): string | null {
  let refusal: string | null = null;
  for (let k = 0; k < n; k++) {
    const r = replies[offset + k];
    if (!(r instanceof ReplyError)) continue;
    const origin = origins[order[from + k]!] ?? null;
    if (origin && !isRefusal(r.message)) rejected.push({ origin, error: r.message });
    else refusal ??= origin ? r.message : `Redis rejected a bookkeeping command: ${r.message}`;
  }
  return refusal;
}

/**
 * Checks the replies to one slot's tail from `replies[offset]`: `found[j]` is what the tail's
 * j-th SET … GET found (undefined where it was refused); returns the first failure, if any (the
 * slot is then sent again whole).
 */
export function checkTail(replies: readonly Reply[], offset: number, tail: PlainTail, found: (string | null | undefined)[]): string | null {
  let failed: string | null = null;
  found.length = 0;
  for (let j = 0; j < tail.replies; j++) {
    const r = replies[offset + j];
    if (r === null || typeof r === 'string') {
      found.push(r);
      continue;
    }
    found.push(undefined);
    failed ??= r instanceof ReplyError ? `Redis rejected a bookkeeping command: ${r.message}` : `unexpected reply to SET … GET: ${String(r)}`;
  }
  return failed;
}

const SET_GET = '*4\r\n$3\r\nSET\r\n';

function bulk(s: string): string {
  return `$${Buffer.byteLength(s, 'utf8')}\r\n${s}\r\n`;
}

/**
 * The bookkeeping after a plain group's commands, encoded. Each of the batch's positions is
 * written with `SET <position key> <position> GET`: the value before tells, as the batch marker
 * does in a MULTI, whether Redis still holds what the lane wrote there last (data-loss
 * detection, per sink and slot). The marker is written only by a batch with no position.
 *
 * Per slot, the heads `SET <position key>` (and `SET <marker key>`) are made once and kept
 * (16,384 at most per key); per batch, the values with `GET`. A slot's tail is then a few copies
 * of bytes: encoding its keys and values string by string cost more than its data command.
 */
export class PlainTails {
  private readonly markerHeads: (Buffer | undefined)[] = [];
  private readonly positionHeads = new Map<string, (Buffer | undefined)[]>();

  constructor(
    private readonly markerKey: (slot: number) => string,
    private readonly positionKey: (sink: string, slot: number) => string,
  ) {}

  /** The tail of one batch: its positions (null ones are left out), or its id when it has none. */
  batch(batchId: string, positions: readonly (readonly [string, string | null])[]): PlainTail {
    const written: TailEntry[] = [];
    for (const [sink, value] of positions) if (value !== null) written.push({ sink, value });
    if (written.length === 0) written.push({ sink: null, value: batchId });
    const values = written.map(({ value }) => Buffer.from(`${bulk(value)}$3\r\nGET\r\n`));
    const heads = written.map(({ sink }) => {
      if (sink === null) return this.markerHeads;
      let list = this.positionHeads.get(sink);
      if (!list) this.positionHeads.set(sink, (list = []));
      return list;
    });
    return {
      replies: written.length,
      written,
      write: (out, slot) => {
        for (let i = 0; i < heads.length; i++) {
          const sink = written[i]!.sink;
          out.raw((heads[i]![slot] ??= Buffer.from(SET_GET + bulk(sink === null ? this.markerKey(slot) : this.positionKey(sink, slot)))));
          out.raw(values[i]!);
        }
      },
    };
  }

  /** A sink removed: its heads go. */
  forget(sink: string): void {
    this.positionHeads.delete(sink);
  }
}

/** What a tail writes in each slot: a sink's position, or (sink null) the batch marker. */
export interface TailEntry {
  readonly sink: string | null;
  readonly value: string;
}

/** One batch's plain-group tail (`PlainTails.batch`). */
export interface PlainTail {
  /** replies to the tail: one per entry */
  readonly replies: number;
  readonly written: readonly TailEntry[];
  /** writes the tail's `SET … GET`s in one slot */
  write(out: RespWriter, slot: number): void;
}
