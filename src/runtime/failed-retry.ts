import type pg from 'pg';
import type { Change } from '../core/change.js';
import { recordJson, type MessageMeta } from '../core/render.js';
import type { Tuple } from '../pg/pgoutput/types.js';
import { readCatalogTable, type CatalogTable } from '../pg/catalog.js';
import { createTextClient } from '../pg/text-client.js';
import { withWatermarkWindow } from '../pg/watermarks.js';
import { parseLsn, ZERO_LSN } from '../core/lsn.js';
import { microsSince2000 } from '../core/time.js';
import type { RedisClient } from '../redis/connect.js';
import { scanHashFields } from '../redis/hash-scan.js';
import type { PlanOutput, SinkType } from '../sinks/sink.js';
import { SluiceError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { failedKey } from '../core/keyspace.js';
import { entryBytes, failedMessageForApi, storedMessageJson, withMessage, type FailedMessage, type FailedStore } from '../plan/failed-messages.js';
import { messageId, parseMessageId, storedMessageId, type MessagePosition } from '../core/message-id.js';
import type { Pipeline, SinkRuntime } from '../runtime/pipeline.js';

/** Sinks that hold the current state of rows: a retry writes the row as it is now. */
const STATE_SINKS: ReadonlySet<SinkType> = new Set(['string', 'hash', 'set', 'zset', 'geo', 'bitmap']);

export const DEFAULT_LIST_LIMIT = 50;
export const MAX_LIST_LIMIT = 500;
/** in lists, a stored failed message longer than this is shown without its envelope */
const LIST_MESSAGE_MAX_CHARS = 64 * 1024;

export interface FailedPage {
  /** JSON text of each failed message, newest first, ids URL-safe (envelopes keep their exact numbers) */
  messages: string[];
  next_cursor: string | null;
  /** failed messages the sink holds */
  total: number;
}

export type RetryOutcome =
  /** state sink: the row as it is now was written */
  | 'applied'
  /** state sink: the row no longer exists (or no longer matches the key): nothing to write */
  | 'row_gone'
  /** state sink: the stream changed the row while it was read: the stream's newer version stands */
  | 'superseded'
  /** history sink: the stored message was planned again and applied */
  | 'replayed';

/** A failed message's id in either form (`0-16B3748-0` as listed, `0/16B3748:0` as stored) → sortable parts; null when the id is not one. */
export function parseFailedId(id: string): MessagePosition | null {
  return parseMessageId(id);
}

/** The hash field a failed message is stored under, from its id in either form; null when it is no id. */
function fieldOf(id: string): string | null {
  const p = parseMessageId(id);
  return p === null ? null : storedMessageId(p.lsn, p.idx);
}

function newestFirst(a: MessagePosition, b: MessagePosition): number {
  if (a.lsn !== b.lsn) return a.lsn < b.lsn ? 1 : -1;
  return b.idx - a.idx;
}

/** The ids in a sink's failed-message hash (HSCAN; without the values where Redis ≥ 7.4 allows). */
async function failedIds(redis: RedisClient, key: string): Promise<string[]> {
  const ids = new Set<string>(); // HSCAN may return a field twice
  await scanHashFields(redis, key, (fields) => {
    for (const f of fields) ids.add(f);
  });
  return [...ids];
}

/**
 * One page of a sink's failed messages, newest first (by commit position). The cursor is the
 * last id of the previous page: pages stay right while messages are retried or discarded.
 * Each call scans the ids of the whole hash (values are fetched for the page only).
 */
export async function listFailed(redis: RedisClient, sink: string, limit: number, cursor: string | null): Promise<FailedPage> {
  const key = failedKey(sink);
  const total = await redis.hlen(key);
  if (limit === 0 || total === 0) return { messages: [], next_cursor: null, total };
  const after = cursor === null ? null : parseFailedId(cursor);
  if (cursor !== null && after === null) throw new SluiceError('bad_request', `cursor ${JSON.stringify(cursor)} is not a failed message id (like 0-16B3748-0)`);
  const sorted = (await failedIds(redis, key))
    .map((id) => ({ id, pos: parseFailedId(id) }))
    .filter((x): x is { id: string; pos: MessagePosition } => x.pos !== null)
    .filter((x) => after === null || newestFirst(after, x.pos) < 0)
    .sort((a, b) => newestFirst(a.pos, b.pos));
  const page = sorted.slice(0, limit);
  if (page.length === 0) return { messages: [], next_cursor: null, total };
  const values = await redis.hmget(key, ...page.map((p) => p.id));
  const messages: string[] = [];
  for (const v of values) {
    if (v === null) continue;
    const shown = failedMessageForApi(v);
    messages.push(shown.length > LIST_MESSAGE_MAX_CHARS ? shortened(shown) : shown);
  }
  const last = page[page.length - 1]!.pos;
  return { messages, next_cursor: sorted.length > limit ? messageId(last.lsn, last.idx) : null, total };
}

/** A failed message too large for a list: its fields without the envelope (GET it by id for all). */
function shortened(stored: string): string {
  const at = stored.indexOf(',"message":');
  const head = at < 0 ? stored.slice(0, -1) : stored.slice(0, at);
  return `${head},"message":null,"message_truncated":true,"message_chars":${stored.length - head.length}}`;
}

/** The stored JSON of a failed message (id in either form), as stored: `failedMessageForApi` shows it. */
export async function getFailed(redis: RedisClient, sink: string, id: string): Promise<string | null> {
  const field = fieldOf(id);
  return field === null ? null : redis.hget(failedKey(sink), field);
}

/** Deletes a failed message (id in either form); `store`: the counts of the store's bounds follow. */
export async function discardFailed(redis: RedisClient, sink: string, id: string, store?: FailedStore): Promise<boolean> {
  const field = fieldOf(id);
  if (field === null) return false;
  const deleted = (await redis.hdel(failedKey(sink), field)) > 0;
  store?.remove(sink, field);
  return deleted;
}

/** commit_timestamp (`…T…​.ffffffZ`) back to microseconds since 2000-01-01. */
function isoToMicros(iso: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?Z$/.exec(iso);
  const ms = m ? Date.parse(`${m[1]}Z`) : NaN;
  if (!m || Number.isNaN(ms)) return microsSince2000(Date.now());
  return microsSince2000(ms) + BigInt((m[2] ?? '').padEnd(6, '0'));
}

const ident = (n: string): string => `"${n.replace(/"/g, '""')}"`;

/**
 * Retries and discards of a sink's failed messages, through the ordered apply path:
 *
 * - state sinks (string, hash, set, zset, geo, bitmap): the row is read again by its primary key from
 *   Postgres, between a low and a high watermark (a backfill of one row, DBLog), so what is
 *   written is never older than the stream. A row that is gone (or a failed delete) writes
 *   nothing. The entry is removed in the same MULTI as the write.
 * - history sinks (list, stream, pubsub; hyperloglog, which only adds): the stored message is planned again as it was (its
 *   commit position, envelope and idempotency key), after everything taken in so far; the entry
 *   is removed in the same MULTI.
 *
 * A retry that fails again leaves the entry in place with the new reason.
 */
export class FailedMessages {
  private readonly running = new Set<string>();

  constructor(
    private readonly pipeline: Pipeline,
    private readonly sourceUrl: string,
    private readonly log: Logger,
  ) {}

  /** `given`: the id in either form; the answer names it as listed (`0-16B3748-0`). */
  async retry(sinkName: string, given: string): Promise<{ id: string; outcome: RetryOutcome }> {
    const runtime = this.pipeline.sinkRuntime(sinkName);
    if (!runtime) throw new SluiceError('sink_not_found', `no sink named "${sinkName}"`);
    if (runtime.sink.type === 'aggregate') {
      // a contribution retried alone could count twice (a backfill since, or half of an update applied)
      throw new SluiceError('cannot_retry', `sink "${sinkName}" is an aggregate: a failed message's contribution cannot be retried on its own; fix the cause, backfill the sink (it sets every group from GROUP BY) and discard the failed messages`);
    }
    const pos = parseMessageId(given);
    if (pos === null) throw new SluiceError('message_not_found', `sink "${sinkName}" has no failed message ${given} (ids look like 0-16B3748-0)`);
    const id = messageId(pos.lsn, pos.idx);
    const redis = this.pipeline.redisFor(sinkName);
    const lock = `${sinkName}\u0000${id}`;
    if (this.running.has(lock)) throw new SluiceError('retry_running', `failed message ${id} is being retried already`);
    this.running.add(lock);
    let client: pg.Client | null = null;
    try {
      const stored = await getFailed(redis, sinkName, id);
      if (stored === null) throw new SluiceError('message_not_found', `sink "${sinkName}" has no failed message ${id}`);
      const record = JSON.parse(stored) as FailedMessage;
      let envelope = storedMessageJson(stored);
      if (envelope === 'null' && record.message_omitted !== undefined) {
        // kept without its envelope (too large): a state sink finds the row by its identity
        if (!STATE_SINKS.has(runtime.sink.type)) {
          throw new SluiceError('cannot_retry', `failed message ${id} was kept without its envelope (${record.message_omitted.why}), and a ${runtime.sink.type} sink replays the message itself: it cannot be retried; discard it`);
        }
        if (record.identity === undefined) throw new SluiceError('cannot_retry', `failed message ${id} was kept without its envelope and without the row's primary key; discard it and backfill the table if needed`);
        envelope = `{"record":${record.identity}}`;
      }
      if (envelope === 'null') {
        throw new SluiceError('cannot_retry', `failed message ${id} holds no message (the row could not be rendered: ${record.reason}); discard it and backfill the table if needed`);
      }
      client = createTextClient(this.sourceUrl, 'sluice-retry');
      client.on('error', () => undefined);
      await client.connect();
      // the watermarks must reach the WAL (and the walsender) at once
      await client.query('set synchronous_commit = on');
      const table = await readCatalogTable(client, record.table);
      if (!table) throw new SluiceError('cannot_retry', `table ${record.table} no longer exists; discard the message`);
      const outcome = STATE_SINKS.has(runtime.sink.type)
        ? await this.retryState(client, runtime, redis, table, record, stored, envelope)
        : await this.replayHistory(client, runtime, redis, table, record, envelope);
      this.log.info({ sink: sinkName, id, outcome }, 'failed message retried');
      return { id, outcome };
    } finally {
      this.running.delete(lock);
      await client?.end().catch(() => undefined);
    }
  }

  private async retryState(client: pg.Client, runtime: SinkRuntime, redis: RedisClient, table: CatalogTable, record: FailedMessage, stored: string, envelope: string): Promise<RetryOutcome> {
    const sinkName = runtime.sink.name;
    const cols = table.info.columns;
    const keys = table.info.keyIndexes.map((i) => ident(cols[i]!.name));
    if (keys.length === 0) throw new SluiceError('cannot_retry', `table ${record.table} has no primary key to find the row by`);
    // the key from the stored envelope, converted by Postgres itself (every digit kept)
    const sql =
      `select ${cols.map((c) => `t.${ident(c.name)}`).join(', ')} from ${table.quoted} t ` +
      `where (${keys.map((k) => `t.${k}`).join(', ')}) = (select ${keys.map((k) => `r.${k}`).join(', ')} from json_populate_record(null::${table.quoted}, ($1::json)->'record') r)`;
    const opened = this.pipeline.openBackfillWindow(sinkName, table.info);
    const window = { ...opened, cancel: (reason: string) => this.pipeline.cancelBackfillWindow(opened.id, reason) };
    const { value: rows, applied } = await withWatermarkWindow(client, window, {
      read: async () => {
        const r = await client.query<unknown[]>({ text: sql, values: [envelope], rowMode: 'array' });
        const rows = r.rows as Tuple[];
        const reason = rows[0] ? this.dryRun(runtime, { action: 'read', table: table.info, row: rows[0], oldRow: null, oldKind: null, idx: 0 }) : null;
        if (reason !== null) {
          // it would fail again: nothing is written, the entry keeps its id with the new reason
          window.cancel('retry failed again');
          const again = withMessage(JSON.stringify({ ...omitMessage(record), reason, failed_at: new Date().toISOString() }), storedMessageJson(stored));
          await redis.hset(failedKey(sinkName), record.id, again);
          this.pipeline.failedStore.put(sinkName, record.id, entryBytes(record.id, again));
          throw new SluiceError('retry_failed', reason);
        }
        return rows;
      },
      // the entry is removed in the same MULTI as the row's write
      fill: (rows) => this.pipeline.fillBackfillWindow(window.id, rows, [['HDEL', failedKey(sinkName), record.id]]),
      failure: 'retry failed',
    });
    this.pipeline.failedStore.remove(sinkName, record.id);
    return rows.length === 0 ? 'row_gone' : applied.skipped > 0 ? 'superseded' : 'applied';
  }

  /** Plans the row as the window will (functions included), only to see whether it fails. */
  private dryRun(runtime: SinkRuntime, change: Change): string | null {
    const meta: MessageMeta = { commitLsn: ZERO_LSN, commitTimeMicros: microsSince2000(Date.now()), sinkName: runtime.sink.name };
    let failed: string | null = null;
    const out: PlanOutput = {
      command: () => undefined,
      fail: (_c, reason) => {
        failed ??= reason;
      },
    };
    if (runtime.functions) {
      const r = runtime.functions.applySync([change], meta)[0]!;
      if ('skip' in r) return null;
      if ('error' in r) return r.error;
      runtime.sink.plan(change, meta, out, r.extras);
    } else {
      runtime.sink.plan(change, meta, out);
    }
    return failed;
  }

  private async replayHistory(client: pg.Client, runtime: SinkRuntime, redis: RedisClient, table: CatalogTable, record: FailedMessage, envelope: string): Promise<RetryOutcome> {
    const sinkName = runtime.sink.name;
    const cols = table.info.columns;
    // the envelope's record (and old values) back to Postgres's text format, by Postgres
    const select = cols.map((c) => `r.${ident(c.name)}`).join(', ');
    const from = (json: string): string => `json_populate_record(null::${table.quoted}, ${json}) r`;
    const newRow = await client.query<unknown[]>({ text: `select ${select} from ${from(`($1::json)->'record'`)}`, values: [envelope], rowMode: 'array' });
    const row = newRow.rows[0] as Tuple;
    // only exact replays: the row must render to the stored record again
    const check = await client.query<{ key: string }>(
      `select coalesce(a.key, b.key) as key from jsonb_each(($1::jsonb)->'record') a full join jsonb_each($2::jsonb) b on a.key = b.key where a.value is distinct from b.value`,
      [envelope, recordJson(table.info, row)],
    );
    if (check.rows.length > 0) {
      throw new SluiceError('cannot_retry', `the stored message cannot be replayed exactly: column(s) ${check.rows.map((x) => x.key).join(', ')} of ${record.table} differ from the table's current definition or do not convert back; discard it`);
    }
    let oldRow: Tuple | null = null;
    let oldKind: 'K' | 'O' | null = null;
    if (record.action === 'delete') {
      oldRow = row;
      oldKind = table.info.replicaIdentity === 'f' ? 'O' : 'K';
    } else if (record.action === 'update' && isObject((record.message as { changes?: unknown } | null)?.changes)) {
      // REPLICA IDENTITY FULL: `changes` holds the old values of the changed columns
      const old = await client.query<unknown[]>({
        text: `select ${select} from ${from(`((($1::jsonb)->'record') || (($1::jsonb)->'changes'))::json`)}`,
        values: [envelope],
        rowMode: 'array',
      });
      oldRow = old.rows[0] as Tuple;
      oldKind = 'O';
    }
    const change: Change = { action: record.action as Change['action'], table: table.info, row, oldRow, oldKind, idx: record.commit_idx };
    const meta: MessageMeta = { commitLsn: parseLsn(record.commit_lsn), commitTimeMicros: isoToMicros(record.commit_timestamp), sinkName };
    await this.pipeline.replayMessage(sinkName, change, meta, [['HDEL', failedKey(sinkName), record.id]]);
    // failing again (planning, or Redis rejecting the command) records it under the same id,
    // after the HDEL and on the same connection: it is there by now
    const again = await getFailed(redis, sinkName, record.id);
    if (again !== null) throw new SluiceError('retry_failed', (JSON.parse(again) as FailedMessage).reason);
    this.pipeline.failedStore.remove(sinkName, record.id);
    return 'replayed';
  }
}

function omitMessage(record: FailedMessage): Omit<FailedMessage, 'message'> {
  const { message: _m, ...rest } = record;
  return rest;
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
