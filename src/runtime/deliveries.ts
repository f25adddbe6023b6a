import type { CommandOrigin, RedisCommand } from '../core/command.js';
import { formatLsn } from '../core/lsn.js';
import { messageId } from '../core/message-id.js';
import { microsToIsoUtc } from '../core/time.js';
import type { AppliedBatch } from './applier.js';
import { partCommand, partLength, partOrigin } from '../plan/batcher.js';

/** One message Redis acknowledged: what the console's "recent deliveries" shows. */
export interface Delivery {
  /** the message id, URL-safe as failed messages are listed: `0-16B3748-0` (commit LSN, index) */
  readonly id: string;
  readonly sink: string;
  readonly action: string;
  readonly table: string;
  /** the first command's name and key (a message may write several) */
  readonly command: string;
  readonly key: string | null;
  readonly commands: number;
  readonly commit_lsn: string;
  readonly commit_idx: number;
  readonly commit_timestamp: string;
  readonly applied_at: string;
}

/**
 * The last deliveries of each sink, newest first, in bounded memory: a ring of `perSink` entries
 * per sink, no row values (keys and positions only, like the logs).
 */
export class Deliveries {
  private readonly rings = new Map<string, Delivery[]>();

  constructor(private readonly perSink = 100) {}

  /**
   * Records a batch's deliveries. Only the last `perSink` of each sink can be kept, so the batch
   * is walked from its end and only those are built: a batch of thousands of messages costs a
   * pointer comparison per command, not a formatted entry each (they were a sixth of catch-up's
   * CPU, docs/benchmarks.md).
   */
  record({ batch, rejected }: AppliedBatch, now = new Date()): void {
    const refused = rejected.length === 0 ? null : new Set<CommandOrigin>(rejected.map((r) => r.origin));
    let at: string | null = null;
    for (const part of batch.parts.values()) {
      // per sink, the newest deliveries of this part, newest first
      const taken = new Map<string, Delivery[]>();
      const n = part.commands.length;
      const encoded = part.encoded;
      // what tells one message's commands from the next: its origin (arrays) or the id of its
      // origin (pre-encoded: resolved only for the entries kept); null for bookkeeping or refused
      const messageOf = (i: number): CommandOrigin | number | null => {
        if (i < n) {
          const o = part.origins[i] ?? null;
          return o === null || refused?.has(o) === true ? null : o;
        }
        const id = encoded!.originId(i - n);
        if (id < 0 || (refused !== null && refused.has(encoded!.origin(i - n)!))) return null;
        return id;
      };
      let i = partLength(part) - 1;
      while (i >= 0) {
        const message = messageOf(i);
        if (message === null) {
          i--;
          continue;
        }
        // the message's commands: the same origin, bookkeeping and refused commands in between
        let first = i;
        let count = 0;
        for (; i >= 0; i--) {
          const o = messageOf(i);
          if (o === null) continue;
          if (o !== message) break;
          first = i;
          count++;
        }
        const sink = typeof message === 'number' ? encoded!.originSink(first - n)! : message.sink;
        let list = taken.get(sink);
        if (!list) taken.set(sink, (list = []));
        if (list.length >= this.perSink) continue;
        at ??= now.toISOString();
        list.push(delivery(partOrigin(part, first)!, partCommand(part, first), count, at));
      }
      for (const [sink, list] of taken) this.push(sink, list.reverse());
    }
  }

  /** The sink's last deliveries, newest first. */
  list(sink: string, limit = this.perSink): Delivery[] {
    return (this.rings.get(sink) ?? []).slice(-limit).reverse();
  }

  forget(sink: string): void {
    this.rings.delete(sink);
  }

  /** Appends deliveries (oldest first) to the sink's ring, keeping its last `perSink`. */
  private push(sink: string, list: readonly Delivery[]): void {
    let ring = this.rings.get(sink);
    if (!ring) this.rings.set(sink, (ring = []));
    ring.push(...list);
    if (ring.length > this.perSink) ring.splice(0, ring.length - this.perSink);
  }
}

function delivery(origin: CommandOrigin, cmd: RedisCommand, commands: number, at: string): Delivery {
  const { change, meta } = origin;
  return {
    id: messageId(meta.commitLsn, change.idx),
    sink: origin.sink,
    action: change.action,
    table: change.table.qualifiedName,
    command: cmd[0] ?? '',
    key: cmd[0] === 'PUBLISH' ? null : (cmd[1] ?? null),
    commands,
    commit_lsn: formatLsn(meta.commitLsn),
    commit_idx: change.idx,
    commit_timestamp: microsToIsoUtc(meta.commitTimeMicros),
    applied_at: at,
  };
}
