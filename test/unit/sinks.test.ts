import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { messageJson, recordJson } from '../../src/core/render.js';
import { sinkSchema, type SinkConfig } from '../../src/config/schema.js';
import { createSink } from '../../src/sinks/index.js';
import { createHashSink } from '../../src/sinks/hash-sink.js';
import { createListSink } from '../../src/sinks/list-sink.js';
import { createSetSink } from '../../src/sinks/set-sink.js';
import { createZsetSink } from '../../src/sinks/zset-sink.js';
import { createStreamSink } from '../../src/sinks/stream-sink.js';
import { createPubsubSink } from '../../src/sinks/pubsub-sink.js';
import { metadataJson } from '../../src/core/render.js';
import { encodeEntry, REVERSE_INDEX_SCRIPT } from '../../src/sinks/reverse-index.js';
import { brief, del, insert, META, plan, read, table, update } from './support/sink-fixtures.js';

const MAX = 16 * 1024 * 1024;

const products = table('public.products', [
  ['id', 'int4', true],
  ['sku', 'text'],
  ['name', 'text'],
  ['price', 'numeric'],
  ['tags', 'textArray'],
  ['active', 'bool'],
  ['note', 'text'],
]);
const productsFull = table(
  'public.products',
  products.columns.map((c) => [c.name, c.typeOid === 23 ? 'int4' : c.typeOid === 25 ? 'text' : c.typeOid === 1700 ? 'numeric' : c.typeOid === 1009 ? 'textArray' : 'bool', c.isKey]),
  'f',
);
const lamp = { id: '1', sku: 'A1', name: 'Lamp', price: '9.50', tags: '{a,b}', active: 't', note: null };
const longName = 'x'.repeat(600);

describe('hash sink, row mode', () => {
  const sink = createHashSink({ name: 'hr', mode: 'row', key: 'sluice:{table}:{pk}', maxValueBytes: MAX });

  test('insert: HSET every column as its plain §3 value, HDEL the NULL ones', () => {
    const { commands, failures } = plan(sink, insert(products, lamp));
    assert.deepEqual(failures, []);
    assert.deepEqual(commands, [
      ['HSET', 'sluice:products:1', 'id', '1', 'sku', 'A1', 'name', 'Lamp', 'price', '9.50', 'tags', '["a","b"]', 'active', 'true'],
      ['HDEL', 'sluice:products:1', 'note'],
    ]);
  });

  test('update in place: the same commands, nothing removed', () => {
    const { commands } = plan(sink, update(products, { ...lamp, name: 'Desk', note: 'n' }));
    assert.deepEqual(commands, [['HSET', 'sluice:products:1', 'id', '1', 'sku', 'A1', 'name', 'Desk', 'price', '9.50', 'tags', '["a","b"]', 'active', 'true', 'note', 'n']]);
  });

  test('an unchanged TOASTed column Postgres did not send is left as Redis holds it', () => {
    const { commands } = plan(sink, update(products, { ...lamp, name: undefined }));
    assert.deepEqual(commands[0], ['HSET', 'sluice:products:1', 'id', '1', 'sku', 'A1', 'price', '9.50', 'tags', '["a","b"]', 'active', 'true']);
  });

  test('update that moves the key (primary key changed, K old tuple): DEL the old key first', () => {
    const { commands } = plan(sink, update(products, { ...lamp, id: '2' }, { id: '1' }));
    assert.deepEqual(commands[0], ['DEL', 'sluice:products:1']);
    assert.equal(commands[1]![1], 'sluice:products:2');
  });

  test('delete: DEL key', () => {
    assert.deepEqual(plan(sink, del(products, { id: '1' })).commands, [['DEL', 'sluice:products:1']]);
  });

  test('expire_ms: PEXPIRE after the writes; route expire_ms wins', () => {
    const ttl = createHashSink({ name: 'hr', mode: 'row', key: 'p:{pk}', expireMs: 60_000, maxValueBytes: MAX });
    assert.deepEqual(plan(ttl, insert(products, lamp)).commands.at(-1), ['PEXPIRE', 'p:1', '60000']);
    assert.deepEqual(plan(ttl, insert(products, lamp), { route: { expire_ms: 5 } }).commands.at(-1), ['PEXPIRE', 'p:1', '5']);
  });

  test('transform value: its properties become the fields (null removes); anything but an object fails', () => {
    const { commands } = plan(sink, insert(products, lamp), { value: '{"name":"Lamp","price":9.5,"meta":{"a":1},"gone":null}' });
    assert.deepEqual(commands, [
      ['HSET', 'sluice:products:1', 'name', 'Lamp', 'price', '9.5', 'meta', '{"a":1}'],
      ['HDEL', 'sluice:products:1', 'gone'],
    ]);
    const bad = plan(sink, insert(products, lamp), { value: 'just text' });
    assert.deepEqual(bad.commands, []);
    assert.match(bad.failures[0]!, /row mode needs transform to return an object/);
  });

  test('route key and action replace the template and the action', () => {
    assert.equal(plan(sink, insert(products, lamp), { route: { key: 'custom' } }).commands[0]![1], 'custom');
    assert.deepEqual(plan(sink, update(products, lamp), { route: { action: 'delete' } }).commands, [['DEL', 'sluice:products:1']]);
  });

  test('a key over 512 bytes fails the message and plans nothing', () => {
    const long = createHashSink({ name: 'hr', mode: 'row', key: 'p:{name}', maxValueBytes: MAX });
    const r = plan(long, insert(productsFull, { ...lamp, name: longName }));
    assert.deepEqual(r.commands, []);
    assert.match(r.failures[0]!, /limit is 512/);
  });

  test('a value over max_value_bytes fails the message', () => {
    const small = createHashSink({ name: 'hr', mode: 'row', key: 'p:{pk}', maxValueBytes: 100 });
    const r = plan(small, insert(products, { ...lamp, name: longName }));
    assert.deepEqual(r.commands, []);
    assert.match(r.failures[0]!, /max_value_bytes/);
  });

  describe('key from a non-identity column', () => {
    const bySku = createHashSink({ name: 'hr', mode: 'row', key: 'product:{sku}', maxValueBytes: MAX });

    test('default replica identity: the reverse index keeps pk → key (EVAL before the writes)', () => {
      const { commands } = plan(bySku, update(products, { ...lamp, sku: 'B2' }));
      assert.deepEqual(brief(commands)[0], ['EVAL', '<script>', '2', 'sluice:idx:hr', 'product:B2', 'public.products:1', 'public.products:1', 'DEL', encodeEntry('product:B2', '')]);
      assert.equal(commands[0]![1], REVERSE_INDEX_SCRIPT);
      assert.equal(commands[1]![0], 'HSET');
    });

    test('default replica identity: a delete removes what the index recorded for the pk', () => {
      assert.deepEqual(brief(plan(bySku, del(products, { id: '1' })).commands), [['EVAL', '<script>', '1', 'sluice:idx:hr', 'public.products:1', '', 'DEL', '']]);
    });

    test('a primary key change looks the entry up under the old pk', () => {
      const { commands } = plan(bySku, update(products, { ...lamp, id: '2' }, { id: '1' }));
      assert.deepEqual(brief(commands)[0]!.slice(5, 7), ['public.products:1', 'public.products:2']);
    });

    test('REPLICA IDENTITY FULL: the old row is known, no index (DEL old key, then HSET)', () => {
      const { commands } = plan(bySku, update(productsFull, { ...lamp, sku: 'B2' }, { ...lamp }, true));
      assert.deepEqual(commands[0], ['DEL', 'product:A1']);
      assert.equal(commands[1]![1], 'product:B2');
      assert.ok(commands.every((c) => c[0] !== 'EVAL'));
      assert.deepEqual(plan(bySku, del(productsFull, lamp, true)).commands, [['DEL', 'product:A1']]);
    });

    test('REPLICA IDENTITY FULL, key unchanged: no removal', () => {
      const { commands } = plan(bySku, update(productsFull, { ...lamp, name: 'Desk' }, { ...lamp }, true));
      assert.equal(commands[0]![0], 'HSET');
    });
  });
});

describe('hash sink, field mode', () => {
  const sink = createHashSink({ name: 'hf', mode: 'field', key: 'products', field: '{pk}', value: 'record', maxValueBytes: MAX });

  test('insert: HSET key field record; delete: HDEL key field', () => {
    assert.deepEqual(plan(sink, insert(products, lamp)).commands, [['HSET', 'products', '1', recordJson(products, insert(products, lamp).row)]]);
    assert.deepEqual(plan(sink, del(products, { id: '1' })).commands, [['HDEL', 'products', '1']]);
  });

  test('value: message stores the envelope', () => {
    const msg = createHashSink({ name: 'hf', mode: 'field', key: 'products', field: '{pk}', value: 'message', maxValueBytes: MAX });
    const c = insert(products, lamp);
    assert.deepEqual(plan(msg, c).commands, [['HSET', 'products', '1', messageJson(c, { ...META, sinkName: 'hf' })]]);
  });

  test('a field that moves (pk changed) is removed from the old place: HDEL old field', () => {
    const { commands } = plan(sink, update(products, { ...lamp, id: '2' }, { id: '1' }));
    assert.deepEqual(commands[0], ['HDEL', 'products', '1']);
    assert.deepEqual(commands[1]!.slice(0, 3), ['HSET', 'products', '2']);
  });

  test('key and field moved together, whole old row known (FULL)', () => {
    const byName = createHashSink({ name: 'hf', mode: 'field', key: 'by-sku:{sku}', field: '{name}', value: 'record', maxValueBytes: MAX });
    const { commands } = plan(byName, update(productsFull, { ...lamp, sku: 'B2', name: 'Desk' }, lamp, true));
    assert.deepEqual(commands[0], ['HDEL', 'by-sku:A1', 'Lamp']);
    assert.deepEqual(commands[1]!.slice(0, 3), ['HSET', 'by-sku:B2', 'Desk']);
  });

  test('expire_ms: PEXPIRE on the key; route field and transform value', () => {
    const ttl = createHashSink({ name: 'hf', mode: 'field', key: 'products', field: '{pk}', value: 'record', expireMs: 1000, maxValueBytes: MAX });
    assert.deepEqual(plan(ttl, insert(products, lamp), { value: 'v', route: { field: 'f' } }).commands, [
      ['HSET', 'products', 'f', 'v'],
      ['PEXPIRE', 'products', '1000'],
    ]);
  });

  test('a field from a non-identity column uses the reverse index, with HDEL as the removal', () => {
    const byName = createHashSink({ name: 'hf', mode: 'field', key: 'names', field: '{name}', value: 'record', maxValueBytes: MAX });
    assert.deepEqual(brief(plan(byName, insert(products, lamp)).commands)[0], ['EVAL', '<script>', '2', 'sluice:idx:hf', 'names', 'public.products:1', 'public.products:1', 'HDEL', encodeEntry('names', 'Lamp')]);
    assert.deepEqual(brief(plan(byName, del(products, { id: '1' })).commands), [['EVAL', '<script>', '1', 'sluice:idx:hf', 'public.products:1', '', 'HDEL', '']]);
  });
});

describe('list sink', () => {
  const base = { name: 'feed', key: 'feed:{sku}', value: 'message' as const, maxValueBytes: MAX };

  test('append: RPUSH then LTRIM keeping the newest max_length (at the tail)', () => {
    const sink = createListSink({ ...base, push: 'append', maxLength: 100 });
    const c = insert(products, lamp);
    assert.deepEqual(plan(sink, c).commands, [
      ['RPUSH', 'feed:A1', messageJson(c, { ...META, sinkName: 'feed' })],
      ['LTRIM', 'feed:A1', '-100', '-1'],
    ]);
  });

  test('prepend: LPUSH then LTRIM 0 max-1; expire_ms: PEXPIRE', () => {
    const sink = createListSink({ ...base, push: 'prepend', maxLength: 10, expireMs: 500 });
    const cmds = plan(sink, insert(products, lamp)).commands;
    assert.deepEqual(cmds.map((c) => c[0]), ['LPUSH', 'LTRIM', 'PEXPIRE']);
    assert.deepEqual(cmds[1], ['LTRIM', 'feed:A1', '0', '9']);
    assert.deepEqual(cmds[2], ['PEXPIRE', 'feed:A1', '500']);
  });

  test('no max_length: no LTRIM; update and delete push their message too (no moves)', () => {
    const sink = createListSink({ ...base, key: 'feed', push: 'append' });
    const u = plan(sink, update(products, { ...lamp, id: '2' }, { id: '1' })).commands;
    assert.equal(u.length, 1);
    assert.equal(JSON.parse(u[0]![2]!).action, 'update');
    const d = plan(sink, del(products, { id: '1' })).commands;
    assert.equal(d.length, 1);
    assert.equal(JSON.parse(d[0]![2]!).action, 'delete');
  });

  test('value: record pushes the row; transform value and route action/key are honoured', () => {
    const rec = createListSink({ ...base, key: 'feed', push: 'append', value: 'record' });
    const c = insert(products, lamp);
    assert.deepEqual(plan(rec, c).commands, [['RPUSH', 'feed', recordJson(products, c.row)]]);
    const sink = createListSink({ ...base, key: 'feed', push: 'append' });
    assert.deepEqual(plan(sink, c, { value: 'x', route: { key: 'other' } }).commands, [['RPUSH', 'other', 'x']]);
    assert.equal(JSON.parse(plan(sink, c, { route: { action: 'delete' } }).commands[0]![2]!).action, 'delete');
  });

  test('a delete without the key\'s column (not REPLICA IDENTITY FULL) fails with the fix in the reason', () => {
    const r = plan(createListSink({ ...base, push: 'append' }), del(products, { id: '1' }));
    assert.deepEqual(r.commands, []);
    assert.match(r.failures[0]!, /"sku" is NULL.*a delete carries only the replica identity columns.*REPLICA IDENTITY FULL on public.products/);
    assert.equal(plan(createListSink({ ...base, push: 'append' }), del(productsFull, lamp, true)).commands.length, 1);
  });

  test('NULL key column fails the message', () => {
    const r = plan(createListSink({ ...base, push: 'append' }), insert(products, { ...lamp, sku: null }));
    assert.deepEqual(r.commands, []);
    assert.match(r.failures[0]!, /"sku" is NULL/);
  });
});

describe('set sink', () => {
  const sink = createSetSink({ name: 'tags', key: 'cat:{sku}', member: '{pk}' });

  test('insert: SADD; delete: SREM', () => {
    assert.deepEqual(plan(sink, insert(productsFull, lamp)).commands, [['SADD', 'cat:A1', '1']]);
    assert.deepEqual(plan(sink, del(productsFull, lamp, true)).commands, [['SREM', 'cat:A1', '1']]);
  });

  test('key from a non-identity column, REPLICA IDENTITY FULL: a move SREMs from the old set', () => {
    const { commands } = plan(sink, update(productsFull, { ...lamp, sku: 'B2' }, lamp, true));
    assert.deepEqual(commands, [
      ['SREM', 'cat:A1', '1'],
      ['SADD', 'cat:B2', '1'],
    ]);
  });

  test('identity-only templates: a pk change (K) moves the member, no index', () => {
    const byPk = createSetSink({ name: 'ids', key: 'ids:{table}', member: '{id}' });
    assert.deepEqual(plan(byPk, update(products, { ...lamp, id: '2' }, { id: '1' })).commands, [
      ['SREM', 'ids:products', '1'],
      ['SADD', 'ids:products', '2'],
    ]);
    assert.deepEqual(plan(byPk, update(products, { ...lamp, name: 'x' })).commands, [['SADD', 'ids:products', '1']]);
    assert.deepEqual(plan(byPk, del(products, { id: '1' })).commands, [['SREM', 'ids:products', '1']]);
  });

  test('key from a non-identity column, default identity: the reverse index', () => {
    assert.deepEqual(brief(plan(sink, insert(products, lamp)).commands), [
      ['EVAL', '<script>', '2', 'sluice:idx:tags', 'cat:A1', 'public.products:1', 'public.products:1', 'SREM', encodeEntry('cat:A1', '1')],
      ['SADD', 'cat:A1', '1'],
    ]);
    assert.deepEqual(brief(plan(sink, del(products, { id: '1' })).commands), [['EVAL', '<script>', '1', 'sluice:idx:tags', 'public.products:1', '', 'SREM', '']]);
  });

  test('route member, transform value as member, TTL', () => {
    const ttl = createSetSink({ name: 's', key: 'ids', member: '{pk}', expireMs: 9 });
    assert.deepEqual(plan(ttl, insert(products, lamp), { route: { member: 'm' } }).commands, [['SADD', 'ids', 'm'], ['PEXPIRE', 'ids', '9']]);
    assert.deepEqual(plan(ttl, insert(products, lamp), { value: 'v' }).commands[0], ['SADD', 'ids', 'v']);
  });

  test('NULL member column fails the message, planning nothing', () => {
    const byNote = createSetSink({ name: 's', key: 'notes', member: '{note}' });
    const r = plan(byNote, insert(products, lamp));
    assert.deepEqual(r.commands, []);
    assert.match(r.failures[0]!, /"note" is NULL/);
  });

  test('a route that turns an update into a delete removes the row from where it is', () => {
    assert.deepEqual(plan(sink, update(productsFull, lamp, lamp, true), { route: { action: 'delete' } }).commands, [['SREM', 'cat:A1', '1']]);
    // with the index: the recorded place, and the place the full row gives
    assert.deepEqual(brief(plan(sink, update(products, lamp), { route: { action: 'delete' } }).commands), [
      ['EVAL', '<script>', '1', 'sluice:idx:tags', 'public.products:1', '', 'SREM', ''],
      ['SREM', 'cat:A1', '1'],
    ]);
  });
});

describe('zset sink', () => {
  const scores = table('public.scores', [
    ['id', 'int4', true],
    ['game', 'text'],
    ['player', 'text'],
    ['points', 'numeric'],
    ['label', 'text'],
  ], 'f');
  const s1 = { id: '1', game: 'chess', player: 'ada', points: '1500.5', label: 'x' };
  const sink = createZsetSink({ name: 'board', key: 'board:{game}', member: '{player}', score: 'points' });

  test('insert: ZADD key score member; delete: ZREM key member', () => {
    assert.deepEqual(plan(sink, insert(scores, s1)).commands, [['ZADD', 'board:chess', '1500.5', 'ada']]);
    assert.deepEqual(plan(sink, del(scores, s1, true)).commands, [['ZREM', 'board:chess', 'ada']]);
  });

  test('a score change alone: just ZADD (it updates the score)', () => {
    assert.deepEqual(plan(sink, update(scores, { ...s1, points: '1600' }, s1, true)).commands, [['ZADD', 'board:chess', '1600', 'ada']]);
  });

  test('member or key moved: ZREM the old member from the old key', () => {
    assert.deepEqual(plan(sink, update(scores, { ...s1, game: 'go', player: 'bob' }, s1, true)).commands, [
      ['ZREM', 'board:chess', 'ada'],
      ['ZADD', 'board:go', '1500.5', 'bob'],
    ]);
  });

  test('a non-numeric, NaN or NULL score fails the message; ±Infinity become ±inf', () => {
    const byLabel = createZsetSink({ name: 'board', key: 'b', member: '{player}', score: 'label' });
    for (const [sk, values, re] of [
      [byLabel, s1, /score column "label" is "x", not a number/],
      [sink, { ...s1, points: 'NaN' }, /"NaN", not a number/],
      [sink, { ...s1, points: null }, /score column "points" is NULL/],
    ] as const) {
      const r = plan(sk, insert(scores, values));
      assert.deepEqual(r.commands, []);
      assert.match(r.failures[0]!, re);
    }
    assert.equal(plan(sink, insert(scores, { ...s1, points: 'Infinity' })).commands[0]![2], '+inf');
    assert.equal(plan(sink, insert(scores, { ...s1, points: '-Infinity' })).commands[0]![2], '-inf');
    const missing = plan(createZsetSink({ name: 'b', key: 'b', member: '{player}', score: 'nope' }), insert(scores, s1));
    assert.match(missing.failures[0]!, /"nope" is not in table public.scores/);
  });

  test('route score and member; TTL', () => {
    const ttl = createZsetSink({ name: 'board', key: 'board:{game}', member: '{player}', score: 'points', expireMs: 7 });
    assert.deepEqual(plan(ttl, insert(scores, s1), { route: { score: 3, member: 'm' } }).commands, [
      ['ZADD', 'board:chess', '3', 'm'],
      ['PEXPIRE', 'board:chess', '7'],
    ]);
  });

  test('default identity with templates from other columns: the reverse index supplies the old member', () => {
    const scoresD = { ...scores, replicaIdentity: 'd' as const };
    assert.deepEqual(brief(plan(sink, update(scoresD, { ...s1, player: 'bob' })).commands), [
      ['EVAL', '<script>', '2', 'sluice:idx:board', 'board:chess', 'public.scores:1', 'public.scores:1', 'ZREM', encodeEntry('board:chess', 'bob')],
      ['ZADD', 'board:chess', '1500.5', 'bob'],
    ]);
    assert.deepEqual(brief(plan(sink, del(scoresD, { id: '1' })).commands), [['EVAL', '<script>', '1', 'sluice:idx:board', 'public.scores:1', '', 'ZREM', '']]);
  });
});

describe('stream sink', () => {
  const sink = createStreamSink({ name: 'events', key: 'sluice:{schema}.{table}', maxValueBytes: MAX });

  test('insert: XADD key * action record changes metadata', () => {
    const c = insert(products, lamp);
    const meta = { ...META, sinkName: 'events' };
    assert.deepEqual(plan(sink, c).commands, [
      ['XADD', 'sluice:public.products', '*', 'action', 'insert', 'record', recordJson(products, c.row), 'changes', 'null', 'metadata', metadataJson(c, meta)],
    ]);
  });

  test('metadata is exactly the envelope\'s', () => {
    const c = update(productsFull, { ...lamp, name: 'Desk' }, lamp, true);
    const meta = { ...META, sinkName: 'events' };
    const cmd = plan(sink, c).commands[0]!;
    const field = (name: string) => cmd[cmd.indexOf(name) + 1]!;
    assert.equal(`{"record":${field('record')},"changes":${field('changes')},"action":"${field('action')}","metadata":${field('metadata')}}`, messageJson(c, meta));
    assert.equal(field('changes'), '{"name":"Lamp"}');
  });

  test('delete: XADD with action delete; MAXLEN ~ n; expire_ms', () => {
    const trimmed = createStreamSink({ name: 'events', key: 'ev', maxLength: 1000, expireMs: 10, maxValueBytes: MAX });
    const cmds = plan(trimmed, del(products, { id: '1' })).commands;
    assert.deepEqual(cmds[0]!.slice(0, 8), ['XADD', 'ev', 'MAXLEN', '~', '1000', '*', 'action', 'delete']);
    assert.deepEqual(cmds[1], ['PEXPIRE', 'ev', '10']);
  });

  test('transform value replaces record and leaves changes out; route key and action', () => {
    const cmd = plan(sink, insert(products, lamp), { value: '{"n":1}', route: { key: 'k', action: 'update' } }).commands[0]!;
    assert.deepEqual(cmd.slice(0, 8), ['XADD', 'k', '*', 'action', 'update', 'record', '{"n":1}', 'metadata']);
  });

  test('a key over 512 bytes fails', () => {
    const r = plan(createStreamSink({ name: 'e', key: 's:{name}', maxValueBytes: MAX }), insert(products, { ...lamp, name: longName }));
    assert.deepEqual(r.commands, []);
    assert.equal(r.failures.length, 1);
  });
});

describe('pubsub sink', () => {
  const sink = createPubsubSink({ name: 'inv', channel: 'sluice:{table}:{pk}', value: 'message', maxValueBytes: MAX });

  test('insert, update and delete: PUBLISH channel message', () => {
    for (const c of [insert(products, lamp), update(products, lamp), del(products, { id: '1' })]) {
      const cmds = plan(sink, c).commands;
      assert.deepEqual(cmds, [['PUBLISH', 'sluice:products:1', messageJson(c, { ...META, sinkName: 'inv' })]]);
    }
  });

  test('route channel, transform value, value: record', () => {
    assert.deepEqual(plan(sink, insert(products, lamp), { value: 'v', route: { channel: 'c' } }).commands, [['PUBLISH', 'c', 'v']]);
    const rec = createPubsubSink({ name: 'inv', channel: 'ch', value: 'record', maxValueBytes: MAX });
    const c = insert(products, lamp);
    assert.deepEqual(plan(rec, c).commands, [['PUBLISH', 'ch', recordJson(products, c.row)]]);
  });

  test('expire_ms is refused (nothing to expire)', () => {
    const cfg = sinkSchema.parse({ name: 'p', type: 'pubsub', tables: ['t'], expire_ms: 5 }) as SinkConfig;
    assert.throws(() => createSink(cfg), /expire_ms does not apply to pubsub/);
  });
});

describe('createSink', () => {
  test('builds every sink type from its config', () => {
    const configs = [
      { type: 'string' },
      { type: 'hash' },
      { type: 'hash', mode: 'field', field: '{pk}' },
      { type: 'list', key: 'l' },
      { type: 'set', key: 's', member: '{pk}' },
      { type: 'zset', key: 'z', member: '{pk}', score: 'id' },
      { type: 'stream' },
      { type: 'pubsub' },
    ];
    for (const c of configs) {
      const sink = createSink(sinkSchema.parse({ name: 'x', tables: ['t'], ...c }) as SinkConfig);
      assert.equal(sink.type, c.type);
      assert.equal(plan(sink, read(products, lamp)).failures.length, 0, c.type);
    }
  });
});
