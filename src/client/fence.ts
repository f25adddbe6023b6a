import { formatLsn, parseLsn, type Lsn } from '../core/lsn.js';
import { comparePositions, formatPosition, parsePosition, type Position } from '../core/position.js';
import { SluiceClientError } from './errors.js';

/**
 * The pure part of waitFor: what an LSN argument means, and whether a sink's applied position
 * (as Sluice publishes it in `sluice:applied:<sink>`) covers it. The same rule as GET /api/wait.
 */

/** An LSN as `pg_current_wal_lsn()` prints it (`16/B374D848`) or as a bigint. */
export type LsnInput = string | bigint;

export function toLsn(input: LsnInput): Lsn {
  if (typeof input === 'bigint') {
    if (input < 0n || input > 0xffffffffffffffffn) throw new SluiceClientError('bad_lsn', `an LSN is a 64-bit unsigned number (got ${input})`);
    return input;
  }
  if (typeof input !== 'string') throw new SluiceClientError('bad_lsn', `lsn must be a string like 0/16B3748, as pg_current_wal_lsn() prints it (got ${typeof input})`);
  try {
    return parseLsn(input);
  } catch {
    throw new SluiceClientError('bad_lsn', `lsn must be an LSN like 0/16B3748, as pg_current_wal_lsn() prints it (got ${JSON.stringify(input)})`);
  }
}

/**
 * Has a sink at `p` applied every transaction that committed at or before `lsn`? `<LSN>` means
 * everything that committed before LSN is applied; `<LSN>:<idx>` (inside a large transaction)
 * only what committed before LSN.
 */
export function reaches(p: Position | null, lsn: Lsn): boolean {
  if (p === null) return false;
  return (p.idx === null ? p.lsn : p.lsn - 1n) >= lsn;
}

/** A published position's text; null when it is not one (never trusted then). */
export function readPosition(text: string | null | undefined): Position | null {
  if (text === null || text === undefined) return null;
  try {
    return parsePosition(text);
  } catch {
    return null;
  }
}

/** The later of two positions (positions only move forward; a late message never moves one back). */
export function later(a: Position | null, b: Position | null): Position | null {
  if (a === null) return b;
  if (b === null) return a;
  return comparePositions(a, b) >= 0 ? a : b;
}

/** The timeout error of a wait: the sinks behind, with their positions. */
export function timeoutError(lsn: Lsn, timeoutMs: number, positions: ReadonlyMap<string, Position | null>): SluiceClientError {
  const behind = [...positions].filter(([, p]) => !reaches(p, lsn)).map(([s]) => s);
  const shown: Record<string, string | null> = {};
  for (const [s, p] of positions) shown[s] = p === null ? null : formatPosition(p);
  const where = behind.map((s) => `"${s}" (at ${shown[s] ?? 'no position yet'})`).join(', ');
  return new SluiceClientError(
    'timeout',
    `${formatLsn(lsn)} not applied within ${timeoutMs} ms by ${where}: paused, behind, its Redis is down, or the database is idle (see docs/client.md)`,
    { sinks: behind, positions: shown },
  );
}
