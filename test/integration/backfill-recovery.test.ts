// Two bugs the fault suite found (docs/guarantees.md, "Found by the suite"), against real servers:
// a backfill whose Postgres connection is terminated is tried again and completes; a Redis that
// lost acknowledged writes, deletes among them, ends without the keys, members and bits of the
// rows deleted meanwhile (the data-loss backfill is followed by an orphan sweep).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { diffMaps, expectedStrings, scanStrings } from '../support/compare.js';
import type { BackfillView } from '../../src/backfill/backfill-manager.js';
import type { ManagedProcess } from '../harness/process.js';

const ROWS = 200_000;

async function backfills(env: SluiceTestEnv, sink: string): Promise<BackfillView[]> {
  const res = await fetch(`http://127.0.0.1:${env.httpPort}/api/sinks/${sink}/backfills`);
  return ((await res.json()) as { backfills: BackfillView[] }).backfills;
}

async function post(env: SluiceTestEnv, path: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${env.httpPort}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.ok(res.ok, `POST ${path}: ${res.status} ${await res.text()}`);
}

async function metric(env: SluiceTestEnv, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${env.httpPort}/metrics`)).text();
  const m = pattern.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Every key of the database with its value (DUMP) and TTL: what a lagging replica would hold. */
async function snapshot(redis: Redis): Promise<{ key: string; dump: Buffer; ttl: number }[]> {
  const out: { key: string; dump: Buffer; ttl: number }[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const dump = await redis.dumpBuffer(key);
      if (dump) out.push({ key, dump, ttl: Math.max(0, await redis.pttl(key)) });
    }
  } while (cursor !== '0');
  return out;
}

/** Redis goes back to the snapshot at once (one MULTI): as after a failover to a replica that lacked the last writes. */
async function goBackTo(redis: Redis, snap: { key: string; dump: Buffer; ttl: number }[]): Promise<void> {
  const m = redis.multi().flushall();
  for (const s of snap) m.restore(s.key, s.ttl, s.dump, 'REPLACE');
  const r = await m.exec();
  for (const [err] of r ?? []) assert.equal(err, null);
}

describe('backfills that meet failures', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let sluice: ManagedProcess | undefined;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table items (id int primary key, v int not null, note text);
      insert into items select g, 0, md5(g::text) from generate_series(1, ${ROWS}) g; analyze items;`);
    await env.pg.query(`create table memb (id int primary key, grp int not null, v int not null);
      insert into memb select g, g % 5, 0 from generate_series(1, 400) g;`);
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test('a backfill whose Postgres connection is terminated mid-way is tried again from its cursor and ends equal to Postgres', async () => {
    env.writeConfig(`  - name: items
    type: string
    tables: [items]
    backfill: true`);
    sluice = await env.start();
    // chunks are in Redis and more are to come: its connection is terminated in the middle
    await eventually(() => backfills(env, 'items'), (b) => b.length === 1 && b[0]!.rows > 0, 60_000, 'a first chunk');
    const mark = sluice.mark();
    const killed = await env.pg.query(`select count(pg_terminate_backend(pid)) as n from pg_stat_activity where application_name = 'sluice-backfill'`);
    assert.equal((killed.rows[0] as { n: string }).n, '1', 'the backfill connection was terminated');
    const cut = (await backfills(env, 'items'))[0]!;
    assert.equal(cut.state, 'running', JSON.stringify(cut));
    await env.pg.query(`update items set v = v + 1 where id % 97 = 0`);
    await env.pg.query(`delete from items where id % 89 = 0`);
    await sluice.waitForLine(/backfill attempt failed: trying again/, 60_000, { from: mark });
    const done = await eventually(() => backfills(env, 'items'), (b) => b.length === 1 && b[0]!.state !== 'running', 180_000, 'the backfill to finish');
    assert.equal(done[0]!.state, 'done', JSON.stringify(done));
    assert.ok((done[0]!.attempts ?? 0) >= 1, `the record counts the failed attempt: ${JSON.stringify(done[0])}`);
    assert.match(done[0]!.error ?? '', /terminat|connection/i);
    assert.equal(done[0]!.next_retry_at, undefined);
    // resumed from the cursor, not from the start: no row counted twice but those of one chunk
    assert.ok(done[0]!.rows < ROWS + 20_000, `rows copied ${done[0]!.rows}`);
    const lines = sluice.lines.slice(mark).map((l) => l.line).join('\n');
    assert.match(lines, /backfill attempt started again/);
    assert.doesNotMatch(lines, /"msg":"backfill failed"/);
    assert.ok((await metric(env, /sluice_backfill_retries_total\{sink="items",table="public.items"\} (\d+)/)) >= 1);
    const expected = await expectedStrings(env.pg, 'items');
    const actual = await eventually(() => scanStrings(redis, 'sluice:items:'), (a) => diffMaps(expected, a).length === 0, 30_000, 'Redis equal to Postgres').catch(() => scanStrings(redis, 'sluice:items:'));
    assert.deepEqual(diffMaps(expected, actual).slice(0, 10), []);
    await sluice.stop();
    sluice = undefined;
  });

  test('a permanent error (the table is gone) stays failed, and starting the backfill again works once it is back', async () => {
    await env.pg.query(`create table gone (id int primary key, v int); insert into gone select g, g from generate_series(1, 100) g`);
    env.writeConfig(`  - name: gone
    type: string
    tables: [gone]`);
    sluice = await env.start();
    await env.pg.query(`alter table gone rename to gone_away`);
    const res = await fetch(`http://127.0.0.1:${env.httpPort}/api/sinks/gone/backfills`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 202, await res.text());
    const failed = await eventually(() => backfills(env, 'gone'), (b) => b.length === 1 && b[0]!.state !== 'running', 60_000, 'the backfill to fail');
    assert.equal(failed[0]!.state, 'failed');
    assert.match(failed[0]!.error ?? '', /does not exist/);
    await env.pg.query(`alter table gone_away rename to gone`);
    await post(env, '/api/sinks/gone/backfills');
    const done = await eventually(() => backfills(env, 'gone'), (b) => b.length === 1 && b[0]!.state === 'done', 60_000, 'the new backfill to finish');
    assert.equal(done[0]!.rows, 100);
    await sluice.stop();
    sluice = undefined;
  });

  test('Redis lost acknowledged writes, deletes among them: no orphan key, member or bit is left', async () => {
    env.writeConfig(`  - name: m-str
    type: string
    tables: [memb]
    key: "ms:{id}"
    backfill: true
  - name: m-set
    type: set
    tables: [memb]
    key: "mset:{grp}"
    member: "{id}"
    backfill: true
  - name: m-zset
    type: zset
    tables: [memb]
    key: "mz:{grp}"
    member: "{id}"
    score: v
    backfill: true
  - name: m-bits
    type: bitmap
    tables: [memb]
    key: "mb:{grp}"
    offset: id
    backfill: true
  - name: m-hf
    type: hash
    mode: field
    tables: [memb]
    key: "mh:{grp}"
    field: "{id}"
    backfill: true`);
    await redis.flushall();
    sluice = await env.start();
    const sinks = ['m-str', 'm-set', 'm-zset', 'm-bits', 'm-hf'];
    for (const s of sinks) await eventually(() => backfills(env, s), (b) => b.length === 1 && b[0]!.state === 'done', 60_000, `${s} backfilled`);
    await eventually(() => redis.scard('mset:0'), (n) => n === 80, 30_000, 'members in Redis');
    const snap = await snapshot(redis);
    // acknowledged writes Redis will lose: deletes (and an insert, and a row moving groups)
    await env.pg.query(`delete from memb where id % 10 = 3`);
    await env.pg.query(`insert into memb values (1001, 1, 5)`);
    await env.pg.query(`update memb set grp = 4 where id = 7`);
    await eventually(() => redis.exists('ms:13'), (n) => n === 0, 30_000, 'the deletes applied');
    await eventually(() => redis.exists('ms:1001'), (n) => n === 1, 30_000, 'the insert applied');
    const mark = sluice.mark();
    await goBackTo(redis, snap);
    // the next batch notices the loss
    await env.pg.query(`update memb set v = v + 1 where id = 1`);
    await sluice.waitForLine(/Redis lost writes/, 30_000, { from: mark });
    for (const s of sinks) await sluice.waitForLine(new RegExp(`"sink":"${s}".*"msg":"orphan sweep done"|"msg":"orphan sweep done".*"sink":"${s}"`), 120_000, { from: mark });
    // Redis equals Postgres, sink by sink
    const rows = (await env.pg.query(`select id, grp, v from memb`)).rows as { id: number; grp: number; v: number }[];
    const byGrp = new Map<number, number[]>();
    for (const r of rows) byGrp.set(r.grp, [...(byGrp.get(r.grp) ?? []), r.id]);
    const strKeys = (await scanStrings(redis, 'ms:')).size;
    assert.equal(strKeys, rows.length, 'one string key per row');
    for (let g = 0; g < 5; g++) {
      const ids = (byGrp.get(g) ?? []).map(String).sort();
      assert.deepEqual((await redis.smembers(`mset:${g}`)).sort(), ids, `set mset:${g}`);
      assert.deepEqual((await redis.zrange(`mz:${g}`, 0, -1)).sort(), ids, `zset mz:${g}`);
      assert.deepEqual(Object.keys(await redis.hgetall(`mh:${g}`)).sort(), ids, `hash mh:${g}`);
      const bits: string[] = [];
      for (let id = 0; id <= 1001; id++) if ((await redis.getbit(`mb:${g}`, id)) === 1) bits.push(String(id));
      assert.deepEqual(bits.sort(), ids, `bitmap mb:${g}`);
    }
    // visible: the record, the metric
    const rec = (await backfills(env, 'm-set'))[0]!;
    assert.equal(rec.orphan_sweep?.state, 'done', JSON.stringify(rec));
    assert.ok((rec.orphan_sweep?.deleted ?? 0) >= 40, JSON.stringify(rec));
    assert.match(rec.reason ?? '', /lost writes/);
    assert.ok((await metric(env, /sluice_orphans_deleted_total\{sink="m-set"\} (\d+)/)) >= 40);
    assert.ok((await metric(env, /sluice_orphan_sweeps_total\{sink="m-str",outcome="done"\} (\d+)/)) >= 1);
    // a repair (POST /api/sinks/:name/repair, what sluice verify --repair asks for) removes a stray member the same way
    await redis.sadd('mset:0', '99999');
    await post(env, '/api/sinks/m-set/repair');
    const repair = await eventually(
      async () => ((await (await fetch(`http://127.0.0.1:${env.httpPort}/api/sinks/m-set/repair`)).json()) as { repair: { state: string; orphans: { deleted: number } } }).repair,
      (r) => r.state !== 'running',
      60_000,
      'the repair to finish',
    );
    assert.equal(repair.state, 'done', JSON.stringify(repair));
    assert.equal(repair.orphans.deleted, 1, JSON.stringify(repair));
    assert.equal(await redis.sismember('mset:0', '99999'), 0);
    await sluice.stop();
    sluice = undefined;
  });
});
