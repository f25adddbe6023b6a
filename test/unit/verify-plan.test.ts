import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTableInfo } from '../../src/core/table-info.js';
import type { SinkConfig } from '../../src/config/schema.js';
import type { RedisCommand, Sink } from '../../src/sinks/sink.js';
import { createStringSink } from '../../src/sinks/string-sink.js';
import { planRow, unverifiableReason } from '../../src/verify/shared.js';
import { isOwnKey } from '../../src/core/keyspace.js';
import { formatResult } from '../../src/cli/verify.js';

const products = buildTableInfo(
  {
    relationOid: 16_384,
    schema: 'public',
    name: 'products',
    replicaIdentity: 'd',
    columns: [
      { name: 'id', typeOid: 23, isKey: true },
      { name: 'name', typeOid: 25, isKey: false },
      { name: 'price', typeOid: 1700, isKey: false },
    ],
  },
  () => undefined,
);

const base = { name: 's', redis: 'main', tables: ['public.products'], actions: ['insert', 'update', 'delete'], backfill: false, max_value_bytes: 1 << 20, max_transaction_rows: 1000 };

function cfg(extra: Record<string, unknown>): SinkConfig {
  return { ...base, ...extra } as unknown as SinkConfig;
}

/** A sink that plans fixed commands, to check how verify reads them back. */
function fake(type: Sink['type'], commands: RedisCommand[]): Sink {
  return { name: 's', type, plan: (_c, _m, out) => commands.forEach((c) => out.command(c)) };
}

test('string sink, record: the SET value is expected exactly', () => {
  const sink = createStringSink({ name: 's', key: 'sluice:{table}:{pk}', value: 'record', maxValueBytes: 1 << 20 });
  const p = planRow(sink, cfg({ type: 'string', key: 'sluice:{table}:{pk}', value: 'record' }), products, ['7', 'Lamp', '9.50']);
  assert.equal(p.failed, null);
  assert.deepEqual(p.expectations, [{ kind: 'string', key: 'sluice:products:7', value: '{"id":7,"name":"Lamp","price":9.50}', prefix: false }]);
});

test('string sink, message: only the record part of the envelope is expected', () => {
  const sink = createStringSink({ name: 's', key: 'sluice:{table}:{pk}', value: 'message', maxValueBytes: 1 << 20 });
  const p = planRow(sink, cfg({ type: 'string', key: 'sluice:{table}:{pk}', value: 'message' }), products, ['7', 'Lamp', '9.50']);
  assert.deepEqual(p.expectations, [{ kind: 'string', key: 'sluice:products:7', value: '{"record":{"id":7,"name":"Lamp","price":9.50},', prefix: true }]);
});

test('a row the sink refuses is a failed message, not an expectation', () => {
  const sink = createStringSink({ name: 's', key: 'sluice:{table}:{pk}', value: 'record', maxValueBytes: 10 });
  const p = planRow(sink, cfg({ type: 'string', key: 'sluice:{table}:{pk}', value: 'record' }), products, ['7', 'Lamp', '9.50']);
  assert.match(p.failed ?? '', /max_value_bytes/);
  assert.deepEqual(p.expectations, []);
});

test('hash row mode: HSET fields minus HDEL fields, in one expectation; TTL and index commands ignored', () => {
  const sink = fake('hash', [
    ['EVAL', 'script', '2', 'sluice:idx:s', 'h:7'],
    ['HSET', 'h:7', 'id', '7', 'name', 'Lamp'],
    ['HDEL', 'h:7', 'price'],
    ['PEXPIRE', 'h:7', '1000'],
  ]);
  const p = planRow(sink, cfg({ type: 'hash', mode: 'row', key: 'h:{pk}' }), products, ['7', 'Lamp', null]);
  assert.deepEqual(p.expectations, [{ kind: 'hash', key: 'h:7', fields: new Map([['id', '7'], ['name', 'Lamp']]) }]);
});

test('hash field mode, set, zset', () => {
  const field = planRow(fake('hash', [['HSET', 'all', '7', 'v']]), cfg({ type: 'hash', mode: 'field', key: 'all', field: '{pk}', value: 'record' }), products, ['7', 'x', '1']);
  assert.deepEqual(field.expectations, [{ kind: 'field', key: 'all', field: '7', value: 'v', prefix: false }]);
  const set = planRow(fake('set', [['SADD', 'tags', 'Lamp']]), cfg({ type: 'set', key: 'tags', member: '{name}' }), products, ['7', 'Lamp', '1']);
  assert.deepEqual(set.expectations, [{ kind: 'member', key: 'tags', member: 'Lamp' }]);
  const zset = planRow(fake('zset', [['ZADD', 'by-price', '9.50', '7']]), cfg({ type: 'zset', key: 'by-price', member: '{pk}', score: 'price' }), products, ['7', 'Lamp', '9.50']);
  assert.deepEqual(zset.expectations, [{ kind: 'zmember', key: 'by-price', member: '7', score: '9.50' }]);
});

test('history sinks and sinks with user functions cannot be verified', () => {
  for (const type of ['list', 'stream', 'pubsub']) assert.match(unverifiableReason(cfg({ type })) ?? '', new RegExp(`sink type ${type} keeps history, not state`));
  assert.match(unverifiableReason(cfg({ type: 'string', transform: 'function transform() {}' })) ?? '', /transform/);
  assert.equal(unverifiableReason(cfg({ type: 'string' })), null);
});

test("Sluice's own keys are never orphans", () => {
  for (const k of ['sluice:pos:s', 'sluice:batch:main', 'sluice:failed:s', 'sluice:backfill:s', 'sluice:idx:s']) assert.ok(isOwnKey(k), k);
  assert.ok(!isOwnKey('sluice:products:1'));
});

test('output: counts per table, examples, in sync / out of sync', () => {
  const text = formatResult({
    sink: 's',
    type: 'string',
    notes: ['a note'],
    inSync: false,
    tables: [
      {
        table: 'public.products',
        rows: 10,
        ok: 7,
        missing: 1,
        stale: 1,
        orphans: 2,
        failed: 0,
        rechecked: 3,
        orphansChecked: true,
        examples: [
          { kind: 'missing', key: 'sluice:products:17' },
          { kind: 'stale', key: 'sluice:products:3', expected: '{"id":3}', actual: '{"id":4}' },
          { kind: 'orphan', key: 'sluice:products:999' },
        ],
      },
    ],
  });
  assert.equal(
    text,
    'public.products: 10 rows — 7 ok, 1 missing, 1 stale, 2 orphaned\n' +
      '  missing sluice:products:17\n' +
      '  stale sluice:products:3: redis {"id":4} != postgres {"id":3}\n' +
      '  orphan sluice:products:999\n' +
      '  … and 1 more\n' +
      '  (3 difference(s) seen during the scan were gone when checked again: writes in flight)\n' +
      'note: a note\n' +
      'out of sync\n',
  );
});
