import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ownKeyOf, ownSinks } from '../../src/core/key-owner.js';
import { appliedKey, backfillKey, batchMarkerKey, failedKey, legacyBatchMarkerKey, legacySlotBatchMarkerKey, positionKey, reverseIndexKey, sinkDefinitionKey, sinkOwnerKey, slotBatchMarkerKey, slotPositionKey, aggregateRegistryKey } from '../../src/core/keyspace.js';

const perSink = (s: string): string[] => [positionKey(s), slotPositionKey(s, 'a1'), failedKey(s), backfillKey(s), reverseIndexKey(s), appliedKey(s), sinkDefinitionKey(s), sinkOwnerKey(s), aggregateRegistryKey(s, 'b2')];

describe('ownKeyOf (sluice teardown --keys on a shared Redis)', () => {
  const ours = { instance: 'sluice@7312', connections: new Set(['main']), sinks: new Set(['items', 'orders-2']) };

  test("every per-sink key of the instance's sinks, its batch markers and the legacy markers of its connections", () => {
    for (const k of [...perSink('items'), ...perSink('orders-2'), batchMarkerKey('sluice@7312', 'main'), slotBatchMarkerKey('sluice@7312', 'main', 'x9'), batchMarkerKey('sluice@7312', 'other-conn'), legacyBatchMarkerKey('main'), legacySlotBatchMarkerKey('main', 'x9')]) {
      assert.equal(ownKeyOf(k, ours), true, k);
    }
  });

  test("never another instance's keys, a sink whose name starts the same, data or unknown kinds", () => {
    for (const k of [
      ...perSink('items2'),
      ...perSink('orders'),
      batchMarkerKey('sluice@9999', 'main'),
      slotBatchMarkerKey('other', 'main', 'x9'),
      legacyBatchMarkerKey('cache'),
      'sluice:items:1',
      'sluice:check',
      'sluice:future-kind:items',
      'item:1',
    ]) {
      assert.equal(ownKeyOf(k, ours), false, k);
    }
  });

  test('a key is never claimed by two instances with different sinks and names', () => {
    const sink = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,8}$/);
    fc.assert(
      fc.property(fc.uniqueArray(sink, { minLength: 2, maxLength: 6 }), fc.integer({ min: 1, max: 5 }), (sinks, split) => {
        const cut = Math.min(split, sinks.length - 1);
        const a = { instance: 'a@1', connections: new Set<string>(), sinks: new Set(sinks.slice(0, cut)) };
        const b = { instance: 'b@1', connections: new Set<string>(), sinks: new Set(sinks.slice(cut)) };
        const keys = [...sinks.flatMap(perSink), batchMarkerKey('a@1', 'main'), batchMarkerKey('b@1', 'main'), slotBatchMarkerKey('b@1', 'main', 'q')];
        for (const k of keys) assert.ok(!(ownKeyOf(k, a) && ownKeyOf(k, b)), k);
        // and each is someone's
        for (const k of keys) assert.ok(ownKeyOf(k, a) || ownKeyOf(k, b), k);
      }),
    );
  });
});

describe('ownSinks', () => {
  test("claimed by this instance, or configured and unclaimed; never another instance's", () => {
    const owners = new Map([
      ['a', 'me'],
      ['b', 'them'],
      ['removed-from-yaml', 'me'],
    ]);
    assert.deepEqual([...ownSinks(owners, ['a', 'b', 'c'], 'me')].sort(), ['a', 'c', 'removed-from-yaml']);
  });
});
