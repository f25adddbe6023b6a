import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import calculateSlot from 'cluster-key-slot';
import {
  backfillKey,
  batchMarkerKey,
  failedKey,
  isOwnKey,
  parseSlotKey,
  parseWatermarkContent,
  positionKey,
  reverseIndexKey,
  slotBatchMarkerKey,
  slotPositionKey,
  watermarkContent,
} from '../../src/core/keyspace.js';
import { slotTag } from '../../src/redis/slot-tags.js';

// Names as the config allows them (SINK_NAME_RE, CONNECTION_NAME_RE): never a brace, so the
// only hash tag in a slot-tagged key is the slot's.
const sinkName = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/);
const laneName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$/);

describe('keyspace', () => {
  test('the key names, byte for byte', () => {
    assert.equal(positionKey('products'), 'sluice:pos:products');
    assert.equal(batchMarkerKey('cache'), 'sluice:batch:cache');
    assert.equal(slotPositionKey('products', 'a1'), 'sluice:pos:products:{a1}');
    assert.equal(slotBatchMarkerKey('cache', 'a1'), 'sluice:batch:cache:{a1}');
    assert.equal(failedKey('products'), 'sluice:failed:products');
    assert.equal(backfillKey('products'), 'sluice:backfill:products');
    assert.equal(reverseIndexKey('products'), 'sluice:idx:products');
  });

  test('every key Sluice builds for itself is an own key; data keys are not', () => {
    fc.assert(
      fc.property(sinkName, laneName, fc.integer({ min: 0, max: 16383 }), (sink, lane, slot) => {
        const tag = slotTag(slot);
        for (const k of [positionKey(sink), batchMarkerKey(lane), slotPositionKey(sink, tag), slotBatchMarkerKey(lane, tag), failedKey(sink), backfillKey(sink), reverseIndexKey(sink)]) {
          assert.ok(isOwnKey(k), k);
        }
      }),
    );
    for (const k of ['sluice:products:1', 'sluice:public.events', 'sluice:check', 'product:1', 'sluice:position:x', 'pos:sluice:x', '']) assert.ok(!isOwnKey(k), k);
  });

  test('slot-tagged keys parse back to what built them', () => {
    fc.assert(
      fc.property(sinkName, laneName, fc.integer({ min: 0, max: 16383 }), (sink, lane, slot) => {
        const tag = slotTag(slot);
        assert.deepEqual(parseSlotKey(slotPositionKey(sink, tag)), { kind: 'pos', name: sink, tag });
        assert.deepEqual(parseSlotKey(slotBatchMarkerKey(lane, tag)), { kind: 'batch', name: lane, tag });
      }),
    );
    for (const k of [positionKey('s'), batchMarkerKey('main'), failedKey('s'), 'sluice:pos:s:{}', 'sluice:pos:s:{A1}', 'sluice:idx:s:{a1}', 'user:{a1}']) assert.equal(parseSlotKey(k), null, k);
  });

  test('a slot-tagged key lives in the slot of its tag', () => {
    fc.assert(
      fc.property(sinkName, laneName, fc.integer({ min: 0, max: 16383 }), (sink, lane, slot) => {
        const tag = slotTag(slot);
        assert.equal(calculateSlot(tag), slot);
        assert.equal(calculateSlot(slotPositionKey(sink, tag)), slot);
        assert.equal(calculateSlot(slotBatchMarkerKey(lane, tag)), slot);
      }),
    );
  });

  test('watermark messages round-trip', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.constantFrom('low' as const, 'high' as const), (id, kind) => {
        assert.deepEqual(parseWatermarkContent(watermarkContent(kind, id)), { kind, windowId: id });
      }),
    );
    assert.equal(watermarkContent('low', 'w1'), 'lw:w1');
    assert.equal(watermarkContent('high', 'w1'), 'hw:w1');
    assert.equal(parseWatermarkContent('xw:w1'), null);
    assert.equal(parseWatermarkContent('lw'), null);
  });
});
