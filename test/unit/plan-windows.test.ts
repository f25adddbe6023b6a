import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Windows, orphanItemIds, type Window } from '../../src/plan/windows.js';
import type { Change } from '../../src/core/change.js';
import { rowList } from '../../src/core/tuple.js';
import { deleteChange, insertChange, T, table, tuple, updateChange } from './support/tables.js';

const products = table('public', 'products', [
  ['id', T.int4, true],
  ['name', T.text],
]);
const orders = table('public', 'orders', [['id', T.int4, true]]);
/** the same table described again (a new Relation message): matched by name */
const productsAgain = table('public', 'products', [
  ['id', T.int4, true],
  ['name', T.text],
]);

const row = (id: number, name = `n${id}`) => tuple(products, { id: String(id), name });

function opened(w: Windows, id: string): Window {
  const ev = w.onWatermark(`lw:${id}`, 0n);
  assert.equal(ev.kind, 'opened');
  assert.ok(ev.kind === 'opened');
  return ev.window;
}

function closed(w: Windows, id: string): Window {
  const ev = w.onWatermark(`hw:${id}`, 0n);
  assert.ok(ev.kind === 'closed', `hw:${id} closes the window`);
  return ev.window;
}

describe('Windows', () => {
  test('register → lw opens → changes of its table are tracked (new and old identity) → hw closes and removes', async () => {
    const w = new Windows();
    const applied = w.register('w1', 'rows', 's', products);
    assert.equal(w.size, 1);
    const win = w.get('w1');
    assert.equal(win?.open, false);

    w.track([insertChange(products, { id: '1' })], 1n);
    assert.deepEqual([...(win?.touched ?? [])], [], 'not tracked before the low watermark');

    assert.equal(opened(w, 'w1'), win);
    assert.equal(win?.open, true);
    w.track([
      insertChange(products, { id: '2', name: 'a' }, 0),
      updateChange(products, { id: '4', name: 'b' }, { id: '3' }, 'K', 1), // the key moved 3 → 4
      deleteChange(productsAgain, { id: '5' }, 'K', 2),
      insertChange(orders, { id: '6' }, 3),
    ], 1n);
    assert.deepEqual([...(win?.touched ?? [])].sort(), ['2', '3', '4', '5']);

    w.fillRows('w1', [row(1), row(2), row(3), row(7)], [['HSET', 'sluice:backfill:s', 'public.products', '{}']]);
    const done = closed(w, 'w1');
    assert.equal(done, win);
    assert.equal(w.size, 0);
    assert.equal(w.get('w1'), undefined);
    const fresh = Windows.freshRows(done);
    assert.deepEqual({ rows: rowList(fresh.rows), skipped: fresh.skipped }, { rows: [row(1), row(7)], skipped: 2 });
    assert.deepEqual(done.extraCommands, [['HSET', 'sluice:backfill:s', 'public.products', '{}']]);

    done.resolve({ emitted: 2, skipped: 2 });
    assert.deepEqual(await applied, { emitted: 2, skipped: 2 });
  });

  test('watermarks of unknown ids, and other texts, are ignored', () => {
    const w = new Windows();
    void w.register('mine', 'rows', 's', products);
    assert.deepEqual(w.onWatermark('lw:theirs', 0n), { kind: 'ignored' });
    assert.deepEqual(w.onWatermark('hw:theirs', 0n), { kind: 'ignored' });
    assert.deepEqual(w.onWatermark('xx:mine', 0n), { kind: 'ignored' });
    assert.deepEqual(w.onWatermark('', 0n), { kind: 'ignored' });
    assert.equal(w.get('mine')?.open, false);
    closed(w, 'mine');
    assert.deepEqual(w.onWatermark('hw:mine', 0n), { kind: 'ignored' }, 'a resent high watermark after the window closed');
  });

  test('orphan windows track no rows', () => {
    const w = new Windows();
    void w.register('o', 'orphans', 's', null);
    opened(w, 'o');
    w.track([insertChange(products, { id: '1' })], 1n);
    assert.deepEqual([...(w.get('o')?.touched ?? [])], []);
  });

  test('keyTrackers: the touched sets of the sink’s open orphan windows only', () => {
    const w = new Windows();
    assert.equal(w.keyTrackers('s'), null);
    void w.register('o1', 'orphans', 's', null);
    void w.register('o2', 'orphans', 's', null);
    void w.register('o3', 'orphans', 'other', null);
    void w.register('r', 'rows', 's', products);
    opened(w, 'r');
    assert.equal(w.keyTrackers('s'), null, 'no orphan window of s is open');
    opened(w, 'o1');
    opened(w, 'o3');
    const trackers = w.keyTrackers('s');
    assert.deepEqual(trackers, [w.get('o1')?.touched]);
    assert.equal(trackers?.[0], w.get('o1')?.touched);
  });

  test('orphanKeys drops the keys written while the window was open', () => {
    const w = new Windows();
    void w.register('o', 'orphans', 's', null);
    opened(w, 'o');
    for (const t of w.keyTrackers('s') ?? []) t.add('p:2');
    w.fillOrphans('o', ['p:1', 'p:2', 'p:3']);
    for (const t of w.keyTrackers('s') ?? []) t.add('p:3');
    assert.deepEqual(Windows.orphanKeys(closed(w, 'o')), { keys: ['p:1'], skipped: 2 });
  });

  test('orphan items: members, fields and bits the stream wrote or removed while open are kept; the rest are removed', () => {
    const w = new Windows();
    void w.register('o', 'orphans', 's', null);
    opened(w, 'o');
    assert.equal(w.itemTrackers('other'), null);
    const track = (cmd: string[]): void => {
      for (const t of w.itemTrackers('s') ?? []) for (const id of orphanItemIds(cmd)) t.add(id);
    };
    track(['SADD', 'set:1', 'a']);
    track(['ZREM', 'z:1', 'b']);
    track(['HSET', 'h:1', 'f1', 'v1', 'f2', 'v2']);
    track(['SETBIT', 'bm:1', '7', '1']);
    track(['DEL', 'set:1']);
    w.fillOrphans('o', ['k:gone'], [
      { kind: 'member', key: 'set:1', item: 'a' },
      { kind: 'member', key: 'set:1', item: 'x' },
      { kind: 'zmember', key: 'z:1', item: 'b' },
      { kind: 'zmember', key: 'z:1', item: 'c' },
      { kind: 'field', key: 'h:1', item: 'f2' },
      { kind: 'field', key: 'h:1', item: 'v1' },
      { kind: 'bit', key: 'bm:1', item: '7' },
      { kind: 'bit', key: 'bm:1', item: '8' },
    ]);
    const win = closed(w, 'o');
    assert.deepEqual(Windows.orphanKeys(win), { keys: ['k:gone'], skipped: 0 });
    assert.deepEqual(Windows.orphanItemCommands(win), {
      commands: [
        ['SREM', 'set:1', 'x'],
        ['ZREM', 'z:1', 'c'],
        ['HDEL', 'h:1', 'v1'],
        ['SETBIT', 'bm:1', '8', '0'],
      ],
      skipped: 4,
    });
  });

  test('orphanItemIds: the items a keyed sink command names', () => {
    const id = (k: string, i: string): string => `${k}\u0000${i}`;
    assert.deepEqual(orphanItemIds(['ZADD', 'z', 'GT', 'CH', '1.5', 'm1', '2', 'm2']), [id('z', 'm1'), id('z', 'm2')]);
    assert.deepEqual(orphanItemIds(['GEOADD', 'g', '13.4', '52.5', 'berlin']), [id('g', 'berlin')]);
    assert.deepEqual(orphanItemIds(['HDEL', 'h', 'a', 'b']), [id('h', 'a'), id('h', 'b')]);
    assert.deepEqual(orphanItemIds(['SREM', 's', 'm']), [id('s', 'm')]);
    assert.deepEqual(orphanItemIds(['SETBIT', 'b', '3', '0']), [id('b', '3')]);
    for (const cmd of [['DEL', 'k'], ['PEXPIRE', 'k', '100'], ['SET', 'k', 'v'], ['EVAL', 'script', '1', 'k'], ['PUBLISH']]) assert.deepEqual(orphanItemIds(cmd), [], cmd.join(' '));
  });

  test('closing before the fill: freshRows and orphanKeys throw', () => {
    const w = new Windows();
    void w.register('r', 'rows', 's', products);
    void w.register('o', 'orphans', 's', null);
    assert.throws(() => Windows.freshRows(closed(w, 'r')), /before the chunk was read/);
    assert.throws(() => Windows.orphanKeys(closed(w, 'o')), /before the orphan keys were collected/);
  });

  test('fill on the wrong mode, or an unknown window, throws', () => {
    const w = new Windows();
    void w.register('r', 'rows', 's', products);
    void w.register('o', 'orphans', 's', null);
    assert.throws(() => w.fillOrphans('r', ['k']), /orphan window r is not open/);
    assert.throws(() => w.fillRows('o', [], []), /backfill window o is not open/);
    assert.throws(() => w.fillRows('nope', [], []), /backfill window nope is not open/);
    assert.throws(() => w.fillOrphans('nope', []), /orphan window nope is not open/);
    assert.equal(w.get('r')?.rows, null);
    assert.equal(w.get('o')?.orphans, null);
  });

  test('cancel rejects the applied promise and removes the window; unknown ids are a no-op', async () => {
    const w = new Windows();
    const applied = w.register('r', 'rows', 's', products);
    w.cancel('nope', 'x');
    w.cancel('r', 'backfill stopped');
    await assert.rejects(applied, { message: 'backfill stopped' });
    assert.equal(w.size, 0);
    assert.deepEqual(w.onWatermark('hw:r', 0n), { kind: 'ignored' });
  });

  test('cancelAll(reason, sink) rejects that sink’s windows only; cancelAll(reason) all of them', async () => {
    const w = new Windows();
    const a1 = w.register('a1', 'rows', 'a', products);
    const a2 = w.register('a2', 'orphans', 'a', null);
    const b1 = w.register('b1', 'rows', 'b', products);
    w.cancelAll('sink "a" was deleted', 'a');
    await assert.rejects(a1, /sink "a" was deleted/);
    await assert.rejects(a2, /sink "a" was deleted/);
    assert.equal(w.size, 1);
    assert.ok(w.get('b1'));
    w.cancelAll('stopping');
    await assert.rejects(b1, /stopping/);
    assert.equal(w.size, 0);
  });

  test('property: freshRows drops exactly the rows whose identity the stream touched while open', () => {
    type Op = { kind: 'insert' | 'delete'; id: number } | { kind: 'update'; id: number; from: number | null } | { kind: 'other'; id: number };
    const id = fc.integer({ min: 1, max: 12 });
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constantFrom('insert' as const, 'delete' as const), id }),
      fc.record({ kind: fc.constant('update' as const), id, from: fc.option(id) }),
      fc.record({ kind: fc.constant('other' as const), id }),
    );
    const change = (op: Op, idx: number): Change => {
      switch (op.kind) {
        case 'insert':
          return insertChange(products, { id: String(op.id) }, idx);
        case 'delete':
          return deleteChange(products, { id: String(op.id) }, 'K', idx);
        case 'update':
          return op.from === null ? updateChange(products, { id: String(op.id) }, undefined, 'K', idx) : updateChange(products, { id: String(op.id) }, { id: String(op.from) }, 'K', idx);
        case 'other':
          return insertChange(orders, { id: String(op.id) }, idx);
      }
    };
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 10 }), fc.array(opArb, { maxLength: 10 }), fc.uniqueArray(id, { maxLength: 12 }), (before, during, ids) => {
        const w = new Windows();
        void w.register('w', 'rows', 's', products);
        w.track(before.map(change), 1n);
        opened(w, 'w');
        w.track(during.map(change), 1n);
        const rows = ids.map((i) => row(i));
        w.fillRows('w', rows, []);
        const touched = new Set<string>();
        for (const op of during) {
          if (op.kind === 'other') continue;
          touched.add(String(op.id));
          if (op.kind === 'update' && op.from !== null) touched.add(String(op.from));
        }
        const fresh = Windows.freshRows(closed(w, 'w'));
        assert.deepEqual(
          rowList(fresh.rows),
          rows.filter((r) => !touched.has(String(r[0]))),
        );
        assert.equal(fresh.skipped, rows.length - fresh.rows.length);
      }),
      { numRuns: 300 },
    );
  });

  test('property: orphanKeys keeps exactly the candidates not written while open, in order', () => {
    const key = fc.constantFrom('k1', 'k2', 'k3', 'k4', 'k5', 'k6');
    fc.assert(
      fc.property(fc.array(key), fc.array(key), fc.array(key), (before, candidates, written) => {
        const w = new Windows();
        void w.register('o', 'orphans', 's', null);
        for (const t of w.keyTrackers('s') ?? []) for (const k of before) t.add(k);
        opened(w, 'o');
        for (const t of w.keyTrackers('s') ?? []) for (const k of written) t.add(k);
        w.fillOrphans('o', candidates);
        const { keys, skipped } = Windows.orphanKeys(closed(w, 'o'));
        assert.deepEqual(
          keys,
          candidates.filter((k) => !written.includes(k)),
        );
        assert.equal(skipped, candidates.length - keys.length);
      }),
    );
  });
});
