import { z } from 'zod';
import { SINK_TYPES, sinkSchema } from '../config/sink-schema.js';

/*
 * The JSON Schemas (2020-12, as OpenAPI 3.1 has them) of what the API answers: the components of
 * the OpenAPI document (openapi.ts). `required` lists the fields every answer carries; the
 * integration test test/integration/openapi.test.ts checks live answers against them. The sink
 * block is not written here: it is generated from the zod schema the server validates with.
 */

export type Schema = Record<string, unknown>;

export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (description?: string, extra: Schema = {}): Schema => ({ type: 'string', ...extra, ...(description ? { description } : {}) });
const int = (description?: string): Schema => ({ type: 'integer', ...(description ? { description } : {}) });
const num = (description?: string): Schema => ({ type: 'number', ...(description ? { description } : {}) });
const bool = (description?: string): Schema => ({ type: 'boolean', ...(description ? { description } : {}) });
const arr = (items: Schema, description?: string): Schema => ({ type: 'array', items, ...(description ? { description } : {}) });
const enumOf = (values: readonly string[], description?: string): Schema => ({ type: 'string', enum: [...values], ...(description ? { description } : {}) });
const map = (values: Schema, description?: string): Schema => ({ type: 'object', additionalProperties: values, ...(description ? { description } : {}) });

/** `null` allowed too: a type list for plain types, `oneOf` for references. */
export function nullable(s: Schema): Schema {
  if (typeof s.type === 'string') return { ...s, type: [s.type, 'null'] };
  return { oneOf: [s, { type: 'null' }] };
}

/** An object whose `required` fields are always there; `optional` ones only sometimes. */
export function obj(required: Record<string, Schema>, optional: Record<string, Schema> = {}, description?: string): Schema {
  return { type: 'object', required: Object.keys(required), properties: { ...required, ...optional }, ...(description ? { description } : {}) };
}

const lsn = (description: string): Schema => str(description, { pattern: '^[0-9A-F]{1,8}/[0-9A-F]{1,8}$', examples: ['0/16B3748'] });
/** a sink's position: an LSN, or `<commit LSN>:<index>` inside a transaction too large for one batch */
const position = (description: string): Schema => nullable(str(description, { pattern: '^[0-9A-F]{1,8}/[0-9A-F]{1,8}(:[0-9]+)?$' }));
const messageId = str('the message id, URL-safe as listed: `<LSN high>-<LSN low>-<index>` (the stored form `0/16B3748:0`, percent-encoded, is accepted too)', {
  pattern: '^[0-9A-F]{1,8}-[0-9A-F]{1,8}-[0-9]+$',
  examples: ['0-16B3748-0'],
});
const time = (description: string): Schema => str(description, { format: 'date-time' });

const backfillState = enumOf(['running', 'done', 'failed', 'cancelled']);

/** The sink block as the API takes it, from the zod schema the server validates it with. */
function sinkBlockSchema(): Schema {
  const { $schema: _drop, ...schema } = z.toJSONSchema(sinkSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Schema;
  return {
    ...schema,
    description:
      "A sink's block, as written under `sinks:` in sluice.yaml (docs/configuration.md), as JSON. Functions (filter, transform, route) must be inline code; `${VAR}` is not replaced. Answers carry it with every default filled in.",
  };
}

export function componentSchemas(): Record<string, Schema> {
  return {
    Error: obj(
      {
        error: obj(
          { code: str('a stable, machine-readable code, e.g. sink_not_found'), message: str('one sentence for people') },
          { problems: arr(ref('Problem'), 'a body that does not validate: one per mistake') },
        ),
      },
      {},
      'Every error: `{"error": {"code", "message"}}`.',
    ),
    Problem: obj({ path: str('where in the body, e.g. `tables[1]`; empty for the whole body'), message: str() }),
    HealthProblem: obj(
      { component: enumOf(['pipeline', 'source', 'postgres', 'redis']), reason: str() },
      { redis: str('the Redis connection'), sinks: arr(str(), 'the sinks that write through it') },
    ),
    Health: obj({
      status: enumOf(['ok', 'unhealthy']),
      state: str('the pipeline: starting, streaming, draining, stopped, …'),
      source: str('the replication connection: streaming, reconnecting, …'),
      problems: arr(ref('HealthProblem')),
      paused_sinks: arr(str()),
    }),
    HeldWal: obj({ sink: str(), position: position('where the paused sink stands'), held_wal_bytes: nullable(int('WAL from its position to the server\'s current one')) }),
    Source: obj({
      slot: str(),
      publication: str(),
      state: str('streaming, reconnecting, …'),
      confirmed_lsn: lsn('the position confirmed to Postgres'),
      current_lsn: nullable(lsn("the server's current WAL position (last poll, every 5 s)")),
      lag_bytes: nullable(int()),
      lag_ms: nullable(num()),
      retained_wal_bytes: nullable(int('WAL the slot keeps on the server')),
      last_error: nullable(str()),
      redis: arr(obj({ name: str(), state: str(), lastError: nullable(str()) })),
      held_by_paused_sinks: arr(ref('HeldWal')),
    }),
    SinkBlock: sinkBlockSchema(),
    Sink: obj(
      {
        name: str(),
        type: enumOf(SINK_TYPES),
        origin: enumOf(['config', 'api'], 'config: from sluice.yaml; api: created through the API'),
        redis: str('its Redis connection'),
        tables: arr(str()),
        state: str('active, paused, resuming, retrying, …'),
        paused: bool(),
        position: position('what the sink has applied'),
        changes_applied: int(),
        failed_messages: int('failed messages waiting now (in Redis; what Sluice counted when Redis does not answer)'),
        failed_total: int('failures since this instance started (sluice_failed_messages_total)'),
        failed_store: obj(
          {
            messages: int('entries Sluice counts for the sink'),
            bytes: int('bytes they take in Redis'),
            max_messages: int('failed_max_messages'),
            max_bytes: int('failed_max_bytes'),
            envelope_max_bytes: int('failed_envelope_max_bytes: a larger envelope is not kept'),
            full: bool('no room for another entry: the next failure is not stored, only logged and counted'),
            dropped: int('failures not stored since start because the store was full'),
          },
          {},
          "the bounds of the sink's failed messages",
        ),
        lag_ms: nullable(num()),
        lag_bytes: nullable(int()),
        held_wal_bytes: nullable(int('WAL the sink holds in the slot while paused')),
        redis_error: nullable(str("its Redis connection's last error, in one sentence")),
        backfills: nullable(arr(ref('Backfill'), 'running backfills; null when they could not be read (backfills_error)')),
        config: ref('SinkBlock'),
      },
      { backfills_error: str('why the backfills could not be read (Redis down)') },
    ),
    Backfill: obj(
      {
        id: str('a UUID'),
        sink: str(),
        table: str(),
        state: backfillState,
        cursor: nullable(arr(str(), 'key values of the last row copied')),
        rows: int(),
        superseded: int('rows the stream had changed between the watermarks'),
        estimated_total: nullable(int()),
        from: nullable(str('the condition, e.g. updated_at>=2026-01-01')),
        started_at: time(''),
        updated_at: time(''),
        rate: num('rows per second over the last chunks'),
        eta_seconds: nullable(num()),
        percent: nullable(num()),
      },
      {
        reason: str('why Sluice started it by itself: "schema change", "Redis \"main\" lost writes", …'),
        error: str('why it failed, or (while it is tried again) the last attempt\'s error'),
        attempts: int('attempts that failed (Postgres or Redis went away) and were tried again'),
        next_retry_at: time('while waiting to try again: when the next attempt starts'),
        orphan_sweep: obj(
          { state: enumOf(['pending', 'running', 'done', 'skipped', 'failed']) },
          { deleted: int('keys deleted, and members, fields or bits removed'), kept: int('written between the watermarks: kept'), attempts: int(), error: str(), notes: arr(str()), finished_at: time('') },
          'after a backfill Sluice started because Redis lost writes: removing what no row accounts for',
        ),
      },
    ),
    Repair: obj(
      {
        id: str('a UUID'),
        sink: str(),
        state: enumOf(['running', 'done', 'failed']),
        backfill_id: nullable(str('the backfill that rewrites every row')),
        orphans: obj({
          state: enumOf(['running', 'done', 'failed', 'skipped']),
          candidates: int(),
          deleted: int(),
          kept: int('written between the watermarks: kept'),
          prefixes: arr(str()),
          notes: arr(str()),
        }),
        started_at: time(''),
        finished_at: nullable(time('')),
      },
      { error: str() },
    ),
    FailedMessage: obj(
      {
        id: messageId,
        sink: str(),
        reason: str('why it could not be delivered'),
        action: str(),
        table: str(),
        commit_lsn: lsn('the commit of its transaction'),
        commit_idx: int('its index in the transaction'),
        commit_timestamp: time(''),
        failed_at: time(''),
        message: { description: 'the envelope (docs/messages.md), numbers with every digit; null when the row could not be rendered, when it was not kept (message_omitted) or, in lists, when over 64 KiB (message_truncated)' },
      },
      {
        identity: str("the row's primary key as JSON text (exact digits), when the change carried it"),
        message_omitted: obj({ bytes: int('the size of the envelope not kept'), why: str() }, {}, 'the envelope was over failed_envelope_max_bytes, or did not fit: not kept'),
        message_truncated: bool('in lists: the envelope is left out (GET the message for it)'),
        message_chars: int(),
      },
    ),
    FailedPage: obj({ messages: arr(ref('FailedMessage'), 'newest first'), next_cursor: nullable(messageId), total: int('failed messages the sink holds') }),
    Delivery: obj({
      id: messageId,
      sink: str(),
      action: str(),
      table: str(),
      command: str('the first command written, e.g. SET'),
      key: nullable(str('its key (null for PUBLISH)')),
      commands: int('commands the message wrote'),
      commit_lsn: lsn(''),
      commit_idx: int(),
      commit_timestamp: time(''),
      applied_at: time('when Redis acknowledged it'),
    }),
    Deliveries: obj({ messages: arr(ref('Delivery'), 'newest first'), next_cursor: { type: 'null' }, note: str() }),
    RetryResult: obj(
      { id: messageId, outcome: enumOf(['applied', 'row_gone', 'superseded', 'replayed', 'pending']) },
      { note: str('with 202: the retry is queued behind the stream') },
    ),
    RedisTest: obj({
      name: str(),
      ok: { const: true },
      latency_ms: num('round trip of the PING'),
      ping: str(),
      server: obj({ version: nullable(str()), mode: nullable(str()), os: nullable(str()), uptime_seconds: nullable(int()) }),
      role: nullable(str('master, slave or sentinel')),
    }),
    Wait: obj({ applied: { const: true }, lsn: lsn('the LSN waited for'), positions: map(position(''), 'each sink waited on: its applied position') }),
    WaitTimeout: obj({ error: obj({ code: { const: 'timeout' }, message: str('names the sinks behind') }), positions: map(position(''), 'each sink waited on: its applied position') }),
    HistorySample: obj({
      t: int('milliseconds since the epoch'),
      lag_bytes: nullable(int()),
      lag_ms: nullable(num()),
      retained_wal_bytes: nullable(int()),
      changes_per_s: num('all sinks'),
      batches_per_s: num(),
      apply_ms: nullable(num('mean time to apply a batch over the interval')),
      sinks: map(num(), 'changes applied per second, per sink'),
      failed: map(num(), 'messages failed per second, per sink'),
      commit_to_redis_ms: map(nullable(num()), 'per sink, mean time from commit to acknowledged in Redis over the interval (null: no transaction applied)'),
    }),
    History: obj({ interval_ms: int(), window_ms: int('how much the server keeps'), samples: arr(ref('HistorySample'), 'oldest first') }),
    PreviewRequest: obj(
      { sink: { type: 'object', description: 'the sink block, as for POST /api/sinks (not saved; the name may be missing)' } },
      {
        limit: { type: 'integer', minimum: 1, maximum: 20, default: 5 },
        table: str("one of the sink's tables (default: its first)"),
        action: { ...enumOf(['insert', 'update', 'delete', 'read']), default: 'insert' },
      },
    ),
    Preview: obj({
      table: str(),
      action: str(),
      rows: arr(
        obj({
          record: { type: 'object', description: 'the row as its `record` JSON (every digit kept)' },
          skipped: bool('the filter dropped it'),
          commands: arr(obj({ command: str(), key: nullable(str()), args: arr(str()) })),
          error: nullable(obj({ stage: enumOf(['filter', 'transform', 'route', 'function', 'sink']), message: str() }, {}, 'why the row would become a failed message')),
        }),
      ),
    }),
  };
}
