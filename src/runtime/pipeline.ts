/**
 * The runtime: where the pure planning (src/plan) meets Postgres (src/pg) and Redis (src/redis).
 *
 *   change stream ─► intake (row lookups) ─► planner ─► batcher ─► lanes (MULTI/EXEC per Redis)
 *        ▲                                                              │
 *        └──────────────── confirm(min of batch end, held sinks) ◄──────┘
 *
 * States:
 *
 *   starting ──start()──► streaming ──stop()──► draining ──► stopped
 *       │                    │                                  ▲
 *       └──── fatal ───► failed ─────────────stop()─────────────┘
 *
 * `failed` is entered when the stream cannot go on (bytes that do not decode, a bug outside a
 * sink's planning); a sink's planning bug fails that message only. Pausing reading for
 * backpressure, row lookups or draining is not a state: `pauses` (pause-reasons.ts) says why.
 *
 * Sinks come and go while streaming; a held sink holds the slot at its position (see route.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Change, TableInfo } from '../core/change.js';
import type { Rows, Tuple } from '../core/tuple.js';
import type { MessageMeta } from '../core/render.js';
import type { RedisCommand } from '../core/command.js';
import { formatLsn, maxLsn, type Lsn, ZERO_LSN } from '../core/lsn.js';
import { comparePositions, formatPosition, type Position } from '../core/position.js';
import { microsSince2000, microsToUnixMs } from '../core/time.js';
import { ChangeStream, type ChangeSource } from '../pg/change-stream.js';
import type { Lane } from '../redis/apply-lane.js';
import type { RedisClient } from '../redis/connect.js';
import { ensureLane } from './lanes.js';
import { Batcher } from '../plan/batcher.js';
import { Planner, type PlanEvents } from '../plan/planner.js';
import { FailedStore } from '../plan/failed-messages.js';
import { readFailedSizes } from './failed-sizes.js';
import { planEvents } from './plan-events.js';
import { nextPipelineState, type PipelineState } from '../plan/states.js';
import { ResendState, respec, sinkRuntime, type SinkRuntime, type SinkSpec } from '../plan/route.js';
import { Windows, type AggregateFill, type OrphanItem, type WindowMode, type WindowResult } from '../plan/windows.js';
import { errorMessage } from '../util/errors.js';
import { RowLookups } from './lookups.js';
import { Intake, type IntakeItem } from './intake.js';
import { Applier, type AppliedBatch } from './applier.js';
import { PauseReasons } from './pause-reasons.js';
import { findProblems, type Problem } from './health.js';
import type { PipelineOptions } from './options.js';

export type { PipelineOptions };

export type { AppliedBatch };

export type { Problem };

export type { SinkRuntime, SinkSpec };

export type { PipelineState };


const DEFAULT_BATCH_MAX_BYTES = 32 * 1024 * 1024;


export class Pipeline {
  state: PipelineState = 'starting';
  private readonly stream: ChangeSource;
  private readonly batcher: Batcher;
  private readonly windows = new Windows();
  private readonly planner: Planner;
  private readonly lookups: RowLookups;
  private sinkList: SinkRuntime[];
  private readonly lanes = new Map<string, Lane>();
  private readonly redisErrors = new Map<string, string>();
  private readonly pauses: PauseReasons;
  private readonly intakeQueue: Intake;
  private applying = false;
  private fatal: Error | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly resend = new ResendState();
  private readonly applier: Applier;
  /** the slot's confirmed position when Sluice started (Postgres resends nothing before it) */
  private slotAtStart: Lsn = ZERO_LSN;
  /** paused while it was starting: it stays paused once ready */
  private readonly pauseWhenReady = new Set<string>();
  private readonly events: PlanEvents;

  constructor(private readonly opts: PipelineOptions) {
    const maxBytes = opts.batchMaxBytes ?? DEFAULT_BATCH_MAX_BYTES;
    this.sinkList = opts.sinks.map((s) => sinkRuntime(s, null, s.paused ? 'paused' : null));
    // a standalone lane's commands are encoded as they are planned (its one pre-encoded write)
    this.batcher = new Batcher({ maxCommands: opts.batchMaxCommands, maxBytes }, randomUUID, (lane) => this.lanes.get(lane)?.preEncoded === true);
    this.events = planEvents(opts.metrics, opts.log);
    this.planner = new Planner(this.batcher, this.windows, this.events, () => this.sinkList, () => microsSince2000(Date.now()), new FailedStore(opts.failedLimits));
    this.lookups = new RowLookups(opts.source.url, opts.log, { generation: () => this.stream.generation, restart: (reason) => this.stream.restart(reason) });
    this.intakeQueue = new Intake({
      planner: this.planner,
      lookups: this.lookups,
      resend: this.resend,
      sinks: () => this.sinkList,
      failed: () => this.fatal !== null,
      pause: (r) => this.pauses.add(r),
      resume: (r) => this.pauses.delete(r),
      fail: (err) => this.fail(err),
      kick: () => this.kick(),
      lookupAbandoned: (err) => {
        if (this.state === 'streaming') this.fail(err);
        this.notifyIdle();
      },
    });
    this.stream = (opts.makeStream ?? ((o) => new ChangeStream(o)))({
      ...opts.source,
      log: opts.log,
      maxTransactionRows: opts.maxTransactionRows,
      maxTransactionBytes: maxBytes,
      onTransaction: (txn, gen) => this.intake({ kind: 'txn', txn, gen }),
      onMessage: (msg, gen) => this.intake({ kind: 'message', msg, gen }),
      onKeepalive: (walEnd, gen) => this.onKeepalive(walEnd, gen),
      onConnected: (gen) => {
        if (gen > 1) opts.metrics.reconnects.inc();
      },
      onFatal: (err) => this.fail(err),
      onRelation: (table) => opts.onRelation?.(table),
    });
    this.pauses = new PauseReasons(this.stream);
    this.applier = new Applier(this.lanes, this.stream, this.planner, opts.metrics, { log: opts.log, readKeys: opts.readKeyTypes });
    for (const [name, client] of opts.redis) {
      client.on('error', (err: Error) => this.redisErrors.set(name, err.message));
      client.on('ready', () => this.redisErrors.delete(name));
    }
  }

  get sinks(): readonly SinkRuntime[] {
    return this.sinkList;
  }

  get confirmedLsn(): Lsn {
    return this.stream.confirmedLsn;
  }

  get sourceState(): string {
    return this.stream.state;
  }

  get lastError(): string | null {
    return this.fatal?.message ?? this.stream.lastError ?? this.lookups.lastError ?? [...this.lanes.values()].find((l) => l.lastError)?.lastError ?? null;
  }

  /** Age of the last applied commit while something is pending; 0 when caught up. */
  lagMs(nowMs = Date.now()): number {
    const t = this.applier.lastCommitTime;
    if (this.isIdle() || t === null) return 0;
    return Math.max(0, nowMs - microsToUnixMs(t));
  }

  laneStates(): { name: string; state: string; lastError: string | null }[] {
    return [...this.lanes.values()].map((l) => ({ name: l.name, state: l.state, lastError: l.lastError }));
  }

  sinkRuntime(name: string): SinkRuntime | undefined {
    return this.sinkList.find((s) => s.name === name);
  }

  redisFor(sinkName: string): RedisClient {
    const s = this.sinkRuntime(sinkName);
    const client = s ? this.opts.redis.get(s.redis) : undefined;
    if (!client) throw new Error(`no Redis connection for sink "${sinkName}"`);
    return client;
  }

  /** A source table's key columns as `{pk}` joins them, read on the row lookups' connection. */
  primaryKey(qualified: string): Promise<string[] | null> {
    return this.lookups.primaryKey(qualified);
  }

  /** What each sink's failed messages hold, within their bounds (plan/failed-messages.ts). */
  get failedStore(): FailedStore {
    return this.planner.failedStore;
  }

  /** Counts what the sinks' failed-message hashes hold in Redis (at start: earlier runs' entries). */
  private async loadFailedStores(redis: string, sinks: readonly string[]): Promise<void> {
    const client = this.opts.redis.get(redis);
    if (!client) return;
    for (const sink of sinks) this.failedStore.load(sink, await readFailedSizes(client, sink));
  }

  /** Where each held sink holds the slot (its position), for status and metrics. */
  heldPositions(): { sink: string; reason: string; position: string | null }[] {
    return this.sinkList.filter((s) => s.hold !== null).map((s) => ({ sink: s.name, reason: s.hold!, position: s.position === null ? null : formatPosition(s.position) }));
  }

  /** What keeps Sluice from streaming or a sink from writing now (empty: healthy). */
  problems(): Problem[] {
    return findProblems({
      state: this.state,
      fatal: this.fatal,
      stream: { state: this.stream.state, lastError: this.stream.lastError },
      lookupsError: this.lookups.lastError,
      redis: this.opts.redis,
      redisErrors: this.redisErrors,
      lanes: this.lanes,
      sinks: this.sinkList,
    });
  }

  /**
   * Connects Redis, reads each sink's position and starts streaming.
   * @param slotConfirmed the slot's confirmed position (null: the slot is new)
   * @returns sinks whose Redis is behind the slot (it lost writes: backfill them again) and
   *   sinks Redis knows nothing of while the slot has history (new sinks, or lost data)
   */
  async start(slotConfirmed: Lsn | null = null): Promise<{ behind: string[]; unknown: string[] }> {
    const behind: string[] = [];
    const unknown: string[] = [];
    this.slotAtStart = slotConfirmed ?? ZERO_LSN;
    for (const name of new Set(this.sinkList.map((s) => s.redis))) {
      const lane = await this.ensureLane(name);
      const sinks = this.sinkList.filter((s) => s.redis === name);
      const loaded = await lane.load(sinks.map((s) => s.name));
      await this.loadFailedStores(name, sinks.map((s) => s.name));
      for (const s of sinks) {
        const l = loaded.get(s.name);
        const pos = l?.skip ?? null;
        s.startPosition = s.position = s.written = pos;
        // paused with no position in Redis yet: it holds the slot where the slot is
        if (pos === null && s.hold !== null) s.position = s.written = this.slotPosition();
        const stored = l?.stored === undefined ? pos : l.stored;
        if (lane.behindCheck && stored !== null && slotConfirmed !== null && stored.lsn < slotConfirmed) {
          behind.push(s.name);
          this.opts.log.error({ sink: s.name, position: formatPosition(stored), slot: formatLsn(slotConfirmed) }, 'Redis is behind the replication slot: it lost writes');
        } else if (!l?.known && slotConfirmed !== null && slotConfirmed > ZERO_LSN) {
          unknown.push(s.name);
        }
        this.opts.log.info({ sink: s.name, position: pos === null ? null : formatPosition(pos), paused: s.hold === 'paused' }, 'sink ready');
      }
    }
    if (behind.length > 0) this.opts.metrics.dataLoss.inc({ redis: 'at-start' });
    this.state = nextPipelineState(this.state, 'started');
    this.stream.start(ZERO_LSN);
    return { behind, unknown };
  }

  /** Stops reading, applies what was received within `timeoutMs`, confirms, closes. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = nextPipelineState(this.state, 'stop');
    this.pauses.add('draining');
    const drained = await Promise.race([this.whenIdle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
    if (!drained) this.opts.log.warn({ timeoutMs }, 'drain timed out (Redis is not taking writes); what was not applied is streamed again at the next start');
    this.windows.cancelAll('Sluice is stopping');
    for (const lane of this.lanes.values()) lane.stop();
    for (const b of this.batcher.clear()) for (const f of b.onDropped) f(new Error('Sluice is stopping: this was not applied'));
    await this.stream.stop();
    await this.lookups.close();
    this.state = nextPipelineState(this.state, 'drained');
    this.notifyIdle();
    this.opts.log.info({ confirmed: formatLsn(this.stream.confirmedLsn) }, 'pipeline stopped');
  }

  /** Resolves once nothing is queued or being applied (or the pipeline failed). */
  whenIdle(): Promise<void> {
    if (this.isIdle() || this.fatal) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Resolves once everything planned so far is in Redis. */
  afterQueued(): Promise<void> {
    if (this.state !== 'streaming') return Promise.resolve();
    return new Promise((resolve) => {
      const batch = this.batcher.open(this.planner.planned);
      batch.onApplied.push(resolve);
      batch.onDropped.push(() => resolve());
      this.kick();
    });
  }

  // ---- sinks at runtime ----------------------------------------------------------------------

  /** Adds a sink that takes changes from now on (held while its Redis connection is made ready). */
  async addSink(spec: SinkSpec, paused = false): Promise<SinkRuntime> {
    if (this.sinkRuntime(spec.sink.name)) throw new Error(`a sink named "${spec.sink.name}" exists`);
    const s = sinkRuntime(spec, this.planner.planned ?? this.slotPosition(), 'starting');
    // nothing before its start is for it: it holds the slot there until its first batch
    s.written = s.position;
    this.sinkList = [...this.sinkList, s];
    try {
      const lane = await this.ensureLane(s.redis);
      const loaded = (await lane.load([s.name])).get(s.name);
      await this.loadFailedStores(s.redis, [s.name]);
      s.startPosition = loaded?.skip ?? null;
    } catch (err) {
      this.sinkList = this.sinkList.filter((x) => x !== s);
      throw err;
    }
    if (paused || this.pauseWhenReady.delete(s.name)) s.hold = 'paused';
    else this.release(s);
    this.opts.log.info({ sink: s.name, from: s.position === null ? null : formatPosition(s.position), paused }, 'sink added');
    return s;
  }

  /** Replaces a sink's spec (same name and Redis): later changes are planned with it. */
  replaceSink(spec: SinkSpec): void {
    const i = this.sinkList.findIndex((s) => s.name === spec.sink.name);
    if (i < 0) throw new Error(`no sink named "${spec.sink.name}"`);
    const next = respec(this.sinkList[i]!, spec);
    this.sinkList = this.sinkList.map((s, j) => (j === i ? next : s));
  }

  pauseSink(name: string): void {
    const s = this.sinkRuntime(name);
    if (!s) throw new Error(`no sink named "${name}"`);
    if (s.hold === 'starting') this.pauseWhenReady.add(name);
    if (s.hold === null) s.hold = 'paused';
    // it holds the slot where it is: nothing before was for it (a sink with no position yet)
    s.position ??= this.planner.planned ?? this.slotPosition();
    // what it has for sure, never what it will plan when it replays (the slot is held there)
    s.written ??= s.position;
  }

  resumeSink(name: string): void {
    const s = this.sinkRuntime(name);
    if (!s) throw new Error(`no sink named "${name}"`);
    if (s.hold === 'paused') this.release(s);
  }

  /** Removes a sink at once; resolves once Redis holds no position of it any more. */
  async removeSink(name: string): Promise<void> {
    const s = this.sinkRuntime(name);
    if (!s) throw new Error(`no sink named "${name}"`);
    this.sinkList = this.sinkList.filter((x) => x !== s);
    this.windows.cancelAll(`sink "${name}" was deleted`, name);
    await this.afterQueued(); // batches planned before still write its position
    await this.lanes.get(s.redis)?.forget(name);
    this.failedStore.forget(name);
  }

  /** Where the slot is: nothing before it will be streamed again. */
  private slotPosition(): Position {
    return { lsn: maxLsn(this.stream.confirmedLsn, this.slotAtStart), idx: null };
  }

  /** Held sink → active: if the stream went past its position, restart it from the slot. */
  private release(s: SinkRuntime): void {
    s.hold = null;
    const planned = this.planner.planned;
    if (planned !== null && (s.position === null || comparePositions(s.position, planned) < 0)) {
      s.fromGeneration = this.stream.generation + 1;
      s.catchUpTo = planned;
      this.opts.log.info({ sink: s.name, from: s.position === null ? null : formatPosition(s.position) }, 'sink resumed: streaming again from the slot to apply what it missed');
      this.stream.restart();
    }
  }

  // ---- backfill windows (DBLog) ------------------------------------------------------------

  /** Registers a backfill chunk before its low watermark is emitted; `applied` resolves once its rows are in Redis. */
  openBackfillWindow(sinkName: string, table: TableInfo): { id: string; applied: Promise<WindowResult> } {
    return this.openWindow('rows', sinkName, table);
  }

  /** An orphan sweep: keys collected after the low watermark are deleted at the high one, except those written in between. */
  openOrphanWindow(sinkName: string): { id: string; applied: Promise<WindowResult> } {
    return this.openWindow('orphans', sinkName, null);
  }

  /** An aggregate backfill (plan/windows.ts): `opened` once its low watermark is applied, `applied` once its groups are. */
  openAggregateWindow(sinkName: string, table: TableInfo): { id: string; opened: Promise<void>; applied: Promise<WindowResult> } {
    if (!this.sinkRuntime(sinkName)) throw new Error(`no sink named "${sinkName}"`);
    const id = randomUUID();
    return { id, ...this.windows.registerAggregate(id, sinkName, table) };
  }

  /** What the aggregate read found; call before its transaction (and mark) commits. */
  fillAggregateWindow(id: string, fill: AggregateFill, extraCommands: RedisCommand[]): void {
    this.windows.fillAggregate(id, fill, extraCommands);
  }

  private openWindow(mode: WindowMode, sinkName: string, table: TableInfo | null): { id: string; applied: Promise<WindowResult> } {
    if (!this.sinkRuntime(sinkName)) throw new Error(`no sink named "${sinkName}"`);
    const id = randomUUID();
    return { id, applied: this.windows.register(id, mode, sinkName, table) };
  }

  /** Orphan keys (deleted) and items inside kept keys (members, fields, bits: removed one by one). */
  fillOrphanWindow(id: string, keys: string[], items: OrphanItem[] = []): void {
    this.windows.fillOrphans(id, keys, items);
  }

  /** The chunk's rows, read after the low watermark; call before emitting the high watermark. */
  fillBackfillWindow(id: string, rows: Rows | readonly Tuple[], extraCommands: RedisCommand[]): void {
    this.windows.fillRows(id, rows, extraCommands);
  }

  cancelBackfillWindow(id: string, reason: string): void {
    this.windows.cancel(id, reason);
  }

  /** A failed message retried as it was (history sinks), after everything taken in so far. */
  replayMessage(sinkName: string, change: Change, meta: MessageMeta, before: RedisCommand[]): Promise<void> {
    const sink = this.sinkRuntime(sinkName);
    if (!sink) return Promise.reject(new Error(`no sink named "${sinkName}"`));
    if (this.state !== 'streaming') return Promise.reject(new Error(`Sluice is ${this.state}`));
    return new Promise((resolve, reject) => {
      this.planner.replay(sink, change, meta, before, resolve, reject);
      this.kick();
    });
  }

  private onKeepalive(walEnd: Lsn, generation: number): void {
    // All received is applied: confirm the server's position (an idle slot must not hold WAL), after
    // writing it to Redis (an empty batch). A closing connection's keepalive says nothing of the new one.
    const catchingUp = this.sinkList.some((s) => s.catchUpTo !== null);
    if (this.state !== 'streaming' || generation < this.stream.generation || this.stream.inTransaction || !this.isIdle()) return;
    if (walEnd <= this.stream.confirmedLsn && !catchingUp) return;
    this.planner.keepalive(walEnd, generation);
    this.kick();
  }

  private intake(item: IntakeItem): void {
    this.intakeQueue.push(item);
    // a large transaction being received counts toward the queue: memory stays bounded
    this.updateBackpressure();
  }

  // ---- applying ------------------------------------------------------------------------------

  private kick(): void {
    if (this.applying || this.fatal || this.intakeQueue.looking || this.state === 'stopped') return;
    const batch = this.batcher.next();
    if (!batch) {
      this.notifyIdle();
      return;
    }
    this.applying = true;
    this.updateBackpressure();
    this.applier.apply(batch, this.sinkList).then(
      () => {
        this.applying = false;
        this.updateBackpressure();
        this.kick();
      },
      (err: unknown) => {
        this.applying = false;
        for (const f of batch.onDropped) f(err instanceof Error ? err : new Error(String(err)));
        if (this.state === 'streaming') this.fail(err);
        this.notifyIdle();
      },
    );
  }

  /** Called after each batch is in Redis (recent deliveries, fences). Returns the unsubscribe. */
  onBatchApplied(listener: (applied: AppliedBatch) => void): () => void {
    return this.applier.listen(listener);
  }

  /** Where a sink is in Redis for sure: the position written with the last batch applied for it. */
  appliedPosition(sink: string): Position | null {
    return this.applier.applied.get(sink) ?? this.sinkRuntime(sink)?.startPosition ?? null;
  }

  private async ensureLane(name: string): Promise<Lane> {
    const onDataLoss = (): void => {
      // what Redis lost may include failed messages: count them again
      this.loadFailedStores(name, this.sinkList.filter((s) => s.redis === name).map((s) => s.name)).catch((err: unknown) => this.opts.log.warn({ redis: name, err: errorMessage(err) }, 'could not count the failed messages again'));
      this.opts.metrics.dataLoss.inc({ redis: name });
      this.opts.onDataLoss?.(this.sinkList.filter((s) => s.redis === name).map((s) => s.name), name);
    };
    if (!this.opts.makeLane) return ensureLane(this.lanes, this.opts.redis, name, this.opts.log, onDataLoss, this.opts.instance);
    const lane = this.lanes.get(name) ?? (await this.opts.makeLane(name, onDataLoss));
    this.lanes.set(name, lane);
    return lane;
  }

  /** While a batch is applied, stop reading once the queue (and the transaction being received) is full. */
  private updateBackpressure(): void {
    if (this.applying && this.batcher.full(this.stream.openRows, this.stream.openBytes)) this.pauses.add('backpressure');
    else this.pauses.delete('backpressure');
  }

  private fail(err: unknown): void {
    if (this.fatal) return;
    this.fatal = err instanceof Error ? err : new Error(String(err));
    this.state = nextPipelineState(this.state, 'fatal');
    this.pauses.add('failed');
    this.opts.log.error({ err: errorMessage(err) }, 'pipeline stopped by an error');
    this.notifyIdle();
  }

  private isIdle(): boolean {
    return !this.applying && this.batcher.isEmpty && this.intakeQueue.idle;
  }

  private notifyIdle(): void {
    if (!this.isIdle() && !this.fatal && this.state !== 'stopped') return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((w) => w());
  }
}

