import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the paused-sinks gauge reads at each scrape: every sink and whether it is paused. */
export type SinkStates = () => readonly { readonly name: string; readonly paused: boolean }[];

/** What the failed-message gauges read at each scrape: each sink's store (plan/failed-messages.ts FailedStoreView). */
export type FailedStores = () => readonly { readonly sink: string; readonly messages: number; readonly bytes: number; readonly full: boolean }[];

/** The events of a Redis client the metrics count (an ioredis Redis or Cluster fits). */
export interface RedisEvents {
  on(event: 'error' | 'node error' | 'ready', listener: (...args: unknown[]) => void): unknown;
}

/** Buckets of the apply latency, in seconds: commit in Postgres → acknowledged by Redis. */
export const APPLY_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * Prometheus metrics of one Sluice process (served at GET /metrics). Every name, type and label
 * is documented in docs/operations.md (a unit test compares them). Labels stay bounded: sinks,
 * Redis connection names, actions and backfilled tables; never keys or positions.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly changes = new Counter({ name: 'sluice_changes_total', help: 'Row changes applied to Redis, by sink and action', labelNames: ['sink', 'action'] as const, registers: [this.registry] });
  readonly transactions = new Counter({ name: 'sluice_transactions_total', help: 'Postgres transactions applied', registers: [this.registry] });
  readonly batches = new Counter({ name: 'sluice_batches_total', help: 'MULTI/EXEC batches applied, by Redis connection', labelNames: ['redis'] as const, registers: [this.registry] });
  readonly failed = new Counter({ name: 'sluice_failed_messages_total', help: 'Messages sent to a sink\'s failed messages', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly failedDropped = new Counter({ name: 'sluice_failed_messages_dropped_total', help: 'Failed messages not stored because the sink\'s failed messages were full (each logged with its id and reason), by sink', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly failedWaiting: Gauge<'sink'> = new Gauge({
    name: 'sluice_failed_messages',
    help: 'Failed messages a sink keeps now (waiting for a retry or a discard), by sink',
    labelNames: ['sink'] as const,
    registers: [this.registry],
    collect: () => this.collectFailedStores(),
  });
  readonly failedBytes = new Gauge({ name: 'sluice_failed_messages_bytes', help: 'Bytes a sink\'s failed messages take in Redis, by sink', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly failedFull = new Gauge({ name: 'sluice_failed_messages_full', help: '1 while a sink\'s failed messages are full (the next failure is not stored), by sink', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly redisRetries = new Counter({ name: 'sluice_redis_retries_total', help: 'Redis batch writes retried after an error', labelNames: ['redis'] as const, registers: [this.registry] });
  readonly redisErrors = new Counter({ name: 'sluice_redis_errors_total', help: 'Errors reported by a Redis connection (connection refused, lost, timed out, a Cluster node error), by connection', labelNames: ['redis'] as const, registers: [this.registry] });
  readonly redisReconnects = new Counter({ name: 'sluice_redis_reconnects_total', help: 'Times a Redis connection was ready again after it was lost, by connection', labelNames: ['redis'] as const, registers: [this.registry] });
  readonly dataLoss = new Counter({ name: 'sluice_redis_data_loss_total', help: 'Times Redis was found to have lost writes (re-backfill started)', labelNames: ['redis'] as const, registers: [this.registry] });
  readonly backfillRows = new Counter({ name: 'sluice_backfill_rows_total', help: 'Rows copied by backfills, by sink and table', labelNames: ['sink', 'table'] as const, registers: [this.registry] });
  readonly backfillRetries = new Counter({ name: 'sluice_backfill_retries_total', help: 'Backfill attempts that failed with a transient error (Postgres or Redis went away) and are tried again, by sink and table', labelNames: ['sink', 'table'] as const, registers: [this.registry] });
  readonly orphanSweeps = new Counter({ name: 'sluice_orphan_sweeps_total', help: 'Orphan sweeps after a data-loss backfill, by sink and outcome: done, skipped, retried (an attempt failed and is tried again) or failed', labelNames: ['sink', 'outcome'] as const, registers: [this.registry] });
  readonly orphansDeleted = new Counter({ name: 'sluice_orphans_deleted_total', help: 'Keys, members, fields and bits removed by orphan sweeps after a data-loss backfill, by sink', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly backfillProgress = new Gauge({ name: 'sluice_backfill_progress_ratio', help: 'Progress of the last backfill of each sink and table, 0 to 1 (rows copied / estimated rows; 1 once done)', labelNames: ['sink', 'table'] as const, registers: [this.registry] });
  readonly reconnects = new Counter({ name: 'sluice_source_reconnects_total', help: 'Replication connection re-established', registers: [this.registry] });
  readonly batchSeconds = new Histogram({ name: 'sluice_batch_apply_seconds', help: 'Time to apply one batch to Redis', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry] });
  readonly applyLatency = new Histogram({ name: 'sluice_apply_latency_seconds', help: 'Time from a transaction\'s commit in Postgres to Redis acknowledging its writes, by sink', labelNames: ['sink'] as const, buckets: APPLY_LATENCY_BUCKETS, registers: [this.registry] });
  readonly lagBytes = new Gauge({ name: 'sluice_lag_bytes', help: 'WAL bytes between the server\'s current position and what Redis has applied', registers: [this.registry] });
  readonly lagSeconds = new Gauge({ name: 'sluice_lag_seconds', help: 'Age of the last applied commit while changes are pending (0 when caught up)', registers: [this.registry] });
  readonly slotRetainedBytes = new Gauge({ name: 'sluice_slot_retained_wal_bytes', help: 'WAL the replication slot holds back', registers: [this.registry] });
  readonly heldWalBytes = new Gauge({ name: 'sluice_sink_held_wal_bytes', help: 'WAL a paused sink holds back in the slot (its position to the server\'s current one), by sink', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly sinkPaused: Gauge<'sink'> = new Gauge({
    name: 'sluice_sink_paused',
    help: '1 while a sink is paused, 0 otherwise, by sink',
    labelNames: ['sink'] as const,
    registers: [this.registry],
    // read at each scrape: a deleted sink's series goes with it
    collect: () => {
      if (this.sinkStates === null) return;
      this.sinkPaused.reset();
      for (const s of this.sinkStates()) this.sinkPaused.set({ sink: s.name }, s.paused ? 1 : 0);
    },
  });
  readonly schemaChanges = new Counter({ name: 'sluice_schema_changes_total', help: 'Column changes of published tables seen in the stream (added, dropped, renamed, retyped), by table', labelNames: ['table'] as const, registers: [this.registry] });
  readonly schemaBackfills = new Counter({ name: 'sluice_schema_backfills_total', help: 'Backfills started by a schema change, by sink', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly waits = new Counter({ name: 'sluice_waits_total', help: 'Read-your-writes waits (GET /api/wait), by outcome: applied or timeout', labelNames: ['outcome'] as const, registers: [this.registry] });
  readonly waitSeconds = new Histogram({ name: 'sluice_wait_seconds', help: 'Time a read-your-writes wait took until applied (or timed out)', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: [this.registry] });
  readonly fences = new Counter({ name: 'sluice_fences_total', help: 'Fences written to Postgres to bring the stream to a waited-for position', registers: [this.registry] });
  readonly confirmedLsn = new Gauge({ name: 'sluice_confirmed_lsn', help: 'Position confirmed to Postgres (as a number)', registers: [this.registry] });

  private sinkStates: SinkStates | null = null;
  private failedStores: FailedStores | null = null;

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: 'sluice_process_' });
  }

  /** Where the failed-message gauges read each sink's store at each scrape. */
  trackFailedStores(stores: FailedStores): void {
    this.failedStores = stores;
  }

  private collectFailedStores(): void {
    if (this.failedStores === null) return;
    this.failedWaiting.reset();
    this.failedBytes.reset();
    this.failedFull.reset();
    for (const s of this.failedStores()) {
      this.failedWaiting.set({ sink: s.sink }, s.messages);
      this.failedBytes.set({ sink: s.sink }, s.bytes);
      this.failedFull.set({ sink: s.sink }, s.full ? 1 : 0);
    }
  }

  /** Where `sluice_sink_paused` reads the sinks at each scrape. */
  trackSinks(states: SinkStates): void {
    this.sinkStates = states;
  }

  /** Counts a Redis client's errors and its reconnections (every `ready` after the first). */
  watchRedis(name: string, client: RedisEvents): void {
    let readyBefore = false;
    const error = (): void => this.redisErrors.inc({ redis: name });
    client.on('error', error);
    client.on('node error', error);
    client.on('ready', () => {
      if (readyBefore) this.redisReconnects.inc({ redis: name });
      readyBefore = true;
    });
    // the series exist from the start (0), so rate() and increase() see the first error
    this.redisErrors.inc({ redis: name }, 0);
    this.redisReconnects.inc({ redis: name }, 0);
  }

  /** One observation per transaction, from its commit time (Unix ms) to `nowMs`; clock skew never makes it negative. */
  observeApplyLatency(sink: string, commitUnixMs: number, nowMs = Date.now()): void {
    this.applyLatency.observe({ sink }, Math.max(0, nowMs - commitUnixMs) / 1000);
  }
}
