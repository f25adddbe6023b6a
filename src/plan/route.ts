import type { Action, Change, TableInfo, Transaction } from '../core/change.js';
import { comparePositions, isCovered, type Position } from '../core/position.js';
import type { Lsn } from '../core/lsn.js';
import type { Sink } from '../sinks/sink.js';
import type { SinkFunctions } from '../functions/index.js';
import { TableMatcher } from './table-match.js';

/** What a sink is made of, as configured (the file or the API). */
export interface SinkSpec {
  readonly sink: Sink;
  /** name of the Redis connection */
  readonly redis: string;
  readonly tables: readonly string[];
  readonly actions: readonly Action[];
  /** the sink's filter/transform/route, when it has any */
  readonly functions?: SinkFunctions | undefined;
}

/**
 * Why a sink takes no changes for now. While held, its position does not move, so the slot is
 * not confirmed past it and Postgres keeps the WAL it has not seen.
 * - paused: by the user (API), until resumed;
 * - starting: added at runtime, until its Redis connection is ready.
 */
export type HoldReason = 'paused' | 'starting';

/**
 * A sink inside the running pipeline. Mutable: the runtime replaces `spec` (PATCH), holds and
 * releases it (pause/resume), and moves `position` as it plans.
 *
 *   starting ──lane ready──► active ◄──resume──┐
 *                              │               │
 *                              └───pause────► paused        (deleted: removed from the list)
 */
export interface SinkRuntime extends SinkSpec {
  readonly name: string;
  readonly matcher: TableMatcher;
  readonly actionSet: ReadonlySet<Action>;
  /** what Redis held for this sink at start (null: nothing); used to tell new sinks */
  startPosition: Position | null;
  /** everything covered by this position has been planned for the sink: it is skipped if seen again */
  position: Position | null;
  /** the furthest position written (or about to be) to Redis with a batch: never moves back */
  written: Position | null;
  hold: HoldReason | null;
  /** resumed: until it has planned up to here, it still holds the slot (it replays what it missed) */
  catchUpTo: Position | null;
  /**
   * Stream items received on an older connection than this are not for the sink: after a
   * resume the stream is restarted from the slot, and what was already queued is newer than
   * what the sink missed.
   */
  fromGeneration: number;
}

export function sinkRuntime(spec: SinkSpec & { name?: string }, position: Position | null = null, hold: HoldReason | null = null): SinkRuntime {
  return {
    ...spec,
    name: spec.sink.name,
    matcher: new TableMatcher(spec.tables),
    actionSet: new Set<Action>([...spec.actions, 'read']),
    startPosition: position,
    position,
    written: position,
    hold,
    catchUpTo: null,
    fromGeneration: 0,
  };
}

/** A sink with a new spec (PATCH): same name, position and state. */
export function respec(runtime: SinkRuntime, spec: SinkSpec): SinkRuntime {
  const next = sinkRuntime(spec, runtime.position, runtime.hold);
  next.startPosition = runtime.startPosition;
  next.written = runtime.written;
  next.catchUpTo = runtime.catchUpTo;
  next.fromGeneration = runtime.fromGeneration;
  return next;
}

/** Does this stream item (received on connection `generation`) go to the sink at all? */
export function takesFrom(sink: SinkRuntime, generation: number): boolean {
  return sink.hold === null && generation >= sink.fromGeneration;
}

/** The changes of a transaction the sink must plan: its tables and actions, not yet covered, not emptied by a later TRUNCATE. */
export function changesFor(sink: SinkRuntime, txn: Transaction, truncated: ReadonlyMap<string, number>): Change[] {
  const out: Change[] = [];
  for (const c of txn.changes) {
    if (!sink.actionSet.has(c.action) || !sink.matcher.matches(c.table)) continue;
    if (isCovered(sink.position, txn.commitLsn, c.idx)) continue;
    const t = truncated.get(c.table.qualifiedName);
    // a state sink's keys are emptied by the TRUNCATE that follows; history sinks keep entries
    if (t !== undefined && c.idx < t && sink.sink.truncatePattern) continue;
    out.push(c);
  }
  return out;
}

/**
 * Tables truncated by this transaction that some sink reads (by name: Postgres may describe a
 * table again between a change and a TRUNCATE), with the index of the last truncate.
 */
export function truncatedTables(txn: Transaction, sinks: readonly SinkRuntime[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const tr of txn.truncates) for (const t of tr.tables) if (sinks.some((s) => s.matcher.matches(t))) out.set(t.qualifiedName, tr.idx);
  return out;
}

/** Where a transaction (or a chunk of a large one, through `lastIdx`) leaves the stream. */
export function positionAfter(txn: Transaction, lastIdx: number): Position {
  return txn.complete ? { lsn: txn.endLsn, idx: null } : { lsn: txn.commitLsn, idx: lastIdx };
}

/**
 * The position to write for a sink with a batch: what was planned for it in that batch (null:
 * nothing, Redis keeps what it has). Never backwards. Not the stream's position: while a sink
 * is held, or replays after a resume, the stream is elsewhere.
 */
export function positionToWrite(sink: SinkRuntime, planned: Position | null): Position | null {
  if (planned === null) return null;
  if (sink.written !== null && comparePositions(planned, sink.written) <= 0) return null;
  sink.written = planned;
  return planned;
}

/**
 * The LSN the slot may be confirmed to once a batch is applied: what the batch allows, but never
 * past what any sink has in Redis (its position written with an applied batch; before the first,
 * where it starts). A sink that took no part in recent batches (paused, starting, replaying
 * after a resume, or skipping what a closing connection still delivers) holds the slot there, so
 * Postgres keeps the WAL it has not applied. A position inside a large transaction holds the
 * slot before that transaction's commit.
 */
export function confirmable(batchEnd: Lsn, sinks: readonly SinkRuntime[]): Lsn {
  let lsn = batchEnd;
  for (const s of sinks) {
    const pos = s.written ?? s.position;
    if (pos === null) continue;
    const held = pos.idx === null ? pos.lsn : pos.lsn - 1n;
    if (held < lsn) lsn = held;
  }
  return lsn;
}

/**
 * After a reconnect Postgres resends what was not confirmed; what was already taken in is
 * dropped here (per transaction, and per change for chunks of a large transaction). Reset it
 * when the stream is restarted on purpose to replay for a resumed sink.
 */
export class ResendFilter {
  private lastSeen: Position | null = null;

  reset(): void {
    this.lastSeen = null;
  }

  get seen(): Position | null {
    return this.lastSeen;
  }

  /** The part of `txn` not taken in yet, or null when it was all seen. */
  take(txn: Transaction): Transaction | null {
    const seen = this.lastSeen;
    let changes = txn.changes;
    if (seen !== null && txn.commitLsn <= seen.lsn) {
      if (txn.commitLsn < seen.lsn || seen.idx === null) return null;
      const after = seen.idx;
      changes = changes.filter((c) => c.idx > after);
      if (changes.length === 0 && !txn.complete) return null;
    }
    const last = changes[changes.length - 1];
    const lastIdx = last !== undefined ? last.idx : seen?.lsn === txn.commitLsn ? seen.idx : null;
    this.lastSeen = txn.complete ? { lsn: txn.commitLsn, idx: null } : { lsn: txn.commitLsn, idx: lastIdx ?? -1 };
    return changes === txn.changes ? txn : { ...txn, changes };
  }
}

/** With REPLICA IDENTITY FULL, the table as keyed by its primary key (pgoutput marks every column as key). */
export function keyedByPrimaryKey(table: TableInfo, primaryKey: readonly string[] | null | undefined): TableInfo {
  if (table.replicaIdentity !== 'f' || !primaryKey || primaryKey.length === 0) return table;
  const columns = table.columns.map((c) => ({ ...c, isKey: primaryKey.includes(c.name) }));
  return { ...table, columns, keyIndexes: columns.flatMap((c, i) => (c.isKey ? [i] : [])) };
}

/**
 * The resend filter, and when to reset it: after a restart for a resumed sink, the first item
 * of the new connection starts a replay that the filter must let through (every active sink
 * skips what it already planned by its own position).
 */
export class ResendState {
  readonly filter = new ResendFilter();
  private generation = -1;

  /**
   * True for the first item of each new connection: Postgres resends from the slot's position,
   * which after a resume lies before what was taken in, and every sink skips what it already has
   * by its own position. (Within a connection the filter drops nothing twice.)
   */
  shouldReset(generation: number): boolean {
    if (generation <= this.generation) return false;
    this.generation = generation;
    return true;
  }
}
