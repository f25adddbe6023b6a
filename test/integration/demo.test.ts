import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REPO_ROOT, spawnSluice, type ManagedProcess } from '../harness/process.js';
import { eventually } from '../support/sluice-env.js';

describe('sluice demo', () => {
  const dirs: string[] = [];
  const running: ManagedProcess[] = [];
  after(async () => {
    // a test that failed half-way: its demo stops (and cleans up) here
    await Promise.all(running.filter((p) => p.running).map((p) => p.kill('SIGINT')));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** The temp folders a demo may leave: its own and, as root, the one for Postgres's files. */
  const demoTemps = (): Set<string> => new Set(readdirSync(tmpdir()).filter((n) => /^sluice-demo-(?!test-)/.test(n)));

  test('starts its own Postgres and Redis, streams the sample shop, prints a status command that works; Ctrl-C stops it and removes its temporary folder', async () => {
    const before = demoTemps();
    const demo = spawnSluice(['demo']);
    running.push(demo);
    await demo.waitForLine(/A writer updates prices/, 60_000);
    const out = demo.stdout.join('\n');
    const dir = /data in ([^\s)]+)\) …/.exec(out)?.[1];
    assert.ok(dir && existsSync(dir), out);
    const redisPort = Number(/redis-cli -p (\d+) GET product:1/.exec(out)?.[1]);
    assert.ok(redisPort > 0, out);
    assert.match(out, /Console and API {3}http:\/\/127\.0\.0\.1:\d+\//);
    // the config it runs is a file, and the printed command reaches the running demo
    const configPath = join(dir, 'sluice.yaml');
    assert.ok(out.includes(`The config it runs is ${configPath}:`), out);
    const statusCommand = /Its status {8}(.+)$/m.exec(out)?.[1];
    assert.equal(statusCommand, `bin/sluice status -c ${configPath}`);
    const redis = new Redis({ port: redisPort, host: '127.0.0.1' });
    try {
      const product = await eventually(() => redis.get('product:1'), (v) => v !== null, 30_000, 'product:1');
      assert.match(product!, /^\{"id":1,"name":"[^"]+","price":\d+\.\d{2},/);
      // live writes keep flowing: an order appears
      await eventually(async () => (await redis.scan('0', 'MATCH', 'sluice:orders:*', 'COUNT', 1000))[1].length, (n) => n > 0, 30_000, 'an order');
    } finally {
      redis.disconnect();
    }
    const status = spawnSync('sh', ['-c', `${statusCommand} --no-rate`], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(status.status, 0, status.stdout + status.stderr);
    assert.match(status.stdout, /^health +ok/m);
    assert.match(status.stdout, /^products +string +config +active/m);
    assert.match(status.stdout, /^orders +string +config +active/m);

    const exit = await demo.kill('SIGINT');
    assert.equal(exit.code, 0, demo.tail(20));
    assert.ok(demo.stdout.includes(`Removed ${dir}.`), demo.tail(5));
    assert.equal(existsSync(dir), false, 'the temporary folder is gone');
    assert.deepEqual([...demoTemps()].filter((n) => !before.has(n)), [], 'no other temporary folder is left');
  });

  test('Ctrl-C while the servers start: they are stopped and the temporary folder removed', async () => {
    const before = demoTemps();
    const demo = spawnSluice(['demo']);
    const line = await demo.waitForLine(/data in ([^\s)]+)\) …/, 30_000);
    const dir = /data in ([^\s)]+)\) …/.exec(line)![1]!;
    const exit = await demo.kill('SIGINT');
    assert.equal(exit.code, 0, demo.tail(20));
    assert.equal(existsSync(dir), false, demo.tail(10));
    assert.deepEqual([...demoTemps()].filter((n) => !before.has(n)), []);
    assert.doesNotMatch(demo.stdout.join('\n'), /A writer updates prices/);
  });

  test('--dir keeps the data and the config in that folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-demo-test-'));
    dirs.push(dir);
    const demo = spawnSluice(['demo', '--dir', dir]);
    running.push(demo);
    await demo.waitForLine(/A writer updates prices/, 60_000);
    assert.match(readFileSync(join(dir, 'sluice.yaml'), 'utf8'), /^sinks:$/m);
    const exit = await demo.kill('SIGINT');
    assert.equal(exit.code, 0, demo.tail(20));
    assert.ok(existsSync(join(dir, 'sluice.yaml')));
    assert.ok(existsSync(join(dir, 'redis')));
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
