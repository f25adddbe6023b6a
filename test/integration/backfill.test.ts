import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { backfillKey } from '../../src/core/keyspace.js';
import { diffMaps, expectedStrings, scanStrings } from '../support/compare.js';
import type { BackfillView } from '../../src/backfill/backfill-manager.js';

const ROWS = 200_000;

/** Random updates, deletes and inserts until stopped; returns how many statements ran. */
function startWriter(env: SluiceTestEnv, table: string): { stop(): Promise<number> } {
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const id = 1 + Math.floor(Math.random() * ROWS);
      const r = Math.random();
      if (r < 0.6) await env.pg.query(`update ${table} set v = v + 1, note = md5(random()::text) where id = $1`, [id]);
      else if (r < 0.85) await env.pg.query(`delete from ${table} where id = $1`, [id]);
      else await env.pg.query(`insert into ${table} values ($1, 0, 'reinserted') on conflict (id) do update set v = ${table}.v + 100`, [id]);
      n++;
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return n;
    },
  };
}

async function backfills(env: SluiceTestEnv, sink: string): Promise<BackfillView[]> {
  const res = await fetch(`http://127.0.0.1:${env.httpPort}/api/sinks/${sink}/backfills`);
  return ((await res.json()) as { backfills: BackfillView[] }).backfills;
}

describe('backfill alongside live changes (DBLog watermarks)', () => {
  let env: SluiceTestEnv;
  let redis: Redis;

  before(async () => {
    env = await createSluiceTestEnv();
    for (const t of ['items', 'items2']) {
      await env.pg.query(`create table ${t} (id int primary key, v int not null, note text);
        insert into ${t} select g, 0, md5(g::text) from generate_series(1, ${ROWS}) g; analyze ${t};`);
    }
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test(`${ROWS} rows backfilled while a writer updates and deletes random rows: Redis equals Postgres`, async () => {
    env.writeConfig(`  - name: items
    type: string
    tables: [items]
    backfill: true`);
    const writer = startWriter(env, 'items');
    const sluice = await env.start();
    const progress = await eventually(() => backfills(env, 'items'), (b) => b.length === 1 && b[0]!.state !== 'running', 120_000, 'backfill to finish');
    assert.equal(progress[0]!.state, 'done', JSON.stringify(progress));
    assert.ok(progress[0]!.estimated_total !== null && progress[0]!.estimated_total > ROWS * 0.9);
    const writes = await writer.stop();
    assert.ok(writes > 100, `writer ran ${writes} statements`);
    const expected = await expectedStrings(env.pg, 'items');
    const actual = await eventually(() => scanStrings(redis, 'sluice:items:'), (a) => diffMaps(expected, a).length === 0, 30_000, 'Redis equal to Postgres').catch(() => scanStrings(redis, 'sluice:items:'));
    assert.deepEqual(diffMaps(expected, actual).slice(0, 10), []);
    assert.match(sluice.lines.map((l) => l.line).join('\n'), /backfill done/);
    await sluice.stop();
  });

  test('a table without a primary key is read in the order of its REPLICA IDENTITY index', async () => {
    await env.pg.query(`create table by_ident (code text not null, v int);
      create unique index by_ident_code on by_ident (code);
      alter table by_ident replica identity using index by_ident_code;
      insert into by_ident select 'c' || g, g from generate_series(1, 3000) g;`);
    env.writeConfig(`  - name: by-ident
    type: string
    tables: [by_ident]
    key: "code:{pk}"
    backfill: true`);
    const sluice = await env.start();
    await eventually(() => backfills(env, 'by-ident'), (b) => b.length === 1 && b[0]!.state === 'done', 60_000, 'backfill to finish');
    await env.pg.query(`update by_ident set v = -1 where code = 'c7'`);
    await eventually(() => redis.get('code:c7'), (v) => v === '{"code":"c7","v":-1}', 15_000, 'update keyed by the identity index');
    assert.equal(await redis.get('code:c3000'), '{"code":"c3000","v":3000}');
    assert.equal(await redis.dbsize() >= 3000, true);
    await sluice.stop();
  });

  test('kill -9 mid-backfill, restart: it resumes from its cursor and ends equal', async () => {
    env.writeConfig(`  - name: items2
    type: string
    tables: [items2]
    backfill: true`);
    const writer = startWriter(env, 'items2');
    let sluice = await env.start();
    await eventually(() => backfills(env, 'items2'), (b) => b.length === 1 && b[0]!.rows > 20_000, 60_000, 'backfill under way');
    await sluice.kill('SIGKILL');
    const [before] = await backfills(env, 'items2').catch(() => [] as BackfillView[]);
    assert.equal(before, undefined, 'the API is gone with the process');
    const stored = JSON.parse((await redis.hget(backfillKey('items2'), 'public.items2'))!) as { rows: number; cursor: string[]; state: string };
    assert.equal(stored.state, 'running');
    assert.ok(stored.rows > 0 && stored.rows < ROWS, `persisted cursor after ${stored.rows} rows`);
    sluice = await env.start();
    await sluice.waitForLine(/resuming backfill/, 10_000);
    const progress = await eventually(() => backfills(env, 'items2'), (b) => b.length === 1 && b[0]!.state !== 'running', 120_000, 'backfill to finish');
    assert.equal(progress[0]!.state, 'done');
    await writer.stop();
    const expected = await expectedStrings(env.pg, 'items2');
    const actual = await eventually(() => scanStrings(redis, 'sluice:items2:'), (a) => diffMaps(expected, a).length === 0, 30_000, 'Redis equal to Postgres').catch(() => scanStrings(redis, 'sluice:items2:'));
    assert.deepEqual(diffMaps(expected, actual).slice(0, 10), []);
    await sluice.stop();
  });
});
