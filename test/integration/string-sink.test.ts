import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { positionKey } from '../../src/core/keyspace.js';
import type { ManagedProcess } from '../harness/process.js';

describe('string sink, end to end', () => {
  let env: SluiceTestEnv;
  let sluice: ManagedProcess;
  let redis: Redis;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`
      create table everything (
        id bigint primary key, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric,
        t text, vc varchar(10), bp char(3), j json, jb jsonb, ts timestamp, tstz timestamptz, d date, tm time,
        iv interval, u uuid, ba bytea, ia int4[], ta text[], tza timestamptz[], m money, nul text);
      create table composite (tenant text, id int, name text, primary key (tenant, id));
      create table sessions (id int primary key, user_name text);
      create table events (id int primary key, kind text);`);
    env.writeConfig(`  - name: everything
    type: string
    tables: [everything]
  - name: composite
    type: string
    tables: [public.composite]
  - name: sessions
    type: string
    tables: [sessions]
    key: "session:{user_name}:{id}"
    expire_ms: 60000
  - name: events
    type: string
    tables: [events]
    value: message
    actions: [insert, update]`);
    sluice = await env.start();
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  const get = (key: string) => () => redis.get(key);

  test('insert of every §3 type arrives as exactly its JSON', async () => {
    await env.pg.query(`insert into everything values (
      1, true, -32768, 2147483647, 9223372036854775807, 1.5, 0.1, 123456789012345678901234567890.000000001,
      'Lamp "deluxe" ✓ 灯', 'short', 'ab', '{"a": [1, 2]}', '{"b": {"c": null}}', '2026-11-22 11:11:03.123456',
      '2026-11-22 13:11:03.123456+02', '2026-11-22', '11:11:03.5', '1 day 02:00:00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      '\\xdeadbeef', '{1,2,NULL}', '{"a b",NULL,"NULL",""}', '{"2026-01-01 00:00:00+00"}', 12.5, NULL)`);
    const v = await eventually(get('sluice:everything:1'), (x) => x !== null, 15_000, 'key sluice:everything:1');
    assert.equal(
      v,
      '{"id":1,"b":true,"i2":-32768,"i4":2147483647,"i8":9223372036854775807,"f4":1.5,"f8":0.1,' +
        '"n":123456789012345678901234567890.000000001,"t":"Lamp \\"deluxe\\" ✓ 灯","vc":"short","bp":"ab ",' +
        '"j":{"a": [1, 2]},"jb":{"b": {"c": null}},"ts":"2026-11-22T11:11:03.123456","tstz":"2026-11-22T11:11:03.123456Z",' +
        '"d":"2026-11-22","tm":"11:11:03.5","iv":"1 day 02:00:00","u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",' +
        '"ba":"\\\\xdeadbeef","ia":[1,2,null],"ta":["a b",null,"NULL",""],"tza":["2026-01-01T00:00:00Z"],"m":"$12.50","nul":null}',
    );
  });

  test('NaN and infinities are strings; update replaces, delete removes', async () => {
    await env.pg.query(`insert into everything (id, f8, n) values (2, 'NaN', 'Infinity')`);
    const v = await eventually(get('sluice:everything:2'), (x) => x !== null);
    const parsed = JSON.parse(v!) as Record<string, unknown>;
    assert.equal(parsed.f8, 'NaN');
    assert.equal(parsed.n, 'Infinity');
    await env.pg.query(`update everything set t = 'changed' where id = 2`);
    await eventually(get('sluice:everything:2'), (x) => x !== null && (JSON.parse(x) as { t: string }).t === 'changed');
    await env.pg.query(`delete from everything where id = 2`);
    await eventually(get('sluice:everything:2'), (x) => x === null);
  });

  test('composite primary keys are joined with ":"; a key change moves the key', async () => {
    await env.pg.query(`insert into composite values ('acme', 7, 'first')`);
    await eventually(get('sluice:composite:acme:7'), (x) => x === '{"tenant":"acme","id":7,"name":"first"}');
    await env.pg.query(`update composite set id = 8 where tenant = 'acme' and id = 7`);
    await eventually(get('sluice:composite:acme:8'), (x) => x !== null);
    assert.equal(await redis.get('sluice:composite:acme:7'), null);
  });

  test('key templates with columns and TTL', async () => {
    await env.pg.query(`insert into sessions values (1, 'ada')`);
    await eventually(get('session:ada:1'), (x) => x === '{"id":1,"user_name":"ada"}');
    const ttl = await redis.pttl('session:ada:1');
    assert.ok(ttl > 50_000 && ttl <= 60_000, `TTL ${ttl}`);
  });

  test('value: message stores the envelope; actions filter deletes out', async () => {
    await env.pg.query(`insert into events values (1, 'signup')`);
    const v = await eventually(get('sluice:events:1'), (x) => x !== null);
    const msg = JSON.parse(v!) as { record: unknown; action: string; changes: unknown; metadata: Record<string, unknown> };
    assert.deepEqual(msg.record, { id: 1, kind: 'signup' });
    assert.equal(msg.action, 'insert');
    assert.equal(msg.changes, null);
    assert.equal(msg.metadata.table_schema, 'public');
    assert.equal(msg.metadata.table_name, 'events');
    assert.deepEqual(msg.metadata.sink, { name: 'events' });
    assert.match(String(msg.metadata.commit_timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.match(String(msg.metadata.commit_lsn), /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(msg.metadata.commit_idx, 0);
    await env.pg.query(`delete from events where id = 1`);
    await env.pg.query(`insert into events values (2, 'marker')`);
    await eventually(get('sluice:events:2'), (x) => x !== null);
    assert.notEqual(await redis.get('sluice:events:1'), null, 'delete is not in actions: the key stays');
  });

  test('the applied position is stored in Redis and confirmed to Postgres', async () => {
    const pos = await redis.get(positionKey('everything'));
    assert.match(pos ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
    const slot = await env.pg.query(`select confirmed_flush_lsn::text lsn from pg_replication_slots where slot_name = 'sluice'`);
    assert.ok(slot.rows[0]);
    assert.ok(sluice.running);
  });

  test('SIGTERM drains and exits 0', async () => {
    const exit = await sluice.kill('SIGTERM');
    assert.equal(exit.code, 0, sluice.tail(20));
  });
});
