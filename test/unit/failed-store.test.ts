import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageMeta } from '../../src/core/render.js';
import { FailedStore, entryBytes, planFailure, storedMessageJson, type FailedLimits, type FailedMessage } from '../../src/plan/failed-messages.js';
import { T, insertChange, table } from './support/tables.js';

const t = table('public', 'events', [
  ['id', T.int8, true],
  ['body', T.text],
]);
const meta = (idx: number): MessageMeta => ({ commitLsn: 0x16b3748n + BigInt(idx), commitTimeMicros: 817_125_063_123_456n, sinkName: 'events' });
const now = new Date('2026-01-02T03:04:05.000Z');
const store = (limits: Partial<FailedLimits>): FailedStore => new FailedStore(() => ({ maxMessages: 10, maxBytes: 1e6, envelopeMaxBytes: 1e5, ...limits }));
const value = (cmd: readonly unknown[] | null): string => String(cmd?.[3]);

describe('the failed-message store', () => {
  test('an envelope over the bound is left out: the identity (exact digits) and the reason stay', () => {
    const s = store({ envelopeMaxBytes: 1000 });
    const big = planFailure(insertChange(t, { id: '9007199254740993', body: 'x'.repeat(5000) }, 0), meta(0), 'value too large', now, s);
    assert.equal(big.kept, 'stored_without_envelope');
    const stored = value(big.command);
    assert.ok(stored.length < 1000, `${stored.length} chars`);
    const record = JSON.parse(stored) as FailedMessage;
    assert.equal(record.identity, '{"id":9007199254740993}');
    assert.equal(record.reason, 'value too large');
    assert.equal(record.message, null);
    assert.ok(record.message_omitted!.bytes >= 5000, 'the size of what was left out');
    assert.match(record.message_omitted!.why, /failed_envelope_max_bytes/);
    assert.equal(storedMessageJson(stored), 'null');

    const small = planFailure(insertChange(t, { id: '1', body: 'short' }, 1), meta(1), 'bad', now, s);
    assert.equal(small.kept, 'stored');
    assert.match(storedMessageJson(value(small.command)), /^\{"record":\{"id":1,"body":"short"\}/);
    assert.deepEqual({ ...s.view('events'), bytes: 0 }, { messages: 2, bytes: 0, max_messages: 10, max_bytes: 1e6, envelope_max_bytes: 1000, full: false, dropped: 0 });
    assert.equal(s.view('events').bytes, entryBytes(big.id, stored) + entryBytes(small.id, value(small.command)));
  });

  test('at most maxMessages entries: the next failure is dropped (not written), counted; a retry or discard makes room', () => {
    const s = store({ maxMessages: 2 });
    const a = planFailure(insertChange(t, { id: '1', body: 'a' }, 0), meta(0), 'r', now, s);
    const b = planFailure(insertChange(t, { id: '2', body: 'b' }, 0), meta(1), 'r', now, s);
    assert.equal(a.filled, undefined);
    assert.equal(b.filled, true, 'the entry that fills the store says so');
    assert.equal(s.view('events').full, true);
    const c = planFailure(insertChange(t, { id: '3', body: 'c' }, 0), meta(2), 'r', now, s);
    assert.deepEqual([a.kept, b.kept, c.kept], ['stored', 'stored', 'dropped']);
    assert.equal(c.command, null);
    assert.match(c.why!, /already keeps 2 failed messages \(failed_max_messages: 2\)/);
    // the same message failing again replaces its entry: no room needed
    assert.equal(planFailure(insertChange(t, { id: '1', body: 'a' }, 0), meta(0), 'again', now, s).kept, 'stored');
    assert.equal(s.view('events').dropped, 1);
    s.remove('events', a.id);
    assert.equal(s.view('events').full, false);
    assert.equal(planFailure(insertChange(t, { id: '3', body: 'c' }, 0), meta(2), 'r', now, s).kept, 'stored');
  });

  test('bytes: an envelope that does not fit in what is left is left out; when not even that fits, dropped', () => {
    const s = store({ maxBytes: 3000 });
    s.load('events', [['0/1:0', 1500]]);
    const kept = planFailure(insertChange(t, { id: '1', body: 'y'.repeat(2000) }, 0), meta(0), 'r', now, s);
    assert.equal(kept.kept, 'stored_without_envelope');
    assert.match(kept.why!, /failed_max_bytes/);
    s.load('events', [['0/1:0', 2900]]);
    const dropped = planFailure(insertChange(t, { id: '2', body: 'z' }, 0), meta(1), 'r', now, s);
    assert.equal(dropped.kept, 'dropped');
    assert.match(dropped.why!, /take 2900 of their 3000 bytes \(failed_max_bytes\)/);
    assert.equal(s.view('events').full, true);
    s.forget('events');
    assert.equal(s.view('events').messages, 0);
  });
});
