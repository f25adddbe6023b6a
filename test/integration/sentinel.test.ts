import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedisSentinel, type TestRedisSentinel } from '../harness/redis-sentinel.js';
import { settlesWithin, spawnSluice, type ManagedProcess } from '../harness/process.js';
import { eventually } from '../support/sluice-env.js';
import { diffMaps, expectedStrings, scanStrings } from '../support/compare.js';
import { freePort } from '../../src/util/free-port.js';
import { DRAIN_TIMEOUT_MS } from '../../src/app.js';

describe('Redis Sentinel', () => {
  let pg: TestPostgres;
  let sentinel: TestRedisSentinel;
  let sluice: ManagedProcess;
  let dir: string;
  let next = 0;

  const write = async (n: number): Promise<void> => {
    for (let i = next; i < next + n; i++) {
      await pg.query(`insert into acct values (${i % 300}, ${i}) on conflict (id) do update set v = excluded.v`);
      if (i % 5 === 0) await pg.query(`delete from acct where id = ${(i * 7) % 300}`);
    }
    next += n;
  };

  /** Reads the current master (as the sentinels report it) and compares with Postgres. */
  const inSync = async (): Promise<void> => {
    const expected = await expectedStrings(pg, 'acct');
    const read = async (): Promise<Map<string, string>> => {
      const master = new Redis({ port: await sentinel.reportedMasterPort(), host: '127.0.0.1', lazyConnect: true });
      try {
        await master.connect();
        return await scanStrings(master, 'sluice:acct:');
      } finally {
        master.disconnect();
      }
    };
    const actual = await eventually(read, (a) => diffMaps(expected, a).length === 0, 60_000, 'Redis equal to Postgres').catch(read);
    assert.deepEqual(diffMaps(expected, actual).slice(0, 10), [], sluice.tail(20));
  };

  before(async () => {
    [pg, sentinel] = await Promise.all([startPostgres(), startRedisSentinel()]);
    await pg.query(`create table acct (id int primary key, v int)`);
    dir = mkdtempSync(join(tmpdir(), 'sluice-sentinel-'));
    const config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      `source:\n  url: ${pg.url}\nredis:\n  ha:\n    sentinel: { name: ${sentinel.masterName}, nodes: [${sentinel.sentinelUrls.join(', ')}] }\nsinks:\n  - name: acct\n    type: string\n    tables: [acct]\n    backfill: true\nhttp:\n  port: ${await freePort()}\n`,
    );
    sluice = spawnSluice(['start', '-c', config]);
    await sluice.waitForLine(/sluice started/, 30_000);
  });

  after(async () => {
    await sluice?.stop(3000);
    await Promise.all([pg?.stop(), sentinel?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('streams to the master the sentinels name', async () => {
    await write(100);
    await inSync();
  });

  test('a stream of transactions through a sentinel failover', async () => {
    const before = await sentinel.reportedMasterPort();
    const writing = write(300);
    await new Promise((r) => setTimeout(r, 200));
    await sentinel.failover();
    await writing;
    await write(50);
    assert.notEqual(await sentinel.reportedMasterPort(), before);
    await inSync();
    assert.ok(sluice.running, sluice.tail(20));
  });

  // the failover detector's connections to the sentinels (ioredis#1362) kept it alive after
  // `sluice stopped`: it must exit by itself, within the drain bound and the closing that follows
  test('exits with code 0 after SIGTERM', async () => {
    await write(20);
    const from = sluice.mark();
    const exited = sluice.kill('SIGTERM');
    await sluice.waitForLine(/sluice stopped/, DRAIN_TIMEOUT_MS + 15_000, { from });
    assert.ok(await settlesWithin(exited, 15_000), `still running after "sluice stopped":\n${sluice.tail(20)}`);
    assert.deepEqual(await exited, { code: 0, signal: null }, sluice.tail(20));
  });
});
