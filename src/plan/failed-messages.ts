import type { Change } from '../core/change.js';
import { idempotencyKey, messageJson, type MessageMeta } from '../core/render.js';
import { formatLsn } from '../core/lsn.js';
import { microsToIsoUtc } from '../core/time.js';
import type { RedisCommand } from '../core/command.js';
import { failedKey } from '../core/keyspace.js';
import { apiMessageId } from '../core/message-id.js';
import { toJson } from '../core/values.js';
import type { FailedMessage } from '../core/records.js';
import { DEFAULT_FAILED_ENVELOPE_MAX_BYTES, DEFAULT_FAILED_MAX_BYTES, DEFAULT_FAILED_MAX_MESSAGES } from '../config/sink-schema.js';

/*
 * Messages that cannot be delivered are kept in Redis, in a hash per sink
 * (`sluice:failed:<sink>`, keyspace.failedKey, field = message id), written in the same MULTI as
 * the batch they belong to: a failure is never lost and never recorded for a batch that did not
 * happen.
 *
 * The hash field and the stored `id` are the idempotency key (`0/16B3748:0`, core/message-id.ts),
 * as hashes written by earlier versions have them; the API shows the URL-safe form
 * (`0-16B3748-0`, failedMessageForApi) and accepts both.
 *
 * The store is bounded (planFailure, FailedStore): an envelope over `envelopeMaxBytes` is not kept
 * (the entry keeps the row's identity and the reason: a state sink's retry reads the row again
 * from Postgres), and each sink keeps at most `maxMessages` entries and `maxBytes` bytes. A
 * failure that does not fit even without its envelope is not stored: it is counted and logged
 * with its id and reason (plan-events.ts), never dropped silently.
 */

export type { FailedMessage };

// ---------------------------------------------------------------------------------------------
// Bounds

export interface FailedLimits {
  /** entries a sink keeps at most */
  readonly maxMessages: number;
  /** bytes (ids and values) a sink's entries take at most */
  readonly maxBytes: number;
  /** an envelope larger than this is not kept: the entry has the row's identity and the reason */
  readonly envelopeMaxBytes: number;
}

export const DEFAULT_FAILED_LIMITS: FailedLimits = {
  maxMessages: DEFAULT_FAILED_MAX_MESSAGES,
  maxBytes: DEFAULT_FAILED_MAX_BYTES,
  envelopeMaxBytes: DEFAULT_FAILED_ENVELOPE_MAX_BYTES,
};

/** Room kept for an entry without its envelope: a store with less than this left is full. */
const STUB_BYTES = 2048;

/** A sink's failed-message store as the API shows it (GET /api/sinks: `failed_store`). */
export interface FailedStoreView {
  /** entries and bytes Sluice counts for the sink (planned ones included) */
  messages: number;
  bytes: number;
  max_messages: number;
  max_bytes: number;
  envelope_max_bytes: number;
  /** no room for another entry: the next failure is not stored (only counted and logged) */
  full: boolean;
  /** failures not stored since this instance started because the store was full */
  dropped: number;
}

interface SinkStore {
  sizes: Map<string, number>;
  bytes: number;
  dropped: number;
}

/**
 * What each sink's failed-message hash holds, counted in memory (pure: no I/O): loaded from
 * Redis when a sink starts (runtime), then kept up to date as failures are planned and entries
 * are retried or discarded. It decides whether a new failure fits. The count is of what was
 * planned, so it runs slightly ahead of Redis while a batch is applied.
 */
export class FailedStore {
  private readonly sinks = new Map<string, SinkStore>();

  constructor(readonly limits: (sink: string) => FailedLimits = () => DEFAULT_FAILED_LIMITS) {}

  private of(sink: string): SinkStore {
    let s = this.sinks.get(sink);
    if (!s) this.sinks.set(sink, (s = { sizes: new Map(), bytes: 0, dropped: 0 }));
    return s;
  }

  /** What Redis holds for the sink (field → bytes of field and value), replacing what was counted. */
  load(sink: string, entries: Iterable<readonly [string, number]>): void {
    const s = this.of(sink);
    s.sizes = new Map(entries);
    s.bytes = [...s.sizes.values()].reduce((n, b) => n + b, 0);
  }

  forget(sink: string): void {
    this.sinks.delete(sink);
  }

  /** Whether an entry of `bytes` stored under `id` (replacing the one it may have) stays within the bounds. */
  fits(sink: string, id: string, bytes: number): boolean {
    const s = this.of(sink);
    const limits = this.limits(sink);
    const before = s.sizes.get(id);
    const count = s.sizes.size + (before === undefined ? 1 : 0);
    return count <= limits.maxMessages && s.bytes - (before ?? 0) + bytes <= limits.maxBytes;
  }

  put(sink: string, id: string, bytes: number): void {
    const s = this.of(sink);
    s.bytes += bytes - (s.sizes.get(id) ?? 0);
    s.sizes.set(id, bytes);
  }

  remove(sink: string, id: string): void {
    const s = this.sinks.get(sink);
    const before = s?.sizes.get(id);
    if (!s || before === undefined) return;
    s.bytes -= before;
    s.sizes.delete(id);
  }

  noteDropped(sink: string): void {
    this.of(sink).dropped++;
  }

  isFull(sink: string): boolean {
    const s = this.of(sink);
    const limits = this.limits(sink);
    return s.sizes.size >= limits.maxMessages || s.bytes + STUB_BYTES > limits.maxBytes;
  }

  view(sink: string): FailedStoreView {
    const s = this.of(sink);
    const limits = this.limits(sink);
    return {
      messages: s.sizes.size,
      bytes: s.bytes,
      max_messages: limits.maxMessages,
      max_bytes: limits.maxBytes,
      envelope_max_bytes: limits.envelopeMaxBytes,
      full: this.isFull(sink),
      dropped: s.dropped,
    };
  }
}

/** How a failure was kept: whole, without its envelope (too large, or the store nearly full), or not at all. */
export type FailureKept = 'stored' | 'stored_without_envelope' | 'dropped';

export interface PlannedFailure {
  /** the hash field (idempotency key) */
  readonly id: string;
  /** the HSET to write in the batch; null when the failure is not stored */
  readonly command: RedisCommand | null;
  readonly kept: FailureKept;
  /** why the envelope (or the whole entry) was not kept */
  readonly why?: string;
  /** this entry filled the sink's store: the next failure will not be stored */
  readonly filled?: boolean;
}

/** Bytes an entry takes in the store: its field and its value. */
export function entryBytes(id: string, value: string): number {
  return Buffer.byteLength(id) + Buffer.byteLength(value);
}

/** The row's primary key columns as JSON text, or undefined when they are not all in the row. */
function identityJson(change: Change): string | undefined {
  const t = change.table;
  if (t.keyIndexes.length === 0) return undefined;
  let s = '{';
  for (const [n, i] of t.keyIndexes.entries()) {
    const col = t.columns[i];
    const v = change.row[i];
    if (col === undefined || v === undefined) return undefined;
    s += (n > 0 ? ',' : '') + col.jsonName + toJson(col.codec, v);
  }
  return `${s}}`;
}

/** The row's text size, a lower bound of its envelope's: a row far over the bound is not rendered at all. */
function rowChars(change: Change): number {
  let n = 0;
  for (const v of change.row) if (typeof v === 'string') n += v.length;
  return n;
}

/**
 * A failure, as it is kept within the store's bounds: whole; without its envelope when that is
 * over `envelopeMaxBytes` or does not fit in the bytes left; or, when not even that fits (the
 * sink holds `maxMessages` entries, or its bytes are used up), not at all (`command` null).
 * Counts what it keeps in `store`.
 */
export function planFailure(change: Change, meta: MessageMeta, reason: string, now: Date, store: FailedStore): PlannedFailure {
  const sink = meta.sinkName;
  const limits = store.limits(sink);
  const id = idempotencyKey(meta.commitLsn, change.idx);
  const identity = identityJson(change);
  const record: Omit<FailedMessage, 'message'> = {
    id,
    sink,
    reason,
    action: change.action,
    table: change.table.qualifiedName,
    commit_lsn: formatLsn(meta.commitLsn),
    commit_idx: change.idx,
    commit_timestamp: microsToIsoUtc(meta.commitTimeMicros),
    failed_at: now.toISOString(),
    ...(identity !== undefined ? { identity } : {}),
  };
  let message: string | null = null;
  let omitted: { bytes: number; why: string } | undefined;
  if (rowChars(change) > limits.envelopeMaxBytes) {
    omitted = { bytes: rowChars(change), why: `the envelope is larger than the ${limits.envelopeMaxBytes} bytes a failed message keeps (failed_envelope_max_bytes)` };
  } else {
    try {
      message = messageJson(change, meta);
    } catch {
      // the row itself is what could not be rendered (e.g. an unchanged TOAST value): keep the reason
    }
    if (message !== null && Buffer.byteLength(message) > limits.envelopeMaxBytes) {
      omitted = { bytes: Buffer.byteLength(message), why: `the envelope is larger than the ${limits.envelopeMaxBytes} bytes a failed message keeps (failed_envelope_max_bytes)` };
      message = null;
    }
  }
  const build = (): string => withMessage(JSON.stringify(omitted ? { ...record, message_omitted: omitted } : record), message ?? 'null');
  let value = build();
  if (!store.fits(sink, id, entryBytes(id, value)) && message !== null) {
    // no room for the envelope: the identity and the reason still tell what failed
    omitted = { bytes: Buffer.byteLength(message), why: `the sink's failed messages are close to their ${limits.maxBytes} bytes (failed_max_bytes)` };
    message = null;
    value = build();
  }
  const bytes = entryBytes(id, value);
  if (!store.fits(sink, id, bytes)) {
    store.noteDropped(sink);
    const view = store.view(sink);
    const why = view.messages >= limits.maxMessages
      ? `the sink already keeps ${view.messages} failed messages (failed_max_messages: ${limits.maxMessages})`
      : `the sink's failed messages take ${view.bytes} of their ${limits.maxBytes} bytes (failed_max_bytes)`;
    return { id, command: null, kept: 'dropped', why };
  }
  const wasFull = store.isFull(sink);
  store.put(sink, id, bytes);
  const filled = !wasFull && store.isFull(sink);
  return { id, command: ['HSET', failedKey(sink), id, value], kept: omitted ? 'stored_without_envelope' : 'stored', ...(omitted ? { why: omitted.why } : {}), ...(filled ? { filled } : {}) };
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
