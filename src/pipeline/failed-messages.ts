import type { Change } from '../core/change.js';
import { idempotencyKey, messageJson, type MessageMeta } from '../core/render.js';
import { formatLsn } from '../pg/lsn.js';
import { microsToIsoUtc } from '../pg/replication-protocol.js';
import type { RedisCommand } from '../sinks/sink.js';

/**
 * Messages that cannot be delivered are kept in Redis, in a hash per sink
 * (`sluice:failed:<sink>`, field = message id), written in the same MULTI as the batch they
 * belong to: a failure is never lost and never recorded for a batch that did not happen.
 */
export function failedKey(sink: string): string {
  return `sluice:failed:${sink}`;
}

export interface FailedMessage {
  id: string;
  sink: string;
  reason: string;
  action: string;
  table: string;
  commit_lsn: string;
  commit_idx: number;
  commit_timestamp: string;
  failed_at: string;
  /** the envelope, when it can be rendered at all */
  message: unknown;
}

export function failedMessageCommand(change: Change, meta: MessageMeta, reason: string, now = new Date()): RedisCommand {
  const id = idempotencyKey(meta.commitLsn, change.idx);
  let message: unknown = null;
  try {
    message = JSON.parse(messageJson(change, meta)) as unknown;
  } catch {
    // the row itself is what could not be rendered (e.g. an unchanged TOAST value): keep the reason
  }
  const record: FailedMessage = {
    id,
    sink: meta.sinkName,
    reason,
    action: change.action,
    table: change.table.qualifiedName,
    commit_lsn: formatLsn(meta.commitLsn),
    commit_idx: change.idx,
    commit_timestamp: microsToIsoUtc(meta.commitTimeMicros),
    failed_at: now.toISOString(),
    message,
  };
  return ['HSET', failedKey(meta.sinkName), id, JSON.stringify(record)];
}
