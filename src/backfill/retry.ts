import { SluiceError, errorMessage } from '../util/errors.js';

/**
 * Which backfill failures are tried again, and when (pure).
 *
 * A backfill reads Postgres and writes Redis for a long time: either may go away meanwhile
 * (restart, failover, a terminated backend, a network cut). Such a failure is retried with
 * backoff, from the last chunk Redis holds, until the backfill completes, is replaced by a newer
 * one, or its sink is deleted. Only errors that the same request cannot outlive stay `failed`:
 *
 * - Postgres SQLSTATE classes 42 (syntax error or access rule violation: a table or column that
 *   no longer exists, `permission denied`), 22 (data exception: a `--from` value that does not
 *   cast), 0A (feature not supported), 28 (invalid authorization: wrong password), 3D (the
 *   database does not exist);
 * - Sluice's own verdicts: the table is gone or has no key to read it in order, the sink was
 *   deleted or is not of the right kind (`PermanentBackfillError`, a `SluiceError`).
 *
 * Everything else is retried: connection errors (`ECONNRESET`, `ECONNREFUSED`, "Connection
 * terminated unexpectedly"), a server shutting down (57P01 `terminating connection due to
 * administrator command`, 57P03), too many connections (53300), Redis down, `READONLY` or
 * `LOADING` during a failover, and errors not listed here: an unknown failure retried every 30 s
 * costs little, while a backfill left failed leaves the sink without rows until someone notices.
 */

/** SQLSTATE classes (first two characters) that a retry cannot fix. */
const PERMANENT_SQLSTATE_CLASSES = new Set(['42', '22', '0A', '28', '3D']);

/** Messages of Sluice's own checks in the workers that no retry fixes. */
const PERMANENT_MESSAGES = [/^table \S+ does not exist/, /has no primary key or replica identity index/, /^sink "[^"]*" (was deleted|is not an aggregate sink)/, /^no sink named /];

/** A failure the same backfill cannot outlive: it stays failed until a user starts it again. */
export class PermanentBackfillError extends Error {}

export function isTransientBackfillError(err: unknown): boolean {
  if (err instanceof PermanentBackfillError || err instanceof SluiceError) return false;
  const code = (err as { code?: unknown } | null)?.code;
  // pg's DatabaseError carries the SQLSTATE (5 characters); Node's socket errors carry E… codes
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && PERMANENT_SQLSTATE_CLASSES.has(code.slice(0, 2))) return false;
  const message = errorMessage(err);
  return !PERMANENT_MESSAGES.some((re) => re.test(message));
}

export const RETRY_BASE_MS = 1000;
export const RETRY_MAX_MS = 30_000;

/**
 * The wait before attempt `attempt + 1` after `attempt` failed ones (1, 2, …): 1 s doubling up to
 * 30 s, with "equal jitter" (half the step fixed, half random) so that the backfills of several
 * sinks that failed together (one Postgres restart) do not come back in step. `random` in [0, 1).
 */
export function retryDelayMs(attempt: number, random: number = Math.random()): number {
  const step = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(Math.max(attempt - 1, 0), 16));
  return Math.round(step / 2 + (random * step) / 2);
}
