import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Deliveries, type Delivery } from '../../src/runtime/deliveries.js';
import { Batcher, type Batch } from '../../src/plan/batcher.js';
import type { CommandOrigin, RejectedCommand } from '../../src/core/command.js';
import { formatLsn } from '../../src/core/lsn.js';
import { messageId } from '../../src/core/message-id.js';
import { microsToIsoUtc } from '../../src/core/time.js';
import { insertChange, T, table } from './support/tables.js';

const items = table('public', 'items', [['id', T.int4, true]]);

/**
 * What `record` did before it walked batches from their end: one entry per message, in order,
 * the ring trimmed after each. Kept as the reference the faster walk must equal.
 */
class Reference {
  readonly rings = new Map<string, Delivery[]>();
  constructor(private readonly perSink: number) {}
  record(batch: Batch, rejected: readonly RejectedCommand[], at: string): void {
    const refused = new Set<CommandOrigin>(rejected.map((r) => r.origin));
    for (const part of batch.parts.values()) {
      let last: CommandOrigin | null = null;
      let entry: { d: Delivery; n: number } | null = null;
      for (let i = 0; i < part.commands.length; i++) {
        const origin = part.origins[i] ?? null;
        if (origin === null || refused.has(origin)) continue;
        if (origin === last && entry) {
          entry.n++;
          continue;
        }
        if (entry) this.push({ ...entry.d, commands: entry.n });
        last = origin;
        const cmd = part.commands[i]!;
        const { change, meta } = origin;
        entry = {
          n: 1,
          d: {
            id: messageId(meta.commitLsn, change.idx),
            sink: origin.sink,
            action: change.action,
            table: change.table.qualifiedName,
            command: cmd[0] ?? '',
            key: cmd[0] === 'PUBLISH' ? null : (cmd[1] ?? null),
            commands: 1,
            commit_lsn: formatLsn(meta.commitLsn),
            commit_idx: change.idx,
            commit_timestamp: microsToIsoUtc(meta.commitTimeMicros),
            applied_at: at,
          },
        };
      }
      if (entry) this.push({ ...entry.d, commands: entry.n });
    }
  }
  private push(d: Delivery): void {
    let ring = this.rings.get(d.sink);
    if (!ring) this.rings.set(d.sink, (ring = []));
    ring.push(d);
    if (ring.length > this.perSink) ring.splice(0, ring.length - this.perSink);
  }
}

/** a command of a batch: bookkeeping (null), or of message `msg` of sink `sink` */
const step = fc.oneof(
  fc.constant(null),
  fc.record({ msg: fc.integer({ min: 0, max: 30 }), sink: fc.constantFrom('a', 'b', 'c'), lane: fc.constantFrom('r1', 'r2'), cmd: fc.constantFrom('SET', 'DEL', 'PUBLISH') }),
);

describe('Deliveries', () => {
  test('the walk from the end keeps exactly what recording every message did (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ steps: fc.array(step, { maxLength: 80 }), refuse: fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 3 }) }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 6 }),
        (batches, perSink) => {
          const ref = new Reference(perSink);
          const got = new Deliveries(perSink);
          const now = new Date('2026-11-30T20:00:00Z');
          let n = 0;
          for (const { steps, refuse } of batches) {
            const batcher = new Batcher({ maxCommands: 1e9, maxBytes: 1e9 }, () => `b${++n}`);
            const batch = batcher.open(null);
            const origins = new Map<string, CommandOrigin>();
            let lastLane = 'r1';
            for (const s of steps) {
              if (s === null) {
                batcher.add(batch, batcher.part(batch, lastLane), ['SET', 'sluice:x', '1'], null);
                continue;
              }
              // a sink writes to one Redis: its lane follows from its name
              const lane = s.sink === 'c' ? 'r2' : s.lane === 'r2' && s.sink === 'b' ? 'r2' : 'r1';
              lastLane = lane;
              const id = `${s.sink}:${s.msg}`;
              let origin = origins.get(id);
              if (!origin) {
                origin = { sink: s.sink, change: insertChange(items, { id: String(s.msg) }, s.msg), meta: { commitLsn: BigInt(1000 + s.msg), commitTimeMicros: BigInt(s.msg) * 1_000_123n, sinkName: s.sink } };
                origins.set(id, origin);
              }
              batcher.add(batch, batcher.part(batch, lane), [s.cmd, `k${s.msg}`, 'v'], origin);
            }
            const rejected: RejectedCommand[] = [];
            for (const [id, o] of origins) if (refuse.includes(Number(id.split(':')[1]))) rejected.push({ origin: o, error: 'ERR' });
            ref.record(batch, rejected, now.toISOString());
            got.record({ batch, rejected }, now);
          }
          for (const sink of ['a', 'b', 'c']) assert.deepEqual(got.list(sink), (ref.rings.get(sink) ?? []).slice().reverse(), sink);
        },
      ),
      { numRuns: 300 },
    );
  });
});
