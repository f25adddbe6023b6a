import type { Metrics } from '../metrics.js';
import type { TableInfo } from '../core/change.js';
import type { SinkSpec } from '../plan/route.js';
import type { RedisClient } from '../redis/connect.js';
import type { Logger } from '../util/log.js';
import type { ChangeSource, ChangeStreamOptions } from '../pg/change-stream.js';
import type { Lane } from '../redis/apply-lane.js';
import type { FailedLimits } from '../plan/failed-messages.js';
import type { KeyReader } from './tail-probe.js';

export interface PipelineOptions {
  source: { url: string; slot: string; publication: string };
  sinks: readonly (SinkSpec & { paused?: boolean })[];
  redis: ReadonlyMap<string, RedisClient>;
  log: Logger;
  metrics: Metrics;
  /** a batch is closed once it holds this many commands (whole transactions only) */
  batchMaxCommands: number;
  /** a transaction with more changes is applied in chunks of this size */
  maxTransactionRows: number;
  /** bound of one batch (and of a chunk of a large transaction) in bytes: wide rows */
  batchMaxBytes?: number;
  /** this instance's identity: its batch markers carry it (core/keyspace.ts instanceIdentity; tests may leave it out) */
  instance?: string;
  /** Redis lost writes while running: these sinks must be backfilled again */
  onDataLoss?: (sinks: string[], redis: string) => void;
  /** a table's shape as the stream describes it (schema changes are told from it) */
  onRelation?: (table: TableInfo) => void;
  /** the change stream (default: Postgres logical replication); tests pass an in-memory one */
  makeStream?: (opts: ChangeStreamOptions) => ChangeSource;
  /** bounds of each sink's failed messages (default: plan/failed-messages.ts DEFAULT_FAILED_LIMITS) */
  failedLimits?: (sink: string) => FailedLimits;
  /** the apply lane of a Redis connection (default: connect it, then standalone or Cluster lane) */
  makeLane?: (name: string, onDataLoss: () => void) => Promise<Lane>;
  /** how the unconfirmed tail's key types are read (default: TYPE pipelines on the lane's client) */
  readKeyTypes?: KeyReader;
}
