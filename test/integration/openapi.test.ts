import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { checkSchema, type JsonSchema } from '../support/json-schema.js';

const TOKEN = 'openapi-test-token';

interface Operation {
  operationId: string;
  security?: unknown[];
  responses: Record<string, { content?: Record<string, { schema?: JsonSchema }> }>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
}

interface Call {
  /** the documented operation: `METHOD /path/{with}/{params}` */
  op: string;
  /** the path called, with its parameters and query */
  path: string;
  body?: unknown;
  /** the status expected (one of these) */
  expect: number | number[];
}

interface Answer {
  status: number;
  type: string;
  text: string;
  json: unknown;
}

/**
 * The OpenAPI document against a running instance: every operation it lists is called (with the
 * method it lists), each answer's status must be the one expected and documented for it, and a
 * JSON answer must match the documented schema of that status (required fields, types, enums).
 * A route added without a call here fails the test (and, without a document entry, the unit test
 * test/unit/openapi-routes.test.ts).
 */
describe('the OpenAPI document is true of a running instance', () => {
  let env: SluiceTestEnv;
  let base: string;
  let doc: Document;
  const answers: { call: Call; answer: Answer }[] = [];

  const request = async (method: string, path: string, body?: unknown, token: string | null = TOKEN): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, type: res.headers.get('content-type') ?? '', text, json };
  };

  /** Calls one documented operation and checks the answer against the document. */
  const call = async (c: Call): Promise<Answer> => {
    const [method, template] = c.op.split(' ') as [string, string];
    const op = doc.paths[template]?.[method.toLowerCase()];
    assert.ok(op, `${c.op} is not in the document`);
    const answer = await request(method, c.path, c.body);
    answers.push({ call: c, answer });
    const expected = [c.expect].flat();
    assert.ok(expected.includes(answer.status), `${method} ${c.path}: ${answer.status}, expected ${expected.join(' or ')}: ${answer.text.slice(0, 300)}`);
    const documented = op.responses[String(answer.status)];
    assert.ok(documented, `${c.op} answered ${answer.status}, which the document does not list (${Object.keys(op.responses).join(', ')})`);
    const mediaType = answer.type.split(';', 1)[0]!.trim();
    if (documented.content) assert.ok(mediaType in documented.content, `${c.op} ${answer.status}: ${mediaType}, documented ${Object.keys(documented.content).join(', ')}`);
    const schema = documented.content?.[mediaType]?.schema;
    if (mediaType === 'application/json' && schema) {
      const errors = checkSchema(schema, answer.json, doc);
      assert.deepEqual(errors, [], `${method} ${c.path} (${answer.status}) does not match its documented schema:\n${answer.text.slice(0, 500)}`);
    }
    return answer;
  };

  before(async () => {
    env = await createSluiceTestEnv();
    base = `http://127.0.0.1:${env.httpPort}`;
    await env.pg.query(`
      create table users (id int primary key, name text);
      create table orders (id int primary key, customer int not null, total numeric);
      create table events (id int primary key, kind text);
      insert into orders values (1, 7, 10.5), (2, 8, 3);`);
    const path = env.writeConfig(`  - name: users
    type: string
    tables: [users]
    actions: [insert]
    key: "user:{name}"
  - name: events
    type: list
    tables: [events]
    key: "events:{kind}"`);
    writeFileSync(path, readFileSync(path, 'utf8').replace(/^http:\n/m, `http:\n  token: ${TOKEN}\n`));
    await env.start();
    doc = (await request('GET', '/api/openapi.json', undefined, null)).json as Document;
  });

  after(async () => {
    await env?.stop();
  });

  test('every documented operation answers as documented', async () => {
    // health, metrics, this document, the source
    await call({ op: 'GET /health', path: '/health', expect: 200 });
    await call({ op: 'GET /metrics', path: '/metrics', expect: 200 });
    await call({ op: 'GET /api/openapi.json', path: '/api/openapi.json', expect: 200 });
    await call({ op: 'GET /api/source', path: '/api/source', expect: 200 });
    const lsn = ((await env.pg.query('select pg_current_wal_lsn()::text as lsn')).rows[0] as { lsn: string }).lsn;
    await call({ op: 'GET /api/wait', path: `/api/wait?lsn=${lsn}&timeout_ms=15000`, expect: 200 });
    await call({ op: 'GET /api/wait', path: '/api/wait?lsn=nope', expect: 400 });
    await call({ op: 'GET /api/wait', path: `/api/wait?lsn=FFFFFFFF/0&sinks=users&timeout_ms=200`, expect: 504 });
    await call({ op: 'GET /api/history', path: '/api/history', expect: 200 });
    await call({ op: 'GET /api/history', path: '/api/history?since=soon', expect: 400 });

    // sinks
    await call({ op: 'GET /api/sinks', path: '/api/sinks', expect: 200 });
    await call({ op: 'POST /api/sinks/preview', path: '/api/sinks/preview', body: { sink: { type: 'string', tables: ['orders'], key: 'order:{id}' }, limit: 2 }, expect: 200 });
    await call({ op: 'POST /api/sinks/preview', path: '/api/sinks/preview', body: { sink: { type: 'string', tables: ['orders'], bogus: 1 } }, expect: 400 });
    const feed = { name: 'feed', type: 'list', tables: ['orders'], key: 'feed:{customer}' };
    await call({ op: 'POST /api/sinks', path: '/api/sinks', body: feed, expect: 201 });
    await call({ op: 'POST /api/sinks', path: '/api/sinks', body: feed, expect: 400 });
    await call({ op: 'POST /api/sinks', path: '/api/sinks', body: { name: 'x', type: 'list', tables: [] }, expect: 400 });
    await call({ op: 'GET /api/sinks/{name}', path: '/api/sinks/feed', expect: 200 });
    await call({ op: 'GET /api/sinks/{name}', path: '/api/sinks/nope', expect: 404 });
    await call({ op: 'PATCH /api/sinks/{name}', path: '/api/sinks/feed', body: { max_length: 10 }, expect: 200 });
    await call({ op: 'PATCH /api/sinks/{name}', path: '/api/sinks/feed', body: { max_length: 'ten' }, expect: 400 });
    await call({ op: 'PATCH /api/sinks/{name}', path: '/api/sinks/users', body: { key: 'u:{id}' }, expect: 409 });
    await call({ op: 'PATCH /api/sinks/{name}', path: '/api/sinks/nope', body: {}, expect: 404 });
    await call({ op: 'POST /api/sinks/{name}/pause', path: '/api/sinks/feed/pause', expect: 200 });
    await call({ op: 'POST /api/sinks/{name}/resume', path: '/api/sinks/feed/resume', expect: 200 });
    await call({ op: 'POST /api/sinks/{name}/pause', path: '/api/sinks/nope/pause', expect: 404 });
    await call({ op: 'POST /api/sinks/{name}/resume', path: '/api/sinks/nope/resume', expect: 404 });

    // backfills and repairs
    await call({ op: 'POST /api/sinks/{name}/backfills', path: '/api/sinks/feed/backfills', body: {}, expect: 202 });
    await call({ op: 'POST /api/sinks/{name}/backfills', path: '/api/sinks/feed/backfills', body: { table: 'public.nope' }, expect: 400 });
    await call({ op: 'POST /api/sinks/{name}/backfills', path: '/api/sinks/nope/backfills', body: {}, expect: 404 });
    await eventually(() => call({ op: 'GET /api/sinks/{name}/backfills', path: '/api/sinks/feed/backfills', expect: 200 }), (a) => (a.json as { backfills: { state: string }[] }).backfills.every((b) => b.state === 'done'));
    await call({ op: 'GET /api/sinks/{name}/backfills', path: '/api/sinks/nope/backfills', expect: 404 });
    await call({ op: 'GET /api/sinks/{name}/repair', path: '/api/sinks/users/repair', expect: 404 });
    await call({ op: 'POST /api/sinks/{name}/repair', path: '/api/sinks/users/repair', expect: 202 });
    await call({ op: 'POST /api/sinks/{name}/repair', path: '/api/sinks/events/repair', expect: 400 });
    await call({ op: 'POST /api/sinks/{name}/repair', path: '/api/sinks/nope/repair', expect: 404 });
    await eventually(() => call({ op: 'GET /api/sinks/{name}/repair', path: '/api/sinks/users/repair', expect: 200 }), (a) => (a.json as { repair: { state: string } }).repair.state !== 'running');

    // failed messages and deliveries
    await env.pg.query(`insert into users values (1, null), (2, null)`);
    const page = await eventually(() => call({ op: 'GET /api/sinks/{name}/messages', path: '/api/sinks/users/messages', expect: 200 }), (a) => (a.json as { total: number }).total === 2);
    const [two, one] = (page.json as { messages: { id: string }[] }).messages.map((m) => m.id) as [string, string];
    await call({ op: 'GET /api/sinks/{name}/messages', path: '/api/sinks/users/messages?status=delivered', expect: 200 });
    await call({ op: 'GET /api/sinks/{name}/messages', path: '/api/sinks/users/messages?limit=1', expect: 200 });
    await call({ op: 'GET /api/sinks/{name}/messages', path: '/api/sinks/users/messages?limit=many', expect: 400 });
    await call({ op: 'GET /api/sinks/{name}/messages', path: '/api/sinks/nope/messages', expect: 404 });
    await call({ op: 'GET /api/sinks/{name}/messages/{id}', path: `/api/sinks/users/messages/${one}`, expect: 200 });
    await call({ op: 'GET /api/sinks/{name}/messages/{id}', path: '/api/sinks/users/messages/0-0-0', expect: 404 });
    await call({ op: 'POST /api/sinks/{name}/messages/{id}/retry', path: `/api/sinks/users/messages/${one}/retry`, expect: 422 });
    await env.pg.query(`update users set name = 'ann' where id = 1`);
    await call({ op: 'POST /api/sinks/{name}/messages/{id}/retry', path: `/api/sinks/users/messages/${one}/retry`, expect: 200 });
    await call({ op: 'POST /api/sinks/{name}/messages/{id}/retry', path: `/api/sinks/users/messages/${one}/retry`, expect: 404 });
    await call({ op: 'POST /api/sinks/{name}/messages/{id}/discard', path: `/api/sinks/users/messages/${two}/discard`, expect: 200 });
    await call({ op: 'POST /api/sinks/{name}/messages/{id}/discard', path: `/api/sinks/users/messages/${two}/discard`, expect: 404 });

    // Redis
    await call({ op: 'POST /api/redis/{name}/test', path: '/api/redis/main/test', expect: 200 });
    await call({ op: 'POST /api/redis/{name}/test', path: '/api/redis/other/test', expect: 404 });

    // deleting
    await call({ op: 'DELETE /api/sinks/{name}', path: '/api/sinks/users', expect: 409 });
    await call({ op: 'DELETE /api/sinks/{name}', path: '/api/sinks/feed', expect: 200 });
    await call({ op: 'DELETE /api/sinks/{name}', path: '/api/sinks/feed', expect: 404 });

    // the console: built (200) or not (500, a page saying how to build it)
    const page200 = await call({ op: 'GET /', path: '/', expect: [200, 500] });
    await call({ op: 'GET /index.html', path: '/index.html', expect: [200, 500] });
    const asset = /(?:src|href)="(\/assets\/[^"]+)"/.exec(page200.text)?.[1];
    if (asset) await call({ op: 'GET /assets/{path}', path: asset, expect: 200 });
    await call({ op: 'GET /assets/{path}', path: '/assets/no-such-file.js', expect: 404 });

    // every operation of the document was called
    const called = new Set(answers.map((a) => a.call.op));
    const documented = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`));
    assert.deepEqual(documented.filter((op) => !called.has(op)), [], 'documented operations this test does not call: add a call above');
  });

  test('the token: every operation the document secures answers 401 without it, the others do not ask for it', async () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        // a path the earlier test called for this operation, or the template filled in
        const sample = answers.find((a) => a.call.op === `${method.toUpperCase()} ${path}`)?.call.path ?? path.replace(/\{[^}]+\}/g, 'x');
        const answer = await request(method.toUpperCase(), sample, undefined, null);
        if (op.security === undefined) assert.equal(answer.status, 401, `${method} ${sample} without the token`);
        else assert.notEqual(answer.status, 401, `${method} ${sample} is documented as public`);
      }
    }
  });
});
