import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EncodedCommands, type OriginSource } from '../../src/core/encoded-commands.js';
import { encodeCommands, RespWriter } from '../../src/core/resp-writer.js';
import { giveBuffer, idleBuffers, takeBuffer } from '../../src/core/buffer-pool.js';
import type { CommandOrigin } from '../../src/core/command.js';
import { insertChange } from './support/tables.js';
import { products } from './support/plan-fixtures.js';

const meta = { commitLsn: 1n, commitTimeMicros: 2n, sinkName: 's' };

test('property: encoded commands decode to what was pushed, with the same bytes as encodeCommands and their origins', () => {
  const arg = fc.string({ unit: fc.constantFrom('a', '\r', '\n', '$', '*', 'é', '😀', '0'), maxLength: 80 });
  const cmd = fc.array(arg, { minLength: 1, maxLength: 5 });
  // each command: bookkeeping, a stream origin (index into a few), or a row of one of two sources
  const who = fc.oneof(fc.constant({ kind: 'none' as const }), fc.record({ kind: fc.constant('origin' as const), i: fc.nat(2) }), fc.record({ kind: fc.constant('row' as const), s: fc.nat(1), row: fc.nat(5) }));
  fc.assert(
    fc.property(fc.array(fc.tuple(cmd, who), { maxLength: 60 }), (items) => {
      const origins: CommandOrigin[] = [0, 1, 2].map((i) => ({ sink: 's', change: insertChange(products, { id: String(i) }, i), meta }));
      const resolved: string[] = [];
      const sources: OriginSource[] = [0, 1].map((s) => ({
        sink: `src${s}`,
        origin: (row) => {
          resolved.push(`${s}:${row}`);
          return { sink: `src${s}`, change: insertChange(products, { id: String(row) }, row), meta };
        },
      }));
      const e = new EncodedCommands();
      for (const [c, w] of items) {
        if (w.kind === 'none') e.push(c, null);
        else if (w.kind === 'origin') e.push(c, origins[w.i]!);
        else e.pushRow(c, sources[w.s]!, w.row);
      }
      assert.equal(e.length, items.length);
      assert.deepEqual(e.commands(), items.map(([c]) => c));
      assert.deepEqual(e.bytes(), encodeCommands(items.map(([c]) => c)));
      items.forEach(([, w], i) => {
        const o = e.origin(i);
        if (w.kind === 'none') return assert.equal(o, null);
        if (w.kind === 'origin') return assert.equal(o, origins[w.i]);
        assert.equal(o?.sink, `src${w.s}`);
        assert.equal(o?.change.idx, w.row);
        assert.equal(e.originSink(i), `src${w.s}`);
        assert.equal(e.origin(i), o, 'resolved once, the same object after');
      });
      // consecutive commands of one message share an id; others do not
      for (let i = 1; i < items.length; i++) {
        const [a, b] = [items[i - 1]![1], items[i]![1]];
        const same = a.kind !== 'none' && JSON.stringify(a) === JSON.stringify(b);
        if (a.kind !== 'none' && b.kind !== 'none') assert.equal(e.originId(i - 1) === e.originId(i), same);
      }
      // resolved once per message (a run of commands of one row), not once per command
      const runs = items.filter(([, w], i) => w.kind === 'row' && (i === 0 || JSON.stringify(items[i - 1]![1]) !== JSON.stringify(w))).length;
      assert.ok(resolved.length <= runs, `${resolved.length} resolutions for ${runs} row messages`);
      e.release();
      assert.throws(() => e.bytes(), /after release/);
      e.release(); // twice is harmless
    }),
    { numRuns: 300 },
  );
});

test('buffer pool: a buffer given back is taken again, never twice at once; a released writer throws', () => {
  const a = takeBuffer(100_000);
  assert.ok(a.length >= 100_000);
  const before = idleBuffers().count;
  giveBuffer(a);
  giveBuffer(a); // a second give is ignored
  assert.equal(idleBuffers().count, before + 1);
  const b = takeBuffer(70_000);
  assert.equal(b, a);
  const c = takeBuffer(70_000);
  assert.notEqual(c, a);
  giveBuffer(b);
  giveBuffer(c);
  const w = new RespWriter(1000, true);
  w.command(['SET', 'k', 'v']);
  assert.deepEqual(w.bytes(), encodeCommands([['SET', 'k', 'v']]));
  w.release();
  assert.throws(() => w.bytes(), /after release/);
  assert.throws(() => w.command(['GET', 'k']), /after release/);
});
