// The API and the logs of a running instance against leaks and odd characters:
//  - passwords in the Postgres and Redis URLs, the API token and row values appear in no answer
//    (but the failed messages', which show rows on purpose), no /metrics line and no log line;
//  - sink names with ../, %2F, quotes, NUL, CRLF or 300 characters are refused; path parameters
//    with them find nothing; a row value or a key template with CRLF, spaces or braces stays one
//    key (no command injected); tables whose names hold quotes, spaces and semicolons are
//    backfilled and verified (SQL identifiers quoted), and a backfill condition cannot add SQL.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { eventually } from '../support/sluice-env.js';
import { freePort } from '../../src/util/free-port.js';

const PG_PASSWORD = 'PgPass-7f3a9c';
const REDIS_PASSWORD = 'RedisPass-c41d2e';
const WRONG_PASSWORD = 'WrongPass-9b8e7d';
const TOKEN = 'ApiToken-5e6f7a8b9c';
/** every row's secret column starts with this; no answer but the failed messages', no log line may hold it */
const PII = 'pii-';
/** the fields of the answers read here */
interface ApiJson {
  error: { code: string; message: string; problems: { path: string }[] };
  total: number;
}

const SECRETS = [PG_PASSWORD, REDIS_PASSWORD, WRONG_PASSWORD, TOKEN, encodeURIComponent(REDIS_PASSWORD)];

/** row names that become keys: each must stay exactly one key */
const ODD_VALUES = ['a\r\nFLUSHALL\r\n', '*1\r\n$8\r\nFLUSHALL\r\n', 'with space', '{braces}', '{{double}}', '../../etc/passwd', '%2F..%2F', `quote'"\``, 'ünïcödé', 'tab\there', '$-1', ''.padEnd(300, 'long')];
/** tables whose names need quoting in SQL */
const ODD_TABLES = ['we"ird', "o'brien", 'sp ace', 'semi;colon', 'Mixed', 'drop table x; --'];

describe('API and logs: no leaks, odd characters stay data', () => {
  let pg: TestPostgres;
  let redis: TestRedis;
  let client: Redis;
  let dir: string;
  let port: number;
  let configPath: string;
  let sluice: ManagedProcess;
  /** every answer and output collected, searched for secrets at the end */
  const seen: { what: string; text: string }[] = [];

  const call = async (method: string, path: string, opts: { token?: string | null; body?: unknown; raw?: string } = {}): Promise<{ status: number; text: string; json: ApiJson }> => {
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? TOKEN : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (opts.body !== undefined || opts.raw !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body: opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)) });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // text (metrics, HTML)
    }
    if (!/\/messages(\/|\?|$)/.test(path)) seen.push({ what: `${method} ${path} (${res.status})`, text: `${JSON.stringify([...res.headers])}\n${text}` });
    return { status: res.status, text, json: json as ApiJson };
  };

  before(async () => {
    [pg, redis] = await Promise.all([startPostgres(), startRedis({ password: REDIS_PASSWORD })]);
    client = redis.client();
    await client.set('canary', 'alive');
    const ddl = ODD_TABLES.map((t) => `create table odd.${pgIdent(t)} (id int primary key, v text);\ninsert into odd.${pgIdent(t)} values (1, 'before');`).join('\n');
    await pg.query(`create table users (id int primary key, name text, secret text);
      create table boom (id int primary key, secret text);
      create schema odd;
      ${ddl}`);
    dir = mkdtempSync(join(tmpdir(), 'sluice-apisec-'));
    port = await freePort();
    const pgUrl = pg.url.replace('postgres://postgres@', `postgres://postgres:${PG_PASSWORD}@`);
    configPath = join(dir, 'sluice.yaml');
    writeFileSync(
      configPath,
      `source:
  url: ${pgUrl}
redis:
  main:
    url: redis://:${REDIS_PASSWORD}@127.0.0.1:${redis.port}
  wrong:
    url: redis://:${WRONG_PASSWORD}@127.0.0.1:${redis.port}
sinks:
  - name: users
    type: string
    redis: main
    tables: [users]
    key: "user:{name}"
  - name: boom
    type: string
    redis: main
    tables: [boom]
    transform: "function transform(action, record) { throw new Error('cannot take ' + record.secret) }"
  - name: odd
    type: string
    redis: main
    tables: ["odd.*"]
    key: "odd:{table}:{id}"
    backfill: true
http:
  port: ${port}
  token: ${TOKEN}
`,
    );
    sluice = spawnSluice(['start', '-c', configPath], { env: { ...process.env, SLUICE_LOG_LEVEL: 'debug' } });
    await sluice.waitForLine(/sluice started/, 30_000);
  });

  after(async () => {
    client?.disconnect();
    await sluice?.stop(3000);
    await Promise.all([pg?.stop(), redis?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('row values with CRLF, spaces and braces stay one key each; nothing is injected', async () => {
    for (const [i, name] of ODD_VALUES.entries()) await pg.query('insert into users values ($1, $2, $3)', [i + 1, name, `${PII}${i}`]);
    await pg.query(`insert into users values (1000, null, '${PII}null')`); // fails: the key's column is NULL
    for (const [i, name] of ODD_VALUES.entries()) {
      const v = await eventually(() => client.get(`user:${name}`), (x) => x !== null, 15_000, `key of ${JSON.stringify(name)}`);
      assert.equal(JSON.parse(v!).id, i + 1);
    }
    const keys: string[] = [];
    for await (const batch of client.scanStream({ match: 'user:*', count: 1000 })) keys.push(...(batch as string[]));
    assert.deepEqual(keys.sort(), ODD_VALUES.map((n) => `user:${n}`).sort());
    assert.equal(await client.get('canary'), 'alive', 'no FLUSHALL ran');
  });

  test('a key template with CRLF, spaces and braces, given through the API, writes exactly that key', async () => {
    await pg.query('create table tpl (id int primary key, secret text)');
    const created = await call('POST', '/api/sinks', { body: { name: 'tpl', type: 'string', redis: 'main', tables: ['tpl'], key: 'x\r\nSET injected 1\r\n {{literal}} :{id}' } });
    assert.equal(created.status, 201, created.text);
    await pg.query(`insert into tpl values (7, '${PII}tpl')`);
    await eventually(() => client.get('x\r\nSET injected 1\r\n {literal} :7'), (v) => v !== null, 15_000, 'the templated key');
    assert.equal(await client.exists('injected'), 0);
    assert.equal(await client.get('canary'), 'alive');
  });

  test('tables whose names need quoting: backfilled, streamed, verified; a backfill condition stays a literal', async () => {
    for (const t of ODD_TABLES) await eventually(() => client.get(`odd:${t}:1`), (v) => v !== null, 30_000, `the backfill of ${t}`);
    for (const t of ODD_TABLES) await pg.query(`insert into odd.${pgIdent(t)} values (2, 'after')`);
    for (const t of ODD_TABLES) assert.equal(JSON.parse((await eventually(() => client.get(`odd:${t}:2`), (v) => v !== null, 15_000, `live ${t}`))!).v, 'after');
    const verify = spawnSluice(['verify', 'odd', '-c', configPath]);
    const exit = await verify.exited;
    seen.push({ what: 'sluice verify', text: verify.lines.map((l) => l.line).join('\n') });
    assert.equal(exit.code, 0, verify.lines.map((l) => l.line).join('\n'));
    // a partial backfill's condition: column op value, the value a literal of the column's type
    for (const from of ['id>=1; drop table users; --', "name>='x'' or 1=1; drop table users; --'", 'id>=1)) or ((1=1', "id>=1'::int; drop table users; --"]) {
      const r = await call('POST', '/api/sinks/users/backfills', { body: { from } });
      assert.ok(r.status === 202 || r.status === 400, r.text);
    }
    // the backfills end (those whose value is no integer fail on the cast); the table is still there
    await eventually(() => call('GET', '/api/sinks/users/backfills'), (r) => !r.text.includes('"running"'), 30_000, 'the backfills to end');
    assert.equal((await pg.query(`select count(*)::int as n from users`)).rows[0].n, ODD_VALUES.length + 1, 'users is still there');
    const table = await call('POST', '/api/sinks/odd/backfills', { body: { table: 'odd."we""ird"; drop table users' } });
    assert.equal(table.status, 400, table.text);
  });

  test('sink names with ../, %2F, quotes, NUL, CRLF or too many characters are refused; paths with them find nothing', async () => {
    const names = ['../x', '..%2Fx', 'a/b', "q'uote", 'q"uote', 'nul\u0000x', 'cr\r\nlf', ' lead', 'UPPER', 'x'.repeat(101), '__proto__', '.', '', 'a b'];
    for (const name of names) {
      const r = await call('POST', '/api/sinks', { body: { name, type: 'string', redis: 'main', tables: ['users'] } });
      assert.equal(r.status, 400, `${JSON.stringify(name)}: ${r.text}`);
      assert.ok(r.json.error.problems.some((p: { path: string }) => p.path === 'name'), r.text);
    }
    assert.equal((await call('POST', '/api/sinks', { body: { name: 'x'.repeat(100), type: 'string', redis: 'main', tables: ['users'], key: 'long:{id}' } })).status, 201);
    assert.equal((await call('DELETE', `/api/sinks/${'x'.repeat(100)}`)).status, 200);
    for (const path of ['/api/sinks/..%2F..%2Fetc%2Fpasswd', '/api/sinks/%2e%2e', '/api/sinks/users%00', '/api/sinks/%0d%0aSet-Cookie:x=1', "/api/sinks/q'uote/pause", '/api/sinks/..%2Fusers/messages', `/api/sinks/${'y'.repeat(5000)}`]) {
      const r = await call(path.endsWith('pause') ? 'POST' : 'GET', path);
      assert.ok([400, 404, 414].includes(r.status), `${path}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(typeof r.json.error.code, 'string', 'the error JSON');
      assert.doesNotMatch(r.text, /root:/);
    }
    // a body with a __proto__ key is refused before it reaches any object
    const proto = await call('POST', '/api/sinks', { raw: '{"name":"p","type":"string","tables":["users"],"__proto__":{"admin":true}}' });
    assert.equal(proto.status, 400);
    assert.equal(({} as Record<string, unknown>).admin, undefined);
  });

  test('no answer, /metrics line or log line holds a password, the token or a row value', async () => {
    await pg.query(`insert into boom values (1, '${PII}boom')`);
    const failed = await eventually(() => call('GET', '/api/sinks/boom/messages?status=failed'), (r) => r.json?.total === 1, 15_000, 'the failed message');
    // the failed messages show the row and the reason on purpose (behind the token)
    assert.match(failed.text, new RegExp(`cannot take ${PII}boom`));
    for (const path of ['/health', '/api/source', '/api/sinks', '/api/sinks/users', '/api/sinks/boom', '/api/sinks/odd/backfills', '/metrics', '/api/openapi.json', '/api/sinks/nope', '/api/nothing', '/api/history']) await call('GET', path);
    await call('GET', '/api/source', { token: 'wrong-token' });
    await call('GET', '/api/source', { token: null });
    const ok = await call('POST', '/api/redis/main/test');
    assert.equal(ok.status, 200, ok.text);
    const wrong = await call('POST', '/api/redis/wrong/test');
    assert.equal(wrong.status, 502, wrong.text);
    assert.match(wrong.json.error.message, /WRONGPASS|invalid password|invalid username-password/);
    await call('POST', '/api/sinks', { body: { name: 'bad', type: 'string', redis: 'wrong', tables: ['users'], key: '{nope}' } });
    await call('POST', '/api/sinks', { body: { name: 'bad2', type: 'string', redis: 'wrong', tables: ['users'] } });
    await call('POST', '/api/sinks', { raw: 'x'.repeat(2 * 1024 * 1024) });
    const status = spawnSluice(['status', '-c', configPath, '--no-rate']);
    await status.exited;
    const check = spawnSluice(['check', '-c', configPath]);
    await check.exited;
    seen.push({ what: 'sluice status', text: status.lines.map((l) => l.line).join('\n') }, { what: 'sluice check', text: check.lines.map((l) => l.line).join('\n') });
    seen.push({ what: 'sluice start (stdout and stderr, debug level)', text: sluice.lines.map((l) => l.line).join('\n') });
    assert.ok(sluice.lines.some((l) => /message failed/.test(l.line)), 'the failures were logged');
    // the search covers real answers
    assert.ok(seen.some((s) => s.what === 'GET /api/source (200)' && s.text.includes('confirmed_lsn')));
    assert.ok(seen.some((s) => s.what === 'GET /metrics (200)' && s.text.includes('sluice_changes_total{sink="users"')));
    assert.ok(seen.some((s) => s.what === 'GET /api/sinks (200)' && s.text.includes('"odd"')));
    for (const { what, text } of seen) {
      for (const secret of SECRETS) assert.ok(!text.includes(secret), `${what} holds ${secret}:\n${text.slice(Math.max(0, text.indexOf(secret) - 300), text.indexOf(secret) + 100)}`);
      const at = text.indexOf(PII);
      assert.ok(at < 0, `${what} holds a row value:\n${text.slice(Math.max(0, at - 300), at + 100)}`);
    }
  });
});

function pgIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
