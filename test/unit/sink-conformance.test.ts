// One suite over every sink type (BullMQ's adapter-conformance habit): properties every sink's
// planning must have, whatever the configuration and the row.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sinkSchema, type SinkConfig } from '../../src/config/schema.js';
import type { Change, TableInfo } from '../../src/core/change.js';
import { createSink } from '../../src/sinks/index.js';
import { commandKeys } from '../../src/core/command.js';
import type { RedisCommand, Sink } from '../../src/sinks/sink.js';
import { del, insert, plan, read, table, update } from './support/sink-fixtures.js';

/** Arity as Redis's COMMAND reports it: n = exactly n words (with the name), -n = at least n. */
const ARITY: Record<string, number> = {
  SET: -3, DEL: -2, HSET: -4, HDEL: -3, PEXPIRE: -3, RPUSH: -3, LPUSH: -3, LTRIM: 4,
  SADD: -3, SREM: -3, ZADD: -4, ZREM: -3, XADD: -5, PUBLISH: 3, EVAL: -3,
  GEOADD: -5, PFADD: -2, SETBIT: 4, XTRIM: -4,
};

/** The keys a command writes (PUBLISH: its channel; EVAL: the keys it declares). */
function keysOf(cmd: RedisCommand): string[] {
  if (cmd[0] === 'EVAL') return cmd.slice(3, 3 + Number(cmd[2]));
  return [cmd[1]!];
}

const CONFIGS: Record<string, unknown>[] = [
  { type: 'string' },
  { type: 'string', key: 'p:{sku}', value: 'message', expire_ms: 1000 },
  { type: 'hash' },
  { type: 'hash', key: 'p:{sku}', expire_ms: 1000 },
  { type: 'hash', mode: 'field', key: 'products', field: '{pk}', value: 'message' },
  { type: 'hash', mode: 'field', key: 'by:{sku}', field: '{name}' },
  { type: 'list', key: 'feed', max_length: 5 },
  { type: 'list', key: 'feed:{sku}', push: 'prepend', value: 'record', actions: ['insert', 'update', 'delete'], expire_ms: 10 },
  { type: 'set', key: 'all:{table}', member: '{pk}' },
  { type: 'set', key: 'cat:{sku}', member: '{pk}:{name}', expire_ms: 10 },
  { type: 'zset', key: 'z:{table}', member: '{pk}', score: 'price' },
  { type: 'zset', key: 'z:{sku}', member: '{name}', score: 'price' },
  { type: 'stream' },
  { type: 'stream', key: 's:{sku}', max_length: 100, expire_ms: 10 },
  { type: 'pubsub' },
  { type: 'pubsub', channel: 'ch:{sku}', value: 'record' },
  { type: 'hash', key: 'by:{sku}', field: '{pk}' },
  { type: 'stream', max_age_ms: 300 },
  { type: 'stream', key: 's:{sku}', max_length: 10, max_age_ms: 60_000 },
  { type: 'geo', key: 'g:{table}', member: '{pk}', longitude: 'price', latitude: 'price' },
  { type: 'geo', key: 'g:{sku}', member: '{name}', longitude: 'price', latitude: 'price', expire_ms: 10 },
  { type: 'hyperloglog', key: 'h:{table}', element: '{sku}' },
  { type: 'hyperloglog', key: 'h:{sku}', element: '{name}', actions: ['insert', 'update', 'delete'], expire_ms: 10 },
  { type: 'bitmap', key: 'b:{table}', offset: 'id' },
  { type: 'bitmap', key: 'b:{sku}', offset: 'price', expire_ms: 10 },
];

const sinks: { label: string; sink: Sink }[] = CONFIGS.map((c, i) => {
  const cfg = sinkSchema.parse({ name: `s${i}`, tables: ['products'], ...c }) as SinkConfig;
  return { label: JSON.stringify(c), sink: createSink(cfg) };
});

const columns: [string, 'int4' | 'text' | 'numeric'][] = [
  ['id', 'int4'],
  ['sku', 'text'],
  ['name', 'text'],
  ['price', 'numeric'],
];
const tables: TableInfo[] = (['d', 'f'] as const).map((ri) => table('public.products', columns.map(([n, t]) => [n, t, n === 'id']), ri));

const text = fc.oneof(fc.string({ maxLength: 8 }), fc.constant(''), fc.constant(null), fc.string({ minLength: 600, maxLength: 700 }));
const rowArb = fc.record({
  id: fc.integer({ min: -5, max: 5 }).map(String),
  sku: text,
  name: text,
  price: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }).map(String), fc.constantFrom('NaN', 'Infinity', '12.50'), fc.constant(null), fc.constant('abc')),
});

type Values = Record<string, string | null>;

function changesFor(t: TableInfo, a: Values, b: Values): Change[] {
  const full = t.replicaIdentity === 'f';
  const out = [insert(t, a), read(t, a), update(t, b), update(t, b, a, full), del(t, a, full)];
  if (full) out.push(update(t, b, a, true));
  else if (a.id !== b.id) out.push(update(t, b, { id: a.id! }, false));
  return out;
}

describe('every sink type', () => {
  for (const { label, sink } of sinks) {
    describe(label, () => {
      test('plans deterministically, real commands with the right arity, never an empty key; a failed message plans nothing', () => {
        fc.assert(
          fc.property(fc.constantFrom(...tables), rowArb, rowArb, (t, a, b) => {
            for (const change of changesFor(t, a, b)) {
              const first = plan(sink, change);
              assert.deepEqual(plan(sink, change), first, 'same input, same commands');
              if (first.failures.length > 0) assert.deepEqual(first.commands, [], 'a failed message plans no commands');
              for (const cmd of first.commands) {
                const arity = ARITY[cmd[0]!];
                assert.ok(arity !== undefined, `${cmd[0]} is not a command sinks may plan`);
                assert.ok(arity > 0 ? cmd.length === arity : cmd.length >= -arity, `${cmd[0]} with ${cmd.length - 1} arguments`);
                assert.ok(cmd.every((arg) => typeof arg === 'string'), 'every argument is a string');
                // Redis Cluster routes by commandKeys: it must name the keys the command writes
                if (cmd[0] !== 'PUBLISH') assert.deepEqual(commandKeys(cmd), keysOf(cmd), `${cmd[0]}: the keys it is routed by`);
                for (const k of keysOf(cmd)) {
                  assert.ok(k.length > 0, `${cmd[0]} with an empty key`);
                  assert.ok(Buffer.byteLength(k) <= 512, `${cmd[0]} with a key over 512 bytes`);
                }
              }
            }
          }),
          { numRuns: 150 },
        );
      });

      test('a delete writes no key the insert of the same row would not write', () => {
        fc.assert(
          fc.property(fc.constantFrom(...tables), rowArb, (t, a) => {
            const ins = plan(sink, insert(t, a));
            if (ins.failures.length > 0) return;
            const written = new Set(ins.commands.flatMap(keysOf));
            const d = plan(sink, del(t, a, t.replicaIdentity === 'f'));
            for (const cmd of d.commands) for (const k of keysOf(cmd)) assert.ok(written.has(k), `delete writes ${k}, insert wrote ${[...written].join(', ')}`);
          }),
          { numRuns: 150 },
        );
      });

      test('an update that does not move the row removes nothing', () => {
        fc.assert(
          fc.property(fc.constantFrom(...tables), rowArb, (t, a) => {
            const ins = plan(sink, insert(t, a));
            const upd = plan(sink, update(t, a, a, t.replicaIdentity === 'f'));
            assert.deepEqual(upd.commands.map((c) => c[0]), ins.commands.map((c) => c[0]));
          }),
          { numRuns: 100 },
        );
      });
    });
  }
});
