// Aggregate sinks on a Redis Cluster: groups spread over every slot, their registries beside them;
// the backfill's sweep reaches groups through the registry of their slot; a kill -9 in the middle.
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
import { freePort } from '../../src/util/free-port.js';
import { decimalTextEquals } from '../../src/core/decimal.js';
import { aggregateRegistryKeyOf, registryField } from '../../src/sinks/aggregate-sink.js';
import { slotOf } from '../../src/core/slot-tags.js';

interface Totals {
  count: string;
  sum: string;
}

describe('aggregate sinks on Redis Cluster', () => {
  let pg: TestPostgres;
  let cluster: TestRedisCluster;
  let client: Cluster;
  let sluice: ManagedProcess | null = null;
  let dir: string;
  let config: string;

  before(async () => {
    [pg, cluster] = await Promise.all([startPostgres(), startRedisCluster()]);
    await pg.query(`create table sales (id int primary key, customer text, amount numeric(10,2));
      alter table sales replica identity full;
      insert into sales select i, 'c' || (i % 60), ((i * 37) % 5000 - 1000) / 100.0 from generate_series(1, 3000) i;`);
    dir = mkdtempSync(join(tmpdir(), 'sluice-agg-cluster-'));
    config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      `source:\n  url: ${pg.url}\nredis:\n  cl:\n    cluster: [${cluster.seedUrls.join(', ')}]\nsinks:\n` +
        `  - name: per-customer\n    type: aggregate\n    tables: [sales]\n    key: "cust:{customer}"\n    measures: {n: count, total: sum(amount)}\n` +
        `  - name: top\n    type: aggregate\n    tables: [sales]\n    key: "top"\n    into: zset\n    member: "{customer}"\n    score: sum(amount)\n` +
        `http:\n  port: ${await freePort()}\n`,
    );
    client = cluster.client();
  });

  after(async () => {
    await sluice?.stop(3000);
    await Promise.all([pg?.stop(), cluster?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const start = async (): Promise<ManagedProcess> => {
    const p = spawnSluice(['start', '-c', config]);
    await p.waitForLine(/sluice started/, 30_000);
    return p;
  };

  const groupBy = async (): Promise<Map<string, Totals>> => {
    const r = await pg.query(`select customer as g, count(*)::text as n, sum(amount)::text as s from sales where customer is not null group by 1`);
    return new Map((r.rows as { g: string; n: string; s: string }[]).map((x) => [x.g, { count: x.n, sum: x.s }]));
  };

  const redisGroups = async (customers: Iterable<string>): Promise<Map<string, Totals>> => {
    const out = new Map<string, Totals>();
    for (const c of customers) {
      const h = await client.hgetall(`cust:${c}`);
      if (Object.keys(h).length > 0) out.set(c, { count: h.n ?? '', sum: h.total ?? '' });
    }
    return out;
  };

  const same = (a: Map<string, Totals>, b: Map<string, Totals>): boolean =>
    a.size === b.size && [...b].every(([g, t]) => a.get(g)?.count === t.count && decimalTextEquals(a.get(g)?.sum ?? 'x', t.sum));

  const inSync = async (what: string): Promise<void> => {
    const expected = await groupBy();
    // every customer ever used, so that a group GROUP BY no longer has is seen if Redis kept it
    const everyone = Array.from({ length: 80 }, (_, i) => `c${i}`).concat('ghost');
    const actual = await eventually(() => redisGroups(everyone), (a) => same(a, expected), 60_000, `${what}: Redis equal to GROUP BY`).catch(() => redisGroups(everyone));
    assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: the groups`);
    for (const [g, t] of expected) assert.ok(same(new Map([[g, actual.get(g)!]]), new Map([[g, t]])), `${what}: ${g} ${JSON.stringify(actual.get(g))} vs ${JSON.stringify(t)}`);
    const top = await client.zrange('top', 0, -1, 'WITHSCORES');
    const scores = new Map<string, number>();
    for (let i = 0; i < top.length; i += 2) scores.set(top[i]!, Number(top[i + 1]));
    assert.deepEqual([...scores.keys()].sort(), [...expected.keys()].sort(), `${what}: the leaderboard's members`);
    for (const [g, t] of expected) assert.equal(scores.get(g), Number(t.sum), `${what}: score of ${g}`);
  };

  let next = 4000;
  const workload = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const id = 1 + ((i * 7919 + next) % 3400);
      await pg.query(`begin;
        insert into sales values (${next + i}, 'c${(next + i) % 75}', ${((i * 13) % 900) - 300}.25);
        update sales set customer = 'c${(i * 11) % 75}' where id = ${id};
        update sales set amount = amount + 0.05 where id = ${1 + ((id * 3) % 3400)};
        delete from sales where id = ${1 + ((id * 17) % 3400)};
        commit`);
    }
    next += n;
  };

  test('the backfill spreads the groups over the slots and removes a stale one; changes move contributions between slots', async () => {
    // a group left from before, registered in its own slot's registry, which GROUP BY does not have
    await client.hset('cust:ghost', 'n', '2', 'total', '9.99');
    await client.hset(aggregateRegistryKeyOf('per-customer', 'cust:ghost'), registryField({ key: 'cust:ghost', member: '' }), '2');
    sluice = await start();
    await eventually(() => client.hget('sluice:backfill:per-customer', 'public.sales'), (v) => v !== null && (JSON.parse(v) as { state: string }).state === 'done', 60_000, 'the backfill');
    const slots = new Set(Array.from({ length: 60 }, (_, i) => slotOf(`cust:c${i}`)));
    assert.ok(slots.size > 50, 'groups in many slots');
    await workload(150);
    await inSync('after the backfill and 150 transactions');
    assert.equal(await client.exists('cust:ghost'), 0, 'the stale group is gone');
  });

  test('kill -9 in the middle of a workload, restart: still GROUP BY, exactly', async () => {
    const writing = workload(200);
    await new Promise((r) => setTimeout(r, 700));
    await sluice!.kill('SIGKILL');
    await writing;
    sluice = await start();
    await workload(30);
    await inSync('after the restart');
    const verify = spawnSluice(['verify', 'per-customer', '-c', config]);
    const exit = await verify.exited;
    assert.equal(exit.code, 0, verify.stdout.join('\n') + verify.stderr.join('\n'));
  });
});
