import type { CommandOrigin } from '../core/command.js';
import { formatLsn } from '../core/lsn.js';
import { messageId } from '../core/message-id.js';
import { microsToIsoUtc } from '../core/time.js';
import type { AppliedBatch } from './applier.js';

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

  record({ batch, rejected }: AppliedBatch, now = new Date()): void {
    const refused = new Set<CommandOrigin>(rejected.map((r) => r.origin));
    const at = now.toISOString();
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

  /** The sink's last deliveries, newest first. */
  list(sink: string, limit = this.perSink): Delivery[] {
    return (this.rings.get(sink) ?? []).slice(-limit).reverse();
  }

  forget(sink: string): void {
    this.rings.delete(sink);
  }

  private push(d: Delivery): void {
    let ring = this.rings.get(d.sink);
    if (!ring) this.rings.set(d.sink, (ring = []));
    ring.push(d);
    if (ring.length > this.perSink) ring.splice(0, ring.length - this.perSink);
  }
}
