import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { diffMaps, expectedStrings, scanStrings } from '../support/compare.js';
import type { ManagedProcess } from '../harness/process.js';

describe('order and atomicity', () => {
  let env: SluiceTestEnv;
  let sluice: ManagedProcess;
  let redis: Redis;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table acct (id int primary key, v int not null);
      insert into acct select g, 0 from generate_series(1, 10) g;`);
    env.writeConfig(`  - name: acct
    type: string
    tables: [acct]`);
    sluice = await env.start();
    redis = env.redis.client();
    await eventually(() => redis.exists('sluice:acct:10'), (n) => n === 1, 15_000, 'initial rows').catch(() => undefined);
  });

  after(async () => {
    await env?.stop();
  });

  test('a reader never sees half a transaction', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => `sluice:acct:${i + 1}`);
    let stop = false;
    let reads = 0;
    let torn = 0;
    let example = '';
    const reader = (async () => {
      while (!stop) {
        const values = await redis.mget(...keys);
        if (values.some((v) => v === null)) continue;
        reads++;
        const vs = new Set(values.map((v) => (JSON.parse(v!) as { v: number }).v));
        if (vs.size > 1) {
          torn++;
          example = [...vs].join(',');
        }
      }
    })();
    // 300 transactions, each setting all ten rows to the same new value.
    for (let i = 1; i <= 300; i++) await env.pg.query(`update acct set v = $1`, [i]);
    await eventually(() => redis.get('sluice:acct:1'), (v) => v !== null && (JSON.parse(v) as { v: number }).v === 300, 15_000, 'last update');
    stop = true;
    await reader;
    assert.ok(reads > 0);
    assert.equal(torn, 0, `reader saw ${torn} torn transactions out of ${reads} reads (e.g. values ${example})`);
  });

  test('the walsender terminated mid-stream: Sluice reconnects and loses nothing', async () => {
    const mark = sluice.mark();
    const writes = (async () => {
      for (let i = 0; i < 200; i++) {
        await env.pg.query(`insert into acct values ($1, $2) on conflict (id) do update set v = excluded.v`, [100 + (i % 50), i]);
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    const killed = await env.pg.query(`select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = 'sluice' and active_pid is not null`);
    assert.equal(killed.rowCount, 1);
    await writes;
    await sluice.waitForLine(/replication stream reconnected/, 30_000, { from: mark });
    const expected = await expectedStrings(env.pg, 'acct');
    await eventually(() => scanStrings(redis, 'sluice:acct:'), (actual) => diffMaps(expected, actual).length === 0, 20_000, 'Redis equal to Postgres');
    assert.ok(sluice.running);
  });

  test('Postgres restarted mid-stream: Sluice reconnects and continues', async () => {
    const mark = sluice.mark();
    for (let i = 0; i < 50; i++) await env.pg.query(`insert into acct values ($1, $2) on conflict (id) do update set v = excluded.v`, [200 + i, i]);
    await env.pg.restart();
    for (let i = 0; i < 50; i++) await env.pg.query(`insert into acct values ($1, $2) on conflict (id) do update set v = excluded.v`, [300 + i, i]);
    await sluice.waitForLine(/replication stream reconnected/, 60_000, { from: mark });
    const expected = await expectedStrings(env.pg, 'acct');
    await eventually(() => scanStrings(redis, 'sluice:acct:'), (actual) => diffMaps(expected, actual).length === 0, 30_000, 'Redis equal to Postgres');
  });

  test('an idle slot on a busy database advances (no WAL held forever)', async () => {
    const before = await env.pg.query(`select confirmed_flush_lsn::text l from pg_replication_slots where slot_name = 'sluice'`);
    // writes to a table that is not published: only keepalives reach Sluice
    await env.pg.query(`create table unrelated (x int); insert into unrelated select generate_series(1, 1000);`);
    const target = (await env.pg.query(`select pg_current_wal_lsn()::text l`)).rows[0] as { l: string };
    await eventually(
      async () => (await env.pg.query(`select confirmed_flush_lsn >= $1::pg_lsn ok from pg_replication_slots where slot_name = 'sluice'`, [target.l])).rows[0] as { ok: boolean },
      (r) => r.ok,
      30_000,
      `slot to pass ${target.l} (was ${(before.rows[0] as { l: string }).l})`,
    );
  });
});
