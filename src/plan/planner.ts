import type { Change, LogicalMessage, TableInfo, Transaction } from '../core/change.js';
import type { Rows } from '../core/tuple.js';
import { fillUnchangedToast } from '../core/toast.js';
import type { MessageMeta } from '../core/render.js';
import { comparePositions, type Position } from '../core/position.js';
import type { Lsn } from '../core/lsn.js';
import { microsToUnixMs } from '../core/time.js';
import { WATERMARK_PREFIX } from '../core/keyspace.js';
import { errorMessage } from '../util/errors.js';
import { MayHoldValues, VALUES_HIDDEN, withoutDetail } from '../util/log.js';
import type { PlanOutput, RedisCommand } from '../sinks/sink.js';
import { commandKeys, type RejectedCommand } from '../core/command.js';
import { FailedStore, planFailure, type PlannedFailure } from './failed-messages.js';
import type { Batch, Batcher, CommandOrigin, LanePart, OriginSource } from './batcher.js';
import { changesFor, positionAfter, takesFrom, truncatedTables, type SinkRuntime } from './route.js';
import { Windows, WindowRetry, orphanItemIds, type Window } from './windows.js';
import { TailCollector } from './tail-probe.js';
import type { FunctionOutcome } from '../functions/index.js';

/** What planning tells the runtime about (logs and metrics): no I/O here. */
export interface PlanEvents {
  /** `logged`: the reason as it may be logged (its row values hidden unless --log-values) */
  failed(sink: string, change: Change, meta: MessageMeta, reason: string, logged: MayHoldValues | string, kept?: PlannedFailure): void;
  /** a TRUNCATE of `table` removes the sink's keys under `prefix` (null: no fixed prefix, cannot) */
  truncate(sink: string, table: TableInfo, prefix: string | null): void;
  /** a chunk of a large transaction is planned on its own (atomic per chunk only) */
  chunk(commitLsn: Lsn, through: number): void;
}

type Output = PlanOutput & { current: Change | null; bookkeeping(cmd: RedisCommand): void; /** the index of `current` in its chunk (rows: origins resolved later) */ row: number };

/** Changes made when they are planned (a backfill chunk's rows, one at a time). */
interface ChangeList {
  readonly length: number;
  at(i: number): Change;
}

/**
 * Turns transactions, watermark windows and retries into batches, in stream order. Pure apart
 * from the sinks' sandboxed functions: the same input always gives the same batches.
 */
export class Planner {
  /** where the stream is, as planned (the position of batches opened from now on) */
  planned: Position | null = null;
  /** changes skipped in each sink's unconfirmed tail, planned again for the probe (tail-probe.ts) */
  readonly tail = new TailCollector();

  constructor(
    private readonly batcher: Batcher,
    readonly windows: Windows,
    private readonly events: PlanEvents,
    private readonly sinks: () => readonly SinkRuntime[],
    /** Postgres time now (microseconds since 2000): stamps backfilled rows and failed messages */
    private readonly clock: () => bigint,
    /** what each sink's failed messages hold: a failure is kept within its bounds */
    readonly failedStore: FailedStore = new FailedStore(),
  ) {}

  /** A whole transaction (or a chunk of a large one) received on connection `generation`. */
  transaction(txn: Transaction, generation: number): Batch {
    const sinks = this.sinks();
    const truncated = truncatedTables(txn, sinks);
    if (truncated.size > 0) this.batcher.sealOpen(); // the unlink runs before the batch's MULTI
    const batch = this.batcher.open(this.planned);
    const last = txn.changes[txn.changes.length - 1];
    const after = positionAfter(txn, last !== undefined ? last.idx : -1);
    for (const sink of sinks) {
      if (!takesFrom(sink, generation)) {
        // a resumed sink catches up with what the closing connection still delivers, too
        if (sink.hold === null && sink.catchUpTo !== null && comparePositions(after, sink.catchUpTo) > 0) sink.catchUpTo = after;
        continue;
      }
      const meta: MessageMeta = { commitLsn: txn.commitLsn, commitTimeMicros: txn.commitTimeMicros, sinkName: sink.name };
      const part = this.batcher.part(batch, sink.redis);
      const changes = changesFor(sink, txn, truncated).map(fillUnchangedToast);
      if (this.tail.inTail(sink)) this.tail.collect(batch.id, sink, txn, truncated, meta, after);
      if (changes.length > 0) {
        this.planChanges(batch, part, sink, changes, meta);
        const times = batch.commitTimes.get(sink.name);
        if (times) times.push(txn.commitTimeMicros);
        else batch.commitTimes.set(sink.name, [txn.commitTimeMicros]);
      }
      for (const tr of txn.truncates) {
        // sinks without truncatePattern keep a history (list, stream, pub/sub): nothing to remove
        if (!sink.sink.truncatePattern || (sink.position !== null && comparePositions({ lsn: txn.commitLsn, idx: tr.idx }, sink.position) <= 0)) continue;
        for (const table of tr.tables) {
          if (!sink.matcher.matches(table)) continue;
          const prefix = sink.sink.truncatePattern(table);
          this.events.truncate(sink.name, table, prefix);
          if (prefix !== null) part.unlinkPrefixes.push(prefix);
        }
      }
      if (sink.position === null || comparePositions(after, sink.position) > 0) {
        sink.position = after;
        batch.sinkPositions.set(sink.name, after);
      }
      if (sink.catchUpTo !== null && comparePositions(sink.position, sink.catchUpTo) >= 0) sink.catchUpTo = null;
    }
    this.windows.track(txn.changes, txn.commitLsn);
    if (this.planned === null || comparePositions(after, this.planned) > 0) this.planned = after; // never back (a replay)
    batch.position = after;
    batch.lastCommitTime = txn.commitTimeMicros;
    if (txn.complete) {
      batch.transactions++;
      batch.endLsn = txn.endLsn;
    } else {
      this.events.chunk(txn.commitLsn, after.idx ?? -1);
    }
    for (const msg of txn.messages) this.message(msg, generation, txn.commitLsn);
    this.batcher.settle(batch);
    return batch;
  }

  /** A logical message (inside a transaction committed at `at`, or alone): watermarks open and close windows. */
  message(msg: LogicalMessage, generation: number, at: Lsn = msg.lsn): void {
    if (msg.prefix !== WATERMARK_PREFIX) return;
    const ev = this.windows.onWatermark(msg.content.toString('utf8'), at);
    if (ev.kind === 'opened' && ev.window.opened) {
      // an aggregate window: once this batch is applied, so is everything planned before the
      // window was registered, and its backfill may read the registries Redis holds
      const batch = this.batcher.open(this.planned);
      const opened = ev.window.opened;
      batch.onApplied.push(() => opened.resolve());
      batch.onDropped.push(opened.reject);
      return;
    }
    if (ev.kind !== 'closed') return;
    const w = ev.window;
    try {
      if (w.mode === 'orphans') this.closeOrphans(w);
      else if (w.mode === 'aggregate') this.closeAggregate(w, generation);
      else this.closeRows(w, msg.lsn);
    } catch (err) {
      w.reject(err instanceof Error ? err : new Error(errorMessage(err)));
    }
  }

  /**
   * An idle keepalive of connection `generation`: everything before `walEnd` was received and
   * applied, so every sink that takes from that connection is at `walEnd` once this (empty)
   * batch is applied. A sink waiting for a newer connection (resumed) is not moved.
   */
  keepalive(walEnd: Lsn, generation: number): Batch {
    const at: Position = { lsn: walEnd, idx: null };
    const batch = this.batcher.open(this.planned);
    if (this.planned === null || comparePositions(at, this.planned) > 0) this.planned = at;
    batch.position = at;
    batch.endLsn = walEnd;
    for (const s of this.sinks()) {
      if (!takesFrom(s, generation)) continue;
      if (this.tail.inTail(s)) this.tail.reached(s, at);
      if (s.position !== null && comparePositions(at, s.position) <= 0) continue;
      s.position = at;
      batch.sinkPositions.set(s.name, at);
      if (s.catchUpTo !== null && comparePositions(at, s.catchUpTo) >= 0) s.catchUpTo = null;
    }
    return batch;
  }

  /**
   * A failed message retried as it was (history sinks): `before` (bookkeeping), then the change,
   * planned after everything taken in so far. `onApplied` runs once it is in Redis.
   */
  replay(sink: SinkRuntime, change: Change, meta: MessageMeta, before: readonly RedisCommand[], onApplied: () => void, onDropped: (err: Error) => void = () => undefined): void {
    const batch = this.batcher.open(this.planned);
    const part = this.batcher.part(batch, sink.redis);
    const out = this.output(batch, part, sink.name, meta);
    for (const cmd of before) out.bookkeeping(cmd);
    this.planChanges(batch, part, sink, [change], meta, out);
    batch.onApplied.push(onApplied);
    batch.onDropped.push(onDropped);
    this.batcher.settle(batch);
  }

  /** Failed-message records for data commands Redis refused (written through the same lane, before the batch counts as applied). */
  rejected(rejected: readonly RejectedCommand[]): RedisCommand[] {
    const out: RedisCommand[] = [];
    for (const r of rejected) {
      const reason = `Redis rejected the command: ${r.error}`;
      const kept = planFailure(r.origin.change, r.origin.meta, reason, microsToDate(this.clock()), this.failedStore);
      // Redis errors name commands and keys, never the values sent
      this.events.failed(r.origin.sink, r.origin.change, r.origin.meta, reason, reason, kept);
      if (kept.command !== null) out.push(kept.command);
    }
    return out;
  }

  private closeRows(w: Window, lsn: Lsn): void {
    const sink = this.sinks().find((s) => s.name === w.sink);
    if (!sink) throw new Error(`sink "${w.sink}" was deleted`);
    const { rows, skipped } = Windows.freshRows(w);
    const table = w.table!;
    const batch = this.batcher.open(this.planned);
    const part = this.batcher.part(batch, sink.redis);
    // a backfilled row is stamped with the high watermark's position and the time it is planned
    const meta: MessageMeta = { commitLsn: lsn, commitTimeMicros: this.clock(), sinkName: sink.name };
    // each row becomes a change only while it is planned (and again if Redis refuses its command):
    // a chunk stays its compact rows until its batch is applied
    const changes: ChangeList = { length: rows.length, at: (idx) => ({ action: 'read', table, row: rows.row(idx), oldRow: null, oldKind: null, idx }) };
    const origins: OriginSource = { sink: sink.name, origin: (idx) => ({ sink: sink.name, change: changes.at(idx), meta }) };
    const out = this.output(batch, part, sink.name, meta, origins);
    if (!this.encodeRows(batch, part, sink, w, rows, changes, origins, meta, out) && changes.length > 0) this.planChanges(batch, part, sink, changes, meta, out);
    for (const cmd of w.extraCommands) out.bookkeeping(cmd);
    const result = { emitted: changes.length, skipped };
    const all = w.rows!;
    batch.onApplied.push(() => {
      w.resolve(result);
      // the rows' origins are read only until the batch is applied (refused commands, deliveries)
      all.release?.();
    });
    batch.onDropped.push(w.reject);
    this.batcher.settle(batch);
  }

  /**
   * A chunk's rows encoded straight from their COPY text by the sink (its `copyEncoder`), each row
   * it cannot encode planned as a change: the same commands as `planChanges`, without a row, a
   * change or a command array per row. Only where nothing else needs to see the commands as data:
   * a pre-encoded part, a sink without functions, no orphan or aggregate window tracking its keys.
   * False (nothing done) when it does not apply.
   */
  private encodeRows(batch: Batch, part: LanePart, sink: SinkRuntime, w: Window, rows: Rows, changes: ChangeList, origins: OriginSource, meta: MessageMeta, out: Output): boolean {
    const encoded = part.encoded;
    if (encoded === null || sink.functions || rows.lines === undefined || this.windows.keyTrackers(sink.name) !== null) return false;
    const encoder = sink.sink.copyEncoder?.(w.table!) ?? null;
    if (encoder === null) return false;
    const { buf, ends } = rows.lines();
    const writer = encoded.writer;
    for (let i = 0; i < rows.length; i++) {
      const before = writer.size;
      if (encoder(buf, i === 0 ? 0 : ends[i - 1]! + 1, ends[i]!, writer)) {
        encoded.endRow(origins, i);
        this.batcher.addedEncoded(batch, writer.size - before);
        this.batcher.count(batch, sink.name, 'read');
      } else {
        out.row = i;
        this.planOne(batch, sink, changes.at(i), meta, out, null);
      }
    }
    return true;
  }

  /**
   * An aggregate backfill's mark: its groups are set here, in stream order, after every change
   * its GROUP BY read holds and before any it does not. Only right when the sink has planned
   * everything before the mark: a sink that is held, or resumed and replaying from an older
   * position on a newer connection, does not take this one, and the read is taken again.
   */
  private closeAggregate(w: Window, generation: number): void {
    const sink = this.sinks().find((s) => s.name === w.sink);
    if (!sink) throw new Error(`sink "${w.sink}" was deleted`);
    if (!takesFrom(sink, generation)) throw new WindowRetry(`sink "${sink.name}" was paused or resumed while its aggregate backfill read the table`);
    const fill = w.aggregate;
    if (!fill) throw new Error('the aggregate mark was seen before the groups were read');
    const batch = this.batcher.open(this.planned);
    const part = this.batcher.part(batch, sink.redis);
    for (const cmd of fill.build(new Set([...fill.registries, ...w.touched]))) this.batcher.add(batch, part, cmd, null);
    for (const cmd of w.extraCommands) this.batcher.add(batch, part, cmd, null);
    const result = { emitted: fill.groups, skipped: 0 };
    batch.onApplied.push(() => w.resolve(result));
    batch.onDropped.push(w.reject);
    this.batcher.settle(batch);
  }

  private closeOrphans(w: Window): void {
    const sink = this.sinks().find((s) => s.name === w.sink);
    if (!sink) throw new Error(`sink "${w.sink}" was deleted`);
    const { keys, skipped } = Windows.orphanKeys(w);
    const items = Windows.orphanItemCommands(w);
    const batch = this.batcher.open(this.planned);
    const part = this.batcher.part(batch, sink.redis);
    for (const key of keys) this.batcher.add(batch, part, ['DEL', key], null);
    for (const cmd of items.commands) this.batcher.add(batch, part, cmd, null);
    const result = { emitted: keys.length + items.commands.length, skipped: skipped + items.skipped };
    batch.onApplied.push(() => w.resolve(result));
    batch.onDropped.push(w.reject);
    this.batcher.settle(batch);
  }

  /**
   * Plans changes for one sink. With functions: one call into the sandbox for all of them, then
   * each is skipped (filter), planned with the results (transform, route) or failed with the reason.
   * A planning bug (anything but a message error) fails that message, never the stream.
   */
  private planChanges(batch: Batch, part: LanePart, sink: SinkRuntime, given: readonly Change[] | ChangeList, meta: MessageMeta, known?: Output): void {
    const out = known ?? this.output(batch, part, sink.name, meta);
    // the sandbox takes all of them at once: a list made one by one is made whole for it
    const changes = sink.functions && !Array.isArray(given) ? Array.from({ length: given.length }, (_v, i) => (given as ChangeList).at(i)) : given;
    const list = Array.isArray(changes) ? (changes as readonly Change[]) : null;
    const results = sink.functions ? sink.functions.applySync(list!, meta) : null;
    for (let i = 0; i < changes.length; i++) {
      const change = list !== null ? list[i]! : (changes as ChangeList).at(i);
      out.row = i;
      const r = results ? results[i]! : null;
      if (r !== null && 'skip' in r) continue;
      this.planOne(batch, sink, change, meta, out, r);
    }
  }

  /** One change the functions (if any) did not skip: the sink plans it, or it fails. */
  private planOne(batch: Batch, sink: SinkRuntime, change: Change, meta: MessageMeta, out: Output, r: Exclude<FunctionOutcome, { skip: true }> | null): void {
    out.current = change;
    // a function's error quotes what the user's code threw or returned: row values, maybe
    if (r !== null && 'error' in r) out.fail(change, r.error, withoutDetail(r.error));
    else {
      try {
        sink.sink.plan(change, meta, out, r?.extras);
      } catch (err) {
        const lead = 'internal error while planning this message (please report it)';
        out.fail(change, `${lead}: ${errorMessage(err)}`, `${lead}: ${VALUES_HIDDEN}`);
      }
    }
    this.batcher.count(batch, sink.name, change.action);
  }

  private output(batch: Batch, part: LanePart, sinkName: string, meta: MessageMeta, rows: OriginSource | null = null): Output {
    const { batcher, events, clock, failedStore } = this;
    const trackers = this.windows.keyTrackers(sinkName);
    const itemTrackers = trackers && this.windows.itemTrackers(sinkName);
    let origin: CommandOrigin | null = null;
    let originOf: Change | null = null;
    const lazy = part.encoded !== null ? rows : null;
    const out: Output = {
      current: null,
      row: -1,
      command(cmd: RedisCommand): void {
        if (trackers) for (const k of commandKeys(cmd)) for (const t of trackers) t.add(k);
        if (itemTrackers) for (const k of orphanItemIds(cmd)) for (const t of itemTrackers) t.add(k);
        if (lazy !== null) {
          batcher.addFromRow(batch, part, cmd, lazy, out.row);
          return;
        }
        if (originOf !== out.current) {
          originOf = out.current;
          origin = { sink: sinkName, change: out.current!, meta };
        }
        batcher.add(batch, part, cmd, origin);
      },
      bookkeeping(cmd: RedisCommand): void {
        batcher.add(batch, part, cmd, null);
      },
      fail(change: Change, reason: string, withoutValues: string = reason): void {
        const kept = planFailure(change, meta, reason, microsToDate(clock()), failedStore);
        if (kept.command !== null) batcher.add(batch, part, kept.command, null);
        events.failed(sinkName, change, meta, reason, withoutValues === reason ? reason : new MayHoldValues(reason, withoutValues), kept);
      },
    };
    return out;
  }
}

function microsToDate(micros: bigint): Date {
  return new Date(microsToUnixMs(micros));
}
