import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import type { ManagedProcess } from '../harness/process.js';

const BIG = 100_000;
const LARGE_TXN_ROWS = 300_000;

/** Peak resident memory of a process, from /proc (VmHWM), in MB. */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

describe('every row arrives exactly as Postgres has it', () => {
  let env: SluiceTestEnv;
  let sluice: ManagedProcess;
  let redis: Redis;
  const get = (key: string) => () => redis.get(key);
  const json = (v: string | null): Record<string, unknown> => JSON.parse(v ?? 'null') as Record<string, unknown>;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`
      create table docs (id int primary key, body text, n int);
      alter table docs alter column body set storage external;
      create table docs_full (id int primary key, body text, n int);
      alter table docs_full alter column body set storage external;
      alter table docs_full replica identity full;
      create table evolve (id int primary key, a int, b text);
      create table trunc (id int primary key, v text);
      create table trunc_free (id int primary key, name text);
      create table keep (id int primary key);
      create table measures (id int, region text, v int, primary key (id, region)) partition by list (region);
      create table measures_eu partition of measures for values in ('eu');
      create table measures_us partition of measures for values in ('us');
      create table big (id int primary key, v text);
      create domain price as numeric(10,2);
      create type mood as enum ('ok', 'happy');
      create table typed (id int primary key, p price, m mood, ms mood[]);`);
    env.writeConfig(`  - name: docs
    type: string
    tables: [docs, docs_full, evolve, trunc, keep, measures, big, typed]
    max_transaction_rows: 20000
  - name: free
    type: string
    tables: [trunc_free]
    key: "{name}:{id}"`);
    sluice = await env.start();
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  for (const table of ['docs', 'docs_full']) {
    test(`unchanged TOASTed values of ${BIG / 1000} KB are never stored as a placeholder (${table})`, async () => {
      // random hex is incompressible enough and, with storage external, always stored out of line
      await env.pg.query(`insert into ${table} select 1, string_agg(md5(g::text), '') , 0 from generate_series(1, ${BIG / 32}) g`);
      const body = ((await env.pg.query(`select body from ${table} where id = 1`)).rows[0] as { body: string }).body;
      assert.equal(body.length, BIG);
      await eventually(get(`sluice:${table}:1`), (v) => v !== null);
      await env.pg.query(`update ${table} set n = 1 where id = 1`); // body unchanged: sent as 'u'
      const v = await eventually(get(`sluice:${table}:1`), (x) => json(x).n === 1);
      assert.equal(json(v).body, body);
      await env.pg.query(`update ${table} set body = 'short' where id = 1`);
      await eventually(get(`sluice:${table}:1`), (x) => json(x).body === 'short');
    });
  }

  test('schema changes while streaming are picked up without a restart', async () => {
    await env.pg.query(`insert into evolve values (1, 1, 'one')`);
    await eventually(get('sluice:evolve:1'), (v) => v === '{"id":1,"a":1,"b":"one"}');
    await env.pg.query(`alter table evolve add column c jsonb default '{"x":1}'; insert into evolve values (2, 2, 'two')`);
    await eventually(get('sluice:evolve:2'), (v) => v === '{"id":2,"a":2,"b":"two","c":{"x": 1}}');
    await env.pg.query(`alter table evolve rename column b to title; insert into evolve values (3, 3, 'three')`);
    await eventually(get('sluice:evolve:3'), (v) => v === '{"id":3,"a":3,"title":"three","c":{"x": 1}}');
    await env.pg.query(`alter table evolve drop column c; alter table evolve alter column a type numeric using a * 1.5; insert into evolve values (4, 4.25, 'four')`);
    await eventually(get('sluice:evolve:4'), (v) => v === '{"id":4,"a":4.25,"title":"four"}');
    await env.pg.query(`update evolve set title = 'uno' where id = 1`);
    await eventually(get('sluice:evolve:1'), (v) => v === '{"id":1,"a":1.5,"title":"uno"}');
  });

  test('TRUNCATE removes the table\'s keys (SCAN + UNLINK under the fixed prefix), and only those', async () => {
    await env.pg.query(`insert into trunc select g, 'v' from generate_series(1, 2500) g; insert into keep values (1)`);
    await eventually(get('sluice:trunc:2500'), (v) => v !== null);
    await eventually(get('sluice:keep:1'), (v) => v !== null);
    await env.pg.query(`begin; insert into trunc values (9999, 'gone'); truncate trunc; insert into trunc values (1, 'after'); commit;`);
    await eventually(get('sluice:trunc:2'), (v) => v === null, 15_000, 'truncated keys removed');
    // the keys are removed before the transaction's MULTI: the row inserted after the TRUNCATE follows
    await eventually(get('sluice:trunc:1'), (v) => v === '{"id":1,"v":"after"}', 15_000, 'the row inserted after the TRUNCATE');
    assert.equal(await redis.get('sluice:trunc:9999'), null);
    assert.notEqual(await redis.get('sluice:keep:1'), null);
  });

  test('TRUNCATE with a key template without a fixed prefix says so in the log', async () => {
    await env.pg.query(`insert into trunc_free values (1, 'ada')`);
    await eventually(get('ada:1'), (v) => v !== null);
    const mark = sluice.mark();
    await env.pg.query(`truncate trunc_free`);
    await sluice.waitForLine(/TRUNCATE cannot be applied: the key template has no fixed prefix/, 15_000, { from: mark });
  });

  test('domains are encoded as their base type, enums as strings', async () => {
    await env.pg.query(`insert into typed values (1, 9.5, 'happy', '{ok,happy}')`);
    await eventually(get('sluice:typed:1'), (v) => v === '{"id":1,"p":9.50,"m":"happy","ms":["ok","happy"]}');
  });

  test('partitioned tables appear under the root table\'s name', async () => {
    await env.pg.query(`insert into measures values (1, 'eu', 10), (1, 'us', 20)`);
    await eventually(get('sluice:measures:1:eu'), (v) => v === '{"id":1,"region":"eu","v":10}');
    await eventually(get('sluice:measures:1:us'), (v) => v === '{"id":1,"region":"us","v":20}');
    assert.equal(await redis.exists('sluice:measures_eu:1:eu'), 0);
  });

  test(`a transaction of ${LARGE_TXN_ROWS / 1000}k rows goes through in chunks with bounded memory`, async () => {
    const mark = sluice.mark();
    await env.pg.query(`insert into big select g, md5(g::text) from generate_series(1, ${LARGE_TXN_ROWS}) g`);
    await eventually(() => redis.exists(`sluice:big:${LARGE_TXN_ROWS}`), (n) => n === 1, 120_000, 'last row of the large transaction');
    await sluice.waitForLine(/large transaction: applying a chunk/, 1000, { from: mark });
    assert.equal(await redis.get('sluice:big:1'), `{"id":1,"v":"${'c4ca4238a0b923820dcc509a6f75849b'}"}`);
    let count = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', 'sluice:big:*', 'COUNT', 5000);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
    assert.equal(count, LARGE_TXN_ROWS);
    const rss = peakRssMb(sluice.pid!);
    assert.ok(rss < 300, `peak RSS ${rss.toFixed(0)} MB`);
  });
});
