import { randomUUID } from 'node:crypto';
import type { Action, Change, TableInfo, Transaction } from '../core/change.js';
import { TransactionAssembler } from '../pg/assembler.js';
import { fillUnchangedToast, hasUnchangedToast } from '../core/toast.js';
import { rowIdentity } from '../core/table-info.js';
import type { MessageMeta } from '../core/render.js';
import { PgoutputDecoder } from '../pg/pgoutput/decoder.js';
import { ReplicationSource } from '../pg/replication-source.js';
import type { LogicalMessage, ReplicationMessage, Tuple } from '../pg/pgoutput/types.js';
import { formatLsn, type Lsn, ZERO_LSN } from '../core/lsn.js';
import { microsSince2000 } from '../core/time.js';
import { ApplyLane, type CommandOrigin, type Lane, type RejectedCommand } from '../redis/apply-lane.js';
import { ClusterApplyLane } from '../redis/cluster-apply-lane.js';
import { Cluster } from 'ioredis';
import { connectRedis, type RedisClient } from '../redis/connect.js';
import type { PlanOutput, RedisCommand, Sink } from '../sinks/sink.js';
import type { Logger } from '../util/log.js';
import type { Metrics } from '../metrics.js';
import { TableMatcher } from './table-match.js';
import { failedMessageCommand } from './failed-messages.js';
import { comparePositions, formatPosition, isCovered, type Position } from '../core/position.js';
import { RowFetcher } from './row-fetcher.js';
import { errorMessage } from '../util/errors.js';
import { commandKeys } from './pipeline-keys.js';
import type { SinkFunctions } from '../functions/index.js';

export interface SinkSpec {
  readonly sink: Sink;
  /** name of the Redis connection */
  readonly redis: string;
  readonly tables: readonly string[];
  readonly actions: readonly Action[];
  /** the sink's filter/transform/route, when it has any */
  readonly functions?: SinkFunctions | undefined;
}

export interface PipelineOptions {
  source: { url: string; slot: string; publication: string };
  sinks: readonly SinkSpec[];
  redis: ReadonlyMap<string, RedisClient>;
  log: Logger;
  metrics: Metrics;
  /** a batch is closed once it holds this many commands (whole transactions only) */
  batchMaxCommands: number;
  /** a transaction with more changes is applied in chunks of this size */
  maxTransactionRows: number;
  /** Redis lost writes while running: these sinks must be backfilled again */
  onDataLoss?: (sinks: string[], redis: string) => void;
  /** bound of one batch (and of a chunk of a large transaction) in bytes: wide rows */
  batchMaxBytes?: number;
}

const DEFAULT_BATCH_MAX_BYTES = 32 * 1024 * 1024;

export interface SinkRuntime extends SinkSpec {
  readonly matcher: TableMatcher;
  readonly actionSet: ReadonlySet<Action>;
  /** what Redis held for this sink at start: transactions covered by it are skipped */
  startPosition: Position | null;
}

interface LanePart {
  commands: RedisCommand[];
  origins: (CommandOrigin | null)[];
  unlinkPrefixes: string[];
}

/** Whole transactions (or chunks of one) collected while the previous batch is being applied. */
interface Batch {
  readonly id: string;
  readonly parts: Map<string, LanePart>;
  commandCount: number;
  /** approximate size of the batch's commands */
  bytes: number;
  transactions: number;
  /** end LSN of the last complete transaction: confirmed once the batch is applied (0: none) */
  endLsn: Lsn;
  /** the position Redis is at once this batch is applied */
  position: Position | null;
  lastCommitTime: bigint | null;
  readonly counts: Map<string, number>;
  readonly onApplied: (() => void)[];
}

/**
 * A backfill chunk waiting for its high watermark (DBLog). In `orphans` mode it carries keys to
 * delete instead of rows: those the sink wrote between the watermarks are kept.
 */
interface BackfillWindow {
  readonly id: string;
  readonly mode: 'rows' | 'orphans';
  readonly sink: SinkRuntime;
  readonly table: TableInfo | null;
  /** the low watermark has been seen in the stream: changes to the table are now tracked */
  open: boolean;
  /** identities of rows changed in the stream between the watermarks: their chunk rows are stale */
  readonly touched: Set<string>;
  rows: Tuple[] | null;
  orphans: string[] | null;
  extraCommands: RedisCommand[];
  resolve: (r: { emitted: number; skipped: number }) => void;
  reject: (err: Error) => void;
}

type IntakeItem = { kind: 'txn'; txn: Transaction } | { kind: 'message'; msg: LogicalMessage };

export type PipelineState = 'starting' | 'running' | 'draining' | 'stopped';

export const WATERMARK_PREFIX = 'sluice';

/**
 * The one place where Postgres changes become Redis writes, in commit order:
 *
 *   replication source ─► pgoutput decoder ─► transaction assembler ─► intake ─► sinks (pure planning)
 *        ▲                                                                            │
 *        └──────── confirm(end LSN) ◄── apply lanes (one MULTI/EXEC per Redis) ◄── batches
 *
 * Intake is ordered; it is synchronous unless a transaction needs unchanged TOAST values read
 * from Postgres, in which case the source pauses until they are read. Batches queue up while
 * one is applied; when the queue holds `batchMaxCommands` commands the source stops reading the
 * socket (backpressure reaches the walsender) and resumes as soon as the queue shrinks.
 *
 * Backfill chunks enter through watermarks: between a chunk's low and high watermark the
 * identities of changed rows are collected; at the high watermark the chunk's other rows become
 * `read` messages at that point of the stream, so no row ever moves backwards (DBLog).
 */
export class Pipeline {
  state: PipelineState = 'starting';
  private decoder = new PgoutputDecoder();
  private readonly assembler: TransactionAssembler;
  private readonly source: ReplicationSource;
  readonly sinks: SinkRuntime[];
  private readonly lanes = new Map<string, Lane>();
  private readonly batches: Batch[] = [];
  /** batches that take no more transactions (full, or before a TRUNCATE) */
  private readonly sealed = new WeakSet<Batch>();
  private connectedOnce = false;
  private queuedCommands = 0;
  private queuedBytes = 0;
  private applying = false;
  private readonly pauseReasons = new Set<string>();
  private readonly intakeQueue: IntakeItem[] = [];
  private intakeBusy = false;
  /** the last transaction (or chunk) taken in, to drop what Postgres resends after a reconnect */
  private lastSeen: Position | null = null;
  private plannedPosition: Position | null = null;
  private lastAppliedCommitTime: bigint | null = null;
  private idleWaiters: (() => void)[] = [];
  private fatal: Error | null = null;
  private readonly windows = new Map<string, BackfillWindow>();
  /** primary key columns of REPLICA IDENTITY FULL tables (pgoutput marks all their columns as key) */
  private readonly primaryKeys = new Map<string, readonly string[] | null>();
  private readonly keyedTables = new WeakMap<TableInfo, TableInfo>();
  private readonly fetcher: RowFetcher;

  constructor(private readonly opts: PipelineOptions) {
    this.sinks = opts.sinks.map((s) => ({
      ...s,
      matcher: new TableMatcher(s.tables),
      actionSet: new Set<Action>([...s.actions, 'read']),
      startPosition: null,
    }));
    this.assembler = new TransactionAssembler(
      {
        transaction: (txn) => this.intake({ kind: 'txn', txn }),
        logicalMessage: (msg) => this.intake({ kind: 'message', msg }),
      },
      opts.maxTransactionRows,
      opts.batchMaxBytes ?? DEFAULT_BATCH_MAX_BYTES,
    );
    this.source = new ReplicationSource({
      ...opts.source,
      protoVersion: 1,
      log: opts.log,
      onMessage: (msg) => this.onMessage(msg),
      onConnected: () => {
        this.assembler.reset();
        this.decoder = new PgoutputDecoder();
        if (this.connectedOnce) this.opts.metrics.reconnects.inc();
        this.connectedOnce = true;
      },
    });
    this.fetcher = new RowFetcher(opts.source.url);
  }

  get confirmedLsn(): Lsn {
    return this.source.confirmedLsn;
  }

  get sourceState(): string {
    return this.source.state;
  }

  get lastError(): string | null {
    return this.fatal?.message ?? this.source.lastError ?? [...this.lanes.values()].find((l) => l.lastError)?.lastError ?? null;
  }

  /** Age of the last applied commit while something is pending; 0 when caught up. */
  lagMs(nowMs = Date.now()): number {
    if (this.isIdle() || this.lastAppliedCommitTime === null) return 0;
    const commitMs = Number(this.lastAppliedCommitTime / 1000n) + Date.UTC(2000, 0, 1);
    return Math.max(0, nowMs - commitMs);
  }

  laneStates(): { name: string; state: string; lastError: string | null }[] {
    return [...this.lanes.values()].map((l) => ({ name: l.name, state: l.state, lastError: l.lastError }));
  }

  sinkRuntime(name: string): SinkRuntime | undefined {
    return this.sinks.find((s) => s.sink.name === name);
  }

  redisFor(sinkName: string): RedisClient {
    const s = this.sinkRuntime(sinkName);
    const client = s ? this.opts.redis.get(s.redis) : undefined;
    if (!client) throw new Error(`no Redis connection for sink "${sinkName}"`);
    return client;
  }

  /**
   * Connects Redis, reads each sink's position and starts streaming.
   * @param slotConfirmed the slot's confirmed position (null: the slot is new)
   * @returns sinks whose Redis is behind the slot (it lost writes: backfill them again) and
   *   sinks Redis knows nothing of while the slot has history (new sinks, or lost data)
   */
  async start(slotConfirmed: Lsn | null = null): Promise<{ behind: string[]; unknown: string[] }> {
    const { log } = this.opts;
    const behind: string[] = [];
    const unknown: string[] = [];
    for (const [name, client] of this.opts.redis) {
      const sinkNames = this.sinks.filter((s) => s.redis === name).map((s) => s.sink.name);
      if (sinkNames.length === 0) continue;
      await connectRedis(client);
      const onRejected = (rejected: RejectedCommand[]): void => this.onRejected(lane, rejected);
      const onDataLoss = (): void => {
        this.opts.metrics.dataLoss.inc({ redis: name });
        this.opts.onDataLoss?.(sinkNames, name);
      };
      const lane: Lane = client instanceof Cluster
        ? new ClusterApplyLane(name, client, sinkNames, log, onRejected, onDataLoss)
        : new ApplyLane(name, client, sinkNames, log, onRejected, onDataLoss);
      this.lanes.set(name, lane);
      const loaded = await lane.load();
      for (const s of this.sinks) {
        if (s.redis !== name) continue;
        const pos = loaded.skip.get(s.sink.name) ?? null;
        s.startPosition = pos;
        if (loaded.behindCheck && pos !== null && slotConfirmed !== null && pos.lsn < slotConfirmed) {
          behind.push(s.sink.name);
          log.error({ sink: s.sink.name, position: formatPosition(pos), slot: formatLsn(slotConfirmed) }, 'Redis is behind the replication slot: it lost writes');
        } else if (!loaded.known.has(s.sink.name) && slotConfirmed !== null && slotConfirmed > ZERO_LSN) {
          unknown.push(s.sink.name);
        }
        log.info({ sink: s.sink.name, position: pos === null ? null : formatPosition(pos) }, 'sink ready');
      }
    }
    if (behind.length > 0) this.opts.metrics.dataLoss.inc({ redis: 'at-start' });
    this.state = 'running';
    this.source.start(ZERO_LSN);
    return { behind, unknown };
  }

  /** Stops reading, applies every whole transaction already received, confirms, closes. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'draining';
    this.pause('draining');
    const drained = await Promise.race([
      this.whenIdle().then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref()),
    ]);
    if (!drained) this.opts.log.warn('drain timed out; unapplied changes will be streamed again at the next start');
    for (const w of this.windows.values()) w.reject(new Error('Sluice is stopping'));
    this.windows.clear();
    for (const lane of this.lanes.values()) lane.stop();
    await this.source.stop();
    await this.fetcher.close();
    this.state = 'stopped';
    this.opts.log.info({ confirmed: formatLsn(this.source.confirmedLsn) }, 'pipeline stopped');
  }

  /** Resolves once nothing is queued or being applied. */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // ---- backfill windows --------------------------------------------------------------------

  /**
   * Registers a backfill chunk before its low watermark is emitted. `applied` resolves once the
   * chunk's rows are in Redis (with how many were emitted and how many the stream superseded).
   */
  openBackfillWindow(sinkName: string, table: TableInfo): { id: string; applied: Promise<{ emitted: number; skipped: number }> } {
    const sink = this.sinkRuntime(sinkName);
    if (!sink) throw new Error(`no sink named "${sinkName}"`);
    const id = randomUUID();
    const applied = new Promise<{ emitted: number; skipped: number }>((resolve, reject) => {
      this.windows.set(id, { id, mode: 'rows', sink, table, open: false, touched: new Set(), rows: null, orphans: null, extraCommands: [], resolve, reject });
    });
    return { id, applied };
  }

  /**
   * An orphan sweep: keys the sink should not hold are collected after the low watermark
   * (fillOrphanWindow) and deleted at the high watermark, except those the sink wrote in between.
   */
  openOrphanWindow(sinkName: string): { id: string; applied: Promise<{ emitted: number; skipped: number }> } {
    const sink = this.sinkRuntime(sinkName);
    if (!sink) throw new Error(`no sink named "${sinkName}"`);
    const id = randomUUID();
    const applied = new Promise<{ emitted: number; skipped: number }>((resolve, reject) => {
      this.windows.set(id, { id, mode: 'orphans', sink, table: null, open: false, touched: new Set(), rows: null, orphans: null, extraCommands: [], resolve, reject });
    });
    return { id, applied };
  }

  fillOrphanWindow(id: string, keys: string[]): void {
    const w = this.windows.get(id);
    if (!w || w.mode !== 'orphans') throw new Error(`orphan window ${id} is not open`);
    w.orphans = keys;
  }

  /** The chunk's rows, read after the low watermark; call before emitting the high watermark. */
  fillBackfillWindow(id: string, rows: Tuple[], extraCommands: RedisCommand[]): void {
    const w = this.windows.get(id);
    if (!w) throw new Error(`backfill window ${id} is not open`);
    w.rows = rows;
    w.extraCommands = extraCommands;
  }

  cancelBackfillWindow(id: string, reason: string): void {
    const w = this.windows.get(id);
    if (!w) return;
    this.windows.delete(id);
    w.reject(new Error(reason));
  }

  /**
   * A failed message retried as it was (history sinks): `before` (bookkeeping) then the change
   * are planned into the open batch, after everything taken in so far; resolves once applied.
   * Failing again records it under the same id (same commit LSN and index), after `before`.
   */
  replayMessage(sinkName: string, change: Change, meta: MessageMeta, before: RedisCommand[]): Promise<void> {
    const sink = this.sinkRuntime(sinkName);
    if (!sink) return Promise.reject(new Error(`no sink named "${sinkName}"`));
    if (this.state !== 'running') return Promise.reject(new Error(`Sluice is ${this.state}`));
    return new Promise((resolve) => {
      const batch = this.openBatch();
      const out = this.planOutput(batch, this.partFor(batch, sink.redis), sinkName, meta);
      for (const cmd of before) out.bookkeeping(cmd);
      if (sink.functions) this.planWithFunctions(sink, [change], meta, out, batch.counts);
      else {
        out.current = change;
        sink.sink.plan(change, meta, out);
        const k = `${sinkName}\u0000${change.action}`;
        batch.counts.set(k, (batch.counts.get(k) ?? 0) + 1);
      }
      batch.onApplied.push(() => resolve());
      this.afterPlanning(batch);
      this.kick();
    });
  }

  // ---- intake ------------------------------------------------------------------------------

  private onMessage(msg: ReplicationMessage): void {
    if (msg.tag === 'keepalive') {
      // Everything received is applied: the server's position may be confirmed, so an idle
      // slot on a busy database does not hold WAL forever. It is written to Redis first (an
      // empty batch), so a sink's position is never behind the slot unless Redis lost writes.
      if (!this.assembler.inTransaction && this.isIdle() && msg.walEnd > this.source.confirmedLsn && this.state === 'running') {
        const batch = this.openBatch();
        this.plannedPosition = { lsn: msg.walEnd, idx: null };
        batch.position = this.plannedPosition;
        batch.endLsn = msg.walEnd;
        this.kick();
      }
      return;
    }
    this.assembler.push(this.decoder.decode(msg.data), msg.data.length);
    // a large transaction being received counts toward the queue: memory stays bounded
    if (this.applying && this.overloaded()) this.pause('backpressure');
  }

  /**
   * Backpressure: while a batch is being applied, stop reading once the queued batches and the
   * transaction being received hold `batchMaxCommands`; read again as soon as they hold less.
   */
  private updateBackpressure(): void {
    if (this.applying && this.overloaded()) this.pause('backpressure');
    else this.resume('backpressure');
  }

  private overloaded(): boolean {
    return (
      this.queuedCommands + this.assembler.openRows >= this.opts.batchMaxCommands ||
      this.queuedBytes + this.assembler.openBytes >= (this.opts.batchMaxBytes ?? DEFAULT_BATCH_MAX_BYTES)
    );
  }

  private intake(item: IntakeItem): void {
    this.intakeQueue.push(item);
    if (!this.intakeBusy) this.drainIntake();
  }

  private drainIntake(): void {
    while (this.intakeQueue.length > 0 && !this.fatal) {
      const item = this.intakeQueue[0]!;
      if (item.kind === 'txn' && (this.needsKeys(item.txn) || this.needsFetch(item.txn))) {
        this.intakeBusy = true;
        this.pause('intake');
        this.prepare(item.txn).then(
          (txn) => {
            item.txn = txn;
            this.intakeBusy = false;
            this.resume('intake');
            this.drainIntake();
          },
          (err: unknown) => this.fail(err),
        );
        return;
      }
      this.intakeQueue.shift();
      if (item.kind === 'txn') this.processTransaction(item.txn);
      else this.processMessage(item.msg);
    }
    this.kick();
  }

  private async prepare(txn: Transaction): Promise<Transaction> {
    for (const c of txn.changes) {
      const name = c.table.qualifiedName;
      if (c.table.replicaIdentity === 'f' && !this.primaryKeys.has(name)) this.primaryKeys.set(name, await this.fetcher.primaryKey(name));
    }
    return this.needsFetch(txn) ? this.fetchUnchangedToast(txn) : txn;
  }

  private needsKeys(txn: Transaction): boolean {
    for (const c of txn.changes) if (c.table.replicaIdentity === 'f' && !this.primaryKeys.has(c.table.qualifiedName)) return true;
    return false;
  }

  /** With REPLICA IDENTITY FULL, the table as keyed by its primary key (for {pk} and identities). */
  private keyed(table: TableInfo): TableInfo {
    if (table.replicaIdentity !== 'f') return table;
    let t = this.keyedTables.get(table);
    if (!t) {
      const pk = this.primaryKeys.get(table.qualifiedName);
      if (!pk || pk.length === 0) t = table;
      else {
        const columns = table.columns.map((c) => ({ ...c, isKey: pk.includes(c.name) }));
        t = { ...table, columns, keyIndexes: columns.flatMap((c, i) => (c.isKey ? [i] : [])) };
      }
      this.keyedTables.set(table, t);
    }
    return t;
  }

  private needsFetch(txn: Transaction): boolean {
    for (const c of txn.changes) {
      if (c.action !== 'update' || (c.oldKind === 'O' && c.oldRow)) continue;
      if (hasUnchangedToast(c) && this.sinks.some((s) => s.matcher.matches(c.table))) return true;
    }
    return false;
  }

  /**
   * Unchanged TOASTed values that Postgres did not send (no REPLICA IDENTITY FULL): read from
   * the row as it is now. It is never older than this change, since the column was not changed
   * by it, and any later change of it follows in the stream. A row deleted since is dropped
   * here: its delete follows in the stream too.
   */
  private async fetchUnchangedToast(txn: Transaction): Promise<Transaction> {
    const wanted = txn.changes.filter((c) => c.action === 'update' && !(c.oldKind === 'O' && c.oldRow) && hasUnchangedToast(c));
    const current = await this.fetcher.fetch(wanted);
    const changes: Change[] = [];
    for (const c of txn.changes) {
      if (!wanted.includes(c)) {
        changes.push(c);
        continue;
      }
      const now = current.get(c);
      if (!now) {
        this.opts.log.debug({ table: c.table.qualifiedName, idx: c.idx }, 'row deleted since; its unchanged TOAST values are not needed');
        continue;
      }
      changes.push({ ...c, row: c.row.map((v, i) => (v === undefined ? now[i] : v)) });
    }
    return { ...txn, changes };
  }

  // ---- planning ----------------------------------------------------------------------------

  private processTransaction(received: Transaction): void {
    const deduped = this.dropResent(received);
    if (deduped === null) return;
    const txn = deduped.changes.some((c) => c.table.replicaIdentity === 'f')
      ? { ...deduped, changes: deduped.changes.map((c) => (c.table.replicaIdentity === 'f' ? { ...c, table: this.keyed(c.table) } : c)) }
      : deduped;
    const { metrics, log } = this.opts;
    const truncated = this.truncatedTables(txn);
    if (truncated.size > 0) this.sealOpenBatch(); // the unlink runs before the batch's MULTI
    const batch = this.openBatch();
    const lastIdx = txn.changes.length > 0 ? txn.changes[txn.changes.length - 1]!.idx : -1;
    for (const sink of this.sinks) {
      const meta: MessageMeta = { commitLsn: txn.commitLsn, commitTimeMicros: txn.commitTimeMicros, sinkName: sink.sink.name };
      const part = this.partFor(batch, sink.redis);
      const out = this.planOutput(batch, part, sink.sink.name, meta);
      const viaFunctions: Change[] | null = sink.functions ? [] : null;
      for (const raw of txn.changes) {
        if (!sink.actionSet.has(raw.action) || !sink.matcher.matches(raw.table)) continue;
        if (isCovered(sink.startPosition, txn.commitLsn, raw.idx)) continue;
        const t = truncated.get(raw.table.qualifiedName);
        if (t !== undefined && raw.idx < t) continue; // emptied by the TRUNCATE that follows
        const change = fillUnchangedToast(raw);
        if (viaFunctions) {
          viaFunctions.push(change);
          continue;
        }
        out.current = change;
        sink.sink.plan(change, meta, out);
        const k = `${sink.sink.name}\u0000${change.action}`;
        batch.counts.set(k, (batch.counts.get(k) ?? 0) + 1);
      }
      if (viaFunctions && viaFunctions.length > 0) this.planWithFunctions(sink, viaFunctions, meta, out, batch.counts);
      for (const tr of txn.truncates) {
        if (isCovered(sink.startPosition, txn.commitLsn, tr.idx)) continue;
        for (const table of tr.tables) {
          // sinks without truncatePattern keep a history (list, stream, pub/sub): nothing to remove
          if (!sink.matcher.matches(table) || !sink.sink.truncatePattern) continue;
          const prefix = sink.sink.truncatePattern(table);
          if (prefix === null) {
            log.warn({ sink: sink.sink.name, table: table.qualifiedName }, 'TRUNCATE cannot be applied: the key template has no fixed prefix; run sluice verify --repair');
          } else {
            part.unlinkPrefixes.push(prefix);
            log.info({ sink: sink.sink.name, table: table.qualifiedName, prefix }, 'TRUNCATE: keys with this prefix will be removed');
          }
        }
      }
    }
    this.trackWindows(txn.changes);
    this.plannedPosition = txn.complete ? { lsn: txn.endLsn, idx: null } : { lsn: txn.commitLsn, idx: lastIdx };
    batch.position = this.plannedPosition;
    batch.lastCommitTime = txn.commitTimeMicros;
    if (txn.complete) {
      batch.transactions++;
      batch.endLsn = txn.endLsn;
    } else {
      log.info({ lsn: formatLsn(txn.commitLsn), through: lastIdx }, 'large transaction: applying a chunk of it (atomic per chunk only)');
    }
    for (const msg of txn.messages) this.processMessage(msg);
    this.afterPlanning(batch);
  }

  /** After a reconnect Postgres resends what was not confirmed yet: drop what was taken in. */
  private dropResent(txn: Transaction): Transaction | null {
    const seen = this.lastSeen;
    let changes = txn.changes;
    if (seen !== null && txn.commitLsn <= seen.lsn) {
      if (txn.commitLsn < seen.lsn || seen.idx === null) return null;
      changes = changes.filter((c) => c.idx > seen.idx!);
      if (changes.length === 0 && !txn.complete) return null;
    }
    const lastIdx = changes.length > 0 ? changes[changes.length - 1]!.idx : (seen?.lsn === txn.commitLsn ? seen.idx : null);
    this.lastSeen = txn.complete ? { lsn: txn.commitLsn, idx: null } : { lsn: txn.commitLsn, idx: lastIdx ?? -1 };
    return changes === txn.changes ? txn : { ...txn, changes };
  }

  /**
   * Tables truncated by this transaction (by name: Postgres may describe a table again between
   * a change and a TRUNCATE), with the index of the last truncate.
   */
  private truncatedTables(txn: Transaction): Map<string, number> {
    const out = new Map<string, number>();
    for (const tr of txn.truncates) for (const t of tr.tables) if (this.sinks.some((s) => s.matcher.matches(t))) out.set(t.qualifiedName, tr.idx);
    return out;
  }

  private processMessage(msg: LogicalMessage): void {
    if (msg.prefix !== WATERMARK_PREFIX) return;
    const text = msg.content.toString('utf8');
    const kind = text.slice(0, 3);
    const w = this.windows.get(text.slice(3));
    if (!w) return; // another process's watermark, or one from before a restart
    if (kind === 'lw:') {
      w.open = true;
    } else if (kind === 'hw:') {
      this.closeWindow(w, msg);
    }
  }

  private trackWindows(changes: readonly Change[]): void {
    if (this.windows.size === 0) return;
    for (const w of this.windows.values()) {
      if (!w.open || w.mode !== 'rows' || !w.table) continue;
      for (const c of changes) {
        if (c.table.qualifiedName !== w.table.qualifiedName) continue;
        w.touched.add(rowIdentity(c.table, c.row));
        if (c.oldRow) w.touched.add(rowIdentity(c.table, c.oldRow));
      }
    }
  }

  private closeWindow(w: BackfillWindow, msg: LogicalMessage): void {
    this.windows.delete(w.id);
    if (w.mode === 'orphans') {
      this.closeOrphanWindow(w);
      return;
    }
    if (!w.rows || !w.table) {
      w.reject(new Error('high watermark seen before the chunk was read'));
      return;
    }
    const batch = this.openBatch();
    const part = this.partFor(batch, w.sink.redis);
    const meta: MessageMeta = { commitLsn: msg.lsn, commitTimeMicros: microsSince2000(Date.now()), sinkName: w.sink.sink.name };
    const out = this.planOutput(batch, part, w.sink.sink.name, meta);
    let emitted = 0;
    let skipped = 0;
    const viaFunctions: Change[] | null = w.sink.functions ? [] : null;
    for (const row of w.rows) {
      if (w.touched.has(rowIdentity(w.table, row))) {
        skipped++;
        continue;
      }
      const change: Change = { action: 'read', table: w.table, row, oldRow: null, oldKind: null, idx: emitted };
      if (viaFunctions) viaFunctions.push(change);
      else {
        out.current = change;
        w.sink.sink.plan(change, meta, out);
      }
      emitted++;
    }
    if (viaFunctions && viaFunctions.length > 0) this.planWithFunctions(w.sink, viaFunctions, meta, out, null);
    for (const cmd of w.extraCommands) out.bookkeeping(cmd);
    const k = `${w.sink.sink.name}\u0000read`;
    batch.counts.set(k, (batch.counts.get(k) ?? 0) + emitted);
    batch.onApplied.push(() => w.resolve({ emitted, skipped }));
    this.afterPlanning(batch);
  }

  private closeOrphanWindow(w: BackfillWindow): void {
    if (!w.orphans) {
      w.reject(new Error('high watermark seen before the orphan keys were collected'));
      return;
    }
    const batch = this.openBatch();
    const part = this.partFor(batch, w.sink.redis);
    let emitted = 0;
    let skipped = 0;
    for (const key of w.orphans) {
      if (w.touched.has(key)) {
        skipped++;
        continue;
      }
      part.commands.push(['DEL', key]);
      part.origins.push(null);
      batch.commandCount++;
      batch.bytes += key.length;
      emitted++;
    }
    batch.onApplied.push(() => w.resolve({ emitted, skipped }));
    this.afterPlanning(batch);
  }

  /** Open orphan windows of a sink: the keys it writes are recorded (they are not orphans). */
  private keyTrackers(sinkName: string): Set<string>[] | null {
    if (this.windows.size === 0) return null;
    let out: Set<string>[] | null = null;
    for (const w of this.windows.values()) if (w.mode === 'orphans' && w.open && w.sink.sink.name === sinkName) (out ??= []).push(w.touched);
    return out;
  }

  /**
   * A sink with functions: one call into its sandbox for all these messages, then each is
   * skipped (filter), planned with the results (transform, route) or failed with the reason.
   */
  private planWithFunctions(sink: SinkRuntime, changes: readonly Change[], meta: MessageMeta, out: PlanOutput & { current: Change | null }, counts: Map<string, number> | null): void {
    const results = sink.functions!.applySync(changes, meta);
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i]!;
      const r = results[i]!;
      if ('skip' in r) continue;
      out.current = change;
      if ('error' in r) out.fail(change, r.error);
      else sink.sink.plan(change, meta, out, r.extras);
      if (counts) {
        const k = `${sink.sink.name}\u0000${change.action}`;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
    }
  }

  private planOutput(batch: Batch, part: LanePart, sinkName: string, meta: MessageMeta): PlanOutput & { current: Change | null; bookkeeping(cmd: RedisCommand): void } {
    const { metrics, log } = this.opts;
    let origin: CommandOrigin | null = null;
    let originOf: Change | null = null;
    const trackers = this.keyTrackers(sinkName);
    const out = {
      current: null as Change | null,
      command(cmd: RedisCommand): void {
        if (trackers) for (const k of commandKeys(cmd)) for (const t of trackers) t.add(k);
        if (originOf !== out.current) {
          originOf = out.current;
          origin = { sink: sinkName, change: out.current!, meta };
        }
        part.commands.push(cmd);
        part.origins.push(origin);
        batch.commandCount++;
        for (let i = 1; i < cmd.length; i++) batch.bytes += cmd[i]!.length;
      },
      bookkeeping(cmd: RedisCommand): void {
        part.commands.push(cmd);
        part.origins.push(null);
        batch.commandCount++;
        for (let i = 1; i < cmd.length; i++) batch.bytes += cmd[i]!.length;
      },
      fail(change: Change, reason: string): void {
        out.bookkeeping(failedMessageCommand(change, meta, reason));
        metrics.failed.inc({ sink: sinkName });
        log.warn({ sink: sinkName, table: change.table.qualifiedName, lsn: formatLsn(meta.commitLsn), idx: change.idx, reason }, 'message failed');
      },
    };
    return out;
  }

  // ---- batches -----------------------------------------------------------------------------

  private openBatch(): Batch {
    const last = this.batches[this.batches.length - 1];
    if (last && !this.sealed.has(last)) return last;
    const b: Batch = {
      id: randomUUID(),
      parts: new Map(),
      commandCount: 0,
      bytes: 0,
      transactions: 0,
      endLsn: ZERO_LSN,
      position: this.plannedPosition,
      lastCommitTime: null,
      counts: new Map(),
      onApplied: [],
    };
    this.batches.push(b);
    return b;
  }

  private sealOpenBatch(): void {
    const last = this.batches[this.batches.length - 1];
    if (last) this.sealed.add(last);
  }

  private partFor(batch: Batch, lane: string): LanePart {
    let part = batch.parts.get(lane);
    if (!part) {
      part = { commands: [], origins: [], unlinkPrefixes: [] };
      batch.parts.set(lane, part);
    }
    return part;
  }

  private afterPlanning(batch: Batch): void {
    if (batch.commandCount >= this.opts.batchMaxCommands || batch.bytes >= (this.opts.batchMaxBytes ?? DEFAULT_BATCH_MAX_BYTES)) this.sealed.add(batch);
    this.recount();
    this.updateBackpressure();
  }

  private kick(): void {
    if (this.applying || this.fatal || this.intakeBusy) return;
    const batch = this.batches.shift();
    if (!batch) {
      this.notifyIdle();
      return;
    }
    this.sealed.add(batch);
    this.recount();
    this.applying = true;
    this.updateBackpressure();
    this.applyBatch(batch).then(
      () => {
        this.applying = false;
        this.updateBackpressure();
        this.kick();
      },
      (err: unknown) => {
        this.applying = false;
        if (this.state === 'running') this.fail(err);
        this.notifyIdle();
      },
    );
  }

  private async applyBatch(batch: Batch): Promise<void> {
    const started = performance.now();
    const { metrics } = this.opts;
    await Promise.all(
      [...this.lanes.values()].map(async (lane) => {
        const part = batch.parts.get(lane.name) ?? { commands: [], origins: [], unlinkPrefixes: [] };
        const retriesBefore = lane.retries;
        await lane.apply({
          batchId: batch.id,
          commands: part.commands,
          origins: part.origins,
          positions: lane.sinks.map((name) => [name, this.positionFor(name, batch.position)]),
          unlinkPrefixes: part.unlinkPrefixes,
        });
        if (lane.retries > retriesBefore) metrics.redisRetries.inc({ redis: lane.name }, lane.retries - retriesBefore);
        metrics.batches.inc({ redis: lane.name });
      }),
    );
    if (batch.endLsn > ZERO_LSN) {
      this.source.confirm(batch.endLsn);
      metrics.confirmedLsn.set(Number(batch.endLsn));
    }
    if (batch.lastCommitTime !== null) this.lastAppliedCommitTime = batch.lastCommitTime;
    metrics.transactions.inc(batch.transactions);
    for (const [k, n] of batch.counts) {
      const [sink, action] = k.split('\u0000') as [string, string];
      metrics.changes.inc({ sink, action }, n);
    }
    metrics.batchSeconds.observe((performance.now() - started) / 1000);
    for (const cb of batch.onApplied) cb();
  }

  /** A sink's position never moves backwards (replayed transactions it already has). */
  private positionFor(sinkName: string, batchPosition: Position | null): string | null {
    const start = this.sinkRuntime(sinkName)?.startPosition ?? null;
    let p = batchPosition;
    if (start !== null && (p === null || comparePositions(p, start) < 0)) p = start;
    return p === null ? null : formatPosition(p);
  }

  private onRejected(lane: Lane, rejected: RejectedCommand[]): void {
    // Redis ran the rest of the MULTI: record each rejected message as failed, separately.
    const commands = rejected.map((r) => failedMessageCommand(r.origin.change, r.origin.meta, `Redis rejected the command: ${r.error}`));
    for (const r of rejected) {
      this.opts.metrics.failed.inc({ sink: r.origin.sink });
      this.opts.log.warn({ sink: r.origin.sink, table: r.origin.change.table.qualifiedName, lsn: formatLsn(r.origin.meta.commitLsn), idx: r.origin.change.idx, reason: r.error }, 'message failed');
    }
    const multi = lane.redis.multi();
    for (const [name, ...args] of commands) multi.call(name!, ...args);
    multi.exec().catch((err: unknown) => {
      this.opts.log.error({ redis: lane.name, err: errorMessage(err) }, 'could not record failed messages');
    });
  }

  private recount(): void {
    let commands = 0;
    let bytes = 0;
    for (const b of this.batches) {
      commands += b.commandCount;
      bytes += b.bytes;
    }
    this.queuedCommands = commands;
    this.queuedBytes = bytes;
  }

  private pause(reason: string): void {
    if (this.pauseReasons.size === 0) this.source.pause();
    this.pauseReasons.add(reason);
  }

  private resume(reason: string): void {
    if (!this.pauseReasons.delete(reason)) return;
    if (this.pauseReasons.size === 0) this.source.resume();
  }

  private fail(err: unknown): void {
    this.fatal = err instanceof Error ? err : new Error(String(err));
    this.opts.log.error({ err: errorMessage(err) }, 'pipeline stopped by an error');
    this.notifyIdle();
  }

  private isIdle(): boolean {
    return !this.applying && this.batches.length === 0 && this.intakeQueue.length === 0 && !this.intakeBusy;
  }

  private notifyIdle(): void {
    if (!this.isIdle() && !this.fatal) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((w) => w());
  }
}
