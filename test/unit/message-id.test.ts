import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { apiMessageId, messageId, parseMessageId, storedMessageId } from '../../src/core/message-id.js';
import { idempotencyKey, type MessageMeta } from '../../src/core/render.js';
import { failedMessageCommand, failedMessageForApi } from '../../src/plan/failed-messages.js';
import { SINK_NAME_RE } from '../../src/config/sink-schema.js';
import { CONNECTION_NAME_RE } from '../../src/config/redis-schema.js';
import { T, insertChange, table } from './support/tables.js';

const lsn = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const idx = fc.integer({ min: 0, max: 999_999_999 });
/** a path segment that needs no percent-encoding: RFC 3986 unreserved characters only */
const urlSafe = (s: string): boolean => /^[A-Za-z0-9._~-]+$/.test(s) && encodeURIComponent(s) === s;

describe('message ids', () => {
  test('listed URL-safe, stored as the idempotency key', () => {
    assert.equal(messageId(0x16b3748n, 0), '0-16B3748-0');
    assert.equal(storedMessageId(0x16b3748n, 0), '0/16B3748:0');
    assert.equal(messageId(0x16_b374d848n, 19999), '16-B374D848-19999');
    fc.assert(
      fc.property(lsn, idx, (l, i) => {
        const id = messageId(l, i);
        assert.ok(urlSafe(id), id);
        assert.equal(storedMessageId(l, i), idempotencyKey(l, i));
        assert.deepEqual(parseMessageId(id), { lsn: l, idx: i });
        assert.deepEqual(parseMessageId(storedMessageId(l, i)), { lsn: l, idx: i }, 'the stored form is accepted too');
        assert.equal(apiMessageId(storedMessageId(l, i)), id);
        assert.equal(apiMessageId(id), id);
      }),
    );
  });

  test('lower-case hex is read; what is no id is null', () => {
    assert.deepEqual(parseMessageId('0-16b3748-2'), { lsn: 0x16b3748n, idx: 2 });
    for (const bad of ['', 'zzz', '0-16B3748', '0/16B3748', '0-16B3748:0', '0/16B3748-0', '123456789-0-0', '0-0--1', '0-0-1.5', ' 0-0-0']) {
      assert.equal(parseMessageId(bad), null, bad);
      assert.equal(apiMessageId(bad), bad);
    }
  });

  test('a failed message is stored under the idempotency key and shown with the URL-safe id, envelope untouched', () => {
    const t = table('public', 'events', [
      ['id', T.int8, true],
      ['amount', T.numeric],
    ]);
    const meta: MessageMeta = { commitLsn: 0x16b3748n, commitTimeMicros: 817_125_063_123_456n, sinkName: 'events' };
    const cmd = failedMessageCommand(insertChange(t, { id: '9007199254740993', amount: '12345678901234567890.123456789' }, 3), meta, 'too large');
    assert.equal(cmd[0], 'HSET');
    assert.equal(cmd[1], 'sluice:failed:events');
    assert.equal(cmd[2], '0/16B3748:3', 'the hash field stays the idempotency key');
    const stored = cmd[3]!;
    const shown = failedMessageForApi(stored);
    assert.equal((JSON.parse(shown) as { id: string }).id, '0-16B3748-3');
    assert.ok(shown.includes('"record":{"id":9007199254740993,"amount":12345678901234567890.123456789}'), 'every digit kept');
    assert.ok(shown.includes('"idempotency_key":"0/16B3748:3"'), 'the envelope is not rewritten');
    const { id: _a, ...restStored } = JSON.parse(stored) as Record<string, unknown>;
    const { id: _b, ...restShown } = JSON.parse(shown) as Record<string, unknown>;
    assert.deepEqual(restShown, restStored);
    assert.equal(failedMessageForApi(shown), shown, 'already URL-safe');
    assert.equal(failedMessageForApi('not json'), 'not json');
    const noMessage = '{"id":"0/1:0","reason":"x"}';
    assert.equal(failedMessageForApi(noMessage), '{"id":"0-1-0","reason":"x"}');
  });

  test('every other id the API lists is URL-safe as listed: sink and connection names, backfill and repair ids', () => {
    fc.assert(
      fc.property(fc.stringMatching(SINK_NAME_RE), fc.stringMatching(CONNECTION_NAME_RE), (sink, conn) => {
        assert.ok(urlSafe(sink), sink);
        assert.ok(urlSafe(conn), conn);
      }),
    );
    // backfill and repair ids are randomUUID()s
    assert.ok(urlSafe(randomUUID()));
  });
});
