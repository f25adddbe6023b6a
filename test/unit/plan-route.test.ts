import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Change, Transaction } from '../../src/core/change.js';
import { comparePositions, isCovered, type Position } from '../../src/core/position.js';
import {
  changesFor,
  confirmable,
  keyedByPrimaryKey,
  positionAfter,
  positionToWrite,
  ResendFilter,
  ResendState,
  respec,
  takesFrom,
  truncatedTables,
  type HoldReason,
} from '../../src/plan/route.js';
import { at } from '../support/at.js';
import { deleteChange, insertChange, T, table, updateChange } from './support/tables.js';
import { chunked, inserts, orders, pos, products, runtime, txn } from './support/plan-fixtures.js';

const L = 0x1000n;

describe('ResendFilter', () => {
  test('a complete transaction seen once is dropped when resent, and so is everything before it', () => {
    const f = new ResendFilter();
    const t1 = txn(L, inserts(2));
    const t2 = txn(L + 0x100n, inserts(1));
    assert.equal(f.take(t1), t1, 'nothing filtered: the same object');
    assert.equal(f.take(t2), t2);
    assert.deepEqual(f.seen, pos(L + 0x100n));
    assert.equal(f.take(t1), null);
    assert.equal(f.take(t2), null);
    const t3 = txn(L + 0x200n, []);
    assert.equal(f.take(t3), t3, 'an empty transaction (a TRUNCATE, messages) is taken too');
    f.reset();
    assert.equal(f.seen, null);
    assert.equal(f.take(t1), t1, 'after reset() everything is taken again');
  });

  test('chunks of a large transaction: resent chunks give only the changes after the last one taken', () => {
    const f = new ResendFilter();
    const [c1, c2, last] = chunked(L, 7, 3);
    assert.ok(c1 && c2 && last);
    assert.deepEqual(
      [c1, c2, last].map((c) => [c.changes.map((x) => x.idx), c.complete]),
      [
        [[0, 1, 2], false],
        [[3, 4, 5], false],
        [[6], true],
      ],
    );
    assert.equal(f.take(c1), c1);
    assert.deepEqual(f.seen, pos(L, 2));
    assert.deepEqual(f.take(c2), c2, 'a copy, filtered: every change is after 2');
    assert.deepEqual(f.seen, pos(L, 5));
    // reconnect: Postgres resends the whole transaction, chunked differently this time
    const again = chunked(L, 7, 4);
    assert.equal(f.take(at(again, 0)), null, 'changes 0…3 were all taken');
    const rest = f.take(at(again, 1));
    assert.deepEqual(
      rest?.changes.map((c) => c.idx),
      [6],
    );
    assert.equal(rest?.complete, true);
    assert.deepEqual(f.seen, pos(L));
    assert.equal(f.take(last), null);
  });

  test('the commit of a transaction whose changes were all taken in chunks still goes through (empty)', () => {
    const f = new ResendFilter();
    const [c1, commit] = chunked(L, 3, 3);
    assert.ok(c1 && commit);
    assert.equal(commit.changes.length, 0);
    f.take(c1);
    // reconnect before the commit: the chunk is resent, then the commit
    assert.equal(f.take(at(chunked(L, 3, 3), 0)), null);
    const taken = f.take(commit);
    assert.equal(taken?.complete, true);
    assert.deepEqual(taken?.changes, []);
  });

  test('property: a stream, then after a reconnect its suffix again, yields each change and each commit exactly once, in order', () => {
    const arb = fc
      .record({
        sizes: fc.array(fc.nat(7), { minLength: 1, maxLength: 6 }),
        chunk: fc.integer({ min: 1, max: 4 }),
        resendChunk: fc.integer({ min: 1, max: 4 }),
      })
      .chain((r) => {
        const items = r.sizes.flatMap((n, k) => chunked(L * BigInt(k + 1), n, r.chunk).map((t) => ({ t, k })));
        return fc.record({ cut: fc.integer({ min: 0, max: items.length }), pick: fc.nat() }).map(({ cut, pick }) => ({ ...r, items, cut, pick }));
      });
    fc.assert(
      fc.property(arb, ({ sizes, resendChunk, items, cut, pick }) => {
        const f = new ResendFilter();
        const changes: string[] = [];
        const commits: bigint[] = [];
        const feed = (t: Transaction) => {
          const got = f.take(t);
          if (got === null) return;
          for (const c of got.changes) changes.push(`${got.commitLsn}:${c.idx}`);
          if (got.complete) commits.push(got.commitLsn);
        };
        for (const { t } of items.slice(0, cut)) feed(t);
        // Postgres resends from the start of a transaction not after the first one not fully received
        const firstOpen = cut < items.length ? at(items, cut).k : sizes.length - 1;
        const from = pick % (firstOpen + 1);
        for (let k = from; k < sizes.length; k++) for (const t of chunked(L * BigInt(k + 1), at(sizes, k), resendChunk)) feed(t);
        assert.deepEqual(
          changes,
          sizes.flatMap((n, k) => Array.from({ length: n }, (_, i) => `${L * BigInt(k + 1)}:${i}`)),
        );
        assert.deepEqual(
          commits,
          sizes.map((_, k) => L * BigInt(k + 1)),
        );
      }),
      { numRuns: 500 },
    );
  });
});

describe('ResendState', () => {
  test('shouldReset: once, for the first item of each newer connection', () => {
    const s = new ResendState();
    assert.equal(s.shouldReset(0), true);
    assert.equal(s.shouldReset(0), false, 'once');
    assert.equal(s.shouldReset(2), true);
    assert.equal(s.shouldReset(1), false, 'an item of an older connection, still closing');
    assert.equal(s.shouldReset(3), true, 'a second restart replays again');
  });
});

describe('changesFor and truncatedTables', () => {
  const t = txn(L, [
    insertChange(products, { id: '1' }, 0),
    updateChange(products, { id: '1', name: 'b' }, undefined, 'K', 1),
    insertChange(orders, { id: '9' }, 2),
    deleteChange(products, { id: '1' }, 'K', 3),
    { ...insertChange(products, { id: '2' }, 4), action: 'read' },
  ]);
  const idxs = (cs: readonly Change[]) => cs.map((c) => c.idx);

  test('the sink’s tables and actions (read always), nothing covered, nothing truncated', () => {
    assert.deepEqual(idxs(changesFor(runtime('all', { type: 'string' }), t, new Map())), [0, 1, 3, 4]);
    assert.deepEqual(idxs(changesFor(runtime('ins', { type: 'list', key: 'feed' }), t, new Map())), [0, 4], 'a list sink takes inserts by default');
    assert.deepEqual(idxs(changesFor(runtime('both', { type: 'string', tables: ['public.*'] }), t, new Map())), [0, 1, 2, 3, 4]);
    assert.deepEqual(idxs(changesFor(runtime('o', { type: 'string', tables: ['orders'], actions: ['delete'] }), t, new Map())), [], 'orders has no delete');
  });

  test('changes covered by the sink’s position are skipped', () => {
    const uncovered = (position: Position | null) => idxs(changesFor(runtime('s', { type: 'string' }, { position }), t, new Map()));
    assert.deepEqual(uncovered(pos(L)), [0, 1, 3, 4], 'everything before L: the transaction at L is not covered');
    assert.deepEqual(uncovered(pos(L, 1)), [3, 4]);
    assert.deepEqual(uncovered(pos(L, 4)), []);
    assert.deepEqual(uncovered(pos(L + 8n)), []);
    assert.deepEqual(uncovered(pos(L - 1n, 7)), [0, 1, 3, 4]);
  });

  test('changes of a table before its last TRUNCATE in the transaction are skipped', () => {
    const tr = txn(L, t.changes, {
      truncates: [
        { tables: [products, orders], idx: 1 },
        { tables: [products], idx: 3 },
      ],
    });
    const s = runtime('s', { type: 'string', tables: ['public.*'] });
    const truncated = truncatedTables(tr, [s]);
    assert.deepEqual([...truncated], [
      ['public.products', 3],
      ['public.orders', 1],
    ]);
    assert.deepEqual(idxs(changesFor(s, tr, truncated)), [2, 3, 4]);
    assert.deepEqual([...truncatedTables(tr, [runtime('p', { type: 'string' })])], [['public.products', 3]], 'only tables some sink reads');
    assert.deepEqual([...truncatedTables(tr, [])], []);
  });
});

describe('positions', () => {
  test('positionAfter: the end LSN of a complete transaction, the last change of a chunk', () => {
    assert.deepEqual(positionAfter(txn(L, inserts(2), { endLsn: L + 0x30n }), 1), pos(L + 0x30n));
    assert.deepEqual(positionAfter(txn(L, inserts(2), { complete: false }), 1), pos(L, 1));
  });

  const positionArb: fc.Arbitrary<Position> = fc.record({ lsn: fc.bigInt({ min: 1n, max: 6n }), idx: fc.option(fc.nat(4)) });

  test('property: positionToWrite never goes backwards and returns null when nothing is new', () => {
    fc.assert(
      fc.property(fc.option(positionArb), fc.array(fc.option(positionArb), { maxLength: 20 }), (start, planned) => {
        const s = runtime('s', { type: 'string' }, { position: start });
        let highest = start;
        for (const p of planned) {
          const got = positionToWrite(s, p);
          const isNew = p !== null && (highest === null || comparePositions(p, highest) > 0);
          assert.deepEqual(got, isNew ? p : null);
          if (isNew) highest = p;
          assert.deepEqual(s.written, highest);
        }
      }),
    );
  });

  test('confirmable: a held sink at "before L" holds L; inside the transaction at L holds L - 1', () => {
    const active = runtime('a', { type: 'string' }, { position: pos(0x900n) });
    assert.equal(confirmable(0x800n, [active]), 0x800n, 'active sinks do not hold the slot');
    const held = runtime('h', { type: 'string' }, { position: pos(0x500n), hold: 'paused' });
    assert.equal(confirmable(0x800n, [active, held]), 0x500n);
    held.position = pos(0x500n, 7);
    held.written = null;
    assert.equal(confirmable(0x800n, [held]), 0x4ffn);
    held.written = pos(0x400n);
    assert.equal(confirmable(0x800n, [held]), 0x400n, 'what was written to Redis, when behind what was planned');
    const catching = runtime('c', { type: 'string' }, { position: pos(0x300n, 0) });
    catching.catchUpTo = pos(0x900n);
    assert.equal(confirmable(0x800n, [held, catching]), 0x2ffn, 'a resumed sink replaying holds the slot too');
    assert.equal(confirmable(0x100n, [held, catching]), 0x100n, 'never past the batch end');
    const nothing = runtime('n', { type: 'string' }, { hold: 'starting' });
    assert.equal(confirmable(0x800n, [nothing]), 0x800n, 'a held sink without any position holds nothing');
  });

  test('property: confirmable is the batch end, lowered to what every sink has in Redis for sure (written, else where it starts)', () => {
    const sinkArb = fc.record({
      hold: fc.constantFrom<HoldReason | null>(null, 'paused', 'starting'),
      catching: fc.boolean(),
      position: fc.option(positionArb),
      written: fc.option(positionArb),
    });
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 7n }), fc.array(sinkArb, { maxLength: 5 }), (end, specs) => {
        const sinks = specs.map((x, i) => {
          const s = runtime(`s${i}`, { type: 'string' }, { position: x.position, hold: x.hold });
          s.written = x.written;
          s.catchUpTo = x.catching ? pos(8n) : null;
          return s;
        });
        const got = confirmable(end, sinks);
        let expected = end;
        for (const s of sinks) {
          // what Redis has for it for sure: what was written with an applied batch (else its start)
          const p = s.written ?? s.position;
          if (p === null) continue;
          // inside the transaction at p.lsn: that transaction must be resent whole
          const hold = p.idx === null ? p.lsn : p.lsn - 1n;
          assert.ok(got <= hold, `confirmed ${got} past ${s.name} at ${p.lsn}:${p.idx}`);
          if (hold < expected) expected = hold;
        }
        assert.ok(got <= end);
        assert.equal(got, expected, 'and no lower than it must');
      }),
      { numRuns: 300 },
    );
  });
});

describe('sink runtime', () => {
  test('takesFrom: not while held, not from a connection older than fromGeneration', () => {
    const s = runtime('s', { type: 'string' });
    assert.equal(takesFrom(s, 0), true);
    s.fromGeneration = 2;
    assert.equal(takesFrom(s, 1), false);
    assert.equal(takesFrom(s, 2), true);
    assert.equal(takesFrom(s, 3), true);
    s.hold = 'paused';
    assert.equal(takesFrom(s, 3), false);
    s.hold = 'starting';
    assert.equal(takesFrom(s, 3), false);
  });

  test('sinkRuntime: read is always an action; position, written and start are the given position', () => {
    const s = runtime('s', { type: 'list', key: 'feed' }, { position: pos(L, 3), hold: 'starting' });
    assert.deepEqual([...s.actionSet].sort(), ['insert', 'read']);
    assert.deepEqual([s.startPosition, s.position, s.written], [pos(L, 3), pos(L, 3), pos(L, 3)]);
    assert.equal(s.hold, 'starting');
    assert.equal(s.catchUpTo, null);
  });

  test('respec keeps the name, positions, hold and generation; takes the new tables and actions', () => {
    const s = runtime('s', { type: 'string' }, { position: pos(L), hold: 'paused' });
    s.written = pos(L - 1n);
    s.startPosition = pos(1n);
    s.catchUpTo = pos(L + 1n);
    s.fromGeneration = 4;
    const other = runtime('s', { type: 'string', tables: ['orders'], actions: ['delete'] });
    const next = respec(s, other);
    assert.equal(next.name, 's');
    assert.deepEqual([next.position, next.written, next.startPosition, next.catchUpTo], [pos(L), pos(L - 1n), pos(1n), pos(L + 1n)]);
    assert.equal(next.hold, 'paused');
    assert.equal(next.fromGeneration, 4);
    assert.equal(next.matcher.matches(orders), true);
    assert.equal(next.matcher.matches(products), false);
    assert.deepEqual([...next.actionSet].sort(), ['delete', 'read']);
  });

  test('keyedByPrimaryKey: REPLICA IDENTITY FULL tables are keyed by their primary key; others unchanged', () => {
    const full = table('public', 'items', [['id', T.int4, true], ['sku', T.text, true], ['name', T.text, true]], { replicaIdentity: 'f' });
    const keyed = keyedByPrimaryKey(full, ['sku', 'id']);
    assert.deepEqual(
      keyed.columns.map((c) => [c.name, c.isKey]),
      [
        ['id', true],
        ['sku', true],
        ['name', false],
      ],
    );
    assert.deepEqual(keyed.keyIndexes, [0, 1]);
    assert.deepEqual(full.keyIndexes, [0, 1, 2], 'the original is left as it is');
    assert.equal(keyedByPrimaryKey(full, null), full);
    assert.equal(keyedByPrimaryKey(full, undefined), full);
    assert.equal(keyedByPrimaryKey(full, []), full, 'no primary key: every column stays the identity');
    assert.equal(keyedByPrimaryKey(products, ['name']), products, 'default replica identity: already keyed');
  });
});

describe('isCovered', () => {
  test('is comparePositions(change, position) <= 0 (property)', () => {
    const lsn = fc.bigInt({ min: 0n, max: 8n });
    const position = fc.option(fc.record({ lsn, idx: fc.option(fc.nat(6), { nil: null }) }), { nil: null });
    fc.assert(
      fc.property(position, lsn, fc.nat(6), (p, commitLsn, idx) => {
        assert.equal(isCovered(p, commitLsn, idx), p !== null && comparePositions({ lsn: commitLsn, idx }, p) <= 0);
      }),
      { numRuns: 1000 },
    );
  });
});
