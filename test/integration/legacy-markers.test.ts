import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster, Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis-cluster.js';
import { adoptLegacyMarkers } from '../../src/redis/legacy-markers.js';
import { ApplyLane, type ApplyPart, type DataLoss } from '../../src/redis/apply-lane.js';
import { ClusterApplyLane } from '../../src/redis/cluster-apply-lane.js';
import { batchMarkerKey, legacyBatchMarkerKey, legacySlotBatchMarkerKey, slotBatchMarkerKey } from '../../src/core/keyspace.js';
import { slotOf, slotTag } from '../../src/redis/slot-tags.js';
import { createLogger } from '../../src/util/log.js';

const log = createLogger('silent');
const INSTANCE = 'sluice@7301592785934513021';

const part = (batchId: string, keys: readonly string[]): ApplyPart => ({
  batchId,
  commands: keys.map((k) => ['SET', k, batchId]),
  origins: keys.map(() => null),
  positions: [],
  unlinkPrefixes: [],
});

/**
 * The first start after upgrading from the version whose batch marker was per connection name
 * (`sluice:batch:<connection>`): the old marker becomes the instance's, once, and the lane then
 * takes nothing for lost writes; a real loss afterwards is still noticed.
 */
describe('the previous version\'s batch marker', () => {
  let redis: TestRedis;
  let client: Redis;
  let cluster: TestRedisCluster;
  let cc: Cluster;

  before(async () => {
    [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
    client = redis.client();
    cc = cluster.client();
  });
  after(async () => {
    await Promise.all([redis?.stop(), cluster?.stop()]);
  });

  test('standalone: moved once, then applied without a false "lost writes"; a real loss is still noticed', async () => {
    await client.set(legacyBatchMarkerKey('main'), 'old-batch');
    assert.equal(await adoptLegacyMarkers(client, INSTANCE, 'main'), 1);
    assert.equal(await client.get(batchMarkerKey(INSTANCE, 'main')), 'old-batch');
    assert.equal(await client.exists(legacyBatchMarkerKey('main')), 0);
    assert.equal(await adoptLegacyMarkers(client, INSTANCE, 'main'), 0, 'nothing left to move');

    const losses: DataLoss[] = [];
    const lane = new ApplyLane('main', client, log, (l) => losses.push(l), INSTANCE);
    try {
      await lane.load([]);
      await lane.apply(part('b1', ['k1']));
      await lane.apply(part('b2', ['k2']));
      assert.equal(losses.length, 0, JSON.stringify(losses));
      // an instance of the previous version still running writes the old name: left alone
      await client.set(legacyBatchMarkerKey('main'), 'theirs');
      assert.equal(await adoptLegacyMarkers(client, INSTANCE, 'main'), 0);
      assert.equal(await client.get(legacyBatchMarkerKey('main')), 'theirs');
      assert.equal(await client.get(batchMarkerKey(INSTANCE, 'main')), 'b2');
      // another instance with the same connection name writes its own marker: no loss for this one
      const other = new ApplyLane('main', client, log, (l) => losses.push(l), 'other@1');
      await other.load([]);
      await other.apply(part('o1', ['k3']));
      await lane.apply(part('b3', ['k4']));
      assert.equal(losses.length, 0, JSON.stringify(losses));
      other.stop();
      // Redis loses this instance's writes: noticed
      await client.flushall();
      await lane.apply(part('b4', ['k5']));
      assert.deepEqual(losses, [{ lane: 'main', found: null }]);
    } finally {
      lane.stop();
    }
  });

  test('Cluster: every slot\'s marker moved in its slot, then applied without a false "lost writes"', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    const tags = keys.map((k) => slotTag(slotOf(k)));
    for (const t of tags) await cc.set(legacySlotBatchMarkerKey('main', t), 'old-batch');
    assert.equal(await adoptLegacyMarkers(cc, INSTANCE, 'main'), new Set(tags).size);
    for (const t of tags) {
      assert.equal(await cc.get(slotBatchMarkerKey(INSTANCE, 'main', t)), 'old-batch');
      assert.equal(await cc.exists(legacySlotBatchMarkerKey('main', t)), 0);
    }
    const losses: DataLoss[] = [];
    const lane = new ClusterApplyLane('main', cc, log, (l) => losses.push(l), INSTANCE);
    try {
      await lane.load([]);
      await lane.apply(part('b1', keys));
      await lane.apply(part('b2', keys));
      assert.equal(losses.length, 0, JSON.stringify(losses));
    } finally {
      lane.stop();
    }
  });
});
