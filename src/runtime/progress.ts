import { Cluster } from 'ioredis';
import type { RedisClient } from '../redis/connect.js';
import { appliedKey } from '../core/keyspace.js';
import { comparePositions, formatPosition, type Position } from '../core/position.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { AppliedBatch } from './applier.js';

/**
 * Publishes each sink's applied position for read-your-writes clients on a Redis Cluster: after a
 * batch is acknowledged, `SET sluice:applied:<sink> <position>` and `PUBLISH` on the same name,
 * through the connection's ioredis client (not the apply connection: the apply path never waits
 * for it). One write in flight per connection; positions that arrive meanwhile are coalesced into
 * the next. The value only lags what Redis holds (it is written after the batch), never leads it.
 *
 * On a standalone or Sentinel Redis the apply lane writes them in the batch's own MULTI
 * (redis/apply-lane.ts withAppliedPositions); this publisher leaves those connections alone.
 */
export class ProgressPublisher {
  private readonly pending = new Map<string, Map<string, Position>>();
  private readonly busy = new Set<string>();
  private lastError: string | null = null;

  constructor(
    private readonly redisOf: (sink: string) => { name: string; client: RedisClient } | null,
    private readonly log: Logger,
  ) {}

  onApplied({ batch }: AppliedBatch): void {
    for (const [sink, p] of batch.sinkPositions) {
      const r = this.redisOf(sink);
      if (!r || !(r.client instanceof Cluster)) continue;
      let m = this.pending.get(r.name);
      if (!m) this.pending.set(r.name, (m = new Map()));
      const prev = m.get(sink);
      if (!prev || comparePositions(p, prev) > 0) m.set(sink, p);
      this.flush(r.name, r.client);
    }
  }

  private flush(name: string, client: Cluster): void {
    if (this.busy.has(name)) return;
    const m = this.pending.get(name);
    if (!m || m.size === 0) return;
    this.pending.delete(name);
    this.busy.add(name);
    // a Cluster pipeline must stay in one slot: one command each (sinks' keys are in many slots)
    const writes: Promise<unknown>[] = [];
    for (const [sink, pos] of m) {
      const text = formatPosition(pos);
      writes.push(client.set(appliedKey(sink), text), client.publish(appliedKey(sink), text));
    }
    Promise.all(writes)
      .then(
        () => {
          this.lastError = null;
        },
        (err: unknown) => {
          const e = errorMessage(err);
          if (e !== this.lastError) this.log.warn({ redis: name, err: e }, 'could not publish applied positions for clients (they are published again with the next batch)');
          this.lastError = e;
        },
      )
      .finally(() => {
        this.busy.delete(name);
        this.flush(name, client);
      });
  }
}
