import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Change } from '../../src/core/change.js';
import { formatLsn, type Lsn } from '../../src/core/lsn.js';
import type { MessageMeta } from '../../src/core/render.js';
import type { RedisCommand } from '../../src/core/command.js';
import type { Sink } from '../../src/sinks/sink.js';
import { Batcher, countKey, type Batch, type BatchLimits, type LanePart } from '../../src/plan/batcher.js';
import { Planner, type PlanEvents } from '../../src/plan/planner.js';
import { Windows } from '../../src/plan/windows.js';
import type { SinkRuntime } from '../../src/plan/route.js';
import { comparePositions, type Position } from '../../src/core/position.js';
import { at } from '../support/at.js';
import { insertChange, tuple, updateChange } from './support/tables.js';
import { chunked, fromSink, inserts, orders, pos, products, runtime, txn, watermark } from './support/plan-fixtures.js';

const L = 0x1000n;
const END = L + 0x40n;

function setup(sinks: SinkRuntime[], limits: BatchLimits = { maxCommands: 10_000, maxBytes: 10_000_000 }) {
  let n = 0;
  const batcher = new Batcher(limits, () => `b${++n}`);
  const windows = new Windows();
  const failed: { sink: string; idx: number; reason: string }[] = [];
  const truncates: { sink: string; table: string; prefix: string | null }[] = [];
  const chunks: [Lsn, number][] = [];
  const events: PlanEvents = {
    failed: (sink, change, _meta, reason) => failed.push({ sink, idx: change.idx, reason }),
    truncate: (sink, table, prefix) => truncates.push({ sink, table: table.qualifiedName, prefix }),
    chunk: (commitLsn, through) => chunks.push([commitLsn, through]),
  };
  const planner = new Planner(batcher, windows, events, () => sinks, () => 0n);
  return { batcher, windows, planner, failed, truncates, chunks };
}

function part(batch: Batch, lane: string): LanePart {
  const p = batch.parts.get(lane);
  assert.ok(p, `batch ${batch.id} has a part for ${lane}; it has ${[...batch.parts.keys()].join(', ') || 'none'}`);
  return p;
}

/** Command names and keys, for assertions that do not depend on the rendered values. */
const heads = (cmds: RedisCommand[]) => cmds.map((c) => `${c[0]} ${c[1]}`);
const counts = (batch: Batch) => Object.fromEntries([...batch.counts].map(([k, v]) => [`${countKey(k).sink}/${countKey(k).action}`, v]));
const row = (id: number) => tuple(products, { id: String(id), name: `n${id}` });
const failedRecord = (cmd: RedisCommand) => JSON.parse(at(cmd, 3)) as { reason: string; sink: string; commit_idx: number; failed_at: string };

describe('Planner.transaction', () => {
  test('a transaction planned for several sinks: each gets its commands in its Redis part, and its position', () => {
    const cache = runtime('cache', { type: 'string' });
    const feed = runtime('feed', { type: 'list', key: 'feed', actions: ['insert', 'update'] }, { redis: 'events' });
    const { planner, batcher } = setup([cache, feed]);
    const t = txn(L, [insertChange(products, { id: '1', name: 'a' }, 0), updateChange(products, { id: '2', name: 'b' }, undefined, 'K', 1), insertChange(orders, { id: '3' }, 2)], { endLsn: END, commitTimeMicros: 42n });
    const batch = planner.transaction(t, 0);
    assert.equal(batch.id, 'b1');
    assert.deepEqual(heads(part(batch, 'main').commands), ['SET sluice:products:1', 'SET sluice:products:2']);
    assert.deepEqual(heads(part(batch, 'events').commands), ['RPUSH feed', 'RPUSH feed']);
    assert.deepEqual(
      part(batch, 'main').origins.map((o) => [o?.sink, o?.change.idx, o?.meta.commitLsn]),
      [
        ['cache', 0, L],
        ['cache', 1, L],
      ],
    );
    assert.deepEqual([...batch.sinkPositions], [
      ['cache', pos(END)],
      ['feed', pos(END)],
    ]);
    assert.deepEqual([cache.position, feed.position, planner.planned, batch.position], [pos(END), pos(END), pos(END), pos(END)]);
    assert.deepEqual(counts(batch), { 'cache/insert': 1, 'cache/update': 1, 'feed/insert': 1, 'feed/update': 1 });
    assert.equal(batch.transactions, 1);
    assert.equal(batch.endLsn, END);
    assert.equal(batch.lastCommitTime, 42n);
    assert.equal(batch.sealed, false);
    assert.deepEqual(batcher.queued, { commands: 4, bytes: batch.bytes, batches: 1 });

    const next = planner.transaction(txn(END + 0x10n, inserts(1, 0, 5), { endLsn: END + 0x20n }), 0);
    assert.equal(next, batch, 'the open batch takes whole transactions until it is full');
    assert.equal(batch.transactions, 2);
    assert.equal(batch.endLsn, END + 0x20n);
  });

  test('chunks of a large transaction: a position inside it, no end LSN nor transaction until the last one', () => {
    const cache = runtime('cache', { type: 'string' });
    const { planner, chunks } = setup([cache]);
    const first = planner.transaction(txn(L, inserts(3), { complete: false }), 0);
    assert.deepEqual([first.endLsn, first.transactions], [0n, 0]);
    assert.deepEqual(first.sinkPositions.get('cache'), pos(L, 2));
    assert.deepEqual(cache.position, pos(L, 2));
    assert.deepEqual(chunks, [[L, 2]]);
    const last = planner.transaction(txn(L, inserts(1, 3, 4), { endLsn: END }), 0);
    assert.deepEqual([last.endLsn, last.transactions], [END, 1]);
    assert.deepEqual(last.sinkPositions.get('cache'), pos(END));
    assert.equal(chunks.length, 1);
  });

  test('a held sink gets nothing and its position does not move; nor a sink waiting for a newer connection', () => {
    const active = runtime('active', { type: 'string' });
    const held = runtime('held', { type: 'string' }, { redis: 'other', position: pos(0x10n), hold: 'paused' });
    const later = runtime('later', { type: 'string' }, { redis: 'later', position: pos(0x10n) });
    later.fromGeneration = 2;
    const { planner } = setup([active, held, later]);
    const batch = planner.transaction(txn(L, inserts(2), { endLsn: END }), 1);
    assert.deepEqual([...batch.parts.keys()], ['main']);
    assert.deepEqual([...batch.sinkPositions.keys()], ['active']);
    assert.deepEqual([held.position, later.position], [pos(0x10n), pos(0x10n)]);
    assert.deepEqual(Object.keys(counts(batch)), ['active/insert']);
  });

  test('what a sink’s position covers is not planned again, and its position does not move back', () => {
    const ahead = runtime('ahead', { type: 'string' }, { position: pos(END + 1n) });
    const inside = runtime('inside', { type: 'string' }, { redis: 'other', position: pos(L, 0) });
    inside.catchUpTo = pos(END);
    const { planner } = setup([ahead, inside]);
    const batch = planner.transaction(txn(L, inserts(2), { endLsn: END }), 0);
    assert.deepEqual(part(batch, 'main').commands, []);
    assert.deepEqual(heads(part(batch, 'other').commands), ['SET sluice:products:2']);
    assert.deepEqual([ahead.position, inside.position], [pos(END + 1n), pos(END)]);
    assert.deepEqual([...batch.sinkPositions.keys()], ['inside']);
    assert.equal(inside.catchUpTo, null, 'caught up: it no longer holds the slot');
  });

  test('a sink that throws (not a message error) fails that message with "internal error"; the rest still plans', () => {
    const bad: Sink = {
      name: 'bad',
      type: 'string',
      plan(change: Change) {
        if (change.idx === 1) throw new Error('boom');
      },
    };
    const cache = runtime('cache', { type: 'string' });
    const { planner, failed } = setup([fromSink(bad), cache]);
    const batch = planner.transaction(txn(L, inserts(3), { endLsn: END }), 0);
    const main = part(batch, 'main');
    assert.deepEqual(heads(main.commands), ['HSET sluice:failed:bad', 'SET sluice:products:1', 'SET sluice:products:2', 'SET sluice:products:3']);
    const hset = at(main.commands, 0);
    assert.equal(hset[2], `${formatLsn(L)}:1`);
    const record = failedRecord(hset);
    assert.match(record.reason, /internal error/);
    assert.match(record.reason, /boom/);
    assert.deepEqual([record.sink, record.commit_idx, record.failed_at], ['bad', 1, '2000-01-01T00:00:00.000Z']);
    assert.equal(main.origins[0], null, 'the failed-message record is bookkeeping');
    assert.deepEqual(
      failed.map((f) => [f.sink, f.idx]),
      [['bad', 1]],
    );
    assert.match(at(failed, 0).reason, /internal error while planning this message.*boom/);
    assert.deepEqual(counts(batch), { 'bad/insert': 3, 'cache/insert': 3 });
    assert.deepEqual(batch.sinkPositions.get('bad'), pos(END), 'a failed message is done with: the sink moves on');
  });

  test('TRUNCATE seals the open batch; only state sinks unlink their prefix and drop earlier changes of the table; history sinks keep them', () => {
    const cache = runtime('cache', { type: 'string' });
    const noPrefix = runtime('byname', { type: 'string', key: '{name}:x' }, { redis: 'byname' });
    const feed = runtime('feed', { type: 'list', key: 'feed' }, { redis: 'events' });
    const { planner, truncates } = setup([cache, noPrefix, feed]);
    const before = planner.transaction(txn(0x100n, inserts(1), { endLsn: 0x108n }), 0);
    const tr = txn(L, inserts(3, 0, 10), { endLsn: END, truncates: [{ tables: [products], idx: 2 }] });
    const batch = planner.transaction(tr, 0);
    assert.notEqual(batch, before);
    assert.equal(before.sealed, true, 'the unlink runs before the MULTI of the batch that follows it');
    assert.deepEqual(part(batch, 'main').unlinkPrefixes, ['sluice:products:']);
    assert.deepEqual(part(batch, 'byname').unlinkPrefixes, []);
    assert.deepEqual(part(batch, 'events').unlinkPrefixes, [], 'a list keeps its history');
    assert.deepEqual(truncates, [
      { sink: 'cache', table: 'public.products', prefix: 'sluice:products:' },
      { sink: 'byname', table: 'public.products', prefix: null },
    ]);
    assert.deepEqual(heads(part(batch, 'main').commands), ['SET sluice:products:12']);
    assert.deepEqual(part(batch, 'events').commands.length, 3, 'a list keeps every change, before the TRUNCATE too');
  });

  test('a TRUNCATE the sink’s position covers (resent) is not applied again; one of a table no sink reads seals nothing', () => {
    const cache = runtime('cache', { type: 'string' }, { position: pos(L, 2) });
    const { planner, truncates } = setup([cache]);
    const open = planner.transaction(txn(0x100n, [], { endLsn: 0x108n }), 0);
    const ordersOnly = planner.transaction(txn(0x200n, [], { endLsn: 0x208n, truncates: [{ tables: [orders], idx: 0 }] }), 0);
    assert.equal(ordersOnly, open);
    const batch = planner.transaction(txn(L, inserts(1, 3), { endLsn: END, truncates: [{ tables: [products], idx: 1 }] }), 0);
    assert.deepEqual(part(batch, 'main').unlinkPrefixes, []);
    assert.deepEqual(truncates, []);
    assert.deepEqual(heads(part(batch, 'main').commands), ['SET sluice:products:1']);
  });

  test('settle: a full batch is sealed and the next transaction opens another one', () => {
    const { planner } = setup([runtime('cache', { type: 'string' })], { maxCommands: 2, maxBytes: 1_000_000 });
    const first = planner.transaction(txn(L, inserts(3), { endLsn: END }), 0);
    assert.equal(first.commandCount, 3, 'whole transactions: a batch may go over');
    assert.equal(first.sealed, true);
    assert.notEqual(planner.transaction(txn(END + 1n, inserts(1), { endLsn: END + 9n }), 0), first);
  });

  test('property: a stream planned, then its suffix resent, plans each change once per sink, and positions only move forward', () => {
    /** plans `SET <commit LSN>:<idx>`: what was planned, and in which order */
    const recorder = (name: string): Sink => ({ name, type: 'string', plan: (c, meta, out) => out.command(['SET', `${meta.commitLsn}:${c.idx}`]) });
    const lsnOf = (k: number) => L * BigInt(k + 1);
    const arb = fc
      .record({ sizes: fc.array(fc.nat(6), { minLength: 1, maxLength: 5 }), chunk: fc.integer({ min: 1, max: 4 }), resendChunk: fc.integer({ min: 1, max: 4 }), skip: fc.nat(5) })
      .chain((r) => {
        const items = r.sizes.flatMap((n, k) => chunked(lsnOf(k), n, r.chunk).map((t) => ({ t, k })));
        return fc.record({ cut: fc.integer({ min: 0, max: items.length }), pick: fc.nat(), maxCommands: fc.integer({ min: 1, max: 8 }) }).map((x) => ({ ...r, ...x, items }));
      });
    fc.assert(
      fc.property(arb, ({ sizes, items, resendChunk, skip, cut, pick, maxCommands }) => {
        // `b` already has the first `skip` transactions (as loaded from Redis)
        const bStart = skip < sizes.length ? pos(lsnOf(skip)) : pos(lsnOf(sizes.length));
        const a = fromSink(recorder('a'));
        const b = fromSink(recorder('b'), undefined, undefined, { redis: 'other', position: bStart });
        const { planner, batcher } = setup([a, b], { maxCommands, maxBytes: 1_000_000 });
        const planned: Record<string, string[]> = { main: [], other: [] };
        const last: Record<string, Position | null> = { a: null, b: bStart };
        const drain = () => {
          for (let batch = batcher.next(); batch; batch = batcher.next()) {
            for (const [lane, p] of batch.parts) planned[lane]?.push(...p.commands.map((c) => at(c, 1)));
            for (const [sink, p] of batch.sinkPositions) {
              const prev = last[sink] ?? null;
              assert.ok(prev === null || comparePositions(p, prev) > 0, `${sink} moved back`);
              last[sink] = p;
            }
          }
        };
        for (const { t } of items.slice(0, cut)) planner.transaction(t, 0);
        drain();
        // reconnect: resent from the start of a transaction not after the first one not fully received (no ResendFilter here)
        const firstOpen = cut < items.length ? at(items, cut).k : sizes.length - 1;
        for (let k = pick % (firstOpen + 1); k < sizes.length; k++) for (const t of chunked(lsnOf(k), at(sizes, k), resendChunk)) planner.transaction(t, 0);
        drain();
        const all = sizes.flatMap((n, k) => Array.from({ length: n }, (_, i) => `${lsnOf(k)}:${i}`));
        assert.deepEqual(planned.main, all);
        assert.deepEqual(
          planned.other,
          sizes.flatMap((n, k) => (k < skip ? [] : Array.from({ length: n }, (_, i) => `${lsnOf(k)}:${i}`))),
        );
        assert.deepEqual(a.position, pos(lsnOf(sizes.length - 1) + 8n));
      }),
      { numRuns: 300 },
    );
  });
});

describe('Planner watermark windows', () => {
  test('rows: the high watermark plans the rows the stream did not touch; onApplied resolves {emitted, skipped}', async () => {
    const cache = runtime('cache', { type: 'string' });
    const { planner, windows, batcher } = setup([cache]);
    const applied = windows.register('w1', 'rows', 'cache', products);
    planner.message(watermark('lw:w1'), 0);
    planner.message({ ...watermark('hw:w1'), prefix: 'other' }, 0);
    assert.equal(windows.size, 1, 'a message with another prefix is not a watermark');
    windows.fillRows('w1', [row(1), row(2), row(3)], [['HSET', 'sluice:backfill:cache', 'public.products', '{}']]);
    // the high watermark inside a transaction: its changes are tracked before the window closes
    const update = updateChange(products, { id: '2', name: 'new' }, undefined, 'K', 0);
    const batch = planner.transaction(txn(L, [update], { endLsn: END, messages: [watermark('hw:w1', 0x900n)] }), 0);
    assert.equal(windows.size, 0);
    const main = part(batch, 'main');
    assert.deepEqual(heads(main.commands), ['SET sluice:products:2', 'SET sluice:products:1', 'SET sluice:products:3', 'HSET sluice:backfill:cache']);
    assert.deepEqual(
      main.origins.slice(1).map((o) => o && [o.change.action, o.meta.commitLsn, o.meta.commitTimeMicros]),
      [['read', 0x900n, 0n], ['read', 0x900n, 0n], null],
    );
    assert.deepEqual(counts(batch), { 'cache/update': 1, 'cache/read': 2 });
    assert.equal(batch.onApplied.length, 1);
    assert.equal(batcher.next(), batch);
    for (const cb of batch.onApplied) cb();
    assert.deepEqual(await applied, { emitted: 2, skipped: 1 });
  });

  test('rows: a window closed before it was filled, or whose sink is gone, is rejected', async () => {
    const { planner, windows } = setup([runtime('cache', { type: 'string' })]);
    const early = windows.register('early', 'rows', 'cache', products);
    const gone = windows.register('gone', 'rows', 'deleted', products);
    windows.fillRows('gone', [row(1)], []);
    planner.message(watermark('hw:early'), 0);
    planner.message(watermark('hw:gone'), 0);
    await assert.rejects(early, /before the chunk was read/);
    await assert.rejects(gone, /sink "deleted" was deleted/);
  });

  test('orphans: keys the sink writes while the window is open are not deleted', async () => {
    const cache = runtime('cache', { type: 'string' });
    const { planner, windows } = setup([cache]);
    const applied = windows.register('o', 'orphans', 'cache', null);
    planner.message(watermark('lw:o'), 0);
    planner.transaction(txn(L, inserts(1), { endLsn: END }), 0);
    windows.fillOrphans('o', ['sluice:products:1', 'sluice:products:9']);
    planner.message(watermark('hw:o'), 0);
    const batch = planner.transaction(txn(END + 1n, [], { endLsn: END + 9n }), 0);
    assert.deepEqual(part(batch, 'main').commands, [
      ['SET', 'sluice:products:1', '{"id":1,"name":"n1"}'],
      ['DEL', 'sluice:products:9'],
    ]);
    assert.deepEqual(part(batch, 'main').origins.slice(1), [null]);
    for (const cb of batch.onApplied) cb();
    assert.deepEqual(await applied, { emitted: 1, skipped: 1 });
  });
  test(
    'rows: changes a resumed sink’s replay resends from before the low watermark do not count as touched',

    async () => {
      // `a` was added at 0x300 and is backfilled; `b` was resumed, the stream restarted from the slot (generation 1)
      const a = runtime('a', { type: 'string' }, { position: pos(0x300n) });
      const b = runtime('b', { type: 'string' }, { redis: 'other', position: pos(0x100n) });
      b.catchUpTo = pos(0x300n);
      b.fromGeneration = 1;
      const { planner, windows } = setup([a, b]);
      planner.planned = pos(0x300n);
      const applied = windows.register('w', 'rows', 'a', products);
      planner.message(watermark('lw:w', 0x300n), 0);
      // the replay: a transaction committed long before the low watermark, already in `a`'s past
      planner.transaction(txn(0x200n, [updateChange(products, { id: '2', name: 'n2' }, undefined, 'K', 0)], { endLsn: 0x208n }), 1);
      windows.fillRows('w', [row(1), row(2)], []);
      planner.message(watermark('lw:w', 0x300n), 1);
      planner.message(watermark('hw:w', 0x400n), 1);
      const batch = planner.transaction(txn(0x500n, [], { endLsn: 0x508n }), 1);
      for (const cb of batch.onApplied) cb();
      assert.deepEqual(heads(part(batch, 'main').commands), ['SET sluice:products:1', 'SET sluice:products:2'], 'row 2 is in no other batch of `a`');
      assert.deepEqual(await applied, { emitted: 2, skipped: 0 });
    },
  );
});

describe('Planner: keepalive, replay, rejected', () => {
  test('keepalive: the batch ends at walEnd; active sinks move there, held ones and those ahead do not', () => {
    const active = runtime('active', { type: 'string' }, { position: pos(0x100n) });
    const fresh = runtime('fresh', { type: 'string' });
    const held = runtime('held', { type: 'string' }, { position: pos(0x100n), hold: 'paused' });
    const ahead = runtime('ahead', { type: 'string' }, { position: pos(0x900n) });
    const { planner } = setup([active, fresh, held, ahead]);
    const batch = planner.keepalive(0x500n, 0);
    assert.equal(batch.endLsn, 0x500n);
    assert.deepEqual([batch.position, planner.planned], [pos(0x500n), pos(0x500n)]);
    assert.deepEqual([...batch.sinkPositions.keys()], ['active', 'fresh']);
    assert.deepEqual([active.position, fresh.position, held.position, ahead.position], [pos(0x500n), pos(0x500n), pos(0x100n), pos(0x900n)]);
    assert.equal(batch.commandCount, 0);
    assert.equal(batch.transactions, 0);
  });

  test(
    'keepalive: a resumed sink still replaying what it missed is not moved past it',

    () => {
      const resumed = runtime('resumed', { type: 'string' }, { position: pos(0x100n) });
      resumed.fromGeneration = 2; // the stream is being restarted from the slot for it
      resumed.catchUpTo = pos(0x400n);
      const { planner } = setup([resumed]);
      planner.keepalive(0x500n, 1); // received on connection 1, while it closes
      const replay = planner.transaction(txn(0x200n, inserts(1), { endLsn: 0x208n }), 2);
      assert.deepEqual(heads(part(replay, 'main').commands), ['SET sluice:products:1'], 'the change it missed while paused');
    },
  );

  test('replay: the bookkeeping, then the change, in the open batch; onApplied is called with it', () => {
    const feed = runtime('feed', { type: 'list', key: 'feed' }, { redis: 'events', position: pos(END) });
    const { planner, batcher } = setup([feed]);
    const change = insertChange(products, { id: '7', name: 'x' }, 4);
    const meta: MessageMeta = { commitLsn: L, commitTimeMicros: 5n, sinkName: 'feed' };
    let done = 0;
    planner.replay(feed, change, meta, [['HDEL', 'sluice:failed:feed', `${formatLsn(L)}:4`]], () => done++);
    const batch = batcher.next();
    assert.ok(batch);
    const events = part(batch, 'events');
    assert.deepEqual(heads(events.commands), ['HDEL sluice:failed:feed', 'RPUSH feed']);
    assert.deepEqual(
      events.origins.map((o) => o && [o.sink, o.change, o.meta]),
      [null, ['feed', change, meta]],
    );
    assert.deepEqual(counts(batch), { 'feed/insert': 1 });
    assert.deepEqual([...batch.sinkPositions], [], 'a replay moves no position');
    assert.deepEqual(feed.position, pos(END));
    for (const cb of batch.onApplied) cb();
    assert.equal(done, 1);
  });

  test('rejected: every command Redis refused becomes a failed-message record, reported to events.failed', () => {
    const { planner, failed } = setup([]);
    const change = insertChange(products, { id: '1', name: 'a' }, 3);
    const meta: MessageMeta = { commitLsn: L, commitTimeMicros: 0n, sinkName: 'cache' };
    const cmds = planner.rejected([{ origin: { sink: 'cache', change, meta }, error: 'WRONGTYPE Operation against a key holding the wrong kind of value' }]);
    assert.equal(cmds.length, 1);
    const cmd = at(cmds, 0);
    assert.deepEqual(cmd.slice(0, 3), ['HSET', 'sluice:failed:cache', `${formatLsn(L)}:3`]);
    assert.equal(failedRecord(cmd).reason, 'Redis rejected the command: WRONGTYPE Operation against a key holding the wrong kind of value');
    assert.deepEqual(failed, [{ sink: 'cache', idx: 3, reason: 'Redis rejected the command: WRONGTYPE Operation against a key holding the wrong kind of value' }]);
    assert.deepEqual(planner.rejected([]), []);
  });
});
