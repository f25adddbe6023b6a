import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Batcher, countKey, type Batch, type BatchLimits } from '../../src/plan/batcher.js';
import type { RedisCommand } from '../../src/core/command.js';
import { at } from '../support/at.js';
import { insertChange, T, table } from './support/tables.js';

const products = table('public', 'products', [['id', T.int4, true]]);

function batcher(limits: BatchLimits = { maxCommands: 100, maxBytes: 10_000 }): Batcher {
  let n = 0;
  return new Batcher(limits, () => `b${++n}`);
}

/** Size the batcher counts for a command: its arguments, not its name. */
const size = (cmd: RedisCommand): number => cmd.slice(1).reduce((s, a) => s + a.length, 0);

function addTo(b: Batcher, batch: Batch, cmd: RedisCommand, lane = 'main'): void {
  b.add(batch, b.part(batch, lane), cmd, null);
}

describe('Batcher', () => {
  test('open() returns the same batch until it is sealed; sealOpen makes the next open() a new batch', () => {
    const b = batcher();
    const first = b.open(null);
    assert.equal(first.id, 'b1');
    assert.equal(b.open({ lsn: 5n, idx: null }), first, 'the open batch takes more');
    assert.equal(first.position, null, 'the position is the one it was opened with');
    b.sealOpen();
    assert.equal(first.sealed, true);
    const second = b.open({ lsn: 9n, idx: null });
    assert.notEqual(second, first);
    assert.equal(second.id, 'b2');
    assert.deepEqual(second.position, { lsn: 9n, idx: null });
    assert.deepEqual(b.queued, { commands: 0, bytes: 0, batches: 2 });
  });

  test('sealOpen on an empty queue does nothing', () => {
    const b = batcher();
    b.sealOpen();
    assert.equal(b.isEmpty, true);
    assert.equal(b.open(null).sealed, false);
  });

  test('add counts commands and argument characters on the batch and the queue; parts are per lane', () => {
    const b = batcher();
    const batch = b.open(null);
    const origin = { sink: 's', change: insertChange(products, { id: '1' }), meta: { commitLsn: 1n, commitTimeMicros: 0n, sinkName: 's' } };
    b.add(batch, b.part(batch, 'main'), ['SET', 'k', 'value'], origin);
    addTo(b, batch, ['DEL', 'other'], 'cache');
    assert.equal(b.part(batch, 'main'), batch.parts.get('main'), 'part() reuses the lane part');
    assert.deepEqual(at([...batch.parts.keys()], 1), 'cache');
    assert.deepEqual(batch.parts.get('main')?.commands, [['SET', 'k', 'value']]);
    assert.deepEqual(batch.parts.get('main')?.origins, [origin]);
    assert.deepEqual(batch.parts.get('cache')?.origins, [null]);
    assert.equal(batch.commandCount, 2);
    assert.equal(batch.bytes, 1 + 5 + 5);
    assert.deepEqual(b.queued, { commands: 2, bytes: 11, batches: 1 });
  });

  test('count keys split back into sink and action', () => {
    const b = batcher();
    const batch = b.open(null);
    b.count(batch, 'orders-cache', 'insert');
    b.count(batch, 'orders-cache', 'insert', 2);
    b.count(batch, 'feed', 'delete');
    assert.deepEqual(
      [...batch.counts].map(([k, n]) => ({ ...countKey(k), n })),
      [
        { sink: 'orders-cache', action: 'insert', n: 3 },
        { sink: 'feed', action: 'delete', n: 1 },
      ],
    );
  });

  test('settle seals a batch once it holds maxCommands commands, not before', () => {
    const b = batcher({ maxCommands: 3, maxBytes: 1_000_000 });
    const batch = b.open(null);
    for (let i = 0; i < 2; i++) addTo(b, batch, ['SET', `k${i}`, 'v']);
    b.settle(batch);
    assert.equal(batch.sealed, false);
    addTo(b, batch, ['SET', 'k2', 'v']);
    b.settle(batch);
    assert.equal(batch.sealed, true);
    assert.notEqual(b.open(null), batch);
  });

  test('settle seals a batch once it holds maxBytes characters, not before', () => {
    const b = batcher({ maxCommands: 1000, maxBytes: 10 });
    const batch = b.open(null);
    addTo(b, batch, ['SET', 'k', '12345678']); // 9
    b.settle(batch);
    assert.equal(batch.sealed, false);
    addTo(b, batch, ['DEL', 'x']); // 10
    b.settle(batch);
    assert.equal(batch.sealed, true);
  });

  test('next() hands batches over in order, sealed, and takes them off the queue', () => {
    const b = batcher();
    const one = b.open(null);
    addTo(b, one, ['SET', 'a', '1']);
    b.sealOpen();
    const two = b.open(null);
    addTo(b, two, ['SET', 'b', '22']);
    assert.equal(two.sealed, false);
    assert.equal(b.next(), one);
    assert.deepEqual(b.queued, { commands: 1, bytes: 3, batches: 1 });
    const taken = b.next();
    assert.equal(taken, two);
    assert.equal(two.sealed, true, 'taken for applying: takes nothing more');
    assert.equal(b.next(), null);
    assert.equal(b.isEmpty, true);
    assert.notEqual(b.open(null), two);
  });

  test('full(): the queue plus what is being received, against either limit', () => {
    const b = batcher({ maxCommands: 4, maxBytes: 20 });
    assert.equal(b.full(), false);
    const batch = b.open(null);
    addTo(b, batch, ['SET', 'k', '12345']); // 1 command, 6 bytes
    assert.equal(b.full(), false);
    assert.equal(b.full(2), false);
    assert.equal(b.full(3), true, '1 queued + 3 being received = maxCommands');
    assert.equal(b.full(0, 13), false);
    assert.equal(b.full(0, 14), true, '6 queued + 14 = maxBytes');
    for (let i = 0; i < 3; i++) addTo(b, batch, ['DEL', 'x']);
    assert.equal(b.full(), true);
    b.next();
    assert.equal(b.full(), false, 'what is taken for applying no longer counts');
  });

  test('clear() returns every queued batch and empties the counters', () => {
    const b = batcher();
    const one = b.open(null);
    addTo(b, one, ['SET', 'a', '1']);
    b.sealOpen();
    const two = b.open(null);
    assert.deepEqual(b.clear(), [one, two]);
    assert.deepEqual(b.queued, { commands: 0, bytes: 0, batches: 0 });
    assert.equal(b.full(), false);
  });

  type Op =
    | { kind: 'open' }
    | { kind: 'add'; target: number; cmd: RedisCommand }
    | { kind: 'settle'; target: number }
    | { kind: 'sealOpen' }
    | { kind: 'next' }
    | { kind: 'clear' };

  const cmdArb: fc.Arbitrary<RedisCommand> = fc.tuple(fc.constantFrom('SET', 'DEL', 'HSET'), fc.array(fc.string({ maxLength: 6 }), { minLength: 1, maxLength: 3 })).map(([n, args]) => [n, ...args]);
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { arbitrary: fc.constant<Op>({ kind: 'open' }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('add' as const), target: fc.nat(5), cmd: cmdArb }), weight: 6 },
    { arbitrary: fc.record({ kind: fc.constant('settle' as const), target: fc.nat(5) }), weight: 2 },
    { arbitrary: fc.constant<Op>({ kind: 'sealOpen' }), weight: 1 },
    { arbitrary: fc.constant<Op>({ kind: 'next' }), weight: 2 },
    { arbitrary: fc.constant<Op>({ kind: 'clear' }), weight: 1 },
  );

  test('property: queued commands and bytes are the sums over the queued batches; only the last batch may be open', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 30 }), fc.array(opArb, { maxLength: 60 }), (maxCommands, maxBytes, ops) => {
        const b = batcher({ maxCommands, maxBytes });
        const model: Batch[] = [];
        const taken: Batch[] = [];
        for (const op of ops) {
          switch (op.kind) {
            case 'open': {
              const batch = b.open(null);
              const last = model[model.length - 1];
              if (last && !last.sealed) assert.equal(batch, last);
              else model.push(batch);
              break;
            }
            case 'add': {
              // planning only ever adds to a queued batch
              if (model.length === 0) break;
              const batch = at(model, op.target % model.length);
              const before = { n: batch.commandCount, bytes: batch.bytes };
              addTo(b, batch, op.cmd);
              assert.equal(batch.commandCount, before.n + 1);
              assert.equal(batch.bytes, before.bytes + size(op.cmd));
              break;
            }
            case 'settle': {
              if (model.length === 0) break;
              const batch = at(model, op.target % model.length);
              const was = batch.sealed;
              b.settle(batch);
              assert.equal(batch.sealed, was || batch.commandCount >= maxCommands || batch.bytes >= maxBytes);
              break;
            }
            case 'sealOpen':
              b.sealOpen();
              if (model.length > 0) assert.equal(at(model, model.length - 1).sealed, true);
              break;
            case 'next': {
              const batch = b.next();
              assert.equal(batch, model.shift() ?? null, 'batches are handed over in order');
              if (batch) {
                assert.equal(batch.sealed, true);
                taken.push(batch);
              }
              break;
            }
            case 'clear':
              assert.deepEqual(b.clear(), model.splice(0));
              break;
          }
          const q = b.queued;
          assert.equal(q.batches, model.length);
          assert.equal(q.commands, model.reduce((s, x) => s + x.commandCount, 0));
          assert.equal(q.bytes, model.reduce((s, x) => s + x.bytes, 0));
          assert.equal(b.isEmpty, model.length === 0);
          model.slice(0, -1).forEach((x) => assert.equal(x.sealed, true, 'only the last queued batch may take more'));
          assert.equal(b.full(), q.commands >= maxCommands || q.bytes >= maxBytes);
        }
        assert.equal(new Set([...model, ...taken].map((x) => x.id)).size, model.length + taken.length, 'batch ids are unique');
      }),
      { numRuns: 300 },
    );
  });
});
