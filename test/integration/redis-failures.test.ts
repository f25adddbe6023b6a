import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { positionKey } from '../../src/core/keyspace.js';
import { diffMaps, expectedStrings, scanStrings } from '../support/compare.js';
import type { ManagedProcess } from '../harness/process.js';

async function writes(env: SluiceTestEnv, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    await env.pg.query(`insert into acct values ($1, $2::int, md5($2::text)) on conflict (id) do update set v = excluded.v, s = excluded.s`, [i % 500, i]);
    if (i % 7 === 0) await env.pg.query(`delete from acct where id = $1`, [(i * 3) % 500]);
  }
}

describe('riding out Redis failures', () => {
  let env: SluiceTestEnv;
  let sluice: ManagedProcess;
  let redis: Redis;
  let next = 0;

  const inSync = async (): Promise<void> => {
    const expected = await expectedStrings(env.pg, 'acct');
    const actual = await eventually(() => scanStrings(redis, 'sluice:acct:'), (a) => diffMaps(expected, a).length === 0, 60_000, 'Redis equal to Postgres').catch(() => scanStrings(redis, 'sluice:acct:'));
    assert.deepEqual(diffMaps(expected, actual).slice(0, 10), [], sluice.tail(20));
  };

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table acct (id int primary key, v int, s text)`);
    env.writeConfig(`  - name: acct
    type: string
    tables: [acct]
    backfill: true`);
    sluice = await env.start();
    redis = env.redis.client();
    await writes(env, next, 300);
    next += 300;
    await inSync();
  });

  after(async () => {
    await env?.stop();
  });

  test('Redis killed for 30 s mid-stream: retries with backoff, stops reading, resumes; nothing lost', async () => {
    const mark = sluice.mark();
    await env.redis.kill('SIGKILL');
    await writes(env, next, 300);
    next += 300;
    await sluice.waitForLine(/Redis write failed; will retry/, 10_000, { from: mark });
    const src = (await (await fetch(`http://127.0.0.1:${env.httpPort}/api/source`)).json()) as { redis: { state: string; lastError: string }[] };
    assert.equal(src.redis[0]!.state, 'retrying');
    await new Promise((r) => setTimeout(r, 30_000));
    // brought back empty (no persistence): Sluice must notice and backfill again
    await env.redis.start();
    await sluice.waitForLine(/Redis lost writes|backfilling the sink again/, 30_000, { from: mark });
    await inSync();
  });

  test('FLUSHALL while running is noticed at the next batch and repaired by a re-backfill', async () => {
    const mark = sluice.mark();
    await redis.flushall();
    await writes(env, next, 50);
    next += 50;
    await sluice.waitForLine(/Redis lost writes/, 30_000, { from: mark });
    await inSync();
    const metrics = await (await fetch(`http://127.0.0.1:${env.httpPort}/metrics`)).text();
    assert.match(metrics, /sluice_redis_data_loss_total\{redis="main"\} [1-9]/);
  });

  test('Redis restarted empty while Sluice was down: noticed at start, backfilled again', async () => {
    await sluice.stop();
    await writes(env, next, 100);
    next += 100;
    await env.redis.restart();
    sluice = await env.start();
    await inSync();
  });

  test('Redis behind the slot (a failover to a replica that lost recent writes): noticed at start', async () => {
    await sluice.stop();
    // what a lagging replica looks like: an older position, and the rows written since missing
    await redis.set(positionKey('acct'), '0/1');
    await writes(env, next, 50);
    next += 50;
    sluice = await env.start();
    await sluice.waitForLine(/Redis is behind the replication slot/, 10_000);
    await inSync();
  });

  test('maxmemory with noeviction: pauses and reports, never drops; resumes when memory is freed', async () => {
    const mark = sluice.mark();
    await redis.config('SET', 'maxmemory-policy', 'noeviction');
    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
    await redis.config('SET', 'maxmemory', String(used + 200_000));
    await env.pg.query(`insert into acct select g, g, repeat('x', 2000) from generate_series(1000, 1400) g`);
    await sluice.waitForLine(/OOM/, 30_000, { from: mark });
    const src = (await (await fetch(`http://127.0.0.1:${env.httpPort}/api/source`)).json()) as { redis: { state: string; lastError: string }[] };
    assert.equal(src.redis[0]!.state, 'retrying');
    assert.match(src.redis[0]!.lastError, /OOM/);
    await redis.config('SET', 'maxmemory', '0');
    await inSync();
  });
});
