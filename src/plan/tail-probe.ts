import type { Change, Transaction } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { commandKeys, type CommandOrigin, type RedisCommand, type RejectedCommand } from '../core/command.js';
import { comparePositions, isCovered, loadedCovers, loadedMax, type LoadedPositions, type Position } from '../core/position.js';
import { fillUnchangedToast } from '../core/toast.js';
import { slotOf } from '../core/slot-tags.js';
import type { SinkRuntime } from './route.js';

/*
 * The unconfirmed tail, probed (pure part; the reads are runtime/tail-probe.ts).
 *
 * A command Redis refuses inside a batch's EXEC is recorded as a failed message by a MULTI sent
 * right after it, through the same lane, before the slot is confirmed. A crash between the two
 * loses the record, and on restart the change is skipped by position (Redis has the batch's
 * position). But the slot is confirmed only after the record is written, so the batch whose
 * record was lost is always re-delivered, inside what each sink skips because its position in
 * Redis covers it: the tail. While a sink skips its tail, its skipped changes are planned again
 * (collect) and, before the batch that carries them is applied, the types of the keys they write
 * are read back (TYPE, pipelined) and judged (refusals): each command Redis would have refused
 * gets its failed message, with the id it had (commit LSN and index), written with HSETNX so a
 * record that survived is kept as it is.
 *
 * Only the last batch a lane applied before the crash can have lost its record (a lane sends
 * nothing more until the record of the previous batch is written), and Redis holds the state
 * right after that batch. So the judgement walks each key's commands backwards from the type
 * Redis holds now: a command that needs a hash on a key that ends as a string was refused; one
 * whose key ends as a hash (or absent) was not. What cannot be told (the key was deleted or
 * overwritten by a later command of the same batch, an EVAL) is left alone and counted.
 */

/** What a key holds, as TYPE says, with `hll` for a string that is a HyperLogLog (header "HYLL"). */
export type KeyType = 'none' | 'string' | 'hll' | 'hash' | 'list' | 'set' | 'zset' | 'stream' | 'other';

/** A change skipped in the tail, planned again: one data command and the message it belongs to. */
export interface TailItem {
  readonly lane: string;
  readonly command: RedisCommand;
  readonly origin: CommandOrigin;
}

/** What the runtime must read for a list of items: TYPE of every key, GETRANGE 0 3 of those a PFADD writes. */
export interface ProbeReads {
  readonly keys: readonly string[];
  readonly hllKeys: readonly string[];
}

export interface ProbeVerdict {
  /** the commands Redis refused (to record as failed messages) */
  readonly refused: RejectedCommand[];
  /** commands whose fate cannot be told from what Redis holds now (logged and counted) */
  readonly unknown: number;
}

export const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';
export const NOT_HLL = 'WRONGTYPE Key is not a valid HyperLogLog string value.';

/**
 * How a command that Redis may refuse by its key's type acts on that type: the types it accepts
 * (none is always accepted: it creates the key, or finds nothing to remove) and what it leaves,
 * applied to each. These are the commands sinks send that Redis refuses at EXEC time. Other
 * refusals cannot reach Redis or are not lost: values are checked while planning (geo ranges,
 * bitmap offsets, scores), CROSSSLOT is found by the Cluster lane itself on every replay, and
 * queue-time errors (OOM, READONLY, NOPERM) abort the whole MULTI, which is retried. EVAL
 * (aggregate sinks) is not probed: what its script needs depends on the script.
 */
interface TypeRule {
  readonly accepts: readonly KeyType[];
  /** the types the key may have right after the command applied on `before` (an accepted type or none) */
  leaves(before: KeyType): readonly KeyType[];
}

const adds = (t: KeyType): TypeRule => ({ accepts: [t], leaves: () => [t] });
/** removes members: the key goes when its last one does */
const removes = (t: KeyType): TypeRule => ({ accepts: [t], leaves: (b) => (b === 'none' ? ['none'] : [t, 'none']) });

const RULES: Readonly<Record<string, TypeRule>> = {
  HSET: adds('hash'),
  HDEL: removes('hash'),
  SADD: adds('set'),
  SREM: removes('set'),
  ZADD: adds('zset'),
  ZREM: removes('zset'),
  GEOADD: adds('zset'),
  RPUSH: adds('list'),
  LPUSH: adds('list'),
  LTRIM: removes('list'),
  XADD: adds('stream'),
  XTRIM: { accepts: ['stream'], leaves: (b) => [b] },
  // a bit set in a HyperLogLog's first bytes may spoil its header
  SETBIT: { accepts: ['string', 'hll'], leaves: (b) => (b === 'hll' ? ['hll', 'string'] : ['string']) },
  PFADD: adds('hll'),
};

/** Commands that change no key's type (anything else not in RULES may replace or delete its keys). */
const KEEPS_TYPE = new Set(['PEXPIRE', 'EXPIRE', 'PUBLISH']);

/** The types a command accepts (null: not probed, refused by nothing a probe can read). */
export function acceptedTypes(cmd: RedisCommand): readonly KeyType[] | null {
  return RULES[cmd[0]?.toUpperCase() ?? '']?.accepts ?? null;
}

/** Keys to read for these items (each once, in first-seen order). */
export function probeReads(items: readonly TailItem[]): ProbeReads {
  const keys = new Set<string>();
  const hll = new Set<string>();
  for (const it of items) {
    if (acceptedTypes(it.command) === null) continue;
    const key = it.command[1];
    if (key === undefined) continue;
    keys.add(key);
    if (it.command[0]?.toUpperCase() === 'PFADD') hll.add(key);
  }
  return { keys: [...keys], hllKeys: [...hll] };
}

/** TYPE's answer (and the first bytes of a string read for PFADD) → KeyType. */
export function keyTypeOf(type: string, head: string | null): KeyType {
  switch (type) {
    case 'none':
    case 'hash':
    case 'list':
    case 'set':
    case 'zset':
    case 'stream':
      return type;
    case 'string':
      return head === 'HYLL' ? 'hll' : 'string';
    default:
      return 'other';
  }
}

/** A set of possible types, or every type (nothing known). */
type Possible = ReadonlySet<KeyType> | 'any';

/** What the probe tells of one item: refused, applied, unknown, or not probed (no rule for it). */
export type Verdict = 'refused' | 'applied' | 'unknown' | 'unprobed';

const ALL_TYPES: readonly KeyType[] = ['none', 'string', 'hll', 'hash', 'list', 'set', 'zset', 'stream', 'other'];

/**
 * What each of `items` (in the order they were applied) met, given what each key holds now
 * (`now`; a key not in it is unknown). Walks each key's commands backwards, keeping the types the
 * key may have had right after each command: a command was refused if every such type is one it
 * does not accept (a refused command leaves the type as it was), applied if each is what it
 * leaves when applied, unknown otherwise. Commands with no rule (DEL, SET, EVAL) leave nothing
 * known before them; PEXPIRE and PUBLISH change no type.
 */
export function judge(items: readonly TailItem[], now: ReadonlyMap<string, KeyType>): Verdict[] {
  const after = new Map<string, Possible>();
  for (const [k, t] of now) after.set(k, new Set([t]));
  const verdicts = new Array<Verdict>(items.length);
  for (let i = items.length - 1; i >= 0; i--) {
    const cmd = items[i]!.command;
    const name = cmd[0]?.toUpperCase() ?? '';
    const rule = RULES[name];
    verdicts[i] = 'unprobed';
    if (rule === undefined) {
      if (!KEEPS_TYPE.has(name)) for (const k of commandKeys(cmd)) after.set(k, 'any');
      continue;
    }
    const key = cmd[1]!;
    const possible: ReadonlySet<KeyType> = ((p) => (p === 'any' ? new Set(ALL_TYPES) : p))(after.get(key) ?? 'any');
    const ok = new Set<KeyType>(['none', ...rule.accepts]);
    // refused: the type it found is still there, and is one it does not accept
    const refusedOn = [...possible].filter((t) => !ok.has(t));
    // applied: on an accepted type (or none) that leaves one of the possible types
    const appliedOn = [...ok].filter((b) => rule.leaves(b).some((t) => possible.has(t)));
    verdicts[i] = appliedOn.length === 0 ? (refusedOn.length > 0 ? 'refused' : 'unknown') : refusedOn.length === 0 ? 'applied' : 'unknown';
    const before = new Set<KeyType>([...refusedOn, ...appliedOn]);
    after.set(key, before.size === ALL_TYPES.length ? 'any' : before);
  }
  return verdicts;
}

/** The refused items of `judge`, as the lane would have returned them, and how many are unknown. */
export function refusals(items: readonly TailItem[], now: ReadonlyMap<string, KeyType>): ProbeVerdict {
  const verdicts = judge(items, now);
  const refused: RejectedCommand[] = [];
  let unknown = 0;
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    if (verdicts[i] === 'unknown') unknown++;
    if (verdicts[i] !== 'refused') continue;
    const isHll = it.command[0]?.toUpperCase() === 'PFADD' && now.get(it.command[1]!) === 'string';
    refused.push({ origin: it.origin, error: isHll ? NOT_HLL : WRONGTYPE });
  }
  return { refused, unknown };
}

/**
 * Collects, per batch, the changes each sink skips in its tail, planned again. A sink's tail is
 * what its position in Redis at start (`startPosition`) covers; it ends with the first
 * transaction (or keepalive) at or past that position. Costs one comparison per sink and
 * transaction while a tail lasts, nothing after.
 */
export class TailCollector {
  /** sinks whose tail has been passed (their Redis position at start is behind the stream) */
  private readonly passed = new Set<string>();
  private readonly byBatch = new Map<string, TailItem[]>();

  /** Is the sink still in its tail? */
  inTail(sink: SinkRuntime): boolean {
    return sink.startPosition !== null && !this.passed.has(sink.name);
  }

  /**
   * A transaction the sink takes, ending at `after`: its changes the tail covers are planned
   * again into batch `batchId`'s items; the tail ends once `after` reaches the sink's start position.
   */
  collect(batchId: string, sink: SinkRuntime, txn: Transaction, truncated: ReadonlyMap<string, number>, meta: MessageMeta, after: Position): void {
    const until = sink.startPosition;
    if (until === null || this.passed.has(sink.name)) return;
    const changes = tailChangesFor(sink, txn, truncated, until);
    if (changes.length > 0) {
      const items = planAgain(sink, changes.map(fillUnchangedToast), meta);
      if (items.length > 0) {
        const list = this.byBatch.get(batchId);
        if (list) list.push(...items);
        else this.byBatch.set(batchId, items);
      }
    }
    if (comparePositions(after, until) >= 0) this.passed.add(sink.name);
  }

  /** The stream is at `at` for the sink (an idle keepalive): its tail ends there at the latest. */
  reached(sink: SinkRuntime, at: Position): void {
    if (sink.startPosition !== null && comparePositions(at, sink.startPosition) >= 0) this.passed.add(sink.name);
  }

  /** The items of a batch, once, as it is applied (undefined: none). */
  take(batchId: string): TailItem[] | undefined {
    const items = this.byBatch.get(batchId);
    this.byBatch.delete(batchId);
    return items;
  }
}

/** The changes of `txn` the sink skips because its position covers them, and `until` covers them too. */
export function tailChangesFor(sink: SinkRuntime, txn: Transaction, truncated: ReadonlyMap<string, number>, until: Position): Change[] {
  const out: Change[] = [];
  for (const c of txn.changes) {
    if (!sink.actionSet.has(c.action) || !sink.matcher.matches(c.table)) continue;
    if (!isCovered(until, txn.commitLsn, c.idx) || !isCovered(sink.position, txn.commitLsn, c.idx)) continue;
    const t = truncated.get(c.table.qualifiedName);
    if (t !== undefined && c.idx < t && sink.sink.truncatePattern) continue; // never sent: a TRUNCATE followed
    out.push(c);
  }
  return out;
}

/**
 * Plans changes again as the sink did (functions, then the sink), keeping only data commands.
 * Failures are not kept: a planning failure was written in its batch's own MULTI.
 */
function planAgain(sink: SinkRuntime, changes: readonly Change[], meta: MessageMeta): TailItem[] {
  const items: TailItem[] = [];
  let results: ReturnType<NonNullable<SinkRuntime['functions']>['applySync']> | null = null;
  try {
    results = sink.functions ? sink.functions.applySync(changes, meta) : null;
  } catch {
    return items; // it failed when the change was first planned too
  }
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i]!;
    const r = results ? results[i]! : null;
    if (r !== null && ('skip' in r || 'error' in r)) continue;
    const origin: CommandOrigin = { sink: sink.name, change, meta };
    try {
      sink.sink.plan(change, meta, { command: (command) => items.push({ lane: sink.redis, command, origin }), fail: () => undefined }, r?.extras);
    } catch {
      // a planning bug: that message failed in its own batch
    }
  }
  return items;
}

/**
 * On a Redis Cluster the pipeline skips nothing by position: the lane drops the commands the
 * positions it loaded cover (the sink's own, and per hash slot those its MULTIs wrote past it).
 * The tail there is what the lane will drop, judged by those positions, until the stream passes
 * the furthest of them.
 */
export class SlotTail {
  /** per sink: its positions at load, and the furthest of them */
  private readonly bounds = new Map<string, { loaded: LoadedPositions; until: Position }>();

  constructor(
    private readonly lane: string,
    loaded: ReadonlyMap<string, LoadedPositions>,
  ) {
    for (const [sink, l] of loaded) {
      const until = loadedMax(l);
      if (until !== null) this.bounds.set(sink, { loaded: l, until });
    }
  }

  get open(): boolean {
    return this.bounds.size > 0;
  }

  /** The data commands of a lane's part that the lane will drop because their slot has them. */
  items(commands: readonly RedisCommand[], origins: readonly (CommandOrigin | null)[]): TailItem[] {
    const out: TailItem[] = [];
    if (this.bounds.size === 0) return out;
    for (let i = 0; i < commands.length; i++) {
      const origin = origins[i];
      const b = origin ? this.bounds.get(origin.sink) : undefined;
      if (!origin || !b) continue;
      const command = commands[i]!;
      const slot = slotOf(commandKeys(command)[0] ?? command[1] ?? '');
      if (loadedCovers(b.loaded, slot, origin.meta.commitLsn, origin.change.idx)) out.push({ lane: this.lane, command, origin });
    }
    return out;
  }

  /** The stream is at `position` once a batch is applied: sinks whose tail it passed are done. */
  reached(position: Position | null): void {
    if (position === null) return;
    for (const [sink, b] of this.bounds) if (comparePositions(position, b.until) >= 0) this.bounds.delete(sink);
  }
}
