import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Cluster, Redis } from 'ioredis';
import { SluiceClient, SluiceClientError } from '../../src/client/index.js';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { clientApp, type ClientApp } from '../support/client-package.js';
import { spawnManaged, spawnSluice, type ManagedProcess } from '../harness/process.js';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis-cluster.js';
import { freePort } from '../../src/util/free-port.js';

const isCode = (code: string) => (err: unknown): boolean => err instanceof SluiceClientError && err.code === code;

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/** PUBSUB NUMSUB: how many connections listen on a channel (callers waiting for a load). */
async function listeners(redis: Redis, channel: string): Promise<number> {
  const r = (await redis.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
  return Number(r[1]);
}

/** A writer that commits one row after another on a published table until stopped. */
function steadyWriter(url: string, table: string): { stop(): Promise<number> } {
  let writing = true;
  let n = 0;
  const c = new pg.Client({ connectionString: url });
  const done = (async () => {
    await c.connect();
    while (writing) {
      await c.query(`insert into ${table} (v) values ('x')`);
      n++;
    }
    await c.end();
  })();
  return {
    async stop() {
      writing = false;
      await done;
      return n;
    },
  };
}

/**
 * sluice/client against a running Sluice: read your writes through Redis only (waitFor), the
 * keys of the sinks (keyFor), and cache-aside with one loader across processes (read).
 */
describe('sluice/client', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let app: pg.Client;
  let client: SluiceClient;
  let pkg: ClientApp;
  let base: string;
  const lsnNow = async (): Promise<string> => (await app.query<{ l: string }>(`select pg_current_wal_lsn()::text as l`)).rows[0]!.l;

  before(async () => {
    pkg = clientApp(); // builds dist/client/ from the current sources
    env = await createSluiceTestEnv();
    base = `http://127.0.0.1:${env.httpPort}`;
    await env.pg.query(`
      create table products (id int primary key, price numeric);
      create table noise (id bigserial primary key, v text);
      create table unpublished (id bigserial primary key, v text);
      create table lines (b int, a int, v text, primary key (a, b));
      insert into products values (1, 0), (2, 0);
      insert into lines values (2, 1, 'x');`);
    env.writeConfig(`  - name: prices
    type: string
    tables: [products]
    key: "price:{id}"
  - name: other
    type: string
    tables: [products]
    key: "other:{id}"
  - name: noise
    type: string
    tables: [noise]
    key: "noise:{id}"
  - name: lines
    type: string
    tables: [lines]
    backfill: true`);
    await env.start();
    redis = env.redis.client();
    app = new pg.Client({ connectionString: env.pg.url, options: '-c synchronous_commit=on' });
    await app.connect();
    client = new SluiceClient({ redis: env.redis.url, sinks: ['prices'] });
  });

  after(async () => {
    await client?.close();
    await app?.end();
    await env?.stop();
    pkg?.remove();
  });

  test('bad input: an LSN that is not one, no sinks, a sink Redis knows nothing of', async () => {
    await assert.rejects(client.waitFor('nope'), isCode('bad_lsn'));
    const bare = new SluiceClient({ redis: redis });
    await assert.rejects(bare.waitFor('0/0'), isCode('no_sinks'));
    await assert.rejects(bare.waitFor('0/0', { sinks: ['nope'], timeoutMs: 2000 }), isCode('sink_not_found'));
    await assert.rejects(bare.waitFor('0/0', { sinks: ['prices'], timeoutMs: -1 }), isCode('bad_option'));
    assert.equal(await bare.waitFor('0/0', { sinks: ['prices', 'other'] }), true, 'an LSN long applied');
    await bare.close();
    assert.equal(redis.status, 'ready', 'close() leaves the application\'s own connection open');
    await assert.rejects(bare.waitFor('0/0', { sinks: ['prices'] }), isCode('closed'));
    assert.throws(() => new SluiceClient({ redis: env.redis.client({ keyPrefix: 'app:' }) }), isCode('bad_option'));
  });

  test('300 rounds of update → pg_current_wal_lsn() → waitFor → read with a steady writer on another published table: 0 stale reads', async (t) => {
    const writer = steadyWriter(env.pg.url, 'noise');
    const took: number[] = [];
    let stale = 0;
    try {
      for (let i = 1; i <= 300; i++) {
        const id = 1 + (i % 2);
        await app.query(`update products set price = $1 where id = $2`, [i, id]);
        const lsn = await lsnNow();
        const started = performance.now();
        assert.equal(await client.waitFor(lsn), true);
        took.push(performance.now() - started);
        if ((await redis.get(`price:${id}`)) !== `{"id":${id},"price":${i}}`) stale++;
      }
    } finally {
      const rows = await writer.stop();
      t.diagnostic(`steady writer: ${rows} rows meanwhile`);
    }
    t.diagnostic(`waitFor ms: p50 ${percentile(took, 50).toFixed(1)}, p99 ${percentile(took, 99).toFixed(1)}, max ${Math.max(...took).toFixed(1)}`);
    assert.equal(stale, 0, 'stale reads');
  });

  test('timeouts: a paused sink makes waitFor reject with code timeout naming it; resumed, the same wait resolves', async () => {
    assert.equal((await fetch(`${base}/api/sinks/other/pause`, { method: 'POST' })).status, 200);
    try {
      await app.query(`update products set price = 4242 where id = 2`);
      const lsn = await lsnNow();
      // /api/wait writes a fence, so the stream brings the update at once to the sink that runs
      assert.equal((await fetch(`${base}/api/wait?lsn=${lsn}&sinks=prices`)).status, 200);
      const started = performance.now();
      const err = await client.waitFor(lsn, { sinks: ['prices', 'other'], timeoutMs: 300 }).then(
        () => assert.fail('resolved'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof SluiceClientError && err.code === 'timeout', String(err));
      assert.ok(performance.now() - started >= 290);
      assert.deepEqual(err.sinks, ['other']);
      assert.match(err.message, /"other"/);
      assert.ok(err.positions?.prices && err.positions.other !== undefined);
      const waiting = client.waitFor(lsn, { sinks: ['prices', 'other'], timeoutMs: 20_000 });
      assert.equal((await fetch(`${base}/api/sinks/other/resume`, { method: 'POST' })).status, 200);
      assert.equal(await waiting, true, 'woken by the progress Sluice publishes once the sink caught up');
      assert.equal(await redis.get('other:2'), '{"id":2,"price":4242}');
    } finally {
      await fetch(`${base}/api/sinks/other/resume`, { method: 'POST' });
    }
  });

  test('an idle database: a waitFor past the last published commit asks Sluice for a fence and is served at once, not at the next keepalive', async () => {
    await app.query(`insert into unpublished (v) values ('x')`); // WAL that no sink streams
    const lsn = await lsnNow();
    const started = performance.now();
    assert.equal(await client.waitFor(lsn, { timeoutMs: 10_000 }), true);
    // a keepalive would take seconds (wal_sender_timeout / 2); a fence takes a round trip through the stream
    assert.ok(performance.now() - started < 5000, `${Math.round(performance.now() - started)} ms`);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /sluice_fences_total [1-9]/);
  });

  test('an LSN beyond anything written times out (timeoutMs 0: one look)', async () => {
    await assert.rejects(client.waitFor('FFFF/0', { timeoutMs: 0 }), isCode('timeout'));
    await assert.rejects(client.waitFor(0xffff00000000n, { timeoutMs: 50 }), (e: unknown) => isCode('timeout')(e) && /"prices"/.test((e as Error).message));
  });

  test('keyFor renders the keys the sinks write: a template with a column, and {pk} of a composite key', async () => {
    assert.equal(await client.keyFor('prices', { id: 1, price: '3' }), 'price:1');
    const key = await client.keyFor('lines', { a: 1, b: 2, v: 'x' });
    const written = await eventually(() => redis.keys('sluice:lines:*'), (k) => k.length === 1, 15_000, 'the backfilled line');
    assert.deepEqual([key], written);
    assert.equal(await redis.get(key), '{"b":2,"a":1,"v":"x"}');
    await assert.rejects(client.keyFor('nope', { id: 1 }), isCode('sink_not_found'));
    await assert.rejects(client.keyFor('prices', { price: 1 }), isCode('bad_row'));
  });

  test('read: a value Sluice wrote is returned and never replaced; a loaded one gives way to Sluice\'s', async () => {
    let calls = 0;
    const loader = async (): Promise<unknown> => {
      calls++;
      return { loaded: true };
    };
    // price:1 is Sluice's (no TTL): a hit, the loader never runs
    const v = await client.read('price:1', loader, { ttlMs: 60_000 });
    assert.deepEqual(Object.keys(v as object), ['id', 'price']);
    assert.equal(calls, 0);
    // price:3 is not in Redis yet (no such row): loaded, written with its TTL
    assert.deepEqual(await client.read('price:3', loader, { ttlMs: 60_000 }), { loaded: true });
    assert.equal(calls, 1);
    assert.ok((await redis.pttl('price:3')) > 0);
    assert.deepEqual(await client.read('price:3', loader, { ttlMs: 60_000 }), { loaded: true }, 'a hit');
    assert.equal(calls, 1);
    // the row appears: Sluice's write replaces the loaded value, and no load ever replaces Sluice's
    await app.query(`insert into products values (3, 33)`);
    await client.waitFor(await lsnNow(), { timeoutMs: 10_000 });
    assert.equal(await redis.pttl('price:3'), -1);
    assert.deepEqual(await client.read('price:3', loader, { ttlMs: 60_000 }), { id: 3, price: 33 });
  });

  test('read: 40 concurrent misses over 4 processes (the built package) call the loader once in total', async () => {
    const key = 'derived:stampede';
    const workers: ManagedProcess[] = [];
    try {
      for (let i = 0; i < 4; i++) workers.push(spawnManaged(process.execPath, [pkg.worker, 'stampede', env.redis.url, key, '10', '10000'], { cwd: pkg.dir, name: `worker ${i}` }));
      await Promise.all(workers.map((w) => w.waitForLine(/"ready":true/, 15_000)));
      await redis.lpush(`go:${key}`, '1', '1', '1', '1');
      // one process loads; the three others subscribe to the key's channel and wait for it
      await eventually(() => redis.get(`loads:${key}`), (n) => n === '1', 15_000, 'a loader');
      await eventually(() => listeners(redis, `lock:${key}`), (n) => n === 3, 15_000, 'three processes waiting');
      await redis.lpush(`release:${key}`, '1');
      const exits = await Promise.all(workers.map((w) => w.exited));
      assert.deepEqual(exits.map((e) => e.code), [0, 0, 0, 0], workers.map((w) => w.tail(5)).join('\n'));
      const results = workers.flatMap((w) => (JSON.parse(w.stdout.find((l) => l.includes('"results"'))!) as { results: { by: number }[] }).results);
      assert.equal(results.length, 40);
      const by = new Set(results.map((r) => r.by));
      assert.equal(by.size, 1, 'every caller got the one load\'s value');
      assert.equal(await redis.get(`loads:${key}`), '1', 'the loader ran once');
      assert.equal(workers.filter((w) => w.stdout.some((l) => l.includes('"loading"'))).length, 1);
      assert.equal(await redis.exists(`lock:${key}`), 0, 'the lock is released');
    } finally {
      await Promise.all(workers.map((w) => w.stop(1000)));
    }
  });

  test('read: a loader that throws: the error reaches its caller, the lock is released, a waiting caller then loads', async () => {
    const key = 'derived:throws';
    const other = new SluiceClient({ redis: env.redis.url }); // another process's client: its own single-flight
    try {
      const boom = new Error('the database is down');
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const first = client.read(key, async () => {
        await gate;
        throw boom;
      }, { ttlMs: 60_000 });
      first.catch(() => undefined);
      await eventually(() => redis.exists(`lock:${key}`), (n) => n === 1, 5000, 'the first caller\'s lock');
      let calls = 0;
      const second = other.read(key, async () => {
        calls++;
        return 'second';
      }, { ttlMs: 60_000 });
      await eventually(() => listeners(redis, `lock:${key}`), (n) => n === 1, 5000, 'the second caller waiting');
      assert.equal(calls, 0, 'the second caller waits instead of loading');
      release();
      await assert.rejects(first, (e: unknown) => e === boom, 'the loader\'s own error, unchanged');
      assert.equal(await second, 'second');
      assert.equal(calls, 1);

      // alone: the lock is gone right after the error, and the next caller loads
      const lone = 'derived:throws-alone';
      await assert.rejects(client.read(lone, () => Promise.reject(boom), { ttlMs: 60_000 }), (e: unknown) => e === boom);
      assert.equal(await redis.exists(`lock:${lone}`), 0, 'released by its owner');
      assert.equal(await client.read(lone, () => 'next', { ttlMs: 60_000 }), 'next');
      assert.equal(await redis.get(lone), '"next"');
    } finally {
      await other.close();
    }
  });

  test('read: a lock owner killed (SIGKILL): the others load once its lock expires', async () => {
    const key = 'derived:killed';
    const lockMs = 2000;
    const holder = spawnManaged(process.execPath, [pkg.worker, 'hold', env.redis.url, key, '1', String(lockMs)], { cwd: pkg.dir, name: 'lock holder' });
    try {
      await holder.waitForLine(/"loading":true/, 15_000);
      let loadedAt = 0;
      const waiting = client.read(key, () => {
        loadedAt = performance.now();
        return 'after the crash';
      }, { ttlMs: 60_000, lockMs });
      await eventually(() => listeners(redis, `lock:${key}`), (n) => n === 1, 5000, 'the caller waiting');
      const pttl = await redis.pttl(`lock:${key}`);
      const expires = performance.now() + pttl;
      await holder.kill('SIGKILL');
      assert.equal(await waiting, 'after the crash');
      assert.ok(loadedAt >= expires - 20, `loaded ${(expires - loadedAt).toFixed(0)} ms before the lock expired`);
      assert.ok(loadedAt <= expires + 1500, `loaded ${(loadedAt - expires).toFixed(0)} ms after the lock expired`);
      assert.equal(await redis.get(key), '"after the crash"');
    } finally {
      await holder.stop(1000);
    }
  });

  test('read: stale-while-revalidate serves the old value while one caller reloads it', async () => {
    const key = 'derived:swr';
    let version = 0;
    const loader = async (): Promise<number> => ++version;
    const opts = { ttlMs: 100, staleWhileRevalidateMs: 60_000 };
    assert.equal(await client.read(key, loader, opts), 1);
    // fresh for ttlMs, then stale (its TTL is within the stale window)
    await eventually(() => redis.pttl(key), (ms) => ms <= 60_000, 5000, 'the value to turn stale');
    const served = await Promise.all([client.read(key, loader, opts), client.read(key, loader, opts), client.read(key, loader, opts)]);
    assert.deepEqual(served, [1, 1, 1], 'stale values served at once');
    await eventually(() => redis.get(key), (v) => v === '2', 5000, 'the refreshed value');
    assert.equal(version, 2, 'one refresh');
    assert.ok((await redis.pttl(key)) > 60_000, 'fresh again');
  });

  test('read: bad options and values refused with a code', async () => {
    await assert.rejects(client.read('derived:bad', () => 1, { ttlMs: 0 }), isCode('bad_option'));
    await assert.rejects(client.read('derived:bad', () => undefined, { ttlMs: 1000 }), isCode('bad_value'));
    assert.equal(await redis.exists('lock:derived:bad'), 0);
    await redis.set('derived:not-json', 'plain text');
    await assert.rejects(client.read('derived:not-json', () => 1, { ttlMs: 1000 }), isCode('bad_value'));
  });
});

describe('sluice/client on Redis Cluster', () => {
  let pgs: TestPostgres;
  let cluster: TestRedisCluster;
  let sluice: ManagedProcess;
  let dir: string;
  let redis: Cluster;
  let client: SluiceClient;

  before(async () => {
    [pgs, cluster] = await Promise.all([startPostgres(), startRedisCluster()]);
    await pgs.query(`create table products (id int primary key, price numeric); create table noise (id bigserial primary key, v text); insert into products select g, 0 from generate_series(1, 20) g;`);
    dir = mkdtempSync(join(tmpdir(), 'sluice-client-cluster-'));
    const config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      `source:\n  url: ${pgs.url}\nredis:\n  cl:\n    cluster: [${cluster.seedUrls.join(', ')}]\nsinks:\n  - name: prices\n    type: string\n    tables: [products]\n    key: "price:{id}"\n  - name: noise\n    type: string\n    tables: [noise]\nhttp:\n  port: ${await freePort()}\n`,
    );
    sluice = spawnSluice(['start', '-c', config]);
    await sluice.waitForLine(/sluice started/, 30_000);
    redis = cluster.client();
    client = new SluiceClient({ redis, sinks: ['prices'] });
  });

  after(async () => {
    await client?.close();
    await sluice?.stop(3000);
    await Promise.all([pgs?.stop(), cluster?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a sink on a cluster connection: waitFor then read, 100 rounds over keys in every slot, 0 stale reads', async () => {
    const app = new pg.Client({ connectionString: pgs.url, options: '-c synchronous_commit=on' });
    await app.connect();
    const writer = steadyWriter(pgs.url, 'noise');
    let stale = 0;
    try {
      for (let i = 1; i <= 100; i++) {
        const id = 1 + (i % 20);
        await app.query(`update products set price = $1 where id = $2`, [i, id]);
        const lsn = (await app.query<{ l: string }>(`select pg_current_wal_lsn()::text as l`)).rows[0]!.l;
        await client.waitFor(lsn, { timeoutMs: 10_000 });
        if ((await redis.get(`price:${id}`)) !== `{"id":${id},"price":${i}}`) stale++;
      }
    } finally {
      await writer.stop();
      await app.end();
    }
    assert.equal(stale, 0, 'stale reads');
    assert.equal(await client.keyFor('prices', { id: 7 }), 'price:7');
  });

  test('read on a cluster: the lock and the value live in different slots', async () => {
    let calls = 0;
    const loader = async (): Promise<string> => {
      calls++;
      return 'v';
    };
    const other = new SluiceClient({ redis: cluster.client() });
    try {
      const got = await Promise.all([client.read('derived:c', loader, { ttlMs: 60_000 }), other.read('derived:c', loader, { ttlMs: 60_000 })]);
      assert.deepEqual(got, ['v', 'v']);
      assert.equal(calls, 1);
    } finally {
      await other.close();
    }
  });
});
