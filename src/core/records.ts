// What Sluice keeps in Redis about backfills and failed messages. The HTTP API answers them
// (src/http/api-types.ts builds its types on these), so this file imports nothing: the
// console's type-check (web/tsconfig.json) reads it with api-types.ts.

/** What is persisted per (sink, table) in `sluice:backfill:<sink>`, with the rows it covers. */
export interface BackfillRecord {
  id: string;
  sink: string;
  table: string;
  state: 'running' | 'done' | 'failed' | 'cancelled';
  /** key column values (text) of the last row copied; null: from the start */
  cursor: string[] | null;
  rows: number;
  /** rows of chunks that the stream had already changed between the watermarks */
  superseded: number;
  estimated_total: number | null;
  from: string | null;
  /** why it runs when Sluice started it by itself: "schema change", "Redis lost writes", … */
  reason?: string;
  started_at: string;
  updated_at: string;
  /** the error that failed it, or (while it is retried) the last attempt's */
  error?: string;
  /** attempts that failed with a transient error and were tried again (backfill-manager.ts) */
  attempts?: number;
  /** while waiting to try again: when the next attempt starts */
  next_retry_at?: string;
  /** after a backfill Sluice started because Redis lost writes: removing what no row accounts for */
  orphan_sweep?: OrphanSweepState;
}

/** The orphan sweep that follows a backfill Sluice started because Redis lost writes (docs/backfills.md). */
export interface OrphanSweepState {
  state: 'pending' | 'running' | 'done' | 'skipped' | 'failed';
  /** keys deleted, and members, fields or bits removed */
  deleted?: number;
  /** candidates the stream wrote meanwhile: kept */
  kept?: number;
  attempts?: number;
  error?: string;
  notes?: string[];
  finished_at?: string;
}

/** A message that could not be delivered, as stored in the sink's failed-message hash (plan/failed-messages.ts). */
export interface FailedMessage {
  id: string;
  sink: string;
  reason: string;
  action: string;
  table: string;
  commit_lsn: string;
  commit_idx: number;
  commit_timestamp: string;
  failed_at: string;
  /** the row's primary key columns as JSON text (exact digits), when they are known */
  identity?: string;
  /** set when the envelope was not kept: its size, and why */
  message_omitted?: { bytes: number; why: string };
  /** the envelope, when it can be rendered at all (and was kept) */
  message: unknown;
}
