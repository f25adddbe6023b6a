import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';

interface WaitBody {
  applied?: boolean;
  positions?: Record<string, string | null>;
  error?: { code: string; message: string };
}

/**
 * The application's recipe: commit, read pg_current_wal_lsn(), wait, read Redis. It must never
 * read a value older than its own commit, on a busy database (a writer on another table, not
 * published) and on an idle one.
 */
describe('read your writes: GET /api/wait', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let app: pg.Client;
  let base: string;
  let writing = false;
  let noise: Promise<void> = Promise.resolve();

  const wait = async (query: string): Promise<{ status: number; body: WaitBody }> => {
    const res = await fetch(`${base}/api/wait?${query}`);
    return { status: res.status, body: (await res.json()) as WaitBody };
  };
  const lsnNow = async (): Promise<string> => ((await app.query<{ l: string }>(`select pg_current_wal_lsn()::text as l`)).rows[0]!.l);

  before(async () => {
    env = await createSluiceTestEnv();
    base = `http://127.0.0.1:${env.httpPort}`;
    await env.pg.query(`
      create table products (id int primary key, price numeric);
      create table noise (id bigserial primary key, v text);
      insert into products values (1, 0), (2, 0);`);
    env.writeConfig(`  - name: prices
    type: string
    tables: [products]
    key: "price:{id}"
  - name: other
    type: string
    tables: [products]
    key: "other:{id}"`);
    await env.start();
    redis = env.redis.client();
    // the application's own connection commits as applications do: synchronously
    app = new pg.Client({ connectionString: env.pg.url, options: '-c synchronous_commit=on' });
    await app.connect();
  });

  after(async () => {
    writing = false;
    await noise;
    await app?.end();
    await env?.stop();
  });

  test('bad requests: a malformed LSN, an unknown sink, a bad timeout', async () => {
    assert.equal((await wait('lsn=nope')).status, 400);
    assert.equal((await wait('')).status, 400);
    const unknown = await wait(`lsn=0/0&sinks=prices,nope`);
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error?.code, 'sink_not_found');
    assert.equal((await wait('lsn=0/0&timeout_ms=-1')).status, 400);
    assert.equal((await wait('lsn=0/0')).status, 200, 'an LSN long applied');
  });

  test('an idle database: the wait is served by a fence, not a keepalive', async () => {
    await app.query(`update products set price = 1 where id = 1`);
    const lsn = await lsnNow();
    const started = Date.now();
    const r = await wait(`lsn=${lsn}&timeout_ms=10000`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(await redis.get('price:1'), '{"id":1,"price":1}');
    assert.ok(Date.now() - started < 10_000);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /sluice_waits_total\{outcome="applied"\} [1-9]/);
  });

  test('300 rounds of update → LSN → wait → read with a writer busy on another table: no stale read', async () => {
    writing = true;
    const writer = new pg.Client({ connectionString: env.pg.url });
    await writer.connect();
    noise = (async () => {
      while (writing) await writer.query(`insert into noise (v) values ('x')`);
      await writer.end();
    })();
    let stale = 0;
    for (let i = 1; i <= 300; i++) {
      const id = 1 + (i % 2);
      await app.query(`update products set price = $1 where id = $2`, [i, id]);
      const lsn = await lsnNow();
      const r = await wait(`lsn=${lsn}&sinks=prices`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      if ((await redis.get(`price:${id}`)) !== `{"id":${id},"price":${i}}`) stale++;
    }
    writing = false;
    await noise;
    assert.equal(stale, 0, 'stale reads');
  });

  test('progress and sink definitions are in Redis for clients: sluice:applied:<sink> (key and channel), sluice:sink:<sink>', async () => {
    const sub = env.redis.client();
    const heard: string[] = [];
    await sub.subscribe('sluice:applied:prices');
    sub.on('message', (_channel: string, text: string) => heard.push(text));
    await app.query(`update products set price = 7 where id = 1`);
    const lsn = await lsnNow();
    assert.equal((await wait(`lsn=${lsn}&sinks=prices`)).status, 200);
    const toBig = (p: string): bigint => {
      const [hi, lo] = p.split(':')[0]!.split('/');
      return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
    };
    const applied = await eventually(() => redis.get('sluice:applied:prices'), (v) => v !== null && toBig(v) >= toBig(lsn), 5000, 'the applied position');
    assert.ok(applied);
    await eventually(async () => heard.length, (n) => n > 0, 5000, 'a progress message');
    await sub.quit();
    const def = JSON.parse((await redis.get('sluice:sink:prices'))!) as { type: string; templates: { key: string }; primary_keys: Record<string, string[]> };
    assert.deepEqual([def.type, def.templates.key, def.primary_keys['public.products']], ['string', 'price:{id}', ['id']]);
  });

  test('a paused sink: 504 timeout naming it; resumed, the same wait answers 200', async () => {
    assert.equal((await fetch(`${base}/api/sinks/other/pause`, { method: 'POST' })).status, 200);
    await app.query(`update products set price = 9999 where id = 2`);
    const lsn = await lsnNow();
    const r = await wait(`lsn=${lsn}&timeout_ms=300`);
    assert.equal(r.status, 504);
    assert.equal(r.body.error?.code, 'timeout');
    assert.match(r.body.error?.message ?? '', /"other"/);
    assert.equal((await wait(`lsn=${lsn}&sinks=prices&timeout_ms=5000`)).status, 200, 'the other sink has it');
    assert.equal((await fetch(`${base}/api/sinks/other/resume`, { method: 'POST' })).status, 200);
    const again = await eventually(() => wait(`lsn=${lsn}&timeout_ms=5000`), (x) => x.status === 200, 20_000, 'applied after resume');
    assert.equal(again.status, 200);
    assert.equal(await redis.get('other:2'), '{"id":2,"price":9999}');
  });
});
