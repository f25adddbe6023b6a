import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { failoverFindings } from '../../src/pg/source-setup.js';
import { streamError } from '../../src/pg/replication-source.js';

type State = Parameters<typeof failoverFindings>[0];
const primary17: State = { serverVersion: 170004, inRecovery: false, standbySlots: 'standby1', slot: { exists: true, failover: true, synced: false } };
const wants = { slot: 'sluice', failover: true };
const messages = (s: State, w: Parameters<typeof failoverFindings>[1] = wants): string[] => failoverFindings(s, w).map((f) => `${f.severity} ${f.message}`);

test('failover_slot on Postgres 15 and 16: an error naming source.failover_slot', () => {
  for (const v of [150008, 160004]) {
    const out = failoverFindings({ ...primary17, serverVersion: v, standbySlots: null, slot: { exists: true, failover: null, synced: null } }, wants);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.severity, 'error');
    assert.match(out[0]!.message, /^source\.failover_slot: Postgres 1[56] has no failover slots/);
  }
});

test('a failover slot with synchronized_standby_slots set: ok, nothing to warn of', () => {
  const out = messages(primary17);
  assert.deepEqual(out, ['ok replication slot "sluice" is a failover slot', 'ok synchronized_standby_slots is "standby1": Sluice never gets ahead of that standby']);
});

test('synchronized_standby_slots unset: a warning that says what could go wrong and what to run', () => {
  for (const standbySlots of ['', '  ']) {
    const warn = failoverFindings({ ...primary17, standbySlots }, wants).find((f) => f.severity === 'warn');
    assert.ok(warn);
    assert.match(warn.message, /synchronized_standby_slots is not set/);
    assert.match(warn.message, /Redis would hold changes the new primary never had/);
    assert.match(warn.message, /ALTER SYSTEM SET synchronized_standby_slots/);
  }
});

test('an existing slot without failover: start will ALTER_REPLICATION_SLOT it', () => {
  const out = messages({ ...primary17, slot: { exists: true, failover: false, synced: false } });
  assert.ok(out.some((m) => /^warn .*not a failover slot.*ALTER_REPLICATION_SLOT "sluice" \( FAILOVER true \)/.test(m)), out.join('\n'));
});

test('a standby (in recovery) is an error, whatever failover_slot says; its synced slot is named', () => {
  for (const failover of [true, false]) {
    const out = failoverFindings({ ...primary17, inRecovery: true, slot: { exists: true, failover: true, synced: true } }, { slot: 'sluice', failover });
    const errors = out.filter((f) => f.severity === 'error');
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /is a standby \(in recovery\).*synchronized from the primary.*point source\.url at the primary/);
  }
});

test('failover_slot off: never an error or a warning on a primary, whatever the slot', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 150000, max: 189999 }),
      fc.option(fc.string()),
      fc.boolean(),
      fc.option(fc.boolean()),
      (serverVersion, standbySlots, exists, failover) => {
        const out = failoverFindings({ serverVersion, inRecovery: false, standbySlots, slot: { exists, failover, synced: false } }, { slot: 'sluice', failover: false });
        return out.every((f) => f.severity === 'ok');
      },
    ),
  );
});

test('streamError: a synced slot on a standby is said to be retried until the promotion', () => {
  const err = Object.assign(new Error('cannot use replication slot "sluice" for logical decoding'), { detail: 'This replication slot is being synchronized from the primary server.' });
  assert.match(streamError(err), /^cannot use replication slot "sluice" for logical decoding: the server is a standby .*retrying until the standby is promoted$/);
  assert.equal(streamError(new Error('Connection terminated unexpectedly')), 'Connection terminated unexpectedly');
  assert.match(streamError(new Error('cannot execute CREATE_REPLICATION_SLOT during recovery')), /the server is a standby; retrying until it is promoted/);
});
