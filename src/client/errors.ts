/**
 * What can go wrong in `sluice/client`, as a `code` an application can switch on:
 *
 * - `timeout`          a wait ended before what it waited for (waitFor: the sinks behind are in
 *                      `sinks`; read: no result within `waitMs` while another caller loaded)
 * - `closed`           the client was closed (before or during the call)
 * - `bad_lsn`          not an LSN like `0/16B3748` (as `pg_current_wal_lsn()` prints it)
 * - `bad_option`       an option out of range, or a Redis connection the client cannot use
 * - `no_sinks`         waitFor named no sink (neither in its options nor in the client's)
 * - `sink_not_found`   Redis holds no definition for the sink (not started by Sluice yet, deleted,
 *                      or on another Redis)
 * - `table_required`   keyFor on a sink of several tables without `table`
 * - `table_not_found`  keyFor `table` is not one of the sink's tables
 * - `bad_row`          keyFor could not render the template from the row (a column missing or
 *                      NULL, a value that is not a string, number, bigint or boolean)
 * - `no_template`      the sink has no template of that part (e.g. `member` of a string sink)
 * - `bad_value`        read: a cached value that is not JSON, or a loader result JSON cannot hold
 * - `redis`            a Redis command failed (the driver's error is the `cause`)
 *
 * A loader's own error reaches read()'s caller unchanged, not wrapped.
 */
export type SluiceClientErrorCode =
  | 'timeout'
  | 'closed'
  | 'bad_lsn'
  | 'bad_option'
  | 'no_sinks'
  | 'sink_not_found'
  | 'table_required'
  | 'table_not_found'
  | 'bad_row'
  | 'no_template'
  | 'bad_value'
  | 'redis';

export class SluiceClientError extends Error {
  readonly code: SluiceClientErrorCode;
  /** waitFor timeouts: the sinks that had not applied the LSN */
  readonly sinks?: readonly string[];
  /** waitFor timeouts: each named sink's last known applied position (null: none yet) */
  readonly positions?: Readonly<Record<string, string | null>>;

  constructor(
    code: SluiceClientErrorCode,
    message: string,
    extra: { cause?: unknown; sinks?: readonly string[]; positions?: Record<string, string | null> } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'SluiceClientError';
    this.code = code;
    if (extra.sinks !== undefined) this.sinks = extra.sinks;
    if (extra.positions !== undefined) this.positions = extra.positions;
  }
}

/** A driver error as a SluiceClientError with code `redis` (one already converted stays as is). */
export function redisError(err: unknown, doing: string): SluiceClientError {
  if (err instanceof SluiceClientError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new SluiceClientError('redis', `Redis failed while ${doing}: ${text}`, { cause: err });
}
