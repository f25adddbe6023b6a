import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sinkSchema, type SinkConfig } from '../../src/config/schema.js';
import { parseMeasure } from '../../src/config/aggregate-measures.js';
import { sinkColumnUses } from '../../src/config/column-uses.js';
import { addDecimalText, decimalTextEquals, formatDecimal, parseDecimal, subtractDecimalText } from '../../src/core/decimal.js';
import { commandKeys } from '../../src/core/command.js';
import { slotOf } from '../../src/core/slot-tags.js';
import type { Change } from '../../src/core/change.js';
import { createSink, sinkWarnings } from '../../src/sinks/index.js';
import { isAggregateSink, type AggregateSink } from '../../src/sinks/aggregate-sink.js';
import { aggregateBackfillCommands, groupByShape, mergeGroupRows } from '../../src/sinks/aggregate-groups.js';
import { sinkDependsOn } from '../../src/plan/schema-change.js';
import { AggregateRedis } from './support/aggregate-model.js';
import { brief, del, insert, plan, read, table, update } from './support/sink-fixtures.js';

const orders = table('public.orders', [
  ['id', 'int4', true],
  ['customer', 'text'],
  ['amount', 'numeric'],
  ['ratio', 'float8'],
], 'f');
const ordersDefault = table('public.orders', [
  ['id', 'int4', true],
  ['customer', 'text'],
  ['amount', 'numeric'],
], 'd');

function parse(block: Record<string, unknown>): ReturnType<typeof sinkSchema.safeParse> {
  return sinkSchema.safeParse({ name: 'agg', tables: ['orders'], type: 'aggregate', ...block });
}

function aggregate(block: Record<string, unknown>): AggregateSink {
  const cfg = sinkSchema.parse({ name: 'agg', tables: ['orders'], type: 'aggregate', ...block }) as SinkConfig;
  const sink = createSink(cfg);
  assert.ok(isAggregateSink(sink));
  return sink;
}

const revenue = (): AggregateSink => aggregate({ key: 'rev:{customer}', measures: { orders: 'count', revenue: 'sum(amount)' } });
const board = (score = 'sum(amount)'): AggregateSink => aggregate({ key: 'lb', into: 'zset', member: '{customer}', score });

/** The script's arguments after the keys: mode, registry field, count delta, … */
const args = (cmd: string[]): string[] => cmd.slice(5);

describe('aggregate sink: configuration', () => {
  test('into hash with measures, into zset with member and score; backfill on by default', () => {
    const h = parse({ key: 'rev:{customer}', measures: { orders: 'count', revenue: 'sum( amount )' } });
    assert.ok(h.success, JSON.stringify(h.error?.issues));
    assert.equal((h.data as { backfill: boolean }).backfill, true);
    assert.equal((h.data as { into: string }).into, 'hash');
    assert.ok(parse({ key: 'lb', into: 'zset', member: '{customer}', score: 'count' }).success);
  });

  test('each misuse is refused with what to do', () => {
    const problems = (block: Record<string, unknown>): string[] => {
      const r = parse(block);
      assert.ok(!r.success, `refused: ${JSON.stringify(block)}`);
      return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    assert.match(problems({ key: 'k', measures: {} }).join('\n'), /measures: must map at least one hash field/);
    assert.match(problems({ key: 'k', measures: { lo: 'min(amount)' } }).join('\n'), /measures\.lo: min\(\) is not offered: a min cannot be kept exactly when rows are deleted/);
    assert.match(problems({ key: 'k', measures: { a: 'avg(amount)' } }).join('\n'), /keep count and sum\(column\) and divide/);
    assert.match(problems({ key: 'k', measures: { a: 'sum(1 + amount)' } }).join('\n'), /sum\(\) takes one column name/);
    assert.match(problems({ key: 'k', into: 'zset', member: '{customer}' }).join('\n'), /score: is required with into: zset/);
    assert.match(problems({ key: 'k', into: 'zset', score: 'count', member: '{c}', measures: { a: 'count' } }).join('\n'), /measures: is only valid with into: hash/);
    assert.match(problems({ key: 'k', measures: { a: 'count' }, tables: ['public.*'] }).join('\n'), /tables: an aggregate sink takes exactly one table/);
    assert.match(problems({ key: 'k', measures: { a: 'count' }, tables: ['a', 'b'] }).join('\n'), /exactly one table/);
    assert.match(problems({ key: 'k', measures: { a: 'count' }, actions: ['insert'] }).join('\n'), /actions: an aggregate needs every insert, update and delete/);
    assert.match(problems({ key: 'k', measures: { a: 'count' }, expire_ms: 10 }).join('\n'), /expire_ms: does not apply/);
    assert.match(problems({ key: 'k', measures: { a: 'count' }, filter: '() => true' }).join('\n'), /filter: is not available on aggregate sinks/);
  });

  test('measures: count, count(*), sum(col); the summed columns are column uses (checked against the table)', () => {
    assert.deepEqual(parseMeasure('count(*)'), { kind: 'count' });
    assert.deepEqual(parseMeasure('sum(amount)'), { kind: 'sum', column: 'amount' });
    assert.equal(typeof parseMeasure('max(amount)'), 'string');
    const uses = sinkColumnUses({ type: 'aggregate', key: 'rev:{customer}', measures: { n: 'count', r: 'sum(amount)' } });
    assert.deepEqual(uses, [
      { option: 'key', column: 'customer', template: true },
      { option: 'measures.r', column: 'amount', template: false },
    ]);
    assert.deepEqual(sinkColumnUses({ type: 'aggregate', key: 'lb', into: 'zset', member: '{player}', score: 'sum(points)' }).map((u) => u.column), ['player', 'points']);
  });

  test('without backfill sluice check warns that the rows that exist already are in no group', () => {
    const cfg = sinkSchema.parse({ name: 'agg', tables: ['orders'], type: 'aggregate', key: 'k:{customer}', backfill: false }) as SinkConfig;
    assert.match(sinkWarnings(cfg)[0]?.message ?? '', /counts only the changes from its start/);
    assert.deepEqual(sinkWarnings({ ...cfg, backfill: true } as SinkConfig), []);
  });

  test('a schema change of a summed or group column backfills', () => {
    const shape = { type: 'aggregate', options: { key: 'k:{customer}', measures: { r: 'sum(amount)' } }, hasTransform: false };
    assert.equal(sinkDependsOn(shape, { added: [], dropped: [], retyped: ['amount'] }), true);
    assert.equal(sinkDependsOn(shape, { added: ['note'], dropped: [], retyped: [] }), false);
    assert.equal(sinkDependsOn(shape, { added: [], dropped: ['customer'], retyped: [] }), true);
  });
});

describe('aggregate sink: planning', () => {
  test('insert adds the row to its group: one EVAL, keys declared in one slot', () => {
    const sink = revenue();
    const { commands, failures } = plan(sink, insert(orders, { id: '1', customer: 'ann', amount: '10.50' }));
    assert.deepEqual(failures, []);
    assert.equal(commands.length, 1);
    const cmd = commands[0]!;
    assert.deepEqual(brief(commands)[0]!.slice(0, 4), ['EVAL', '<script>', '2', 'rev:ann']);
    const [key, reg] = commandKeys(cmd) as [string, string];
    assert.match(reg, /^sluice:agg:agg:\{[0-9a-z]+\}$/);
    assert.equal(slotOf(reg), slotOf(key), 'the registry is in the slot of the group');
    assert.deepEqual(args(cmd), ['h', '7:rev:ann', '1', 'orders', '1', 'revenue', '10.50']);
  });

  test('delete takes the old row away; update moves it between groups, or nets the values in one', () => {
    const sink = revenue();
    const d = plan(sink, del(orders, { id: '1', customer: 'ann', amount: '10.50' }, true));
    assert.deepEqual(args(d.commands[0]!), ['h', '7:rev:ann', '-1', 'orders', '-1', 'revenue', '-10.50']);
    const moved = plan(sink, update(orders, { id: '1', customer: 'bob', amount: '3' }, { id: '1', customer: 'ann', amount: '10.50' }, true));
    assert.deepEqual(moved.commands.map(args), [
      ['h', '7:rev:ann', '-1', 'orders', '-1', 'revenue', '-10.50'],
      ['h', '7:rev:bob', '1', 'orders', '1', 'revenue', '3'],
    ]);
    const same = plan(sink, update(orders, { id: '1', customer: 'ann', amount: '0.20' }, { id: '1', customer: 'ann', amount: '0.10' }, true));
    assert.deepEqual(same.commands.map(args), [['h', '7:rev:ann', '0', 'orders', '0', 'revenue', '0.10']]);
    const nothing = plan(sink, update(orders, { id: '1', customer: 'ann', amount: '1.0', ratio: '9' }, { id: '1', customer: 'ann', amount: '1.00', ratio: '3' }, true));
    assert.deepEqual(nothing, { commands: [], failures: [] }, 'measures net to 0 in the same group: nothing');
  });

  test('a sorted set: count score or exact sum score, the member is the group', () => {
    const c = plan(board('count'), insert(orders, { id: '1', customer: 'ann', amount: '5' }));
    assert.deepEqual(c.commands.map(args), [['c', '2:lbann', '1', 'ann']]);
    const s = plan(board(), update(orders, { id: '1', customer: 'bob', amount: '5' }, { id: '1', customer: 'ann', amount: '2.5' }, true));
    assert.deepEqual(s.commands.map(args), [
      ['s', '2:lbann', '-1', 'ann', '-2.5'],
      ['s', '2:lbbob', '1', 'bob', '5'],
    ]);
  });

  test('failures plan nothing: no old row, a float, NaN, a row read; a NULL group counts nowhere; NULL sums add 0', () => {
    const sink = revenue();
    const noFull = plan(sink, update(ordersDefault, { id: '1', customer: 'b', amount: '1' }, { id: '1' }, false));
    assert.deepEqual(noFull.commands, []);
    assert.match(noFull.failures[0] ?? '', /public\.orders is not REPLICA IDENTITY FULL.*ALTER TABLE public\.orders REPLICA IDENTITY FULL;/);
    assert.match(plan(sink, del(ordersDefault, { id: '1' }, false)).failures[0] ?? '', /REPLICA IDENTITY FULL/);
    const nan = plan(sink, update(orders, { id: '1', customer: 'b', amount: 'NaN' }, { id: '1', customer: 'a', amount: '1' }, true));
    assert.deepEqual(nan.commands, [], 'not half an update');
    assert.match(nan.failures[0] ?? '', /not a finite number/);
    const float = aggregate({ key: 'k:{customer}', measures: { r: 'sum(ratio)' } });
    assert.match(plan(float, insert(orders, { id: '1', customer: 'a', ratio: '0.1' })).failures[0] ?? '', /is a float: floats cannot be summed exactly/);
    assert.match(plan(sink, read(orders, { id: '1', customer: 'a', amount: '1' })).failures[0] ?? '', /takes no row reads/);
    assert.deepEqual(plan(sink, insert(orders, { id: '1', customer: null, amount: '1' })), { commands: [], failures: [] });
    const out = plan(sink, update(orders, { id: '1', customer: 'a', amount: '1' }, { id: '1', customer: null, amount: '1' }, true));
    assert.deepEqual(out.commands.map(args), [['h', '5:rev:a', '1', 'orders', '1', 'revenue', '1']], 'a row leaving a NULL group is added');
    assert.deepEqual(args(plan(sink, insert(orders, { id: '1', customer: 'a', amount: null })).commands[0]!), ['h', '5:rev:a', '1', 'orders', '1', 'revenue', '0']);
  });
});

// ---- exact decimals -------------------------------------------------------------------------

const decimalArb = fc
  .record({ neg: fc.boolean(), int: fc.bigInt({ min: 0n, max: 10n ** 30n }), scale: fc.integer({ min: 0, max: 12 }), frac: fc.bigInt({ min: 0n, max: 10n ** 12n }) })
  .map(({ neg, int, scale, frac }) => {
    const f = scale === 0 ? '' : `.${(frac % 10n ** BigInt(scale)).toString().padStart(scale, '0')}`;
    return `${neg ? '-' : ''}${int}${f}`;
  });

/** The reference: a decimal as (units, scale) with BigInt, parsed without core/decimal.ts. */
function reference(text: string): { units: bigint; scale: number } {
  const [i, f = ''] = text.replace(/^-/, '').split('.') as [string, string?];
  const units = BigInt(i + f);
  return { units: text.startsWith('-') ? -units : units, scale: f.length };
}

describe('exact decimal addition (what the script does in Redis)', () => {
  test('a + b equals the BigInt sum at the larger scale, printed at that scale, zero unsigned', () => {
    fc.assert(
      fc.property(decimalArb, decimalArb, (a, b) => {
        const sum = addDecimalText(a, b);
        const [x, y, r] = [reference(a), reference(b), reference(sum)];
        const scale = Math.max(x.scale, y.scale);
        assert.equal(r.scale, scale, `${a} + ${b} = ${sum}: scale`);
        assert.equal(r.units, x.units * 10n ** BigInt(scale - x.scale) + y.units * 10n ** BigInt(scale - y.scale), `${a} + ${b} = ${sum}`);
        assert.ok(!/^-0(\.0*)?$/.test(sum), `no negative zero: ${sum}`);
        assert.ok(!/^-?0\d/.test(sum), `no leading zero: ${sum}`);
        assert.equal(subtractDecimalText(sum, b), formatDecimal({ units: x.units * 10n ** BigInt(scale - x.scale), scale }));
      }),
      { numRuns: 2000, seed: 12 },
    );
  });

  test('0.10 + 0.20 is 0.30; scale differences; negatives', () => {
    assert.equal(addDecimalText('0.10', '0.20'), '0.30');
    assert.equal(addDecimalText('0.1', '0.20'), '0.30');
    assert.equal(addDecimalText('-1.5', '1.50'), '0.00');
    assert.equal(addDecimalText('-0.01', '0'), '-0.01');
    assert.equal(addDecimalText('99999999999999999999.99', '0.01'), '100000000000000000000.00');
    assert.equal(subtractDecimalText('1', '1.001'), '-0.001');
    assert.ok(decimalTextEquals('2.50', '2.5'));
    assert.throws(() => parseDecimal('1e5'));
    assert.throws(() => parseDecimal('NaN'));
  });
});

// ---- a workload against GROUP BY ------------------------------------------------------------

interface Row {
  customer: string | null;
  amount: string | null;
}

type Op = { kind: 'insert' | 'update' | 'delete'; id: number; customer: string | null; amount: string | null };

const amountArb = fc.oneof(
  { weight: 9, arbitrary: fc.integer({ min: -50_000, max: 50_000 }).map((c) => formatDecimal({ units: BigInt(c), scale: 2 })) },
  { weight: 1, arbitrary: fc.constant(null) },
);
const opArb = fc.record({
  kind: fc.constantFrom('insert', 'insert', 'update', 'update', 'delete'),
  id: fc.integer({ min: 1, max: 12 }),
  customer: fc.oneof({ weight: 9, arbitrary: fc.constantFrom('ann', 'bob', 'cy', 'dee') }, { weight: 1, arbitrary: fc.constant(null) }),
  amount: amountArb,
}) as fc.Arbitrary<Op>;

function changeOf(rows: Map<number, Row>, op: Op): Change | null {
  const now = rows.get(op.id);
  const values = (r: Row): Record<string, string | null> => ({ id: String(op.id), customer: r.customer, amount: r.amount });
  const next: Row = { customer: op.customer, amount: op.amount };
  if (op.kind === 'insert') {
    if (now) return null;
    rows.set(op.id, next);
    return insert(orders, values(next));
  }
  if (!now) return null;
  if (op.kind === 'delete') {
    rows.delete(op.id);
    return del(orders, values(now), true);
  }
  rows.set(op.id, next);
  return update(orders, values(next), values(now), true);
}

function groupBy(rows: Map<number, Row>): Map<string, { count: number; sum: string }> {
  const out = new Map<string, { count: number; sum: string }>();
  for (const r of rows.values()) {
    if (r.customer === null) continue;
    const g = out.get(r.customer) ?? { count: 0, sum: '0' };
    out.set(r.customer, { count: g.count + 1, sum: addDecimalText(g.sum, r.amount ?? '0') });
  }
  return out;
}

function assertHashEqualsGroupBy(redis: AggregateRedis, rows: Map<number, Row>, what: string): void {
  const expected = groupBy(rows);
  assert.deepEqual([...redis.hashes.keys()].sort(), [...expected.keys()].map((c) => `rev:${c}`).sort(), `${what}: the groups`);
  for (const [c, g] of expected) {
    const h = redis.hashes.get(`rev:${c}`)!;
    assert.equal(h.get('orders'), String(g.count), `${what}: count of ${c}`);
    assert.ok(decimalTextEquals(h.get('revenue')!, g.sum), `${what}: revenue of ${c}: ${h.get('revenue')} vs ${g.sum}`);
  }
  const entries = [...redis.registries.values()].flatMap((m) => [...m.values()]);
  assert.equal(entries.length, expected.size, `${what}: one registry entry per group`);
}

describe('aggregate sink: random workloads equal GROUP BY (planner + a model of the script)', () => {
  test('into a hash: inserts, group moves, value changes, deletes (counts reaching 0 remove the group)', () => {
    const sink = revenue();
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
        const rows = new Map<number, Row>();
        const redis = new AggregateRedis();
        for (const op of ops) {
          const change = changeOf(rows, op);
          if (!change) continue;
          const { commands, failures } = plan(sink, change);
          assert.deepEqual(failures, []);
          for (const c of commands) redis.run(c);
        }
        assertHashEqualsGroupBy(redis, rows, 'after the workload');
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  test('into a sorted set scored by an exact sum: scores equal SUM, members of empty groups removed', () => {
    const sink = board();
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
        const rows = new Map<number, Row>();
        const redis = new AggregateRedis();
        for (const op of ops) {
          const change = changeOf(rows, op);
          if (change) for (const c of plan(sink, change).commands) redis.run(c);
        }
        const expected = groupBy(rows);
        const lb = redis.zsets.get('lb') ?? new Map<string, string>();
        assert.deepEqual([...lb.keys()].sort(), [...expected.keys()].sort());
        for (const [c, g] of expected) assert.ok(decimalTextEquals(lb.get(c)!, g.sum), `${c}: ${lb.get(c)} vs ${g.sum}`);
      }),
      { numRuns: 300, seed: 8 },
    );
  });

  test('a backfill set at any point (over wrong groups Redis held), then more changes: still GROUP BY', () => {
    const sink = revenue();
    const def = sink.aggregate;
    const shape = groupByShape(def, orders);
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), fc.array(opArb, { maxLength: 60 }), fc.array(opArb, { maxLength: 20 }), (before, lost, after) => {
        const rows = new Map<number, Row>();
        const redis = new AggregateRedis();
        // Redis applied some changes, then lost track (the sink started late, or Redis lost writes)
        for (const op of before) {
          const change = changeOf(rows, op);
          if (change) for (const c of plan(sink, change).commands) redis.run(c);
        }
        for (const op of lost) changeOf(rows, op);
        // the GROUP BY at the mark, as the query returns it: group text, count, sum
        const result = [...groupBy(rows)].map(([c, g]) => [c, String(g.count), g.sum]);
        const merged = mergeGroupRows(def, orders, shape, result);
        for (const c of aggregateBackfillCommands(def, merged.groups, redis.registryKeys())) redis.run(c);
        assertHashEqualsGroupBy(redis, rows, 'at the mark');
        for (const op of after) {
          const change = changeOf(rows, op);
          if (change) for (const c of plan(sink, change).commands) redis.run(c);
        }
        assertHashEqualsGroupBy(redis, rows, 'after the mark');
      }),
      { numRuns: 300, seed: 9 },
    );
  });

  test('GROUP BY rows that render to the same group are merged (a template joining columns)', () => {
    const t = table('public.t', [
      ['id', 'int4', true],
      ['a', 'text'],
      ['b', 'text'],
      ['v', 'numeric'],
    ], 'f');
    const cfg = sinkSchema.parse({ name: 'j', tables: ['t'], type: 'aggregate', key: 'k:{a}{b}', measures: { n: 'count', s: 'sum(v)' } }) as SinkConfig;
    const sink = createSink(cfg) as AggregateSink;
    const shape = groupByShape(sink.aggregate, t);
    const merged = mergeGroupRows(sink.aggregate, t, shape, [
      ['x', 'yz', '2', '1.5'],
      ['xy', 'z', '1', '0.25'],
      ['q', 'r', '0', '0'],
    ]);
    assert.deepEqual(merged.groups, [{ key: 'k:xyz', member: '', count: '3', values: ['3', '1.75'] }]);
    assert.equal(merged.rows, 3n);
  });
});
