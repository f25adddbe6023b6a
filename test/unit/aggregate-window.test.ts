import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher } from '../../src/plan/batcher.js';
import { Planner, type PlanEvents } from '../../src/plan/planner.js';
import { WindowRetry, Windows } from '../../src/plan/windows.js';
import type { SinkRuntime } from '../../src/plan/route.js';
import type { RedisCommand } from '../../src/core/command.js';
import { insertChange, T, table } from './support/tables.js';
import { pos, runtime, txn, watermark } from './support/plan-fixtures.js';

const orders = table('public', 'orders', [
  ['id', T.int4, true],
  ['customer', T.text],
  ['amount', T.numeric],
], { replicaIdentity: 'f' });

function setup(sinks: SinkRuntime[]) {
  let n = 0;
  const batcher = new Batcher({ maxCommands: 10_000, maxBytes: 10_000_000 }, () => `b${++n}`);
  const windows = new Windows();
  const events: PlanEvents = { failed: () => undefined, truncate: () => undefined, chunk: () => undefined };
  const planner = new Planner(batcher, windows, events, () => sinks, () => 0n);
  return { batcher, windows, planner };
}

const agg = (): SinkRuntime => runtime('agg', { type: 'aggregate', tables: ['orders'], key: 'rev:{customer}', measures: { n: 'count', r: 'sum(amount)' } });
const flush = (batcher: Batcher): void => {
  for (let b = batcher.next(); b; b = batcher.next()) for (const f of b.onApplied) f();
};

describe('aggregate backfill windows', () => {
  test('tracked from registration; opened once the low watermark is applied; closed at its mark, in stream order, with the registries to sweep', async () => {
    const sink = agg();
    const { batcher, windows, planner } = setup([sink]);
    const { applied, opened } = windows.registerAggregate('w1', 'agg', orders);
    // a change planned before the low watermark: its registry is tracked already
    planner.transaction(txn(0x100n, [insertChange(orders, { id: '1', customer: 'ann', amount: '1' }, 0)]), 0);
    let isOpen = false;
    void opened.then(() => (isOpen = true));
    planner.transaction(txn(0x200n, [], { messages: [watermark('lw:w1')] }), 0);
    await Promise.resolve();
    assert.equal(isOpen, false, 'not before the batch is applied');
    flush(batcher);
    await opened;
    assert.equal(windows.get('w1')?.open, true);
    // the read: groups handed over before the mark commits
    let sweptWith: string[] = [];
    windows.fillAggregate('w1', { groups: 1, registries: ['sluice:agg:agg:{x}'], build: (regs) => ((sweptWith = [...regs]), [['SET', 'set-groups', '1']]) }, [['HSET', 'sluice:backfill:agg', 'public.orders', '{}']]);
    // 'hw:' does not close an aggregate window; its mark does, after the transaction's changes
    planner.transaction(txn(0x280n, [], { messages: [watermark('hw:w1')] }), 0);
    assert.ok(windows.get('w1'), 'still open');
    const batch = planner.transaction(txn(0x300n, [insertChange(orders, { id: '2', customer: 'bob', amount: '2' }, 0)], { messages: [watermark('ag:w1')] }), 0);
    const cmds = batch.parts.get('main')!.commands.map((c: RedisCommand) => c[0] === 'EVAL' ? `EVAL ${c[3]}` : `${c[0]} ${c[1]}`);
    assert.deepEqual(cmds, ['EVAL rev:bob', 'SET set-groups', 'HSET sluice:backfill:agg']);
    assert.deepEqual(batch.sinkPositions.get('agg'), pos(0x308n), 'in the batch that moves the sink past its mark');
    assert.ok(sweptWith.includes('sluice:agg:agg:{x}'), 'the registries read');
    assert.ok(sweptWith.some((k) => k.startsWith('sluice:agg:agg:{') && k !== 'sluice:agg:agg:{x}'), 'and those written since the registration');
    flush(batcher);
    assert.deepEqual(await applied, { emitted: 1, skipped: 0 });
    assert.equal(windows.size, 0);
  });

  test('a sink paused (or resumed, on an older connection) at the mark: the read is taken again', async () => {
    const sink = agg();
    const { windows, planner } = setup([sink]);
    const { applied } = windows.registerAggregate('w2', 'agg', orders);
    windows.fillAggregate('w2', { groups: 0, registries: [], build: () => [] }, []);
    sink.hold = 'paused';
    planner.transaction(txn(0x300n, [], { messages: [watermark('ag:w2')] }), 0);
    await assert.rejects(applied, (err: unknown) => err instanceof WindowRetry);
    const again = windows.registerAggregate('w3', 'agg', orders);
    windows.fillAggregate('w3', { groups: 0, registries: [], build: () => [] }, []);
    sink.hold = null;
    sink.fromGeneration = 2;
    planner.transaction(txn(0x400n, [], { messages: [watermark('ag:w3')] }), 1);
    await assert.rejects(again.applied, (err: unknown) => err instanceof WindowRetry);
  });

  test('cancelled: both promises reject', async () => {
    const { windows } = setup([agg()]);
    const { applied, opened } = windows.registerAggregate('w4', 'agg', orders);
    windows.cancel('w4', 'stopping');
    await assert.rejects(opened, /stopping/);
    await assert.rejects(applied, /stopping/);
  });
});
