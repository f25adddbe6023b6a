import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from 'ioredis';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis-cluster.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { eventually } from '../support/sluice-env.js';
import { diffMaps, expectedStrings } from '../support/compare.js';
import { freePort } from '../../src/util/free-port.js';
import { positionKey } from '../../src/core/keyspace.js';

/**
 * Every string key under a prefix. Keys are collected from every node (the client's idea of
 * who is master may lag a failover) and read through the cluster client, which follows MOVED.
 */
async function scanCluster(client: Cluster, prefix: string): Promise<Map<string, string>> {
  const keys = new Set<string>();
  for (const node of client.nodes('all')) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000).catch(() => ['0', [] as string[]] as const);
      cursor = next;
      for (const k of found) keys.add(k);
    } while (cursor !== '0');
  }
  const out = new Map<string, string>();
  for (const k of keys) {
    const v = await client.get(k);
    if (v !== null) out.set(k, v);
  }
  return out;
}

describe('Redis Cluster', () => {
  let pg: TestPostgres;
  let cluster: TestRedisCluster;
  let client: Cluster;
  let sluice: ManagedProcess;
  let dir: string;
  let next = 0;

  const write = async (n: number): Promise<void> => {
    for (let i = next; i < next + n; i++) {
      await pg.query(
        `begin; insert into acct values (${i % 400}, ${i}, 't${i % 7}') on conflict (id) do update set v = excluded.v;
         delete from acct where id = ${(i * 7) % 400} and v % 9 = 0; commit;`,
      );
    }
    next += n;
  };

  const inSync = async (): Promise<void> => {
    const expected = await expectedStrings(pg, 'acct');
    const actual = await eventually(() => scanCluster(client, 'sluice:acct:'), (a) => diffMaps(expected, a).length === 0, 60_000, 'Redis equal to Postgres').catch(() => scanCluster(client, 'sluice:acct:'));
    assert.deepEqual(diffMaps(expected, actual).slice(0, 10), [], sluice.tail(20));
  };

  before(async () => {
    [pg, cluster] = await Promise.all([startPostgres(), startRedisCluster({ replicasPerMaster: 1 })]);
    await pg.query(`create table acct (id int primary key, v int, tenant text); alter table acct replica identity full;`);
    dir = mkdtempSync(join(tmpdir(), 'sluice-cluster-'));
    const config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      `source:\n  url: ${pg.url}\nredis:\n  cl:\n    cluster: [${cluster.seedUrls.join(', ')}]\nsinks:\n  - name: acct\n    type: string\n    tables: [acct]\n  - name: tagged\n    type: string\n    tables: [acct]\n    key: "tenant:{{{tenant}}}:{id}"\nhttp:\n  port: ${await freePort()}\n`,
    );
    sluice = spawnSluice(['start', '-c', config]);
    await sluice.waitForLine(/sluice started/, 30_000);
    client = cluster.client();
  });

  after(async () => {
    await sluice?.stop(3000);
    await Promise.all([pg?.stop(), cluster?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('transactions are applied per slot, with hash-tagged keys together', async () => {
    await write(200);
    await inSync();
    const tagged = await scanCluster(client, 'tenant:');
    assert.ok(tagged.size > 0);
    for (const k of tagged.keys()) assert.match(k, /^tenant:\{t\d\}:\d+$/);
  });

  test('a stream of transactions through a live resharding', async () => {
    const masters = cluster.nodes.filter((n) => n.role === 'master');
    const writing = write(400);
    await cluster.reshard(masters[0]!.port, masters[1]!.port, 500);
    await writing;
    await inSync();
  });

  test('a stream of transactions through a master failover', async () => {
    const master = cluster.nodes.find((n) => n.role === 'master')!;
    const writing = write(400);
    await new Promise((r) => setTimeout(r, 200));
    await cluster.failover(master.port);
    await writing;
    await write(50);
    await inSync();
    assert.ok(sluice.running, sluice.tail(20));
  });

  test('a sink\'s position behind the slot (a failover to a replica that lacked recent writes): noticed at start', async () => {
    await sluice.stop(3000);
    // what a lagging replica of the position key's master looks like: an older position
    await client.set(positionKey('acct'), '0/1');
    await write(50);
    sluice = spawnSluice(['start', '-c', join(dir, 'sluice.yaml')]);
    await sluice.waitForLine(/Redis is behind the replication slot/, 30_000);
    await inSync();
  });

  test('a crash and restart replays exactly, per slot', async () => {
    const writing = write(300);
    await new Promise((r) => setTimeout(r, 300));
    await sluice.kill('SIGKILL');
    await writing;
    sluice = spawnSluice(['start', '-c', join(dir, 'sluice.yaml')]);
    await sluice.waitForLine(/sluice started/, 30_000);
    await inSync();
  });
});
