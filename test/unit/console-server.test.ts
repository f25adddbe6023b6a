// The console's server side without servers: the page and its assets (built or not), the
// history the charts read, and the API types the console is written against.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { Metrics } from '../../src/metrics.js';
import { CONSOLE_CSP, isConsolePath, registerConsoleRoute } from '../../src/http/console-route.js';
import { History } from '../../src/http/history.js';
import type { HttpDeps } from '../../src/http/deps.js';

function deps(token?: string): { deps: HttpDeps; metrics: Metrics; lag: { ms: number }; sinks: { name: string }[] } {
  const metrics = new Metrics(false);
  const lag = { ms: 0 };
  const sinks = [{ name: 'users' }, { name: 'events' }];
  const d = {
    config: { sinks, http: { token }, redis: {}, source: { url: 'postgres://u@127.0.0.1:1/db' } },
    metrics,
    pipeline: { lagMs: () => lag.ms },
    monitor: { last: { lagBytes: 120, retainedBytes: 4096 } },
  } as unknown as HttpDeps;
  return { deps: d, metrics, lag, sinks };
}

describe('the console route', () => {
  test('without a build: 500 with a page that says how to build it, same headers; the API is not affected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-console-'));
    const app = Fastify();
    try {
      await registerConsoleRoute(app, deps().deps, join(dir, 'missing'));
      const r = await app.inject({ method: 'GET', url: '/' });
      assert.equal(r.statusCode, 500);
      assert.match(r.headers['content-type'] as string, /text\/html/);
      assert.match(r.body, /npm run build:console/);
      assert.equal(r.headers['content-security-policy'], CONSOLE_CSP);
      assert.equal((await app.inject({ method: 'GET', url: '/index.html' })).statusCode, 500);
      assert.equal((await app.inject({ method: 'GET', url: '/api/history' })).statusCode, 200);
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('with a build: the page (marked when a token is needed) and hashed assets cached for good', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-console-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html>\n<html lang="en">\n<head><script type="module" src="/assets/app-1a2b.js"></script></head><body><div id="app"></div></body></html>');
    writeFileSync(join(dir, 'assets', 'app-1a2b.js'), 'console.log(1)');
    const app = Fastify();
    try {
      await registerConsoleRoute(app, deps('secret').deps, dir);
      const page = await app.inject({ method: 'GET', url: '/' });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /<html lang="en" data-auth="token">/);
      assert.ok(!page.body.includes('secret'));
      assert.equal(page.headers['cache-control'], 'no-cache');
      assert.equal(page.headers['content-security-policy'], CONSOLE_CSP);
      assert.match(CONSOLE_CSP, /frame-ancestors 'none'/);
      assert.equal(page.headers['x-content-type-options'], 'nosniff');
      const js = await app.inject({ method: 'GET', url: '/assets/app-1a2b.js' });
      assert.equal(js.statusCode, 200);
      assert.match(js.headers['content-type'] as string, /javascript/);
      assert.match(js.headers['cache-control'] as string, /immutable/);
      assert.equal(js.headers['content-security-policy'], CONSOLE_CSP);
      assert.equal((await app.inject({ method: 'GET', url: '/assets/nope.js' })).statusCode, 404);
      assert.notEqual((await app.inject({ method: 'GET', url: '/assets/..%2findex.html' })).statusCode, 200);
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('only the page and its assets skip the token', () => {
    for (const p of ['/', '/index.html', '/assets/index-1a2b.js']) assert.equal(isConsolePath(p), true, p);
    for (const p of ['/api/sinks', '/api/history', '/assets/../api/sinks', '/assets/%2e%2e/api/sinks', '/assets/.%2e/api/sinks', '/assets/a/../../api/sinks', '/assets/', '/index.htm', '/metrics']) {
      assert.equal(isConsolePath(p), false, p);
    }
  });
});

describe('history', () => {
  test('rates per second between samples, per sink and in all; mean apply time; lag and WAL as they are', async () => {
    const { deps: d, metrics, lag } = deps();
    const h = new History(d, 2000, 10_000);
    await h.sample(1_000_000);
    assert.deepEqual(h.list(), [], 'the first sample only records the totals');
    metrics.changes.inc({ sink: 'users', action: 'insert' }, 10);
    metrics.changes.inc({ sink: 'users', action: 'update' }, 4);
    metrics.changes.inc({ sink: 'gone', action: 'insert' }, 3);
    metrics.failed.inc({ sink: 'events' }, 2);
    metrics.batchSeconds.observe(0.004);
    metrics.batchSeconds.observe(0.002);
    metrics.observeApplyLatency('users', 1000, 1004);
    metrics.observeApplyLatency('users', 1000, 1002);
    lag.ms = 250;
    await h.sample(1_002_000);
    const [s] = h.list();
    assert.deepEqual(s, {
      t: 1_002_000,
      lag_bytes: 120,
      lag_ms: 250,
      retained_wal_bytes: 4096,
      changes_per_s: 7,
      batches_per_s: 1,
      apply_ms: 3,
      sinks: { users: 7, events: 0 },
      failed: { users: 0, events: 1 },
      commit_to_redis_ms: { users: 3, events: null },
    });
    await h.sample(1_004_000);
    assert.equal(h.list()[1]!.apply_ms, null, 'no batch: no latency');
    assert.equal(h.list()[1]!.changes_per_s, 0);
    assert.deepEqual(h.list(1_002_000).map((x) => x.t), [1_004_000], 'since: only newer ones');
    for (let t = 1_006_000; t <= 1_030_000; t += 2000) await h.sample(t);
    assert.equal(h.list().length, 5, 'the window is kept, no more');
    assert.equal(h.list()[0]!.t, 1_022_000);
  });
});
