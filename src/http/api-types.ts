// The JSON the HTTP API answers, written once for both sides: the server's routes build their
// answers against these types, and the console (web/) imports them (type-only) for its calls.
// This file imports only src/core/records.ts (the stored backfill and failed-message records,
// which imports nothing), so the console's own type-check reads just the two; the types the
// server already has elsewhere (Delivery, BackfillView, RedisTestResult, Problem,
// FailedStoreView) are checked against these ones, both ways, by test/unit/console-contract.test.ts.

import type { BackfillRecord, FailedMessage } from '../core/records.js';

/** Every error: `{"error": {"code", "message"}}`; a body that does not validate adds the problems. */
export interface ApiErrorBody {
  error: { code: string; message: string; problems?: ApiProblem[] };
}

/** One mistake in a body, with its path inside the body ("tables[1]", "key", "" for the whole). */
export interface ApiProblem {
  path: string;
  message: string;
}

// ---- health and source -------------------------------------------------------------------

export interface ApiHealthProblem {
  component: 'pipeline' | 'source' | 'postgres' | 'redis';
  redis?: string;
  sinks?: readonly string[];
  reason: string;
}

/** GET /health (200 or 503: same body). */
export interface ApiHealth {
  status: 'ok' | 'unhealthy';
  state: string;
  source: string;
  problems: ApiHealthProblem[];
  paused_sinks: string[];
}

export interface ApiLaneState {
  name: string;
  state: string;
  lastError: string | null;
}

/** GET /api/source */
export interface ApiSource {
  slot: string;
  publication: string;
  state: string;
  confirmed_lsn: string;
  current_lsn: string | null;
  lag_bytes: number | null;
  lag_ms: number | null;
  retained_wal_bytes: number | null;
  last_error: string | null;
  redis: ApiLaneState[];
  held_by_paused_sinks: { sink: string; position: string | null; held_wal_bytes: number | null }[];
}

// ---- sinks -------------------------------------------------------------------------------

export type ApiSinkType = 'string' | 'hash' | 'list' | 'set' | 'zset' | 'stream' | 'pubsub' | 'geo' | 'hyperloglog' | 'bitmap' | 'aggregate';
export type ApiSinkAction = 'insert' | 'update' | 'delete';

/**
 * A sink's block as written under `sinks:` (POST /api/sinks takes it as JSON; GET answers it
 * with every default filled in). The options of every type in one: the server's schema
 * (src/config/sink-schema.ts) says which belong to which type.
 */
export interface ApiSinkBlock {
  name: string;
  type: ApiSinkType;
  redis?: string;
  tables: string[];
  actions?: ApiSinkAction[];
  expire_ms?: number;
  backfill?: boolean;
  max_value_bytes?: number;
  max_transaction_rows?: number;
  failed_max_messages?: number;
  failed_max_bytes?: number;
  failed_envelope_max_bytes?: number;
  on_schema_change?: 'backfill' | 'ignore';
  filter?: string;
  transform?: string;
  route?: string;
  key?: string;
  value?: 'record' | 'message';
  mode?: 'row' | 'field';
  field?: string;
  push?: 'append' | 'prepend';
  max_length?: number;
  max_age_ms?: number;
  member?: string;
  score?: string;
  channel?: string;
  longitude?: string;
  latitude?: string;
  element?: string;
  offset?: string;
  /** aggregate */
  into?: 'hash' | 'zset';
  measures?: Record<string, string>;
}

/** A backfill of one table for one sink, with its progress. */
export interface ApiBackfill extends BackfillRecord {
  /** rows per second over the last chunks */
  rate: number;
  eta_seconds: number | null;
  percent: number | null;
}

/** GET /api/sinks/:name (and each of GET /api/sinks). */
export interface ApiSink {
  name: string;
  type: ApiSinkType;
  origin: 'config' | 'api';
  redis: string;
  tables: string[];
  state: string;
  paused: boolean;
  position: string | null;
  changes_applied: number;
  /** failed messages waiting now (in Redis) */
  failed_messages: number;
  /** failures since this instance started */
  failed_total: number;
  /** the bounds of the sink's failed messages */
  failed_store: ApiFailedStore;
  lag_ms: number | null;
  lag_bytes: number | null;
  held_wal_bytes: number | null;
  redis_error: string | null;
  /** running backfills; null when they could not be read (backfills_error says why) */
  backfills: ApiBackfill[] | null;
  backfills_error?: string;
  config: ApiSinkBlock;
}

/** A sink's failed messages and their bounds (docs/operations.md, Failed messages). */
export interface ApiFailedStore {
  messages: number;
  bytes: number;
  max_messages: number;
  max_bytes: number;
  envelope_max_bytes: number;
  /** no room for another entry: the next failure is not stored, only logged and counted */
  full: boolean;
  /** failures not stored since start because the store was full */
  dropped: number;
}

export interface ApiSinks {
  sinks: ApiSink[];
}

// ---- messages ----------------------------------------------------------------------------

/**
 * One failed message (GET …/messages?status=failed lists them, newest first): as stored, with
 * the id in its URL-safe form and the row's identity as JSON.
 */
export interface ApiFailedMessage extends Omit<FailedMessage, 'identity'> {
  /** the row's primary key columns, when known */
  identity?: unknown;
  /** in lists, an envelope over 64 KiB is left out: GET …/messages/:id has it */
  message_truncated?: boolean;
  message_chars?: number;
}

export interface ApiFailedPage {
  messages: ApiFailedMessage[];
  next_cursor: string | null;
  total: number;
}

/** One message Redis acknowledged (GET …/messages?status=delivered). */
export interface ApiDelivery {
  id: string;
  sink: string;
  action: string;
  table: string;
  command: string;
  key: string | null;
  commands: number;
  commit_lsn: string;
  commit_idx: number;
  commit_timestamp: string;
  applied_at: string;
}

export interface ApiDeliveries {
  messages: ApiDelivery[];
  next_cursor: null;
  note: string;
}

export interface ApiRetryResult {
  id: string;
  outcome: 'applied' | 'row_gone' | 'superseded' | 'replayed' | 'pending';
  note?: string;
}

// ---- Redis -------------------------------------------------------------------------------

/** POST /api/redis/:name/test */
export interface ApiRedisTest {
  name: string;
  ok: true;
  latency_ms: number;
  ping: string;
  server: { version: string | null; mode: string | null; os: string | null; uptime_seconds: number | null };
  role: string | null;
}

// ---- history (GET /api/history) ----------------------------------------------------------

/** One sample, taken every `interval_ms`. Rates are per second over the interval before `t`. */
export interface ApiHistorySample {
  /** milliseconds since the epoch */
  t: number;
  lag_bytes: number | null;
  lag_ms: number | null;
  retained_wal_bytes: number | null;
  /** row changes applied per second, all sinks */
  changes_per_s: number;
  /** MULTI/EXEC batches per second */
  batches_per_s: number;
  /** mean time to apply one batch over the interval, in ms; null when no batch was applied */
  apply_ms: number | null;
  /** per sink: changes applied per second */
  sinks: Record<string, number>;
  /** per sink: messages that failed per second */
  failed: Record<string, number>;
  /** per sink: mean time from a transaction's commit to Redis acknowledging it, in ms, over the interval; null when it applied none */
  commit_to_redis_ms: Record<string, number | null>;
}

export interface ApiHistory {
  interval_ms: number;
  /** how much the server keeps */
  window_ms: number;
  /** oldest first; with `?since=t` only those after t */
  samples: ApiHistorySample[];
}

// ---- preview (POST /api/sinks/preview) ---------------------------------------------------

export interface ApiPreviewRequest {
  /** the sink's block, as for POST /api/sinks (a missing name is fine here) */
  sink: Partial<ApiSinkBlock>;
  /** rows to read, 1 to 20 (default 5) */
  limit?: number;
  /** one of the sink's tables (default: its first) */
  table?: string;
  /** the action the rows are planned as (default insert) */
  action?: 'insert' | 'update' | 'delete' | 'read';
}

export interface ApiPreviewCommand {
  /** SET, HSET, RPUSH, XADD, PUBLISH, … */
  command: string;
  /** the key (the channel for PUBLISH) */
  key: string | null;
  /** the arguments after the key */
  args: string[];
}

export interface ApiPreviewRow {
  /** the row as its `record` JSON (every digit kept) */
  record: Record<string, unknown>;
  /** filter dropped it: nothing would be written */
  skipped: boolean;
  commands: ApiPreviewCommand[];
  /** why the row would become a failed message; null when it would be written */
  error: { stage: 'filter' | 'transform' | 'route' | 'function' | 'sink'; message: string } | null;
}

export interface ApiPreview {
  table: string;
  action: string;
  rows: ApiPreviewRow[];
}
