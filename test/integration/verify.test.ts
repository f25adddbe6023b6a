import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { diffMaps, expectedStrings, scanStrings } from '../support/compare.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import type { BackfillView } from '../../src/backfill/backfill-manager.js';
import type { SinkConfig } from '../../src/config/schema.js';
import { createSink } from '../../src/sinks/index.js';

const ROWS = 2000;

async function verify(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const p = spawnSluice(['verify', ...args]);
  const exit = await p.exited;
  return { code: exit.code, out: p.stdout.join('\n'), err: p.stderr.join('\n') };
}

async function backfills(env: SluiceTestEnv, sink: string): Promise<BackfillView[]> {
  const res = await fetch(`http://127.0.0.1:${env.httpPort}/api/sinks/${sink}/backfills`);
  return ((await res.json()) as { backfills: BackfillView[] }).backfills;
}

/** Updates, inserts and deletes random rows until stopped. */
function startWriter(env: SluiceTestEnv): { stop(): Promise<number> } {
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const id = 1 + Math.floor(Math.random() * ROWS * 1.2);
      const r = Math.random();
      if (r < 0.7) await env.pg.query(`update products set price = price + 1, name = md5(random()::text) where id = $1`, [id]);
      else if (r < 0.85) await env.pg.query(`delete from products where id = $1 and id not in (3, 17)`, [id]);
      else await env.pg.query(`insert into products values ($1, 'new', 1.50) on conflict (id) do update set price = products.price + 100`, [id]);
      n++;
      await new Promise((res) => setTimeout(res, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return n;
    },
  };
}

describe('sluice verify', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let config: string;
  let sluice: ManagedProcess;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table products (id int primary key, name text not null, price numeric(10,2) not null);
      insert into products select g, 'product ' || g, g * 1.25 from generate_series(1, ${ROWS}) g;`);
    redis = env.redis.client();
    config = env.writeConfig(`  - name: products
    type: string
    tables: [products]
    backfill: true`);
    sluice = await env.start(config);
    const done = await eventually(() => backfills(env, 'products'), (b) => b.length === 1 && b[0]!.state !== 'running', 60_000, 'initial backfill');
    assert.equal(done[0]!.state, 'done');
  });

  after(async () => {
    await env?.stop();
  });

  test('a sink in sync: exit 0, "in sync"', async () => {
    const r = await verify(['-c', config, 'products']);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, new RegExp(`public\\.products: ${ROWS} rows — ${ROWS} ok, 0 missing, 0 stale, 0 orphaned`));
    assert.match(r.out, /^in sync$/m);
  });

  test('a deleted key, a wrong value and an extra key: exit 1 with counts and examples', async () => {
    await redis.del('sluice:products:17');
    await redis.set('sluice:products:3', '{"id":3,"name":"tampered","price":0}');
    await redis.set('sluice:products:999999', '{"id":999999}');
    const r = await verify(['-c', config, 'products']);
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, new RegExp(`public\\.products: ${ROWS} rows — ${ROWS - 2} ok, 1 missing, 1 stale, 1 orphaned`));
    assert.match(r.out, /^ {2}missing sluice:products:17$/m);
    assert.match(r.out, /^ {2}stale sluice:products:3: redis \{"id":3,"name":"tampered","price":0\} != postgres \{"id":3,"name":"product 3","price":3\.75\}$/m);
    assert.match(r.out, /^ {2}orphan sluice:products:999999$/m);
    assert.match(r.out, /^out of sync$/m);
    const limited = await verify(['-c', config, 'products', '--examples', '1']);
    assert.equal(limited.code, 1);
    assert.equal(limited.out.split('\n').filter((l) => /^ {2}(missing|stale|orphan) /.test(l)).length, 1);
  });

  test('--repair with live writes: exit 0, and Redis equals Postgres', async () => {
    const writer = startWriter(env);
    await new Promise((r) => setTimeout(r, 300));
    const r = await verify(['-c', config, 'products', '--repair']);
    const writes = await writer.stop();
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /out of sync/);
    assert.match(r.out, /[1-9]\d* orphan\(s\) deleted/);
    assert.equal(await redis.exists('sluice:products:999999'), 0);
    assert.match(r.out, /after repair:[\s\S]*\nin sync$/);
    assert.ok(writes > 20, `writer ran ${writes} statements`);
    const expected = await expectedStrings(env.pg, 'products');
    const actual = await eventually(() => scanStrings(redis, 'sluice:products:'), (a) => diffMaps(expected, a).length === 0, 15_000, 'Redis equal to Postgres').catch(() => scanStrings(redis, 'sluice:products:'));
    assert.deepEqual(diffMaps(expected, actual).slice(0, 10), []);
    const again = await verify(['-c', config, 'products']);
    assert.equal(again.code, 0, again.out + again.err);
    assert.match(again.out, /0 missing, 0 stale, 0 orphaned/);
  });

  test('a key of another Redis type under the prefix (another sink\'s, or the user\'s) is not an orphan', async () => {
    await redis.sadd('sluice:products:tags', 'a');
    try {
      const r = await verify(['-c', config, 'products']);
      assert.equal(r.code, 0, r.out + r.err);
    } finally {
      await redis.del('sluice:products:tags');
    }
  });

  // the hash sink may not be in this version yet: the case then says so and is skipped
  const hashMissing = ((): string | false => {
    try {
      createSink({ name: 'h', type: 'hash', mode: 'row', key: 'h:{pk}', tables: ['public.products'], actions: ['insert', 'update', 'delete'], backfill: false, max_value_bytes: 1024, max_transaction_rows: 1000 } as unknown as SinkConfig);
      return false;
    } catch {
      return 'the hash sink is not in src/sinks/index.ts yet (createSink refuses type hash)';
    }
  })();

  test('a hash sink (row mode): in sync, then a removed field, a wrong field, an extra field, a deleted key and an extra hash', { skip: hashMissing }, async () => {
    await sluice.stop();
    const hashConfig = env.writeConfig(`  - name: products-h
    type: hash
    key: "h:{table}:{pk}"
    tables: [products]
    backfill: true`);
    sluice = await env.start(hashConfig);
    await eventually(() => backfills(env, 'products-h'), (b) => b.length === 1 && b[0]!.state === 'done', 60_000, 'hash backfill');
    const rows = Number((await env.pg.query('select count(*)::int n from products')).rows[0].n);
    const ok = await verify(['-c', hashConfig, 'products-h']);
    assert.equal(ok.code, 0, ok.out + ok.err);
    assert.match(ok.out, new RegExp(`public\\.products: ${rows} rows — ${rows} ok, 0 missing, 0 stale, 0 orphaned`));
    // rows that exist now (the writer of an earlier case deleted some at random)
    const ids = (await env.pg.query('select id, price::text from products order by id limit 4')).rows as { id: number; price: string }[];
    const [a, b, c, d] = ids.map((r) => r.id) as [number, number, number, number];
    await redis.hdel(`h:products:${a}`, 'name');
    await redis.hset(`h:products:${b}`, 'price', '-1');
    await redis.hset(`h:products:${c}`, 'extra', 'x');
    await redis.del(`h:products:${d}`);
    await redis.hset('h:products:999999', 'id', '999999');
    const bad = await verify(['-c', hashConfig, 'products-h']);
    assert.equal(bad.code, 1, bad.out + bad.err);
    assert.match(bad.out, new RegExp(`${rows} rows — ${rows - 4} ok, 1 missing, 3 stale, 1 orphaned`));
    assert.match(bad.out, new RegExp(`^ {2}missing h:products:${d}$`, 'm'));
    const price = JSON.stringify(ids[1]!.price).replace(/[.]/g, '\\.');
    assert.match(bad.out, new RegExp(`^ {2}stale h:products:${b}: redis \\{.*"price":"-1".*\\} != postgres \\{.*"price":${price}.*\\}$`, 'm'));
    assert.match(bad.out, /^ {2}orphan h:products:999999$/m);
    // A backfill rewrites a row-mode hash with HSET/HDEL of the table's columns: a field that is
    // no column of the table is reported but not removed by --repair (see docs/operations.md).
    await redis.hdel(`h:products:${c}`, 'extra');
    const repaired = await verify(['-c', hashConfig, 'products-h', '--repair']);
    assert.equal(repaired.code, 0, repaired.out + repaired.err);
  });

  test('errors: unknown sink, stream sink: exit 2 with the reason', async () => {
    await sluice.stop();
    const unknown = await verify(['-c', config, 'nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /no sink named "nope"/);
    const streamConfig = env.writeConfig(`  - name: events
    type: stream
    tables: [products]`);
    const r = await verify(['-c', streamConfig, 'events']);
    assert.equal(r.code, 2, r.out + r.err);
    assert.match(r.err, /sink type stream keeps history, not state: verify does not apply/);
    const missingArg = await verify(['-c', streamConfig]);
    assert.equal(missingArg.code, 2);
  });
});
