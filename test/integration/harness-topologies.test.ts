// The Redis Cluster and Sentinel harnesses do what they say, and Sluice's own clients
// (createRedisClient) follow a cluster failover, a live reshard and a sentinel failover.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis-cluster.js';
import { startRedisSentinel, type TestRedisSentinel } from '../harness/redis-sentinel.js';
import { nodeCommand, waitUntil } from '../harness/redis-node.js';
import { connectRedis, createRedisClient, type RedisClient } from '../../src/redis/connect.js';

/** retries `fn` (a fresh command each time) until it succeeds: the clients never retry themselves */
const eventually = <T>(what: string, fn: () => Promise<T>): Promise<T> =>
  waitUntil(what, 20_000, async () => ({ v: await fn() })).then((r) => r.v);

describe('Redis Cluster and Sentinel harnesses', () => {
  let cluster: TestRedisCluster;
  let sentinel: TestRedisSentinel;
  const clients: RedisClient[] = [];

  before(async () => {
    [cluster, sentinel] = await Promise.all([startRedisCluster({ masters: 3, replicasPerMaster: 1 }), startRedisSentinel()]);
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all([cluster?.stop(), sentinel?.stop()]);
  });

  const client = async (c: RedisClient): Promise<RedisClient> => {
    clients.push(c);
    c.on('error', () => undefined);
    await connectRedis(c);
    return c;
  };

  test('the cluster comes up with 3 masters and 3 replicas covering all slots', async () => {
    assert.equal(cluster.nodes.filter((n) => n.role === 'master').length, 3);
    assert.equal(cluster.nodes.filter((n) => n.role === 'replica').length, 3);
    assert.equal(cluster.seedUrls.length, 3);
    const topo = await cluster.topology();
    const covered = topo.filter((n) => n.role === 'master').flatMap((n) => n.slots).reduce((sum, [a, b]) => sum + b - a + 1, 0);
    assert.equal(covered, 16384);
    const info = String(await nodeCommand(cluster.nodes[0]!.port, ['CLUSTER', 'INFO']));
    assert.match(info, /cluster_state:ok/);
  });

  test('failover promotes a replica; a Sluice cluster client follows it', async () => {
    const c = await client(createRedisClient({ kind: 'cluster', cluster: cluster.seedUrls, username: undefined, password: undefined, tls: undefined }, 'sluice-test'));
    const keys = Array.from({ length: 30 }, (_, i) => `sluice:k${i}`);
    for (const k of keys) await c.set(k, k);
    const oldMaster = cluster.nodes.find((n) => n.role === 'master')!.port;
    const promoted = await cluster.failover(oldMaster);
    assert.notEqual(promoted, oldMaster);
    assert.equal(cluster.nodes.find((n) => n.port === promoted)!.role, 'master');
    assert.equal(cluster.nodes.find((n) => n.port === oldMaster)!.role, 'replica');
    // every key is still there and writable through the same client (after a MOVED or two)
    for (const k of keys) {
      assert.equal(await eventually(`GET ${k}`, () => c.get(k)), k);
      await eventually(`SET ${k}`, () => c.set(k, `${k}!`));
    }
  });

  test('reshard moves slots (with their keys) between masters', async () => {
    const masters = cluster.nodes.filter((n) => n.role === 'master').map((n) => n.port);
    const slotsOf = async (port: number): Promise<number> =>
      (await cluster.topology()).find((n) => n.port === port)!.slots.reduce((sum, [a, b]) => sum + b - a + 1, 0);
    const [from, to] = [masters[0]!, masters[1]!];
    const [fromBefore, toBefore] = [await slotsOf(from), await slotsOf(to)];
    const c = await client(createRedisClient({ kind: 'cluster', cluster: cluster.seedUrls, username: undefined, password: undefined, tls: undefined }, 'sluice-test'));
    const keys = Array.from({ length: 200 }, (_, i) => `sluice:r${i}`);
    for (const k of keys) await c.set(k, k);
    await cluster.reshard(from, to, 500);
    assert.equal(await slotsOf(from), fromBefore - 500);
    assert.equal(await slotsOf(to), toBefore + 500);
    for (const k of keys) assert.equal(await eventually(`GET ${k}`, () => c.get(k)), k);
  });

  test('sentinel failover changes the master; a Sluice sentinel client follows it', async () => {
    const spec = { kind: 'sentinel' as const, sentinel: { name: sentinel.masterName, nodes: sentinel.sentinelUrls }, db: 2, username: undefined, password: undefined, tls: undefined };
    const c = (await client(createRedisClient(spec, 'sluice-test'))) as Redis;
    await c.set('sluice:s', 'before');
    const oldMaster = sentinel.master.port;
    assert.equal(await sentinel.reportedMasterPort(), oldMaster);
    await sentinel.failover();
    assert.notEqual(sentinel.master.port, oldMaster);
    assert.equal(sentinel.replica.port, oldMaster);
    assert.equal(await sentinel.reportedMasterPort(), sentinel.master.port);
    // the client reconnects to the new master by itself; writes work there (db 2)
    await eventually('SET on the new master', () => c.set('sluice:s', 'after'));
    assert.equal(await nodeCommand(sentinel.master.port, ['GET', 'sluice:s'], { db: 2 }), 'after');
    assert.equal(c.stream.remotePort, sentinel.master.port);
  });

  test('killing the sentinel master: the replica is promoted', async () => {
    const oldMaster = sentinel.master.port;
    await sentinel.killMaster();
    assert.notEqual(sentinel.master.port, oldMaster);
    assert.equal(await sentinel.reportedMasterPort(), sentinel.master.port);
    await sentinel.startServer(oldMaster);
  });
});
