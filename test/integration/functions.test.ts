import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { failedKey } from '../../src/core/keyspace.js';
import { spawnSluice } from '../harness/process.js';

describe('sink functions, end to end', () => {
  let env: SluiceTestEnv;
  let redis: Redis;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`
      create table products (id int primary key, name text, price numeric, active bool);
      create table items (id int primary key, label text);
      create table seeded (id int primary key, label text);
      insert into seeded select g, 'row ' || g from generate_series(1, 50) g;`);
    mkdirSync(join(env.dir, 'functions'));
    writeFileSync(
      join(env.dir, 'functions', 'route.ts'),
      `export function route(action: string, record: { id: number }): { key: string; expire_ms: number } {
         return { key: \`product:\${record.id}\`, expire_ms: 60000 };
       }`,
    );
    env.writeConfig(`  - name: products
    type: string
    tables: [products]
    filter: "record.active === true"
    transform: |
      function transform(action, record, changes, metadata) {
        return { name: record.name, price: record.price };
      }
    route: ./functions/route.ts
  - name: items
    type: string
    tables: [items]
    transform: |
      function transform(action: string, record: { id: number; label: string }) {
        if (record.id === 2) throw new Error('bad row ' + record.id);
        return record.label;
      }
  - name: seeded
    type: string
    tables: [seeded]
    backfill: true
    filter: "record.id % 2 === 0"
    transform: "function transform(action, record) { return action + ':' + record.label.toUpperCase() }"`);
    await env.start();
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  const get = (key: string) => () => redis.get(key);

  test('filter drops inactive rows; transform stores {name, price}; route sets the key and expire_ms', async () => {
    await env.pg.query(`insert into products values (1, 'Lamp', 9.50, true), (2, 'Desk', 120, false)`);
    await env.pg.query(`insert into products values (3, 'Chair', 45, true)`);
    assert.equal(await eventually(get('product:3'), (v) => v !== null), '{"name":"Chair","price":45}');
    assert.equal(await redis.get('product:1'), '{"name":"Lamp","price":9.5}');
    assert.equal(await redis.get('product:2'), null, 'the inactive row is filtered out');
    assert.equal(await redis.get('sluice:products:1'), null, 'route replaced the default key');
    const ttl = await redis.pttl('product:1');
    assert.ok(ttl > 0 && ttl <= 60000, `PTTL ${ttl}`);
    await env.pg.query(`update products set price = 8 where id = 1`);
    await eventually(get('product:1'), (v) => v === '{"name":"Lamp","price":8}');
  });

  test('a transform that throws fails that row only: it lands in sluice:failed:<sink> with the reason', async () => {
    await env.pg.query(`begin; insert into items values (1, 'one'), (2, 'two'), (3, 'three'); commit;`);
    await env.pg.query(`insert into items values (4, 'four')`);
    await eventually(get('sluice:items:4'), (v) => v === 'four');
    assert.equal(await redis.get('sluice:items:1'), 'one');
    assert.equal(await redis.get('sluice:items:3'), 'three');
    assert.equal(await redis.get('sluice:items:2'), null);
    const failed = await redis.hgetall(failedKey('items'));
    const entries = Object.values(failed).map((v) => JSON.parse(v) as { reason: string; action: string; table: string; message: { record: { id: number } } });
    assert.equal(entries.length, 1, JSON.stringify(failed));
    assert.equal(entries[0]!.reason, 'transform threw: Error: bad row 2');
    assert.equal(entries[0]!.table, 'public.items');
    assert.equal(entries[0]!.message.record.id, 2);
  });

  test('backfilled rows go through the functions too', async () => {
    await eventually(get('sluice:seeded:50'), (v) => v !== null, 30_000, 'the backfill');
    assert.equal(await redis.get('sluice:seeded:50'), 'read:ROW 50');
    assert.equal(await redis.get('sluice:seeded:2'), 'read:ROW 2');
    assert.equal(await redis.get('sluice:seeded:1'), null, 'odd rows are filtered out');
    assert.equal((await redis.keys('sluice:seeded:*')).length, 25);
  });

  test('sluice check reports an unusable function with its sink', async () => {
    const path = join(env.dir, 'bad.yaml');
    writeFileSync(
      path,
      `source:\n  url: ${env.pg.url}\nredis:\n  main:\n    url: ${env.redis.url}\nsinks:\n  - name: broken\n    type: string\n    tables: [items]\n    transform: "function transform(a, r) { return r. }"\n  - name: importer\n    type: string\n    tables: [items]\n    route: ./functions/missing.ts\nhttp:\n  port: 0\n`,
    );
    const p = spawnSluice(['check', '-c', path]);
    const exit = await p.exited;
    const stderr = p.stderr.join('\n');
    assert.equal(exit.code, 1, stderr);
    assert.match(stderr, /sinks\[0\]: sink "broken": transform: syntax error at line 1, column 38: Expected identifier but found "}"/);
    assert.match(stderr, /sinks\[1\]: sink "importer": route: cannot read \.\/functions\/missing\.ts \(.*functions\/missing\.ts\): file not found/);
  });
});
