import { randomUUID } from 'node:crypto';
import type { RejectedCommand } from '../core/command.js';
import { ZERO_LSN } from '../core/lsn.js';
import { formatPosition, type Position } from '../core/position.js';
import { microsToUnixMs } from '../core/time.js';
import type { ChangeSource } from '../pg/change-stream.js';
import { asArrays, countKey, partLength, type Batch, type LanePart } from '../plan/batcher.js';
import type { Planner } from '../plan/planner.js';
import { confirmable, positionToWrite, type SinkRuntime } from '../plan/route.js';
import type { Lane } from '../redis/apply-lane.js';
import { ClusterApplyLane } from '../redis/cluster-apply-lane.js';
import { SlotTail, type TailItem } from '../plan/tail-probe.js';
import type { Metrics } from '../metrics.js';
import type { Logger } from '../util/log.js';
import { probeTail, readKeyTypes, type KeyReader } from './tail-probe.js';
import { testFaultPoint } from './test-faults.js';

/** A batch Redis has acknowledged, with the data commands it refused. */
export interface AppliedBatch {
  readonly batch: Batch;
  readonly rejected: readonly RejectedCommand[];
}

/**
 * Applies one batch at a time on every Redis connection's lane, then confirms to Postgres what
 * may be confirmed, and tells who listens (recent deliveries, fences).
 */
export class Applier {
  /** commit time of the last transaction applied (Postgres microseconds) */
  lastCommitTime: bigint | null = null;
  /** per sink, the position written with the last batch applied for it */
  readonly applied = new Map<string, Position>();
  private readonly listeners: ((applied: AppliedBatch) => void)[] = [];
  /** per Cluster lane, the tail it skips per hash slot (the pipeline skips nothing there) */
  private readonly slotTails = new Map<string, SlotTail>();

  constructor(
    private readonly lanes: ReadonlyMap<string, Lane>,
    private readonly stream: ChangeSource,
    private readonly planner: Planner,
    private readonly metrics: Metrics,
    /** the tail probe's log, and how it reads key types (tests with an in-memory Redis give their own) */
    private readonly probe: { readonly log?: Logger | undefined; readonly readKeys?: KeyReader | undefined } = {},
  ) {}

  listen(listener: (applied: AppliedBatch) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Applies a batch on every lane, records what Redis refused, confirms what may be confirmed. */
  async apply(batch: Batch, sinks: readonly SinkRuntime[]): Promise<void> {
    const started = performance.now();
    const { metrics } = this;
    const allRejected: RejectedCommand[] = [];
    // changes skipped in a sink's unconfirmed tail after a start (plan/tail-probe.ts): none after it
    const tail = this.planner.tail.take(batch.id);
    await Promise.all(
      [...this.lanes.values()].map(async (lane) => {
        let part: LanePart = batch.parts.get(lane.name) ?? { commands: [], origins: [], encoded: null, unlinkPrefixes: [] };
        // planned pre-encoded for a lane that takes arrays (it was replaced meanwhile): decoded
        if (part.encoded !== null && lane.preEncoded !== true) part = asArrays(part);
        const probed = this.tailOf(lane, tail, part, sinks);
        if (probed.length > 0) {
          // what Redis refused before a crash lost its record: recorded in this batch's MULTI
          const records = await probeTail(lane, probed, this.planner, this.probe.readKeys ?? readKeyTypes, this.probe.log);
          if (records.length > 0) part = { ...part, commands: [...records, ...part.commands], origins: [...records.map(() => null), ...part.origins] };
        }
        const positions = sinks.filter((s) => s.redis === lane.name).map((s) => {
          const p = positionToWrite(s, batch.sinkPositions.get(s.name) ?? null);
          return [s.name, p === null ? null : formatPosition(p)] as const;
        });
        if (partLength(part) === 0 && part.unlinkPrefixes.length === 0 && positions.every(([, p]) => p === null)) return;
        const retriesBefore = lane.retries;
        const { rejected, unsure } = await lane.apply({ batchId: batch.id, commands: part.commands, origins: part.origins, encoded: part.encoded, positions, unlinkPrefixes: part.unlinkPrefixes });
        allRejected.push(...rejected);
        // the EXEC ran but its replies were lost: what Redis refused is told from the key types, as
        // for a restart's unconfirmed tail (recorded with HSETNX, like the tail's records)
        const lost = unsure.length > 0 ? await probeTail(lane, unsure.map((u) => ({ lane: lane.name, ...u })), this.planner, this.probe.readKeys ?? readKeyTypes, this.probe.log) : [];
        // refused commands are recorded through the same lane, before the batch counts as applied
        // (a crash in between is covered by the tail probe at the next start)
        if (rejected.length > 0 || lost.length > 0) {
          testFaultPoint('exit-after-rejected-exec');
          await lane.apply({ batchId: randomUUID(), commands: [...this.planner.rejected(rejected), ...lost], origins: [], positions, unlinkPrefixes: [] });
          testFaultPoint('exit-after-rejected-record');
        }
        this.slotTails.get(lane.name)?.reached(batch.position);
        if (lane.retries > retriesBefore) metrics.redisRetries.inc({ redis: lane.name }, lane.retries - retriesBefore);
        metrics.batches.inc({ redis: lane.name });
        // Redis acknowledged this lane's part: commit → acknowledged, per transaction of each sink
        const now = Date.now();
        for (const s of sinks) {
          if (s.redis !== lane.name) continue;
          for (const t of batch.commitTimes.get(s.name) ?? []) metrics.observeApplyLatency(s.name, microsToUnixMs(t), now);
        }
      }),
    );
    if (batch.endLsn > ZERO_LSN) {
      const lsn = confirmable(batch.endLsn, sinks);
      this.stream.confirm(lsn);
      metrics.confirmedLsn.set(Number(this.stream.confirmedLsn));
    }
    if (batch.lastCommitTime !== null) this.lastCommitTime = batch.lastCommitTime;
    metrics.transactions.inc(batch.transactions);
    for (const [k, n] of batch.counts) metrics.changes.inc(countKey(k), n);
    metrics.batchSeconds.observe((performance.now() - started) / 1000);
    for (const [sink, p] of batch.sinkPositions) this.applied.set(sink, p);
    for (const l of this.listeners) l({ batch, rejected: allRejected });
    for (const cb of batch.onApplied) cb();
    // nothing reads the batch's encoded commands any more: their buffers are used again
    for (const part of batch.parts.values()) part.encoded?.release();
  }

  /** The changes of a batch in the unconfirmed tail of this lane's sinks (plan/tail-probe.ts). */
  private tailOf(lane: Lane, planned: readonly TailItem[] | undefined, part: LanePart, sinks: readonly SinkRuntime[]): TailItem[] {
    const out = planned?.filter((t) => t.lane === lane.name) ?? [];
    if (!(lane instanceof ClusterApplyLane)) return out;
    let slots = this.slotTails.get(lane.name);
    if (!slots) {
      slots = new SlotTail(lane.name, new Map(sinks.filter((s) => s.redis === lane.name).map((s) => [s.name, lane.loadedPositions(s.name)])));
      this.slotTails.set(lane.name, slots);
    }
    return slots.open ? out.concat(slots.items(part.commands, part.origins)) : out;
  }

}
