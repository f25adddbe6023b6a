// The HTTP server's own defences, with stand-ins for the running instance (no servers): the token
// (401 without, 403 with another one), no CORS, requests from other sites' pages refused without a
// token, the body limit (413 with the error JSON), paths that try to get around the token, where
// it may listen (the config refuses an exposed address without a token), and the Unix socket.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { isLoopbackHost, type SluiceConfig } from '../../src/config/schema.js';
import { Metrics } from '../../src/metrics.js';
import { buildHttpApp, startHttpServer } from '../../src/http/server.js';
import type { HttpDeps } from '../../src/http/deps.js';
import { tokenMatches } from '../../src/http/security.js';
import { createLogger } from '../../src/util/log.js';
import { ApiClient } from '../../src/cli/api-client.js';

/** A stand-in for the running instance's parts: any property is another stand-in, calling one returns one. */
function inert(): unknown {
  const target = function () {};
  const handler: ProxyHandler<typeof target> = {
    get: (_t, key) => (key === 'then' ? undefined : key === Symbol.toPrimitive ? () => 0 : key === Symbol.iterator ? [][Symbol.iterator] : proxy),
    apply: () => proxy,
  };
  const proxy: unknown = new Proxy(target, handler);
  return proxy;
}

const TOKEN = 'the-right-token';

function config(http: string): SluiceConfig {
  return parseConfig(`source:\n  url: postgres://u@127.0.0.1:1/db\nredis:\n  main:\n    url: redis://127.0.0.1:1\nsinks:\n  - name: users\n    type: string\n    tables: [users]\nhttp:\n${http}`, { file: 'sluice.yaml', env: {} });
}

/** the pipeline answers what /health and /api/source need: nothing to report */
const pipeline = { problems: () => [], heldPositions: () => [], state: 'streaming', sourceState: 'streaming', confirmedLsn: 0n, lagMs: () => 0, lastError: null, laneStates: () => [], sinkRuntime: () => undefined };

function deps(cfg: SluiceConfig): HttpDeps {
  return { config: cfg, metrics: new Metrics(), monitor: { last: null }, log: createLogger('error'), pipeline: { ...(inert() as object), ...pipeline }, backfills: inert(), control: inert(), fences: inert(), deliveries: inert() } as unknown as HttpDeps;
}

function problemsOf(http: string): string[] {
  try {
    config(http);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
}

describe('the API with a token', () => {
  let app: FastifyInstance;
  before(async () => {
    ({ app } = await buildHttpApp(deps(config(`  token: ${TOKEN}\n  body_limit_bytes: 2048\n`))));
  });
  after(() => app.close());

  test('no token: 401 with WWW-Authenticate; another token: 403; the token: through', async () => {
    const none = await app.inject({ method: 'GET', url: '/api/source' });
    assert.equal(none.statusCode, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer realm="sluice"');
    assert.deepEqual(none.json(), { error: { code: 'unauthorized', message: 'this API needs the token: send Authorization: Bearer <http.token>' } });
    for (const authorization of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', TOKEN, `Token ${TOKEN}`]) {
      assert.equal((await app.inject({ method: 'GET', url: '/api/source', headers: { authorization } })).statusCode, 401, authorization);
    }
    for (const wrong of ['nope', `${TOKEN}x`, TOKEN.slice(0, -1), TOKEN.toUpperCase(), `${TOKEN} `, 'x'.repeat(10_000)]) {
      const r = await app.inject({ method: 'GET', url: '/api/source', headers: { authorization: `Bearer ${wrong}` } });
      assert.equal(r.statusCode, 403, wrong);
      assert.deepEqual(r.json(), { error: { code: 'forbidden', message: 'the bearer token is not http.token' } });
    }
    const ok = await app.inject({ method: 'GET', url: '/api/source', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((await app.inject({ method: 'GET', url: '/api/source', headers: { authorization: `bearer ${TOKEN}` } })).statusCode, 200, 'the scheme is case-insensitive');
    assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401);
    assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, '/health stays public');
  });

  test('constant-time comparison whatever the lengths', () => {
    assert.equal(tokenMatches(TOKEN, TOKEN), true);
    assert.equal(tokenMatches('', TOKEN), false);
    assert.equal(tokenMatches('x'.repeat(100_000), TOKEN), false);
    assert.equal(tokenMatches('é', 'é'), true);
  });

  test('no way around the token through odd paths', async () => {
    const paths = ['/api/source/', '//api/source', '/./api/source', '/assets/../api/source', '/assets/%2e%2e/api/source', '/assets/..%2f..%2fapi%2fsource', '/index.html/../api/source', '/health/../api/source', '/health%2f..%2fapi%2fsource', '/api/sinks/..%2fsource', '/api/openapi.json/../source', '/API/source', '/api/source%00', '/api/source?x=/health', '/metrics#/health'];
    for (const url of paths) {
      const r = await app.inject({ method: 'GET', url });
      assert.ok(r.statusCode === 401 || r.statusCode === 404 || r.statusCode === 400, `${url}: ${r.statusCode} ${r.body.slice(0, 200)}`);
      assert.doesNotMatch(r.body, /confirmed_lsn|sluice_/, url);
    }
  });

  test('the console page: public, sent with a CSP that forbids framing and other origins', async () => {
    const page = await app.inject({ method: 'GET', url: '/' });
    assert.notEqual(page.statusCode, 401);
    const csp = String(page.headers['content-security-policy']);
    for (const directive of ["default-src 'none'", "frame-ancestors 'none'", "connect-src 'self'", "script-src 'self'", "form-action 'none'", "base-uri 'none'"]) assert.ok(csp.includes(directive), `${directive} in ${csp}`);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.doesNotMatch(page.body, new RegExp(TOKEN), 'the page does not hold the token');
  });

  test('CORS is off: no Access-Control-Allow-* header, preflights refused', async () => {
    const preflight = await app.inject({ method: 'OPTIONS', url: '/api/sinks', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    assert.ok(preflight.statusCode >= 400, String(preflight.statusCode));
    const simple = await app.inject({ method: 'GET', url: '/api/source', headers: { origin: 'https://evil.example', authorization: `Bearer ${TOKEN}` } });
    for (const r of [preflight, simple]) {
      assert.deepEqual(Object.keys(r.headers).filter((h) => h.startsWith('access-control-')), [], JSON.stringify(r.headers));
    }
  });

  test('request bodies over http.body_limit_bytes: 413 with the error JSON, before the route runs', async () => {
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const big = await app.inject({ method: 'POST', url: '/api/sinks', headers, payload: JSON.stringify({ name: 'x', pad: 'x'.repeat(4096) }) });
    assert.equal(big.statusCode, 413);
    assert.deepEqual(big.json(), { error: { code: 'body_too_large', message: 'the request body is larger than 2048 bytes (http.body_limit_bytes)' } });
    // a body that is not JSON, an unknown content type: the same error JSON
    const bad = await app.inject({ method: 'POST', url: '/api/sinks/users/pause', headers, payload: '{"a":' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'bad_json');
    const xml = await app.inject({ method: 'POST', url: '/api/sinks', headers: { ...headers, 'content-type': 'application/xml' }, payload: '<a/>' });
    assert.equal(xml.statusCode, 415);
    assert.equal(xml.json().error.code, 'unsupported_media_type');
    // without the token the body is not read at all: 401, not 413
    assert.equal((await app.inject({ method: 'POST', url: '/api/sinks', headers: { 'content-type': 'application/json' }, payload: 'x'.repeat(10_000) })).statusCode, 401);
  });
});

describe('the API without a token (this machine only)', () => {
  let app: FastifyInstance;
  before(async () => {
    ({ app } = await buildHttpApp(deps(config('  port: 7376\n'))));
  });
  after(() => app.close());

  test('requests from this machine go through', async () => {
    for (const host of ['127.0.0.1:7376', 'localhost:7376', 'localhost', '[::1]:7376', '127.0.0.2']) {
      assert.equal((await app.inject({ method: 'GET', url: '/api/source', headers: { host } })).statusCode, 200, host);
    }
    const same = await app.inject({ method: 'POST', url: '/api/sinks/nope/pause', headers: { host: '127.0.0.1:7376', origin: 'http://127.0.0.1:7376' } });
    assert.notEqual(same.statusCode, 403, 'the console itself (same origin) is not refused');
  });

  test('pages of other sites are refused, even for simple requests (CSRF), and a rebound DNS name too', async () => {
    const csrf = await app.inject({ method: 'POST', url: '/api/sinks/users/pause', headers: { host: '127.0.0.1:7376', origin: 'https://evil.example', 'content-type': 'text/plain' }, payload: 'x' });
    assert.equal(csrf.statusCode, 403);
    assert.equal(csrf.json().error.code, 'cross_origin');
    for (const origin of ['null', 'http://127.0.0.1:9999', 'http://localhost:7376', 'file://']) {
      assert.equal((await app.inject({ method: 'GET', url: '/api/source', headers: { host: '127.0.0.1:7376', origin } })).statusCode, 403, origin);
    }
    const rebound = await app.inject({ method: 'GET', url: '/api/source', headers: { host: 'evil.example:7376' } });
    assert.equal(rebound.statusCode, 403);
    assert.equal(rebound.json().error.code, 'bad_host');
    const preflight = await app.inject({ method: 'OPTIONS', url: '/api/sinks', headers: { host: '127.0.0.1:7376', origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(preflight.statusCode, 403);
    assert.deepEqual(Object.keys(preflight.headers).filter((h) => h.startsWith('access-control-')), []);
  });
});

describe('where the API may listen', () => {
  test('an address other machines reach needs a token; loopback, a socket or port 0 do not', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'sluice.internal', '192.168.0.1']) {
      const problems = problemsOf(`  host: "${host}"\n`);
      assert.equal(problems.length, 1, host);
      assert.match(problems[0]!, /^http\.token: is required when http\.host is ".*", which other machines can reach: without it anyone who reaches the port could create sinks, run functions and read failed rows\. Set a token, or listen on 127\.0\.0\.1 or a Unix socket \(http\.socket\)$/);
      assert.deepEqual(problemsOf(`  host: "${host}"\n  token: t\n`), [], host);
      assert.deepEqual(problemsOf(`  host: "${host}"\n  port: 0\n`), [], `${host}, server off`);
      assert.deepEqual(problemsOf(`  host: "${host}"\n  socket: /tmp/s.sock\n`), [], `${host}, socket`);
    }
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '::ffff:127.0.0.1']) {
      assert.equal(isLoopbackHost(host), true, host);
      assert.deepEqual(problemsOf(`  host: "${host}"\n`), [], host);
    }
  });

  test('socket: an absolute path a Unix socket can have; body_limit_bytes: a positive integer', () => {
    assert.deepEqual(problemsOf('  socket: run/s.sock\n'), ['http.socket: must be an absolute path']);
    assert.deepEqual(problemsOf(`  socket: /${'x'.repeat(120)}\n`), ["http.socket: must be at most 107 bytes long (the limit of a Unix socket's path)"]);
    assert.equal(problemsOf('  body_limit_bytes: 0\n').length, 1);
    assert.equal(config('  body_limit_bytes: 10\n').http.body_limit_bytes, 10);
    assert.equal(config('  port: 7376\n').http.body_limit_bytes, 1024 * 1024);
  });

  test('a Unix socket: owner-only, a stale file replaced, the CLI client talks through it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-sock-'));
    const socket = join(dir, 'api.sock');
    try {
      // a file left by a process that is gone (killed while listening): a socket nobody listens on
      spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`]);
      assert.equal(lstatSync(socket).isSocket(), true, 'the stale socket file is there');
      const server = await startHttpServer(deps(config(`  socket: ${socket}\n  token: ${TOKEN}\n`)));
      try {
        assert.equal(statSync(socket).mode & 0o777, 0o600);
        const status = await new Promise<number>((resolve, reject) => {
          request({ socketPath: socket, path: '/api/source' }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          }).on('error', reject).end();
        });
        assert.equal(status, 401);
        const client = new ApiClient(config(`  socket: ${socket}\n  token: ${TOKEN}\n`));
        assert.equal(client.base, `unix:${socket}`);
        assert.equal((await client.read<{ state: string }>('GET', '/api/source')).body.state, 'streaming');
        const wrong = new ApiClient(config(`  socket: ${socket}\n  token: nope\n`));
        await assert.rejects(wrong.read('GET', '/api/source'), /refused the token/);
        const none = new ApiClient(config(`  socket: ${socket}\n`));
        await assert.rejects(none.read('GET', '/api/source'), /needs a token/);
        // one that answers is in use
        await assert.rejects(startHttpServer(deps(config(`  socket: ${socket}\n`))), (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE');
      } finally {
        await server.close();
      }
      const gone = new ApiClient(config(`  socket: ${socket}\n`), { timeoutMs: 1000 });
      await assert.rejects(gone.read('GET', '/health'), /no Sluice is answering at unix:.*api\.sock: start it .* or check http\.socket/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
