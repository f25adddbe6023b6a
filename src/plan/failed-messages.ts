import type { Change } from '../core/change.js';
import { idempotencyKey, messageJson, type MessageMeta } from '../core/render.js';
import { formatLsn } from '../core/lsn.js';
import { microsToIsoUtc } from '../core/time.js';
import type { RedisCommand } from '../core/command.js';
import { failedKey } from '../core/keyspace.js';
import { apiMessageId } from '../core/message-id.js';

/*
 * Messages that cannot be delivered are kept in Redis, in a hash per sink
 * (`sluice:failed:<sink>`, keyspace.failedKey, field = message id), written in the same MULTI as
 * the batch they belong to: a failure is never lost and never recorded for a batch that did not
 * happen.
 *
 * The hash field and the stored `id` are the idempotency key (`0/16B3748:0`, core/message-id.ts),
 * as hashes written by earlier versions have them; the API shows the URL-safe form
 * (`0-16B3748-0`, failedMessageForApi) and accepts both.
 */

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
  let message = 'null';
  try {
    message = messageJson(change, meta);
  } catch {
    // the row itself is what could not be rendered (e.g. an unchanged TOAST value): keep the reason
  }
  const record: Omit<FailedMessage, 'message'> = {
    id,
    sink: meta.sinkName,
    reason,
    action: change.action,
    table: change.table.qualifiedName,
    commit_lsn: formatLsn(meta.commitLsn),
    commit_idx: change.idx,
    commit_timestamp: microsToIsoUtc(meta.commitTimeMicros),
    failed_at: now.toISOString(),
  };
  return ['HSET', failedKey(meta.sinkName), id, withMessage(JSON.stringify(record), message)];
}

/**
 * The stored JSON: the record's fields, then `"message":` and the envelope's own text, last and
 * not re-serialized, so int8 and numeric values keep every digit (JSON.parse would round them).
 */
export function withMessage(recordJson: string, messageJson: string): string {
  return `${recordJson.slice(0, -1)},"message":${messageJson}}`;
}

/** The envelope's exact text in a stored failed message (`null` when it could not be rendered). */
export function storedMessageJson(stored: string): string {
  // JSON.stringify escapes every quote inside strings, so the first `,"message":` is the field
  const at = stored.indexOf(',"message":');
  return at < 0 ? 'null' : stored.slice(at + ',"message":'.length, -1);
}

/**
 * A stored failed message as the API shows it: the same JSON text with its `id` in the URL-safe
 * form (`0-16B3748-0`). Only the record's fields are parsed again; the envelope's text is kept as
 * it is (every digit of int8 and numeric values).
 */
export function failedMessageForApi(stored: string): string {
  const at = stored.indexOf(',"message":');
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(at < 0 ? stored : `${stored.slice(0, at)}}`) as Record<string, unknown>;
  } catch {
    return stored;
  }
  if (typeof record.id !== 'string') return stored;
  const id = apiMessageId(record.id);
  if (id === record.id) return stored;
  const recordText = JSON.stringify({ ...record, id });
  return at < 0 ? recordText : withMessage(recordText, stored.slice(at + ',"message":'.length, -1));
}
