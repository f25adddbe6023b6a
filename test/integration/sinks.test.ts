import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { failedKey, reverseIndexKey } from '../../src/core/keyspace.js';
import type { ManagedProcess } from '../harness/process.js';

/** Every sink type but string (string-sink.test.ts), end to end: bin/sluice between a real Postgres and Redis. */
describe('hash, list, set, zset, stream and pubsub sinks, end to end', () => {
  let env: SluiceTestEnv;
  let sluice: ManagedProcess;
  let redis: Redis;
  let subscriber: Redis;
  const published: { channel: string; message: string }[] = [];

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`
      create table products (id int primary key, sku text, name text, price numeric, note text);
      create table orders (id int primary key, customer text, total numeric);
      alter table orders replica identity full; -- the delete's message needs {customer} for its key
      create table tags (id int primary key, article_id int, tag text);
      create table tags_full (id int primary key, article_id int, tag text);
      alter table tags_full replica identity full;
      create table scores (id int primary key, game text, player text, points numeric);
      create table events (id int primary key, kind text);
      create table stream_group (id int primary key, kind text);`);
    env.writeConfig(`  - name: hrow
    type: hash
    tables: [products]
    expire_ms: 60000
  - name: hsku
    type: hash
    tables: [products]
    key: "product:{sku}"
  - name: hfield
    type: hash
    mode: field
    tables: [products]
    key: "products:names"
    field: "{pk}"
    value: record
  - name: feed
    type: list
    tables: [orders]
    key: "feed:{customer}"
    max_length: 3
    actions: [insert, update, delete]
    expire_ms: 60000
  - name: latest
    type: list
    tables: [orders]
    key: "latest"
    push: prepend
    max_length: 2
    value: record
  - name: tags
    type: set
    tables: [tags]
    key: "tag:{tag}"
    member: "{article_id}"
  - name: tagsfull
    type: set
    tables: [tags_full]
    key: "tagf:{tag}"
    member: "{article_id}"
    expire_ms: 60000
  - name: board
    type: zset
    tables: [scores]
    key: "board:{game}"
    member: "{player}"
    score: points
  - name: events
    type: stream
    tables: [events]
    max_length: 50
  - name: grouped
    type: stream
    tables: [stream_group]
    key: "grouped"
  - name: invalidate
    type: pubsub
    tables: [events]
    channel: "inv:{table}:{pk}"`);
    redis = env.redis.client();
    subscriber = env.redis.client();
    subscriber.on('pmessage', (_p: string, channel: string, message: string) => published.push({ channel, message }));
    await subscriber.psubscribe('inv:*');
    await redis.xgroup('CREATE', 'grouped', 'workers', '$', 'MKSTREAM');
    sluice = await env.start();
  });

  after(async () => {
    await env?.stop();
  });

  const hgetall = (key: string) => () => redis.hgetall(key);
  const smembers = (key: string) => async () => (await redis.smembers(key)).sort();

  test('hash row mode: HSET of plain values, NULL columns removed, TTL, key moves, delete', async () => {
    await env.pg.query(`insert into products values (1, 'A1', 'Lamp', 9.50, 'n')`);
    await eventually(hgetall('sluice:products:1'), (h) => h.name === 'Lamp');
    assert.deepEqual(await redis.hgetall('sluice:products:1'), { id: '1', sku: 'A1', name: 'Lamp', price: '9.50', note: 'n' });
    const ttl = await redis.pttl('sluice:products:1');
    assert.ok(ttl > 50_000 && ttl <= 60_000, `TTL ${ttl}`);

    await env.pg.query(`update products set note = null, name = 'Desk' where id = 1`);
    await eventually(hgetall('sluice:products:1'), (h) => h.name === 'Desk');
    assert.deepEqual(await redis.hgetall('sluice:products:1'), { id: '1', sku: 'A1', name: 'Desk', price: '9.50' }, 'the NULL column is gone');

    await env.pg.query(`update products set id = 2 where id = 1`);
    await eventually(hgetall('sluice:products:2'), (h) => h.id === '2');
    assert.equal(await redis.exists('sluice:products:1'), 0, 'the old key is removed in the same transaction');

    await env.pg.query(`delete from products where id = 2`);
    await eventually(() => redis.exists('sluice:products:2'), (n) => n === 0);
  });

  test('hash row mode keyed by a non-identity column: the reverse index moves and deletes it', async () => {
    await env.pg.query(`insert into products values (10, 'K1', 'Chair', 20, null)`);
    await eventually(hgetall('product:K1'), (h) => h.name === 'Chair');
    await env.pg.query(`update products set sku = 'K2' where id = 10`);
    await eventually(hgetall('product:K2'), (h) => h.name === 'Chair');
    assert.equal(await redis.exists('product:K1'), 0, 'moved: the old key is deleted');
    await env.pg.query(`delete from products where id = 10`);
    await eventually(() => redis.exists('product:K2'), (n) => n === 0, 15_000, 'product:K2 deleted');
    assert.equal(await redis.hexists(reverseIndexKey('hsku'), 'public.products:10'), 0, 'the index entry is gone');
  });

  test('hash field mode: HSET key field value, pk move, HDEL on delete', async () => {
    await env.pg.query(`insert into products values (20, 'F1', 'Sofa', 300, null)`);
    await eventually(() => redis.hget('products:names', '20'), (v) => v !== null);
    assert.deepEqual(JSON.parse((await redis.hget('products:names', '20'))!), { id: 20, sku: 'F1', name: 'Sofa', price: 300, note: null });
    await env.pg.query(`update products set id = 21 where id = 20`);
    await eventually(() => redis.hget('products:names', '21'), (v) => v !== null);
    assert.equal(await redis.hexists('products:names', '20'), 0);
    await env.pg.query(`delete from products where id = 21`);
    await eventually(() => redis.hexists('products:names', '21'), (n) => n === 0);
  });

  test('list: append with trimming to the newest, prepend, TTL, delete pushes its message', async () => {
    for (let i = 1; i <= 5; i++) await env.pg.query(`insert into orders values (${i}, 'ada', ${i * 10})`);
    const feed = await eventually(() => redis.lrange('feed:ada', 0, -1), (l) => l.length === 3 && JSON.parse(l[2]!).record.id === 5);
    assert.deepEqual(feed.map((m) => (JSON.parse(m) as { record: { id: number } }).record.id), [3, 4, 5], 'the newest three, oldest first');
    const latest = await eventually(() => redis.lrange('latest', 0, -1), (l) => l.length === 2 && JSON.parse(l[0]!).id === 5);
    assert.deepEqual(latest.map((m) => (JSON.parse(m) as { id: number }).id), [5, 4], 'prepend keeps the newest at the head');
    const ttl = await redis.pttl('feed:ada');
    assert.ok(ttl > 50_000 && ttl <= 60_000, `TTL ${ttl}`);

    await env.pg.query(`update orders set total = 99 where id = 5`);
    await env.pg.query(`delete from orders where id = 5`);
    const after = await eventually(() => redis.lrange('feed:ada', 0, -1), (l) => l.some((m) => JSON.parse(m).action === 'delete'));
    assert.deepEqual(after.map((m) => (JSON.parse(m) as { action: string }).action), ['insert', 'update', 'delete']);
    assert.equal(await redis.llen('latest'), 2, 'latest has actions [insert] only');
  });

  test('set: SADD, a move to another set through the reverse index, SREM on delete', async () => {
    await env.pg.query(`insert into tags values (1, 100, 'red'), (2, 200, 'red'), (3, 100, 'blue')`);
    await eventually(smembers('tag:red'), (m) => m.length === 2);
    assert.deepEqual(await smembers('tag:red')(), ['100', '200']);
    await env.pg.query(`update tags set tag = 'green' where id = 2`);
    await eventually(smembers('tag:green'), (m) => m.length === 1);
    assert.deepEqual(await smembers('tag:red')(), ['100'], 'removed from the old set in the same transaction');
    await env.pg.query(`update tags set article_id = 101 where id = 3`);
    await eventually(smembers('tag:blue'), (m) => m.join() === '101');
    await env.pg.query(`delete from tags where id = 1`);
    await eventually(smembers('tag:red'), (m) => m.length === 0, 15_000, 'tag:red emptied by the delete (the WAL delete carries only the pk)');
  });

  test('set with REPLICA IDENTITY FULL: moves and deletes from the old row, no index', async () => {
    await env.pg.query(`insert into tags_full values (1, 100, 'red'), (2, 200, 'red')`);
    await eventually(smembers('tagf:red'), (m) => m.length === 2);
    await env.pg.query(`update tags_full set tag = 'green' where id = 2`);
    await eventually(smembers('tagf:green'), (m) => m.join() === '200');
    assert.deepEqual(await smembers('tagf:red')(), ['100']);
    await env.pg.query(`delete from tags_full where id = 1`);
    await eventually(() => redis.exists('tagf:red'), (n) => n === 0);
    assert.equal(await redis.exists(reverseIndexKey('tagsfull')), 0, 'no reverse index with REPLICA IDENTITY FULL');
    const ttl = await redis.pttl('tagf:green');
    assert.ok(ttl > 50_000 && ttl <= 60_000, `TTL ${ttl}`);
  });

  test('zset: ZADD with the score column, score update, member and key moves, ZREM on delete, bad score fails', async () => {
    await env.pg.query(`insert into scores values (1, 'chess', 'ada', 1500), (2, 'chess', 'bob', 1400)`);
    await eventually(() => redis.zrange('board:chess', 0, -1, 'WITHSCORES'), (z) => z.length === 4);
    assert.deepEqual(await redis.zrange('board:chess', 0, -1, 'WITHSCORES'), ['bob', '1400', 'ada', '1500']);
    await env.pg.query(`update scores set points = 1600 where id = 2`);
    await eventually(() => redis.zscore('board:chess', 'bob'), (s) => s === '1600');
    await env.pg.query(`update scores set player = 'bobby' where id = 2`);
    await eventually(() => redis.zscore('board:chess', 'bobby'), (s) => s === '1600');
    assert.equal(await redis.zscore('board:chess', 'bob'), null, 'the old member is removed');
    await env.pg.query(`update scores set game = 'go' where id = 1`);
    await eventually(() => redis.zscore('board:go', 'ada'), (s) => s === '1500');
    assert.equal(await redis.zscore('board:chess', 'ada'), null, 'removed from the old key');
    await env.pg.query(`delete from scores where id = 1`);
    await eventually(() => redis.exists('board:go'), (n) => n === 0);

    await env.pg.query(`insert into scores values (3, 'chess', 'eve', null)`);
    await env.pg.query(`insert into scores values (4, 'chess', 'zed', 7)`);
    await eventually(() => redis.zscore('board:chess', 'zed'), (s) => s === '7');
    assert.equal(await redis.zscore('board:chess', 'eve'), null, 'a NULL score is a failed message');
    assert.ok((await redis.keys(`${failedKey('board')}*`)).length > 0, 'the failed message is kept');
  });

  test('stream: XADD of every change with action, record, changes and metadata; MAXLEN ~ trims', async () => {
    await env.pg.query(`insert into events values (1, 'signup')`);
    await env.pg.query(`update events set kind = 'login' where id = 1`);
    await env.pg.query(`delete from events where id = 1`);
    const entries = await eventually(() => redis.xrange('sluice:public.events', '-', '+'), (e) => e.length === 3);
    const fields = entries.map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!])));
    assert.deepEqual(fields.map((f) => f.action), ['insert', 'update', 'delete']);
    assert.deepEqual(JSON.parse(fields[0]!.record!), { id: 1, kind: 'signup' });
    assert.deepEqual(JSON.parse(fields[2]!.record!), { id: 1, kind: null }, 'a delete carries the identity columns');
    const meta = JSON.parse(fields[0]!.metadata!) as Record<string, unknown>;
    assert.equal(meta.table_name, 'events');
    assert.deepEqual(meta.sink, { name: 'events' });
    assert.equal(fields[0]!.changes, 'null');

    await env.pg.query(`insert into events select g, 'bulk' from generate_series(100, 399) g`);
    const len = await eventually(() => redis.xlen('sluice:public.events'), (n) => n < 303 && n >= 50, 15_000, 'stream trimmed');
    assert.ok(len >= 50, `XLEN ${len}`);
    await eventually(() => redis.xrevrange('sluice:public.events', '+', '-', 'COUNT', 1), (e) => e.length === 1 && JSON.parse(e[0]![1][3]!).id === 399);
  });

  test('stream consumed by a consumer group: XREADGROUP then XACK', async () => {
    await env.pg.query(`insert into stream_group values (1, 'a'), (2, 'b')`);
    await env.pg.query(`update stream_group set kind = 'c' where id = 2`);
    const seen: { id: string; action: string; record: unknown }[] = [];
    await eventually(
      async () => {
        const r = (await redis.xreadgroup('GROUP', 'workers', 'w1', 'COUNT', 10, 'STREAMS', 'grouped', '>')) as [string, [string, string[]][]][] | null;
        for (const [, entries] of r ?? []) {
          for (const [id, f] of entries) seen.push({ id, action: f[f.indexOf('action') + 1]!, record: JSON.parse(f[f.indexOf('record') + 1]!) });
        }
        return seen.length;
      },
      (n) => n >= 3,
    );
    assert.deepEqual(seen.map((s) => [s.action, s.record]), [
      ['insert', { id: 1, kind: 'a' }],
      ['insert', { id: 2, kind: 'b' }],
      ['update', { id: 2, kind: 'c' }],
    ]);
    assert.equal(((await redis.xpending('grouped', 'workers')) as [number])[0], 3);
    assert.equal(await redis.xack('grouped', 'workers', ...seen.map((s) => s.id)), 3);
    assert.equal(((await redis.xpending('grouped', 'workers')) as [number])[0], 0);
  });

  test('pubsub: a connected subscriber receives insert, update and delete messages', async () => {
    published.length = 0;
    await env.pg.query(`insert into events values (500, 'x')`);
    await env.pg.query(`update events set kind = 'y' where id = 500`);
    await env.pg.query(`delete from events where id = 500`);
    await eventually(async () => published.filter((p) => p.channel === 'inv:events:500').length, (n) => n === 3);
    const msgs = published.filter((p) => p.channel === 'inv:events:500').map((p) => JSON.parse(p.message) as { action: string; record: { kind: string | null } });
    assert.deepEqual(msgs.map((m) => [m.action, m.record.kind]), [['insert', 'x'], ['update', 'y'], ['delete', null]]);
  });

  test('SIGTERM drains and exits 0', async () => {
    const exit = await sluice.kill('SIGTERM');
    assert.equal(exit.code, 0, sluice.tail(20));
  });
});
