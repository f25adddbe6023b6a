// parseSinkBlock: one sink given to the HTTP API as JSON, checked like a sink of sluice.yaml.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigProblem } from '../../src/config/errors.js';
import { parseSinkBlock, type SinkConfig } from '../../src/config/sink-block.js';
import { at } from '../support/at.js';
import { SINK_TYPES } from '../../src/config/sink-schema.js';

const ONE = { redisNames: ['cache'] };
const TWO = { redisNames: ['cache', 'queue'] };

function ok(input: unknown, ctx = ONE): SinkConfig {
  const r = parseSinkBlock(input, ctx);
  if (!r.ok) assert.fail(`expected a valid block, got:\n${r.problems.map((p) => `${p.path}: ${p.message}`).join('\n')}`);
  return r.sink;
}

function problems(input: unknown, ctx = ONE): ConfigProblem[] {
  const r = parseSinkBlock(input, ctx);
  if (r.ok) assert.fail(`expected problems, got a valid sink: ${JSON.stringify(r.sink)}`);
  for (const p of r.problems) assert.equal(p.line, undefined, 'no line numbers: the block is JSON, not a file');
  return r.problems;
}

const pairs = (ps: ConfigProblem[]): Array<[string, string]> => ps.map((p) => [p.path, p.message]);

/** The same block, in sluice.yaml, parsed by the file loader: what the API must agree with. */
function fromFile(block: Record<string, unknown>, redisNames: readonly string[]): SinkConfig {
  const redis = redisNames.map((n) => `  ${n}:\n    url: redis://localhost:6379\n`).join('');
  const yaml = `source:\n  url: postgres://app@localhost/app\nredis:\n${redis}sinks:\n  - ${JSON.stringify(block)}\n`;
  return at(parseConfig(yaml, { file: 'sluice.yaml', env: {} }).sinks, 0);
}

// ---------------------------------------------------------------------------------------------
// valid blocks

const VALID = {
  string: { name: 'products-cache', type: 'string', tables: ['products'], key: 'product:{pk}', expire_ms: 3600000, backfill: true },
  hash: { name: 'users-index', type: 'hash', tables: ['public.users'], mode: 'field', key: 'users', field: '{pk}' },
  list: { name: 'new-orders', type: 'list', tables: ['orders'], key: 'orders:new', max_length: 1000 },
  set: { name: 'active-skus', type: 'set', tables: ['products'], key: 'skus:{category}', member: '{sku}', actions: ['delete', 'insert'] },
  zset: { name: 'by-price', type: 'zset', tables: ['products'], key: 'products:by-price', member: '{pk}', score: 'price' },
  stream: { name: 'audit', type: 'stream', tables: ['audit.*'], max_length: 100000 },
  pubsub: {
    name: 'live-prices',
    type: 'pubsub',
    tables: ['prices'],
    channel: 'prices:{symbol}',
    filter: "record.symbol !== 'TEST'",
    transform: 'function transform(action, record) { return { ...record, seen: true }; }',
  },
  geo: { name: 'stores-near', type: 'geo', tables: ['stores'], key: 'stores:geo', member: '{pk}', longitude: 'lon', latitude: 'lat' },
  hyperloglog: { name: 'daily-visitors', type: 'hyperloglog', tables: ['visits'], key: 'visitors:{day}', element: '{user_id}' },
  bitmap: { name: 'active-users', type: 'bitmap', tables: ['sessions'], key: 'active:{day}', offset: 'user_id' },
} satisfies Record<string, Record<string, unknown>>;

test('a valid block of each sink type gives the same sink as in sluice.yaml, defaults filled in', () => {
  for (const [type, block] of Object.entries(VALID)) {
    const sink = ok(block);
    assert.equal(sink.type, type);
    assert.equal(sink.redis, 'cache', `${type}: the only connection is the default`);
    assert.deepEqual(sink, fromFile(block, ONE.redisNames), type);
  }
  const s = ok(VALID.string);
  assert.deepEqual(s, {
    name: 'products-cache',
    type: 'string',
    redis: 'cache',
    tables: ['public.products'],
    actions: ['insert', 'update', 'delete'],
    key: 'product:{pk}',
    value: 'record',
    expire_ms: 3600000,
    backfill: true,
    max_value_bytes: 16 * 1024 * 1024,
    max_transaction_rows: 20000,
    on_schema_change: 'backfill',
  });
  const l = ok(VALID.list);
  assert.ok(l.type === 'list');
  assert.deepEqual(l.actions, ['insert']);
  assert.equal(l.push, 'append');
  const h = ok(VALID.hash);
  assert.ok(h.type === 'hash' && h.mode === 'field');
  assert.equal(h.value, 'record');
  assert.deepEqual(ok(VALID.set).actions, ['insert', 'delete']);
  assert.deepEqual(ok(VALID.hyperloglog).actions, ['insert', 'update'], 'a HyperLogLog cannot take a delete back: not subscribed by default');
  const field = ok({ name: 'h', type: 'hash', tables: ['users'], key: 'users', field: '{pk}' });
  assert.ok(field.type === 'hash' && field.mode === 'field' && field.field === '{pk}' && field.value === 'record', '`field` alone selects field mode');
});

test('redis: the only connection is the default; with several it is required; it must name one', () => {
  assert.equal(ok(VALID.stream, ONE).redis, 'cache');
  assert.equal(ok({ ...VALID.stream, redis: 'queue' }, TWO).redis, 'queue');
  assert.deepEqual(pairs(problems(VALID.stream, TWO)), [['redis', 'is required when there are several redis connections (one of cache, queue)']]);
  assert.deepEqual(pairs(problems({ ...VALID.stream, redis: 'nope' }, TWO)), [['redis', 'unknown redis connection "nope" (known: cache, queue)']]);
  assert.deepEqual(pairs(problems({ ...VALID.stream, redis: '' })), [['redis', 'must not be empty']]);
  assert.deepEqual(pairs(problems({ ...VALID.stream, redis: 7 })), [['redis', 'must be a string (got 7)']]);
  assert.equal(at(problems(VALID.stream, { redisNames: [] }), 0).path, 'redis');
});

// ---------------------------------------------------------------------------------------------
// problems

test('an unknown key is named, with a "did you mean" hint, or the sink types it belongs to', () => {
  assert.deepEqual(pairs(problems({ ...VALID.string, expir_ms: 1000 })), [['expir_ms', 'unknown key "expir_ms"; did you mean "expire_ms"?']]);
  assert.deepEqual(pairs(problems({ ...VALID.string, max_length: 5 })), [
    ['max_length', 'unknown key "max_length" (not an option of string sinks; it belongs to list, stream sinks)'],
  ]);
  const p = at(problems({ ...VALID.string, colour: 'blue' }), 0);
  assert.equal(p.path, 'colour');
  assert.match(p.message, /^unknown key "colour" \(known keys: name, redis, tables, /);
});

test('a value of the wrong type', () => {
  assert.deepEqual(pairs(problems({ ...VALID.string, expire_ms: 'soon' })), [['expire_ms', 'must be a number (got "soon")']]);
  assert.deepEqual(pairs(problems({ ...VALID.string, tables: 'products' })), [['tables', 'must be a list (got "products")']]);
  assert.deepEqual(pairs(problems({ ...VALID.string, backfill: 'yes' })), [['backfill', 'must be true or false (got "yes")']]);
  assert.deepEqual(pairs(problems({ ...VALID.string, tables: ['products', 42] })), [['tables[1]', 'must be a string (got 42)']]);
  assert.deepEqual(pairs(problems({ ...VALID.string, type: 'strng' })), [['type', `must be one of ${SINK_TYPES.join(', ')} (got "strng")`]]);
  const { type: _, ...noType } = VALID.string;
  assert.deepEqual(pairs(problems(noType)), [['type', `is required: one of ${SINK_TYPES.join(', ')}`]]);
});

test('the name is required and must be a valid sink name', () => {
  const { name: _, ...noName } = VALID.string;
  assert.deepEqual(pairs(problems(noName)), [['name', 'is required']]);
  for (const bad of ['Products', 'products cache', '-products', '', 'caché']) {
    assert.deepEqual(pairs(problems({ ...VALID.string, name: bad })), [['name', 'must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, _ and -)']], bad);
  }
  assert.deepEqual(pairs(problems({ ...VALID.string, name: 12 })), [['name', 'must be a string (got 12)']]);
});

test('a function given as a file path is refused: the API takes inline code only', () => {
  for (const option of ['filter', 'transform', 'route'] as const) {
    for (const path of ['./functions/route.ts', 'route.js', '/etc/sluice/f.mjs']) {
      const ps = problems({ ...VALID.stream, [option]: path });
      assert.equal(ps.length, 1);
      const p = at(ps, 0);
      assert.equal(p.path, option);
      assert.match(p.message, /^use an inline function in the API: ".*" is a file path, and the server cannot read the caller's files/);
    }
  }
  // the same block is fine in sluice.yaml, where the path is relative to the file
  assert.equal(fromFile({ ...VALID.stream, route: './route.ts' }, ['cache']).route, './route.ts');
  // inline code that mentions a file name is not a path
  ok({ ...VALID.stream, filter: "record.file === 'a.js'" });
  ok({ ...VALID.stream, route: 'function route(action, record) { return { key: `f:${record.id}` }; }' });
});

test('type-specific rules and templates are checked as in the file', () => {
  assert.deepEqual(pairs(problems({ name: 'l', type: 'list', tables: ['t'] })), [['key', 'is required']]);
  assert.deepEqual(pairs(problems({ ...VALID.hash, field: undefined })), [['field', 'is required with mode: field (the hash field template, e.g. "{pk}")']]);
  const p = at(problems({ ...VALID.string, key: 'product:{pk' }), 0);
  assert.equal(p.path, 'key');
  assert.deepEqual(pairs(problems({ ...VALID.string, tables: ['products', 'products'] })), [['tables[1]', '"public.products" is listed twice']]);
});

test('every problem is reported at once, in the order of the block', () => {
  const block = {
    name: 'Products',
    type: 'string',
    redis: 'nope',
    tables: ['public.products', 'a.b.c'],
    expir_ms: 1000,
    key: 'product:{pk',
    filter: './filter.ts',
    backfill: 1,
  };
  const ps = problems(block, TWO);
  assert.deepEqual(
    ps.map((p) => p.path),
    ['name', 'redis', 'tables[1]', 'expir_ms', 'key', 'filter', 'backfill'],
  );
  assert.equal(ps.find((p) => p.path === 'expir_ms')?.message, 'unknown key "expir_ms"; did you mean "expire_ms"?');
  assert.equal(ps.find((p) => p.path === 'redis')?.message, 'unknown redis connection "nope" (known: cache, queue)');
  // a missing required key comes first
  assert.deepEqual(
    problems({ type: 'zset', tables: ['t'], key: 'k', member: '{pk}', score: 'not a column' }).map((p) => p.path),
    ['name', 'score'],
  );
});

test('a body that is not an object', () => {
  for (const body of [null, [], 'string', 3, undefined]) {
    const ps = problems(body);
    assert.equal(ps.length, 1);
    assert.equal(at(ps, 0).path, '');
    assert.match(at(ps, 0).message, /^must be a JSON object: the sink's block as written under sinks: in sluice.yaml \(got /);
  }
});

test('${VAR} is not replaced in an API body', () => {
  // with the default key template there is nothing to substitute; the value stays as written
  const sink = ok({ ...VALID.string, key: 'product:{pk}:${HOME}' });
  assert.ok(sink.type === 'string');
  assert.equal(sink.key, 'product:{pk}:${HOME}');
});
