import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { CommandOrigin, RedisCommand } from '../../src/core/command.js';
import { judge, keyTypeOf, NOT_HLL, probeReads, refusals, SlotTail, WRONGTYPE, type KeyType, type TailItem } from '../../src/plan/tail-probe.js';
import { slotOf } from '../../src/core/slot-tags.js';
import { Batcher } from '../../src/plan/batcher.js';
import { Planner, type PlanEvents } from '../../src/plan/planner.js';
import { Windows } from '../../src/plan/windows.js';
import { failedKey } from '../../src/core/keyspace.js';
import { insertChange } from './support/tables.js';
import { inserts, pos, products, runtime, txn } from './support/plan-fixtures.js';

// ---- a Redis of key types, written here on its own (not from the module's rules) ---------------

/** How Redis answers each command by the type its key holds: refused, or the type it leaves. */
function simulate(type: KeyType, cmd: RedisCommand, empties: boolean): { refused: boolean; type: KeyType } {
  const name = cmd[0]!;
  const needs = (t: KeyType, after: KeyType): { refused: boolean; type: KeyType } => (type === 'none' || type === t ? { refused: false, type: after } : { refused: true, type });
  const remove = (t: KeyType): { refused: boolean; type: KeyType } => needs(t, type === 'none' || empties ? 'none' : t);
  switch (name) {
    case 'HSET':
      return needs('hash', 'hash');
    case 'HDEL':
      return remove('hash');
    case 'SADD':
      return needs('set', 'set');
    case 'SREM':
      return remove('set');
    case 'ZADD':
    case 'GEOADD':
      return needs('zset', 'zset');
    case 'ZREM':
      return remove('zset');
    case 'RPUSH':
    case 'LPUSH':
      return needs('list', 'list');
    case 'LTRIM':
      return remove('list');
    case 'XADD':
      return needs('stream', 'stream');
    case 'XTRIM':
      return needs('stream', type);
    case 'PFADD':
      return needs('hll', 'hll');
    case 'SETBIT':
      if (type === 'hll') return { refused: false, type: empties ? 'string' : 'hll' };
      return needs('string', 'string');
    case 'DEL':
      return { refused: false, type: 'none' };
    case 'SET':
      return { refused: false, type: 'string' };
    case 'PEXPIRE':
      return { refused: false, type };
    default:
      throw new Error(`not simulated: ${name}`);
  }
}

const TYPES: KeyType[] = ['none', 'string', 'hll', 'hash', 'list', 'set', 'zset', 'stream'];
const PROBED = ['HSET', 'HDEL', 'SADD', 'SREM', 'ZADD', 'ZREM', 'GEOADD', 'RPUSH', 'LPUSH', 'LTRIM', 'XADD', 'XTRIM', 'PFADD', 'SETBIT'];
const OTHERS = ['DEL', 'SET', 'PEXPIRE'];
const KEYS = ['k0', 'k1', 'k2'];

const origin = (i: number): CommandOrigin => ({ sink: 's', change: insertChange(products, { id: String(i) }, i), meta: { commitLsn: 0x100n, commitTimeMicros: 0n, sinkName: 's' } });
const item = (command: RedisCommand, i: number): TailItem => ({ lane: 'main', command, origin: origin(i) });

interface Run {
  items: TailItem[];
  truth: boolean[];
  now: Map<string, KeyType>;
}

function run(initial: readonly KeyType[], steps: readonly { name: string; key: number; empties: boolean }[]): Run {
  const types = new Map(KEYS.map((k, i) => [k, initial[i] ?? 'none']));
  const items: TailItem[] = [];
  const truth: boolean[] = [];
  steps.forEach((s, i) => {
    const key = KEYS[s.key]!;
    const cmd = [s.name, key, 'x'];
    const r = simulate(types.get(key)!, cmd, s.empties);
    types.set(key, r.type);
    items.push(item(cmd, i));
    truth.push(r.refused);
  });
  return { items, truth, now: types };
}

const step = (names: readonly string[]) => fc.record({ name: fc.constantFrom(...names), key: fc.nat({ max: KEYS.length - 1 }), empties: fc.boolean() });
const initial = fc.array(fc.constantFrom(...TYPES), { minLength: KEYS.length, maxLength: KEYS.length });

describe('tail probe: judging from the types Redis holds now', () => {
  test('never wrong: a command judged refused was refused, one judged applied was applied', () => {
    fc.assert(
      fc.property(initial, fc.array(step([...PROBED, ...OTHERS]), { maxLength: 30 }), (init, steps) => {
        const { items, truth, now } = run(init, steps);
        const verdicts = judge(items, now);
        verdicts.forEach((v, i) => {
          if (v === 'refused') assert.equal(truth[i], true, `item ${i} judged refused`);
          if (v === 'applied') assert.equal(truth[i], false, `item ${i} judged applied`);
          if (v === 'unprobed') assert.ok(OTHERS.includes(items[i]!.command[0]!));
        });
      }),
      { numRuns: 2000 },
    );
  });

  test('exact when each key has one writer (a sink) and nothing deletes or replaces it', () => {
    const families = [['HSET', 'HDEL', 'PEXPIRE'], ['SADD', 'SREM'], ['ZADD', 'GEOADD', 'ZREM'], ['RPUSH', 'LTRIM'], ['XADD', 'XTRIM'], ['PFADD', 'PEXPIRE'], ['SETBIT']];
    fc.assert(
      fc.property(initial, fc.constantFrom(...families), fc.array(step(['x']), { maxLength: 30 }), fc.array(fc.nat(), { minLength: 30, maxLength: 30 }), (init, family, shape, picks) => {
        const steps = shape.map((s, i) => ({ ...s, name: family[picks[i]! % family.length]! }));
        const { items, truth, now } = run(init, steps);
        const verdicts = judge(items, now);
        verdicts.forEach((v, i) => {
          if (items[i]!.command[0] === 'PEXPIRE') return;
          assert.equal(v, truth[i] ? 'refused' : 'applied', `item ${i} (${items[i]!.command[0]}): ${JSON.stringify({ init, steps })}`);
        });
      }),
      { numRuns: 2000 },
    );
  });

  test('refusals carry the error Redis gives; unknown ones are counted, not recorded', () => {
    const items = [item(['HSET', 'h', 'f', 'v'], 0), item(['PFADD', 'p', 'e'], 1), item(['HSET', 'gone', 'f', 'v'], 2), item(['DEL', 'gone'], 3), item(['SADD', 'ok', 'm'], 4)];
    const now = new Map<string, KeyType>([['h', 'string'], ['p', 'string'], ['gone', 'none'], ['ok', 'set']]);
    const { refused, unknown } = refusals(items, now);
    assert.deepEqual(refused.map((r) => [r.origin.change.idx, r.error]), [[0, WRONGTYPE], [1, NOT_HLL]]);
    assert.equal(unknown, 1, 'the HSET before a DEL of its key');
  });

  test('reads: each probed key once, GETRANGE only for PFADD keys; TYPE replies', () => {
    const items = [item(['HSET', 'a', 'f', 'v'], 0), item(['PEXPIRE', 'a', '5'], 1), item(['HSET', 'a', 'g', 'v'], 2), item(['PFADD', 'p', 'e'], 3), item(['DEL', 'd'], 4), item(['PUBLISH', 'ch', 'm'], 5)];
    assert.deepEqual(probeReads(items), { keys: ['a', 'p'], hllKeys: ['p'] });
    assert.equal(keyTypeOf('string', 'HYLL'), 'hll');
    assert.equal(keyTypeOf('string', 'abcd'), 'string');
    assert.equal(keyTypeOf('string', null), 'string');
    assert.equal(keyTypeOf('ReJSON-RL', null), 'other');
    assert.equal(keyTypeOf('zset', null), 'zset');
  });
});

describe('tail probe: what the planner collects', () => {
  function setup(startAt: bigint | null) {
    let n = 0;
    const batcher = new Batcher({ maxCommands: 10_000, maxBytes: 10_000_000 }, () => `b${++n}`);
    const events: PlanEvents = { failed: () => undefined, truncate: () => undefined, chunk: () => undefined };
    const sink = runtime('h', { type: 'hash', key: 'h:{id}' }, { position: startAt === null ? null : pos(startAt) });
    const planner = new Planner(batcher, new Windows(), events, () => [sink], () => 0n);
    return { planner, batcher, sink };
  }

  test('changes the sink skips up to its position at start are planned again, once; the tail ends there', () => {
    const { planner, batcher } = setup(0x208n);
    const b1 = planner.transaction(txn(0x100n, inserts(2)), 1);
    assert.equal(b1.parts.get('main')?.commands.length ?? 0, 0, 'skipped: Redis has it');
    batcher.next();
    const b2 = planner.transaction(txn(0x200n, inserts(1, 0, 7)), 1); // ends at 0x208: the last of the tail
    batcher.next();
    const b3 = planner.transaction(txn(0x300n, inserts(1, 0, 9)), 1);
    const t1 = planner.tail.take(b1.id) ?? [];
    assert.deepEqual(t1.map((t) => [t.lane, t.command[0], t.command[1], t.origin.change.idx]), [['main', 'HSET', 'h:1', 0], ['main', 'HSET', 'h:2', 1]]);
    assert.deepEqual((planner.tail.take(b2.id) ?? []).map((t) => t.command[1]), ['h:7']);
    assert.equal(planner.tail.take(b3.id), undefined, 'past the tail: planned for real, not probed');
    assert.deepEqual(b3.parts.get('main')?.commands.map((c) => c[1]), ['h:9']);
    assert.equal(planner.tail.take(b1.id), undefined, 'taken once');
    // replayed again (a resume restarts the stream): the tail is over, nothing is probed twice
    const again = planner.transaction(txn(0x100n, inserts(2)), 2);
    assert.equal(planner.tail.take(again.id), undefined);
  });

  test('a sink with no position in Redis has no tail; a keepalive past its position ends it', () => {
    const none = setup(null);
    const b = none.planner.transaction(txn(0x100n, inserts(1)), 1);
    assert.equal(none.planner.tail.take(b.id), undefined);
    const idle = setup(0x208n);
    idle.planner.keepalive(0x300n, 1);
    const later = idle.planner.transaction(txn(0x100n, inserts(1)), 2);
    assert.equal(idle.planner.tail.take(later.id), undefined, 'the keepalive passed the tail');
  });

  test('the records the probe makes have the id and key a record made at once would have', () => {
    const { planner } = setup(0x208n);
    const b = planner.transaction(txn(0x100n, inserts(1, 3)), 1);
    const items = planner.tail.take(b.id) ?? [];
    const { refused } = refusals(items, new Map([['h:1', 'string']]));
    const [cmd] = planner.rejected(refused);
    assert.deepEqual(cmd?.slice(0, 3), ['HSET', failedKey('h'), '0/100:3']);
  });
});

describe('tail probe on a Cluster: what the lane drops per hash slot', () => {
  test('commands whose slot position covers them, until the stream passes the furthest position', () => {
    const a = slotOf('user:1');
    const b = slotOf('user:2');
    assert.notEqual(a, b);
    const tail = new SlotTail('cl', new Map([['h', { floor: null, slots: new Map([[a, pos(0x200n)], [b, pos(0x100n)]]) }], ['none', { floor: null, slots: new Map() }]]));
    const o = (idx: number, lsn: bigint, sink = 'h'): CommandOrigin => ({ sink, change: insertChange(products, { id: String(idx) }, idx), meta: { commitLsn: lsn, commitTimeMicros: 0n, sinkName: sink } });
    const commands = [['HSET', 'user:1', 'f', 'v'], ['HSET', 'user:2', 'f', 'v'], ['HSET', 'user:1', 'f', 'v'], ['SET', failedKey('h'), 'x'], ['HSET', 'user:1', 'f', 'v']];
    const origins = [o(0, 0x150n), o(1, 0x150n), o(2, 0x1f0n), null, o(3, 0x150n, 'none')];
    assert.deepEqual(tail.items(commands, origins).map((t) => [t.lane, t.command[1], t.origin.change.idx]), [['cl', 'user:1', 0], ['cl', 'user:1', 2]]);
    tail.reached(pos(0x1f8n));
    assert.equal(tail.open, true);
    tail.reached(pos(0x200n));
    assert.equal(tail.open, false);
    assert.deepEqual(tail.items(commands, origins), []);
  });

  test('the position of the sink itself (its floor) covers every slot; the position a slot\'s MULTI wrote may go past it', () => {
    const a = slotOf('user:1');
    const b = slotOf('user:2');
    const tail = new SlotTail('cl', new Map([['h', { floor: pos(0x100n), slots: new Map([[a, pos(0x200n)]]) }], ['g', { floor: pos(0x100n), slots: new Map() }]]));
    const o = (idx: number, lsn: bigint, sink = 'h'): CommandOrigin => ({ sink, change: insertChange(products, { id: String(idx) }, idx), meta: { commitLsn: lsn, commitTimeMicros: 0n, sinkName: sink } });
    const commands = [['HSET', 'user:1', 'f', 'v'], ['HSET', 'user:2', 'f', 'v'], ['HSET', 'user:2', 'f', 'v'], ['HSET', 'user:1', 'f', 'v']];
    const origins = [o(0, 0x150n), o(1, 0x0f0n), o(2, 0x150n), o(3, 0x0f0n, 'g')];
    assert.notEqual(a, b);
    assert.deepEqual(tail.items(commands, origins).map((t) => [t.origin.sink, t.command[1], t.origin.change.idx]), [['h', 'user:1', 0], ['h', 'user:2', 1], ['g', 'user:1', 3]]);
    // g's tail ends at its floor, h's at its slot's MULTI position
    tail.reached(pos(0x100n));
    assert.equal(tail.open, true);
    assert.deepEqual(tail.items(commands, origins).map((t) => t.origin.sink), ['h', 'h']);
    tail.reached(pos(0x200n));
    assert.equal(tail.open, false);
  });
});
