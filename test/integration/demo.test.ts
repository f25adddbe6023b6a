import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { spawnSluice } from '../harness/process.js';
import { eventually } from '../support/sluice-env.js';

describe('sluice demo', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('starts its own Postgres and Redis, streams the sample shop, stops cleanly on Ctrl-C', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-demo-test-'));
    dirs.push(dir);
    const demo = spawnSluice(['demo', '--dir', dir]);
    await demo.waitForLine(/A writer updates prices/, 60_000);
    const out = demo.stdout.join('\n');
    const redisPort = Number(/redis-cli -p (\d+) GET product:1/.exec(out)?.[1]);
    assert.ok(redisPort > 0, out);
    assert.match(out, /Console and API {3}http:\/\/127\.0\.0\.1:\d+\//);
    const redis = new Redis({ port: redisPort, host: '127.0.0.1' });
    try {
      const product = await eventually(() => redis.get('product:1'), (v) => v !== null, 30_000, 'product:1');
      assert.match(product!, /^\{"id":1,"name":"[^"]+","price":\d+\.\d{2},/);
      // live writes keep flowing: an order appears
      await eventually(async () => (await redis.scan('0', 'MATCH', 'sluice:orders:*', 'COUNT', 1000))[1].length, (n) => n > 0, 30_000, 'an order');
    } finally {
      redis.disconnect();
    }
    const exit = await demo.kill('SIGINT');
    assert.equal(exit.code, 0, demo.tail(20));
  });

  test('without redis-server on PATH: one clear sentence saying how to install it', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'sluice-path-'));
    dirs.push(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const demo = spawnSluice(['demo'], { env: { ...process.env, PATH: bin } });
    const exit = await demo.exited;
    assert.equal(exit.code, 1);
    const err = demo.stderr.join('\n');
    assert.match(err, /redis-server was not found on PATH: install it \(Debian\/Ubuntu: apt-get install redis-server; macOS: brew install redis\) and run sluice demo again/);
    assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
  });
});
