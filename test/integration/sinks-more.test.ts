import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { failedKey } from '../../src/core/keyspace.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis-cluster.js';
import { freePort } from '../../src/util/free-port.js';

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnSluice(args);
  const exit = await p.exited;
  return { code: exit.code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

/** The reasons of a sink's failed messages. */
async function failureReasons(redis: Redis | Cluster, sink: string): Promise<string[]> {
  return Object.values(await redis.hgetall(failedKey(sink))).map((v) => (JSON.parse(v) as { reason: string }).reason);
}

const BERLIN = [13.405, 52.52] as const;
const PARIS = [2.3522, 48.8566] as const;

/** Members within 20 km of a place, nearest first. */
async function near(redis: Redis | Cluster, key: string, [lon, lat]: readonly [number, number]): Promise<string[]> {
  return (await redis.call('GEOSEARCH', key, 'FROMLONLAT', String(lon), String(lat), 'BYRADIUS', '20', 'km', 'ASC')) as string[];
}

/** geo, hyperloglog and bitmap sinks, a stream trimmed by age, and a hash in field mode by `field` alone: bin/sluice between a real Postgres and Redis. */
describe('geo, hyperloglog, bitmap sinks and streams trimmed by age, end to end', () => {
  let env: SluiceTestEnv;
  let sluice: ManagedProcess;
  let redis: Redis;
  let config: string;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`
      create table stores (id int primary key, city text, lon float8, lat numeric);
      create table visits (id int primary key, day text, user_id int);
      create table sessions (id int primary key, day text, user_id bigint);
      create table events (id int primary key, kind text);
      create table names (id int primary key, name text);`);
    config = env.writeConfig(`  - name: stores-all
    type: geo
    tables: [stores]
    key: "geo:stores"
    member: "{pk}"
    longitude: lon
    latitude: lat
  - name: stores-city
    type: geo
    tables: [stores]
    key: "geo:city:{city}"
    member: "{pk}"
    longitude: lon
    latitude: lat
  - name: visitors
    type: hyperloglog
    tables: [visits]
    key: "hll:{day}"
    element: "{user_id}"
  - name: visitors-all
    type: hyperloglog
    tables: [visits]
    key: "hll:all"
    element: "{user_id}"
    actions: [insert, update, delete]
  - name: active
    type: bitmap
    tables: [sessions]
    key: "bits:{day}"
    offset: user_id
  - name: aged
    type: stream
    tables: [events]
    key: "aged"
    max_age_ms: 300
  - name: aged-capped
    type: stream
    tables: [events]
    key: "aged-capped"
    max_length: 100000
    max_age_ms: 300
  - name: names
    type: hash
    tables: [names]
    key: "names"
    field: "{pk}"`);
    redis = env.redis.client();
    sluice = await env.start();
  });

  after(async () => {
    await env?.stop();
  });

  test('geo: GEOADD from two columns; a row that moves is found by GEOSEARCH at its new place only; delete ZREMs', async () => {
    await env.pg.query(`insert into stores values (1, 'berlin', ${BERLIN[0]}, ${BERLIN[1]}), (2, 'paris', ${PARIS[0]}, ${PARIS[1]})`);
    await eventually(() => near(redis, 'geo:stores', BERLIN), (m) => m.length === 1);
    assert.deepEqual(await near(redis, 'geo:stores', BERLIN), ['1']);
    assert.deepEqual(await near(redis, 'geo:stores', PARIS), ['2']);
    assert.deepEqual(await near(redis, 'geo:city:berlin', BERLIN), ['1']);

    // store 1 moves to Paris: new coordinates and a new key (city, not in the replica identity: reverse index)
    await env.pg.query(`update stores set city = 'paris', lon = ${PARIS[0] + 0.01}, lat = ${PARIS[1]} where id = 1`);
    await eventually(() => near(redis, 'geo:stores', PARIS), (m) => m.length === 2);
    assert.deepEqual(await near(redis, 'geo:stores', BERLIN), [], 'not found at its old place');
    assert.deepEqual((await near(redis, 'geo:city:paris', PARIS)).sort(), ['1', '2']);
    assert.equal(await redis.exists('geo:city:berlin'), 0, 'removed from the old key in the same transaction');

    // the member changes (primary key): the old member is removed
    await env.pg.query(`update stores set id = 3 where id = 1`);
    await eventually(() => near(redis, 'geo:stores', PARIS), (m) => m.includes('3'));
    assert.deepEqual((await near(redis, 'geo:stores', PARIS)).sort(), ['2', '3']);
    assert.deepEqual((await near(redis, 'geo:city:paris', PARIS)).sort(), ['2', '3']);

    // coordinates out of range: a failed message with the reason; the row's place is unchanged
    await env.pg.query(`update stores set lat = 86 where id = 2`);
    await env.pg.query(`insert into stores values (4, 'berlin', ${BERLIN[0]}, ${BERLIN[1]})`);
    await eventually(() => near(redis, 'geo:stores', BERLIN), (m) => m.includes('4'));
    assert.deepEqual((await near(redis, 'geo:stores', PARIS)).sort(), ['2', '3'], 'the refused update left store 2 where it was');
    const reasons = await failureReasons(redis, 'stores-all');
    assert.equal(reasons.length, 1, JSON.stringify(reasons));
    assert.match(reasons[0]!, /latitude column "lat" is "86", out of range: Redis indexes latitudes from -85\.05112878 to 85\.05112878/);
    await env.pg.query(`update stores set lat = ${PARIS[1]} where id = 2`);

    await env.pg.query(`delete from stores where id = 3`);
    await eventually(() => redis.zscore('geo:stores', '3'), (s) => s === null);
    await eventually(() => redis.zscore('geo:city:paris', '3'), (s) => s === null);
    assert.deepEqual(await near(redis, 'geo:stores', PARIS), ['2']);

    // sluice verify compares each row with its member's geohash score
    const v = await run(['verify', 'stores-all', '-c', config]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const vc = await run(['verify', 'stores-city', '-c', config]);
    assert.equal(vc.code, 0, vc.stdout + vc.stderr);
  });

  test('hyperloglog: PFCOUNT of 10,000 distinct elements is within 3 standard errors (0.81% each); deletes and repeats change nothing', async () => {
    await env.pg.query(`insert into visits select g, 'mon', g from generate_series(1, 10000) g`);
    // the same users again, another day and also on Monday: the count does not move
    await env.pg.query(`insert into visits select 10000 + g, 'mon', g from generate_series(1, 5000) g`);
    await env.pg.query(`insert into visits values (20001, 'tue', 1)`);
    await eventually(() => redis.pfcount('hll:tue'), (n) => n === 1, 30_000, 'the last insert applied');
    const mon = await redis.pfcount('hll:mon');
    assert.ok(Math.abs(mon - 10_000) <= 10_000 * 0.0081 * 3, `PFCOUNT ${mon} for 10000 distinct users`);
    const all = await redis.pfcount('hll:all');
    assert.equal(all, mon, 'the same elements give the same estimate');

    await env.pg.query(`delete from visits where user_id <= 5000`);
    await env.pg.query(`insert into visits values (20002, 'wed', 2)`);
    await eventually(() => redis.pfcount('hll:wed'), (n) => n === 1);
    assert.equal(await redis.pfcount('hll:mon'), mon, 'a HyperLogLog cannot forget: deletes change nothing');
    assert.equal(await redis.pfcount('hll:all'), all, 'not even with delete in actions');
    assert.deepEqual(await failureReasons(redis, 'visitors-all'), []);

    // sluice check warns about the sink that lists delete, with its YAML path
    const c = await run(['check', '-c', config]);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    assert.match(c.stdout, /^warn  sinks\[3\]\.actions: a HyperLogLog cannot forget an element/m);
    assert.doesNotMatch(c.stdout, /sinks\[2\]\.actions/);
    const v = await run(['verify', 'visitors', '-c', config]);
    assert.equal(v.code, 2, 'verify does not apply to a HyperLogLog');
  });

  test('bitmap: SETBIT 1 on insert, 0 on delete and on a move (old key and offset); bad offsets are failed messages', async () => {
    await env.pg.query(`insert into sessions values (1, 'mon', 5), (2, 'mon', 9), (3, 'tue', 5)`);
    await eventually(() => redis.bitcount('bits:tue'), (n) => n === 1);
    assert.equal(await redis.bitcount('bits:mon'), 2);
    assert.deepEqual([await redis.getbit('bits:mon', 5), await redis.getbit('bits:mon', 9)], [1, 1]);

    // a new offset: the old bit is cleared (the reverse index knows it: user_id is not the identity)
    await env.pg.query(`update sessions set user_id = 7 where id = 1`);
    await eventually(() => redis.getbit('bits:mon', 7), (b) => b === 1);
    assert.equal(await redis.getbit('bits:mon', 5), 0, 'the old bit is cleared in the same transaction');
    // a new key
    await env.pg.query(`update sessions set day = 'tue' where id = 2`);
    await eventually(() => redis.getbit('bits:tue', 9), (b) => b === 1);
    assert.equal(await redis.getbit('bits:mon', 9), 0);
    // a delete
    await env.pg.query(`delete from sessions where id = 1`);
    await eventually(() => redis.getbit('bits:mon', 7), (b) => b === 0);
    assert.equal(await redis.bitcount('bits:mon'), 0);
    assert.equal(await redis.bitcount('bits:tue'), 2);

    // (no test of the largest offset: Redis would allocate a 512 MB string for it)
    await env.pg.query(`insert into sessions values (10, 'wed', -1), (11, 'wed', 4294967296), (12, 'wed', 1000)`);
    await eventually(() => failureReasons(redis, 'active'), (r) => r.length === 2);
    const reasons = (await failureReasons(redis, 'active')).sort();
    assert.match(reasons[0]!, /offset column "user_id" is "-1", negative/);
    assert.match(reasons[1]!, /offset column "user_id" is "4294967296", too large; a bitmap offset is an integer from 0 to 4294967295/);
    await eventually(() => redis.getbit('bits:wed', 1000), (b) => b === 1);
    // the rows never written are deleted without a failure (the reverse index has no place for them)
    await env.pg.query(`delete from sessions where day = 'wed'`);
    await eventually(() => redis.getbit('bits:wed', 1000), (b) => b === 0);
    assert.equal((await failureReasons(redis, 'active')).length, 2);

    const v = await run(['verify', 'active', '-c', config]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });

  test('stream max_age_ms: entries older than max_age before the newest commit are trimmed (MINID ~, alone and with MAXLEN + XTRIM)', async () => {
    // 300 entries in one transaction: with ~ Redis trims whole nodes, so there must be several
    await env.pg.query(`insert into events select g, 'old' from generate_series(1, 300) g`);
    await eventually(() => redis.xlen('aged'), (n) => n === 300);
    await eventually(() => redis.xlen('aged-capped'), (n) => n === 300);
    const last = await redis.xrevrange('aged', '+', '-', 'COUNT', 1);
    const lastMs = Number(last[0]![0].split('-')[0]);
    // paced on the database's clock (the commit time is Postgres's), not a sleep
    await eventually(
      async () => Number((await env.pg.query(`select (extract(epoch from clock_timestamp()) * 1000)::bigint as ms`)).rows[0].ms),
      (ms) => ms > lastMs + 300 + 50,
      10_000,
      'the clock to pass max_age_ms',
    );
    await env.pg.query(`insert into events values (301, 'new')`);
    for (const key of ['aged', 'aged-capped']) {
      const n = await eventually(() => redis.xlen(key), (len) => len < 300, 10_000, `${key} trimmed`);
      // a node holds at most 100 entries (stream-node-max-entries): only the new entry's node stays
      assert.ok(n <= 100, `${key}: ${n} entries left`);
      const newest = await redis.xrevrange(key, '+', '-', 'COUNT', 1);
      const fields = newest[0]![1];
      assert.deepEqual(JSON.parse(fields[fields.indexOf('record') + 1]!), { id: 301, kind: 'new' }, 'the new entry is kept');
    }
  });

  test('hash: `field` without `mode: field` is field mode', async () => {
    await env.pg.query(`insert into names values (1, 'Ada')`);
    await eventually(() => redis.hget('names', '1'), (v) => v !== null);
    assert.deepEqual(JSON.parse((await redis.hget('names', '1'))!), { id: 1, name: 'Ada' });
    await env.pg.query(`delete from names where id = 1`);
    await eventually(() => redis.hexists('names', '1'), (n) => n === 0);
  });

  test('sluice is still running', () => {
    assert.equal(sluice.running, true, sluice.tail(20));
  });
});

/** The new commands on a Redis Cluster: each is routed to its key's slot; a move across slots is applied in both. */
describe('geo, hyperloglog, bitmap and stream max_age_ms on a Redis Cluster', () => {
  let pg: TestPostgres;
  let cluster: TestRedisCluster;
  let client: Cluster;
  let sluice: ManagedProcess;
  let dir: string;

  before(async () => {
    [pg, cluster] = await Promise.all([startPostgres(), startRedisCluster()]);
    // REPLICA IDENTITY FULL: the old place comes from the WAL, no reverse index (one slot) is needed
    await pg.query(`
      create table places (id int primary key, city text, lon float8, lat float8, day text);
      alter table places replica identity full;`);
    dir = mkdtempSync(join(tmpdir(), 'sluice-cluster-more-'));
    const config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      `source:\n  url: ${pg.url}\nredis:\n  cl:\n    cluster: [${cluster.seedUrls.join(', ')}]\nsinks:
  - name: geo
    type: geo
    tables: [places]
    key: "geo:{city}"
    member: "{pk}"
    longitude: lon
    latitude: lat
  - name: hll
    type: hyperloglog
    tables: [places]
    key: "hll:{day}"
    element: "{pk}"
  - name: bits
    type: bitmap
    tables: [places]
    key: "bits:{city}"
    offset: id
  - name: ev
    type: stream
    tables: [places]
    key: "ev:{day}"
    max_length: 1000
    max_age_ms: 60000
http:\n  port: ${await freePort()}\n`,
    );
    sluice = spawnSluice(['start', '-c', config]);
    await sluice.waitForLine(/sluice started/, 30_000);
    client = cluster.client();
  });

  after(async () => {
    await sluice?.stop(3000);
    await Promise.all([pg?.stop(), cluster?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('writes land in their keys\' slots, and a move clears the old place in another slot', async () => {
    // "geo:berlin"/"geo:paris", "bits:berlin"/"bits:paris", "hll:mon"/"hll:tue" are in different slots
    await pg.query(`insert into places values (1, 'berlin', ${BERLIN[0]}, ${BERLIN[1]}, 'mon'), (2, 'paris', ${PARIS[0]}, ${PARIS[1]}, 'tue')`);
    // each slot's MULTI is atomic on its own: the keys of one transaction show up slot by slot
    await eventually(() => client.getbit('bits:paris', 2), (b) => b === 1, 30_000);
    await eventually(() => near(client, 'geo:berlin', BERLIN), (m) => m.length === 1 && m[0] === '1', 30_000);
    await eventually(() => client.pfcount('hll:mon'), (n) => n === 1, 30_000);
    await eventually(() => client.xlen('ev:tue'), (n) => n === 1, 30_000);

    await pg.query(`update places set city = 'paris', lon = ${PARIS[0]}, lat = ${PARIS[1]}, day = 'tue' where id = 1`);
    await eventually(() => near(client, 'geo:paris', PARIS), (m) => m.length === 2, 30_000);
    await eventually(() => client.exists('geo:berlin'), (n) => n === 0, 30_000, 'the old place, in another slot, is removed');
    await eventually(() => client.getbit('bits:berlin', 1), (b) => b === 0, 30_000);
    await eventually(() => client.getbit('bits:paris', 1), (b) => b === 1, 30_000);
    await eventually(() => client.pfcount('hll:tue'), (n) => n === 2, 30_000);
    await eventually(() => client.xlen('ev:tue'), (n) => n === 2, 30_000, 'XADD MAXLEN and XTRIM MINID in the stream key\'s slot');

    await pg.query(`delete from places where id = 2`);
    await eventually(() => client.getbit('bits:paris', 2), (b) => b === 0, 30_000);
    await eventually(() => near(client, 'geo:paris', PARIS), (m) => m.length === 1 && m[0] === '1', 30_000);
    for (const sink of ['geo', 'hll', 'bits', 'ev']) assert.deepEqual(await failureReasons(client, sink), [], sink);
  });
});
