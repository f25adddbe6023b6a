import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { failedKey, positionKey } from '../../src/core/keyspace.js';

interface Body {
  error?: { code: string; message: string; problems?: { path: string; message: string }[] };
  sink?: { name: string; state: string; paused: boolean; origin: string; held_wal_bytes: number | null };
  sinks?: { name: string; state: string; paused: boolean; origin: string }[];
  status?: string;
  problems?: { component: string; redis?: string; reason: string }[];
  held_by_paused_sinks?: { sink: string; held_wal_bytes: number | null }[];
}

/**
 * Sinks created, changed, paused, resumed and deleted through the API while a writer keeps
 * writing: each ends equal to Postgres, the history sink with exactly one entry per change.
 */
describe('sinks at runtime, under a steady writer', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let base: string;
  let sluice: ManagedProcess;
  let writing = false;
  let writer: Promise<void> = Promise.resolve();
  let ops = 0;

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: Body; text: string }> => {
    const res = await fetch(base + path, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json: Body = {};
    try {
      json = JSON.parse(text) as Body;
    } catch {
      // not JSON
    }
    return { status: res.status, json, text };
  };

  /** one transaction at a time: a random change to items, and its row in the ops log */
  const startWriter = (): void => {
    writing = true;
    writer = (async () => {
      let n = 0;
      while (writing) {
        n++;
        const id = 1 + (n % 40);
        const r = n % 5;
        const sql =
          r === 4
            ? `delete from items where id = ${id}`
            : `insert into items values (${id}, 'name${n}', 'kind${n % 3}') on conflict (id) do update set name = excluded.name, kind = excluded.kind`;
        await env.pg.query(`begin; ${sql}; insert into ops (item_id) values (${id}); commit;`);
        ops++;
        await new Promise((res) => setTimeout(res, 3));
      }
    })();
  };
  const stopWriter = async (): Promise<void> => {
    writing = false;
    await writer;
  };

  /** Redis's item:* hashes equal the items table */
  const itemsInSync = async (): Promise<boolean> => {
    const rows = (await env.pg.query(`select id, name, kind from items order by id`)).rows as { id: number; name: string; kind: string }[];
    const keys = (await redis.keys('item:*')).sort();
    if (keys.length !== rows.length) return false;
    for (const row of rows) {
      const h = await redis.hgetall(`item:${row.id}`);
      if (h.id !== String(row.id) || h.name !== row.name || h.kind !== row.kind) return false;
    }
    return true;
  };

  /** the feed list holds each ops row once, in order, from its first entry to the last committed */
  const feedExact = async (): Promise<{ ok: boolean; why: string }> => {
    const entries = (await redis.lrange('feed', 0, -1)).map((e) => (JSON.parse(e) as { record: { seq: number } }).record.seq);
    const max = Number((await env.pg.query(`select max(seq) as m from ops`)).rows[0].m);
    if (entries.length === 0) return { ok: false, why: 'empty' };
    for (let i = 1; i < entries.length; i++) if (entries[i] !== entries[i - 1]! + 1) return { ok: false, why: `gap or duplicate at ${i}: ${entries[i - 1]} then ${entries[i]}` };
    return entries[entries.length - 1] === max ? { ok: true, why: '' } : { ok: false, why: `last ${entries[entries.length - 1]} of ${max}` };
  };

  before(async () => {
    env = await createSluiceTestEnv();
    base = `http://127.0.0.1:${env.httpPort}`;
    await env.pg.query(`
      create table items (id int primary key, name text, kind text);
      create table ops (seq bigserial primary key, item_id int);
      create table other (id int primary key, v text);
      insert into items select g, 'seed' || g, 'kind0' from generate_series(1, 30) g;`);
    env.writeConfig(`  - name: other
    type: string
    tables: [other]
    key: "other:{id}"`);
    sluice = await env.start();
    redis = env.redis.client();
    startWriter();
  });

  after(async () => {
    await stopWriter().catch(() => undefined);
    await env?.stop();
  });

  test('bad bodies are answered 400 with the path of the mistake, and change nothing', async () => {
    const unknown = await call('POST', '/api/sinks', { name: 'x1', type: 'hash', tables: ['items'], kee: 'a' });
    assert.equal(unknown.status, 400, unknown.text);
    assert.ok(unknown.json.error?.problems?.some((p) => p.path === 'kee'), unknown.text);
    const wrongType = await call('POST', '/api/sinks', { name: 'x2', type: 'list', tables: 'items', max_length: 'many' });
    assert.equal(wrongType.status, 400, wrongType.text);
    const paths = wrongType.json.error?.problems?.map((p) => p.path) ?? [];
    assert.ok(paths.includes('tables') && paths.includes('max_length'), wrongType.text);
    const dup = await call('POST', '/api/sinks', { name: 'other', type: 'string', tables: ['other'] });
    assert.equal(dup.status, 400, dup.text);
    assert.equal(dup.json.error?.code, 'sink_exists');
    assert.ok(dup.json.error?.problems?.some((p) => p.path === 'name'));
    const list = await call('GET', '/api/sinks');
    assert.deepEqual(list.json.sinks?.map((s) => s.name), ['other']);
    const patchFile = await call('PATCH', '/api/sinks/other', { key: 'o:{id}' });
    assert.equal(patchFile.status, 409, patchFile.text);
    assert.equal((await call('DELETE', '/api/sinks/nope')).status, 404);
  });

  test('a hash sink with backfill and a list sink are added while the writer writes', async () => {
    const h = await call('POST', '/api/sinks', { name: 'items-h', type: 'hash', tables: ['items'], key: 'item:{id}', backfill: true });
    assert.equal(h.status, 201, h.text);
    assert.equal(h.json.sink?.origin, 'api');
    const f = await call('POST', '/api/sinks', { name: 'feed', type: 'list', tables: ['ops'], key: 'feed', actions: ['insert'] });
    assert.equal(f.status, 201, f.text);
    await eventually(() => redis.llen('feed'), (n) => n > 20, 20_000, 'feed entries');
    await eventually(() => redis.exists('item:1'), (n) => n === 1, 20_000, 'backfilled items');
    // its definition for clients (keyFor), with the table's key read on the instance's connection
    const def = JSON.parse((await redis.get('sluice:sink:items-h')) ?? 'null') as { templates: { key: string }; primary_keys: Record<string, string[]> } | null;
    assert.deepEqual(def && { key: def.templates.key, pk: def.primary_keys }, { key: 'item:{id}', pk: { 'public.items': ['id'] } });
  });

  test('paused sinks stop writing while others flow; resumed, they apply every change they missed', async () => {
    assert.equal((await call('POST', '/api/sinks/items-h/pause')).status, 200);
    const p = await call('POST', '/api/sinks/feed/pause');
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.sink?.paused, true);
    const feedAtPause = await redis.llen('feed');
    const opsAtPause = ops;
    await eventually(async () => ops, (n) => n > opsAtPause + 100, 60_000, 'writes while paused');
    // the other sink still flows
    await env.pg.query(`insert into other values (1, 'a')`);
    await eventually(() => redis.get('other:1'), (v) => v !== null, 15_000, 'the unpaused sink');
    assert.equal(await redis.llen('feed'), feedAtPause, 'a paused sink writes nothing');
    const source = await call('GET', '/api/source');
    assert.deepEqual(source.json.held_by_paused_sinks?.map((x) => x.sink).sort(), ['feed', 'items-h']);
    const health = await call('GET', '/health');
    assert.equal(health.status, 200, 'paused is not unhealthy');
    assert.equal((await call('POST', '/api/sinks/items-h/resume')).status, 200);
    assert.equal((await call('POST', '/api/sinks/feed/resume')).status, 200);
    await eventually(() => redis.llen('feed'), (n) => n > feedAtPause + 100, 30_000, 'feed catching up');
  });

  test('a patch takes effect while running; the sinks survive a restart and a kill -9', async () => {
    const patched = await call('PATCH', '/api/sinks/items-h', { expire_ms: 600_000 });
    assert.equal(patched.status, 200, patched.text);
    await env.pg.query(`update items set name = 'patched' where id = 7`);
    await eventually(() => redis.pttl('item:7'), (t) => t > 0, 15_000, 'TTL from the patched sink');
    await call('POST', '/api/sinks/feed/pause');
    // SIGTERM: drained, restarted with the same sinks and the pause kept
    assert.equal((await sluice.stop(20_000)).code, 0);
    sluice = await env.start();
    const list = await call('GET', '/api/sinks');
    assert.deepEqual(list.json.sinks?.map((s) => [s.name, s.paused]).sort(), [['feed', true], ['items-h', false], ['other', false]]);
    await call('POST', '/api/sinks/feed/resume');
    // kill -9 under the writer, then start again
    await eventually(() => redis.llen('feed'), (n) => n > 0, 15_000, 'feed');
    const before = await redis.llen('feed');
    await eventually(() => redis.llen('feed'), (n) => n > before + 30, 30_000, 'progress before the kill');
    await sluice.kill('SIGKILL');
    sluice = await env.start();
    await stopWriter();
    await eventually(itemsInSync, (ok) => ok, 60_000, 'items-h equal to Postgres');
    const exact = await eventually(feedExact, (r) => r.ok, 60_000, 'feed exact');
    assert.ok(exact.ok, exact.why);
    // sluice verify finds a sink made through the API in the state store
    const verify = spawnSluice(['verify', 'items-h', '-c', `${env.dir}/sluice.yaml`]);
    const v = await verify.exited;
    assert.equal(v.code, 0, verify.tail(20));
  });

  test('a deleted sink stops at once; what it wrote stays, its positions and failed messages go', async () => {
    const len = await redis.llen('feed');
    assert.ok(await redis.exists(positionKey('feed')));
    const d = await call('DELETE', '/api/sinks/feed');
    assert.equal(d.status, 200, d.text);
    await env.pg.query(`insert into ops (item_id) values (1)`);
    await env.pg.query(`insert into other values (2, 'b')`);
    await eventually(() => redis.get('other:2'), (v) => v !== null, 15_000, 'the stream went on');
    assert.equal(await redis.llen('feed'), len, 'what it wrote stays; nothing more');
    assert.equal(await redis.exists(positionKey('feed'), failedKey('feed')), 0);
    assert.equal((await call('GET', '/api/sinks/feed')).status, 404);
  });

  test('/health is 503 naming the Redis while it is down, and 200 once it is back', async () => {
    await env.redis.kill();
    const down = await eventually(() => call('GET', '/health'), (r) => r.status === 503, 30_000, '503');
    assert.ok(down.json.problems?.some((p) => p.component === 'redis' && p.redis === 'main'), down.text);
    const sinks = await call('GET', '/api/sinks');
    assert.equal(sinks.status, 200, 'the API answers while Redis is down');
    await env.redis.start();
    await eventually(() => call('GET', '/health'), (r) => r.status === 200, 60_000, '200 again');
  });

  test('a taken HTTP port ends sluice start with exit code 1 and one sentence naming it', async () => {
    await sluice.stop(20_000);
    const blocker: Server = createServer();
    await new Promise<void>((res) => blocker.listen(env.httpPort, '127.0.0.1', res));
    try {
      const p = spawnSluice(['start', '-c', `${env.dir}/sluice.yaml`]);
      const exit = await p.exited;
      assert.equal(exit.code, 1, p.tail(20));
      assert.match(p.tail(5), new RegExp(`HTTP port ${env.httpPort} on 127.0.0.1 is already in use`));
    } finally {
      blocker.close();
    }
  });
});
