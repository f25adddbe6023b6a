import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one Sluice process (served at GET /metrics). */
export class Metrics {
  readonly registry = new Registry();
  readonly changes = new Counter({ name: 'sluice_changes_total', help: 'Row changes applied to Redis, by sink and action', labelNames: ['sink', 'action'] as const, registers: [this.registry] });
  readonly transactions = new Counter({ name: 'sluice_transactions_total', help: 'Postgres transactions applied', registers: [this.registry] });
  readonly batches = new Counter({ name: 'sluice_batches_total', help: 'MULTI/EXEC batches applied, by Redis connection', labelNames: ['redis'] as const, registers: [this.registry] });
  readonly failed = new Counter({ name: 'sluice_failed_messages_total', help: 'Messages sent to a sink\'s failed messages', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly redisRetries = new Counter({ name: 'sluice_redis_retries_total', help: 'Redis batch writes retried after an error', labelNames: ['redis'] as const, registers: [this.registry] });
  readonly dataLoss = new Counter({ name: 'sluice_redis_data_loss_total', help: 'Times Redis was found to have lost writes (re-backfill started)', labelNames: ['redis'] as const, registers: [this.registry] });
  readonly backfillRows = new Counter({ name: 'sluice_backfill_rows_total', help: 'Rows copied by backfills', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly reconnects = new Counter({ name: 'sluice_source_reconnects_total', help: 'Replication connection re-established', registers: [this.registry] });
  readonly batchSeconds = new Histogram({ name: 'sluice_batch_apply_seconds', help: 'Time to apply one batch to Redis', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry] });
  readonly lagBytes = new Gauge({ name: 'sluice_lag_bytes', help: 'WAL bytes between the server\'s current position and what Redis has applied', registers: [this.registry] });
  readonly lagSeconds = new Gauge({ name: 'sluice_lag_seconds', help: 'Age of the last applied commit while changes are pending (0 when caught up)', registers: [this.registry] });
  readonly slotRetainedBytes = new Gauge({ name: 'sluice_slot_retained_wal_bytes', help: 'WAL the replication slot holds back', registers: [this.registry] });
  readonly heldWalBytes = new Gauge({ name: 'sluice_sink_held_wal_bytes', help: 'WAL a paused sink holds back in the slot (its position to the server\'s current one), by sink', labelNames: ['sink'] as const, registers: [this.registry] });
  readonly confirmedLsn = new Gauge({ name: 'sluice_confirmed_lsn', help: 'Position confirmed to Postgres (as a number)', registers: [this.registry] });

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: 'sluice_process_' });
  }
}
