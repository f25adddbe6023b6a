import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import calculateSlot from 'cluster-key-slot';
import {
  backfillKey,
  batchMarkerKey,
  failedKey,
  INSTANCE_NAME_RE,
  instanceIdentity,
  isOwnKey,
  legacyBatchMarkerKey,
  legacySlotBatchMarkerKey,
  markerName,
  parseSlotKey,
  parseWatermarkContent,
  positionKey,
  reverseIndexKey,
  sinkOwnerKey,
  slotBatchMarkerKey,
  slotPositionKey,
  watermarkContent,
} from '../../src/core/keyspace.js';
import { slotTag } from '../../src/redis/slot-tags.js';

// Names as the config allows them (SINK_NAME_RE, CONNECTION_NAME_RE): never a brace, so the
// only hash tag in a slot-tagged key is the slot's.
const sinkName = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/);
const laneName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$/);
// a default identity (slot name, system identifier), or a configured `instance:`
const slotName = fc.stringMatching(/^[a-z0-9_]{1,63}$/);
const systemId = fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map(String);
const instanceName = fc.oneof(fc.tuple(slotName, systemId).map(([s, id]) => instanceIdentity(s, id)), fc.stringMatching(INSTANCE_NAME_RE));

describe('keyspace', () => {
  test('the key names, byte for byte', () => {
    assert.equal(positionKey('products'), 'sluice:pos:products');
    assert.equal(instanceIdentity('sluice', '7301592785934513021'), 'sluice@7301592785934513021');
    assert.equal(batchMarkerKey('sluice@7301592785934513021', 'cache'), 'sluice:batch:sluice@7301592785934513021:cache');
    assert.equal(legacyBatchMarkerKey('cache'), 'sluice:batch:cache');
    assert.equal(slotPositionKey('products', 'a1'), 'sluice:pos:products:{a1}');
    assert.equal(slotBatchMarkerKey('orders-eu', 'cache', 'a1'), 'sluice:batch:orders-eu:cache:{a1}');
    assert.equal(legacySlotBatchMarkerKey('cache', 'a1'), 'sluice:batch:cache:{a1}');
    assert.equal(sinkOwnerKey('products'), 'sluice:owner:products');
    assert.equal(failedKey('products'), 'sluice:failed:products');
    assert.equal(backfillKey('products'), 'sluice:backfill:products');
    assert.equal(reverseIndexKey('products'), 'sluice:idx:products');
  });

  test('every key Sluice builds for itself is an own key; data keys are not', () => {
    fc.assert(
      fc.property(sinkName, laneName, instanceName, fc.integer({ min: 0, max: 16383 }), (sink, lane, instance, slot) => {
        const tag = slotTag(slot);
        for (const k of [positionKey(sink), batchMarkerKey(instance, lane), slotPositionKey(sink, tag), slotBatchMarkerKey(instance, lane, tag), legacyBatchMarkerKey(lane), failedKey(sink), backfillKey(sink), reverseIndexKey(sink), sinkOwnerKey(sink)]) {
          assert.ok(isOwnKey(k), k);
        }
      }),
    );
    for (const k of ['sluice:products:1', 'sluice:public.events', 'sluice:check', 'product:1', 'sluice:position:x', 'pos:sluice:x', '']) assert.ok(!isOwnKey(k), k);
  });

  test('slot-tagged keys parse back to what built them', () => {
    fc.assert(
      fc.property(sinkName, laneName, instanceName, fc.integer({ min: 0, max: 16383 }), (sink, lane, instance, slot) => {
        const tag = slotTag(slot);
        assert.deepEqual(parseSlotKey(slotPositionKey(sink, tag)), { kind: 'pos', name: sink, tag });
        assert.deepEqual(parseSlotKey(slotBatchMarkerKey(instance, lane, tag)), { kind: 'batch', name: markerName(instance, lane), tag });
        assert.deepEqual(parseSlotKey(legacySlotBatchMarkerKey(lane, tag)), { kind: 'batch', name: lane, tag });
      }),
    );
    for (const k of [positionKey('s'), batchMarkerKey('i', 'main'), failedKey('s'), 'sluice:pos:s:{}', 'sluice:pos:s:{A1}', 'sluice:idx:s:{a1}', 'user:{a1}']) assert.equal(parseSlotKey(k), null, k);
  });

  test('a slot-tagged key lives in the slot of its tag', () => {
    fc.assert(
      fc.property(sinkName, laneName, instanceName, fc.integer({ min: 0, max: 16383 }), (sink, lane, instance, slot) => {
        const tag = slotTag(slot);
        assert.equal(calculateSlot(tag), slot);
        assert.equal(calculateSlot(slotPositionKey(sink, tag)), slot);
        assert.equal(calculateSlot(slotBatchMarkerKey(instance, lane, tag)), slot);
        // the first start after an upgrade renames the old marker in place: both in one slot
        assert.equal(calculateSlot(legacySlotBatchMarkerKey(lane, tag)), slot);
      }),
    );
  });

  test('instances never share a batch marker, and none is the previous version\'s', () => {
    // two instances on one Redis with the same connection name (the default `main`): two markers
    fc.assert(
      fc.property(fc.tuple(instanceName, laneName), fc.tuple(instanceName, laneName), fc.integer({ min: 0, max: 16383 }), ([i1, l1], [i2, l2], slot) => {
        const tag = slotTag(slot);
        const same = i1 === i2 && l1 === l2;
        assert.equal(batchMarkerKey(i1, l1) === batchMarkerKey(i2, l2), same);
        assert.equal(slotBatchMarkerKey(i1, l1, tag) === slotBatchMarkerKey(i2, l2, tag), same);
        assert.notEqual(batchMarkerKey(i1, l1), legacyBatchMarkerKey(l2));
        assert.notEqual(slotBatchMarkerKey(i1, l1, tag), legacySlotBatchMarkerKey(l2, tag));
      }),
    );
    // the same slot name on two Postgres clusters: two instances
    assert.notEqual(instanceIdentity('sluice', '7301592785934513021'), instanceIdentity('sluice', '7301592785934513022'));
  });

  test('a default instance identity is a valid instance: name', () => {
    fc.assert(fc.property(slotName, systemId, (slot, id) => assert.match(instanceIdentity(slot, id), INSTANCE_NAME_RE)));
    for (const bad of ['a:b', 'a{b}', 'a*', '', 'a b', 'x'.repeat(101)]) assert.doesNotMatch(bad, INSTANCE_NAME_RE, bad);
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
