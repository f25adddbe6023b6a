import { test } from 'node:test';
import assert from 'node:assert/strict';
import { postgresGoingAway } from '../../src/runtime/lookups.js';

const withCode = (code: string, message = 'x'): Error => Object.assign(new Error(message), { code });

test('postgresGoingAway: shutting down, starting, refused, reset or ended connections', () => {
  for (const e of [
    withCode('57P01', 'terminating connection due to administrator command'),
    withCode('57P02'),
    withCode('57P03', 'the database system is shutting down'),
    withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'),
    withCode('ECONNRESET'),
    new Error('Connection terminated unexpectedly'),
    new Error('the database system is starting up'),
  ]) {
    assert.equal(postgresGoingAway(e), true, e.message);
  }
});

test('postgresGoingAway: errors of a running Postgres are not', () => {
  for (const e of [withCode('42501', 'permission denied for table docs'), withCode('57014', 'canceling statement due to user request'), withCode('53300', 'sorry, too many clients already'), new Error('timeout'), null, 'text']) {
    assert.equal(postgresGoingAway(e), false, String(e));
  }
});
