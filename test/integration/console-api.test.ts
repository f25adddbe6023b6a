import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import type { ApiHistory, ApiPreview, ApiErrorBody } from '../../src/http/api-types.js';

const TOKEN = 'console-test-token';

interface FailedView {
  id: string;
  sink: string;
  reason: string;
  action: string;
  table: string;
  message: { record: Record<string, unknown>; metadata: { idempotency_key: string } } | null;
}
interface Page {
  messages: FailedView[];
  next_cursor: string | null;
  total: number;
}

/** The fields the API's JSON answers carry, all in one: each test reads those of its endpoint. */
interface ApiBody extends Page {
  id: string;
  outcome: string;
  discarded: boolean;
  error: { code: string; message: string };
  note: string;
  ok: boolean;
  ping: string;
  role: string;
  server: { version: string; mode: string };
}

describe('console and failed-messages API, end to end', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let base: string;

  const call = async (method: string, path: string, opts: { token?: string | null; body?: unknown } = {}): Promise<{ status: number; json: ApiBody; text: string }> => {
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? TOKEN : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // HTML
    }
    return { status: res.status, json: json as ApiBody, text };
  };
  const failedOf = async (sink: string, query = ''): Promise<Page> => {
    const r = await call('GET', `/api/sinks/${sink}/messages?status=failed${query}`);
    assert.equal(r.status, 200, r.text);
    return r.json;
  };
  /** ids go into the path as listed: they are URL-safe */
  const msgPath = (sink: string, id: string, verb: string): string => `/api/sinks/${sink}/messages/${id}/${verb}`;
  /** a row inserted after `sql` and seen in Redis: the stream has taken `sql` in */
  let marker = 1000;
  const streamPassed = async (): Promise<void> => {
    marker++;
    await env.pg.query(`insert into users values ($1, $2)`, [marker, `marker${marker}`]);
    await eventually(() => redis.get(`user:marker${marker}`), (v) => v !== null, 15_000, `marker ${marker}`);
  };

  before(async () => {
    env = await createSluiceTestEnv();
    base = `http://127.0.0.1:${env.httpPort}`;
    await env.pg.query(`
      create table users (id int primary key, name text);
      create table events (id bigint primary key, kind text, amount numeric);`);
    const path = env.writeConfig(`  - name: users
    type: string
    tables: [users]
    actions: [insert]
    key: "user:{name}"
  - name: events
    type: list
    tables: [events]
    key: "events:{kind}"`);
    // the token goes under http:
    writeFileSync(path, readFileSync(path, 'utf8').replace(/^http:\n/m, `http:\n  token: ${TOKEN}\n`));
    await env.start();
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test('the console (its built page and assets) is served without a token, with a strict CSP; the API needs the token', async () => {
    const page = await fetch(`${base}/`);
    const html = await page.text();
    assert.equal(page.status, 200);
    assert.match(html, /<div id="app">/);
    assert.match(html, /<html lang="en" data-auth="token">/, 'the page asks for the token before calling the API');
    assert.ok(!html.includes(TOKEN), 'the token is not in the page');
    const csp = page.headers.get('content-security-policy') ?? '';
    for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) assert.ok(csp.includes(directive), directive);
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'no external resources');
    assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/, 'no inline script');
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), assets.join());
    let bundle = '';
    for (const asset of assets) {
      const r = await fetch(base + asset);
      assert.equal(r.status, 200, asset);
      assert.match(r.headers.get('cache-control') ?? '', /immutable/);
      assert.match(r.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      if (asset.endsWith('.js')) bundle += await r.text();
    }
    for (const words of ['Failed messages', 'Retry all', 'Discard all', 'Start backfill', 'Preview', 'sessionStorage', 'authorization', '/api/history']) {
      assert.ok(bundle.includes(words), words);
    }
    assert.equal((await fetch(`${base}/assets/nope.js`)).status, 404);
    assert.equal((await fetch(`${base}/assets/%2e%2e/api/source`)).status, 401, 'no way around the token through the assets');
    assert.equal((await call('GET', '/api/source', { token: null })).status, 401);
    assert.equal((await call('GET', '/api/history', { token: null })).status, 401);
    assert.equal((await call('POST', '/api/sinks/preview', { token: null, body: {} })).status, 401);
    assert.equal((await call('GET', '/api/sinks/users/messages', { token: null })).status, 401);
    const wrong = await call('POST', msgPath('users', '0-0-0', 'discard'), { token: 'nope' });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.json.error.code, 'forbidden');
    assert.equal((await call('GET', '/health', { token: null })).status, 200);
    assert.equal((await call('GET', '/api/source')).status, 200);
  });

  test('a state sink: the failed row is listed, then retried from its current values in Postgres', async () => {
    await env.pg.query(`insert into users values (1, null)`);
    const page = await eventually(() => failedOf('users'), (p) => p.total === 1, 15_000, 'the failed message');
    const failed = page.messages[0]!;
    assert.match(failed.id, /^[0-9A-F]+-[0-9A-F]+-0$/, 'URL-safe as listed');
    assert.equal(failed.sink, 'users');
    assert.equal(failed.table, 'public.users');
    assert.equal(failed.action, 'insert');
    assert.match(failed.reason, /column "name" is NULL/);
    assert.deepEqual(failed.message?.record, { id: 1, name: null });
    const one = await call('GET', `/api/sinks/users/messages/${failed.id}`);
    assert.equal(one.status, 200);
    assert.equal(one.json.id, failed.id);
    // the stored form (the idempotency key, as earlier versions listed it) is still accepted
    const key = failed.message!.metadata.idempotency_key;
    assert.equal(key, failed.id.replace(/^(\w+)-(\w+)-(\d+)$/, '$1/$2:$3'));
    const old = await call('GET', `/api/sinks/users/messages/${encodeURIComponent(key)}`);
    assert.equal(old.status, 200, old.text);
    assert.equal(old.json.id, failed.id, 'answered with the id as listed');

    // the sink takes inserts only: this update does not reach Redis by the stream
    await env.pg.query(`update users set name = 'bob' where id = 1`);
    await streamPassed();
    assert.equal(await redis.get('user:bob'), null);

    const retry = await call('POST', msgPath('users', failed.id, 'retry'));
    assert.equal(retry.status, 200, retry.text);
    assert.deepEqual(retry.json, { id: failed.id, outcome: 'applied' });
    assert.equal(await redis.get('user:bob'), '{"id":1,"name":"bob"}', 'the row as it is now');
    assert.equal((await failedOf('users')).total, 0, 'the entry is gone');
    assert.equal((await call('POST', msgPath('users', failed.id, 'retry'))).status, 404, 'retried once only');
  });

  test('a state sink: a row deleted since is cleared without writing; a row still bad stays failed with the reason', async () => {
    await env.pg.query(`insert into users values (3, null)`);
    await env.pg.query(`insert into users values (4, null)`);
    const page = await eventually(() => failedOf('users'), (p) => p.total === 2);
    const [four, three] = page.messages; // newest first
    assert.deepEqual([three!.message?.record.id, four!.message?.record.id], [3, 4]);

    await env.pg.query(`delete from users where id = 3`);
    const gone = await call('POST', msgPath('users', three!.id, 'retry'));
    assert.equal(gone.status, 200, gone.text);
    assert.equal(gone.json.outcome, 'row_gone');

    const again = await call('POST', msgPath('users', four!.id, 'retry'));
    assert.equal(again.status, 422, again.text);
    assert.equal(again.json.error.code, 'retry_failed');
    assert.match(again.json.error.message, /column "name" is NULL/);
    const left = await failedOf('users');
    assert.deepEqual(left.messages.map((m) => m.id), [four!.id], 'still failed, same id');

    const discard = await call('POST', msgPath('users', four!.id, 'discard'));
    assert.equal(discard.status, 200);
    assert.deepEqual(discard.json, { id: four!.id, discarded: true });
    assert.equal((await failedOf('users')).total, 0);
    const twice = await call('POST', msgPath('users', four!.id, 'discard'));
    assert.equal(twice.status, 404);
    assert.equal(twice.json.error.code, 'message_not_found');
  });

  test('a history sink: the stored message is replayed as it was, with every digit, once Redis accepts it', async () => {
    await redis.set('events:a', 'not a list');
    await env.pg.query(`insert into events values (9007199254740993, 'a', 12345678901234567890.123456789)`);
    const page = await eventually(() => failedOf('events'), (p) => p.total === 1);
    const failed = page.messages[0]!;
    assert.match(failed.reason, /WRONGTYPE/);
    const raw = await call('GET', `/api/sinks/events/messages/${failed.id}`);
    assert.ok(raw.text.includes('"id":9007199254740993'), 'the API keeps int8 digits');

    const again = await call('POST', msgPath('events', failed.id, 'retry'));
    assert.equal(again.status, 422, again.text);
    assert.match(again.json.error.message, /WRONGTYPE/);
    assert.deepEqual((await failedOf('events')).messages.map((m) => m.id), [failed.id], 'still failed under the same id');

    await redis.del('events:a');
    const retry = await call('POST', msgPath('events', failed.id, 'retry'));
    assert.equal(retry.status, 200, retry.text);
    assert.equal(retry.json.outcome, 'replayed');
    const list = await redis.lrange('events:a', 0, -1);
    assert.equal(list.length, 1);
    assert.ok(list[0]!.includes('"record":{"id":9007199254740993,"kind":"a","amount":12345678901234567890.123456789}'), list[0]);
    assert.equal((JSON.parse(list[0]!) as { metadata: { idempotency_key: string } }).metadata.idempotency_key, failed.message!.metadata.idempotency_key, 'the original message');
    assert.equal((await failedOf('events')).total, 0);
  });

  test('listing: pages newest first with a cursor, recent deliveries newest first (keys, no values), errors', async () => {
    for (const id of [11, 12, 13]) await env.pg.query(`insert into users values (${id}, null)`);
    await eventually(() => failedOf('users'), (p) => p.total === 3);
    const first = await failedOf('users', '&limit=2');
    assert.deepEqual(first.messages.map((m) => m.message?.record.id), [13, 12]);
    assert.ok(first.next_cursor);
    assert.match(first.next_cursor!, /^[0-9A-F]+-[0-9A-F]+-\d+$/);
    const second = await failedOf('users', `&limit=2&cursor=${first.next_cursor!}`);
    assert.deepEqual(second.messages.map((m) => m.message?.record.id), [11]);
    assert.equal(second.next_cursor, null);
    const count = await failedOf('users', '&limit=0');
    assert.deepEqual(count, { messages: [], next_cursor: null, total: 3 });

    await streamPassed();
    const delivered = await call('GET', '/api/sinks/users/messages?status=delivered&limit=2');
    assert.equal(delivered.status, 200);
    const recent = delivered.json.messages as unknown as { sink: string; action: string; key: string; command: string; id: string }[];
    assert.equal(recent.length, 2);
    assert.deepEqual([recent[0]!.sink, recent[0]!.action, recent[0]!.command, recent[0]!.key], ['users', 'insert', 'SET', `user:marker${marker}`], 'the newest first');
    assert.match(recent[0]!.id, /^[0-9A-F]+-[0-9A-F]+-\d+$/, 'URL-safe as listed');
    assert.ok(!JSON.stringify(recent).includes('"record"'), 'no row values');
    assert.match(delivered.json.note, /sluice_changes_total/);

    assert.equal((await call('GET', '/api/sinks/users/messages?limit=501')).json.error.code, 'bad_request');
    assert.equal((await call('GET', '/api/sinks/users/messages?status=sent')).status, 400);
    assert.equal((await call('GET', '/api/sinks/users/messages?cursor=zzz')).status, 400);
    const noSink = await call('GET', '/api/sinks/nope/messages');
    assert.equal(noSink.status, 404);
    assert.equal(noSink.json.error.code, 'sink_not_found');
    assert.equal((await call('POST', msgPath('nope', '0-0-0', 'retry'))).status, 404);
    assert.equal((await call('POST', msgPath('users', '0-1-0', 'retry'))).json.error.code, 'message_not_found');
  });

  test('POST /api/redis/:name/test: PING and INFO through the configured connection', async () => {
    const r = await call('POST', '/api/redis/main/test');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true);
    assert.equal(r.json.ping, 'PONG');
    assert.match(r.json.server.version, /^\d+\.\d+/);
    assert.equal(r.json.server.mode, 'standalone');
    assert.equal(r.json.role, 'master');
    const missing = await call('POST', '/api/redis/other/test');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.code, 'redis_not_found');
  });

  test('GET /api/history: a sample every 2 s with the rate of each sink, only newer ones with since', async () => {
    const history = async (query = ''): Promise<ApiHistory> => {
      const r = await call('GET', `/api/history${query}`);
      assert.equal(r.status, 200, r.text);
      return r.json as unknown as ApiHistory;
    };
    await env.pg.query(`insert into users values (500, 'history')`);
    const h = await eventually(() => history(), (x) => x.samples.some((s) => (s.sinks.users ?? 0) > 0), 15_000, 'a sample with the insert');
    assert.equal(h.interval_ms, 2000);
    assert.equal(h.window_ms, 15 * 60_000);
    const last = h.samples[h.samples.length - 1]!;
    assert.deepEqual(Object.keys(last.sinks).sort(), ['events', 'users']);
    assert.ok(last.changes_per_s >= 0 && last.batches_per_s >= 0);
    assert.equal(typeof last.lag_ms, 'number');
    assert.ok(h.samples.every((s, i) => i === 0 || s.t > h.samples[i - 1]!.t), 'oldest first');
    const newer = await history(`?since=${last.t}`);
    assert.ok(newer.samples.every((s) => s.t > last.t));
    assert.equal((await call('GET', '/api/history?since=soon')).status, 400);
  });

  test('POST /api/sinks/preview: real rows planned by a sink not saved, a function error on its row, nothing written', async () => {
    await env.pg.query(`create table previewed (id bigint primary key, name text, price numeric);
      insert into previewed values (1, 'lamp', 9.50), (2, null, 1), (9007199254740993, 'big', 12345678901234567890.5)`);
    const preview = async (body: unknown): Promise<{ status: number; json: ApiPreview & ApiErrorBody; text: string }> => {
      const r = await call('POST', '/api/sinks/preview', { body });
      return { status: r.status, json: r.json as unknown as ApiPreview & ApiErrorBody, text: r.text };
    };
    const plain = await preview({ sink: { type: 'string', tables: ['previewed'], key: 'p:{name}' }, limit: 20 });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.json.table, 'public.previewed');
    assert.equal(plain.json.action, 'insert');
    assert.equal(plain.json.rows.length, 3);
    assert.deepEqual(plain.json.rows[0], { record: { id: 1, name: 'lamp', price: 9.5 }, skipped: false, commands: [{ command: 'SET', key: 'p:lamp', args: ['{"id":1,"name":"lamp","price":9.50}'] }], error: null });
    assert.equal(plain.json.rows[1]!.error?.stage, 'sink');
    assert.match(plain.json.rows[1]!.error!.message, /column "name" is NULL/);
    assert.ok(plain.text.includes('"record":{"id":9007199254740993,"name":"big","price":12345678901234567890.5}'), 'every digit of the row');

    const functions = await preview({
      sink: {
        name: 'try-out',
        type: 'hash',
        tables: ['public.previewed'],
        key: 'price:{id}',
        filter: 'record.name !== null',
        transform: 'function transform(action, record) { if (record.id === 1) throw new Error("no lamps"); return record; }',
      },
      limit: 3,
      action: 'read',
    });
    assert.equal(functions.status, 200, functions.text);
    const [lamp, none, big] = functions.json.rows;
    assert.deepEqual(lamp!.error, { stage: 'transform', message: 'transform threw: Error: no lamps' });
    assert.equal(none!.skipped, true);
    assert.deepEqual(big!.commands.map((c) => [c.command, c.key]), [['HSET', 'price:9007199254740993']]);
    assert.equal((await redis.keys('p:*')).length + (await redis.keys('price:*')).length, 0, 'nothing written');

    const invalid = await preview({ sink: { type: 'string', tables: [], key: 'p:{', nope: 1 } });
    assert.equal(invalid.status, 400, invalid.text);
    assert.equal(invalid.json.error.code, 'invalid_sink');
    assert.deepEqual(invalid.json.error.problems?.map((p) => p.path).sort(), ['key', 'nope', 'tables']);
    const broken = await preview({ sink: { type: 'string', tables: ['previewed'], transform: 'function transform( {' } });
    assert.equal(broken.status, 400);
    assert.equal(broken.json.error.code, 'function_invalid');
    assert.equal(broken.json.error.problems?.[0]?.path, 'transform');
    const missing = await preview({ sink: { type: 'string', tables: ['not_there'] } });
    assert.equal(missing.status, 400);
    assert.equal(missing.json.error.code, 'table_not_found');
    assert.equal((await preview({ sink: { type: 'string', tables: ['previewed'] }, limit: 21 })).json.error.code, 'bad_request');
    assert.equal((await preview({ sink: { type: 'string', tables: ['previewed'] }, table: 'users' })).json.error.code, 'table_not_in_sink');
  });
});
