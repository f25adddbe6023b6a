// Which backfill failures are tried again (retry.ts), and how long Sluice waits between attempts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PermanentBackfillError, RETRY_BASE_MS, RETRY_MAX_MS, isTransientBackfillError, retryDelayMs } from '../../src/backfill/retry.js';
import { SluiceError } from '../../src/util/errors.js';

const pgError = (code: string, message: string): Error => Object.assign(new Error(message), { code });

describe('isTransientBackfillError', () => {
  test('Postgres or Redis going away is transient', () => {
    for (const err of [
      pgError('57P01', 'terminating connection due to administrator command'),
      pgError('57P03', 'the database system is starting up'),
      pgError('53300', 'sorry, too many clients already'),
      pgError('08006', 'connection failure'),
      pgError('ECONNRESET', 'read ECONNRESET'),
      pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'),
      new Error('Client has encountered a connection error and is not queryable'),
      new Error('Connection terminated unexpectedly'),
      new Error('Connection is closed.'),
      new Error("READONLY You can't write against a read only replica."),
      new Error('chunk failed'),
      'a thrown string',
    ]) {
      assert.equal(isTransientBackfillError(err), true, String(err instanceof Error ? err.message : err));
    }
  });

  test('a missing table, a permission error, a bad --from value, a deleted sink are not', () => {
    for (const err of [
      pgError('42P01', 'relation "public.gone" does not exist'),
      pgError('42501', 'permission denied for table secrets'),
      pgError('42703', 'column "nope" does not exist'),
      pgError('22P02', 'invalid input syntax for type integer: "x"'),
      pgError('28P01', 'password authentication failed for user "sluice"'),
      pgError('3D000', 'database "nope" does not exist'),
      new Error('table public.gone does not exist'),
      new Error('table public.t has no primary key or replica identity index to read it in order: add one'),
      new Error('sink "s" was deleted'),
      new SluiceError('sink_not_found', 'no sink named "s"'),
      new PermanentBackfillError('no'),
    ]) {
      assert.equal(isTransientBackfillError(err), false, err.message);
    }
  });
});

describe('retryDelayMs', () => {
  test('1 s doubling to 30 s, half of it jitter', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((a) => retryDelayMs(a, 0)), [500, 1000, 2000, 4000, 8000, 15000, 15000]);
    assert.deepEqual([1, 2, 6, 100].map((a) => retryDelayMs(a, 0.999999)), [1000, 2000, 30000, 30000]);
  });

  test('property: within [step/2, step] where step = min(30 s, 1 s · 2^(attempt-1))', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
        const step = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(attempt - 1, 16));
        const d = retryDelayMs(attempt, r);
        return d >= step / 2 && d <= step && d <= RETRY_MAX_MS;
      }),
    );
  });
});
