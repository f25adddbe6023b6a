// One entry of `sinks:` in sluice.yaml (docs/configuration.md): the options every sink has, and those of
// each type. Used for the whole file (schema.ts) and for one sink given to the API (sink-block.ts).
import { z } from 'zod';
import { parseTemplate } from '../core/template.js';
import { IDENT, IDENT_RE, nonEmptyString, positiveInt, strict } from './schema-helpers.js';
import { parseMeasure } from './aggregate-measures.js';

export const SINK_TYPES = ['string', 'hash', 'list', 'set', 'zset', 'stream', 'pubsub', 'geo', 'hyperloglog', 'bitmap', 'aggregate'] as const;
export type SinkType = (typeof SINK_TYPES)[number];

/** The actions a sink can subscribe to. `read` (backfill rows) is implied when backfill is on. */
export const SINK_ACTIONS = ['insert', 'update', 'delete'] as const;
export type SinkAction = (typeof SINK_ACTIONS)[number];

export const VALUE_FORMATS = ['record', 'message'] as const;
export type ValueFormat = (typeof VALUE_FORMATS)[number];

/** The options that hold a function: inline source, or (in sluice.yaml only) a .ts/.js path. */
export const FUNCTION_OPTIONS = ['filter', 'transform', 'route'] as const;

export const DEFAULT_KEY_TEMPLATE = 'sluice:{table}:{pk}';
export const DEFAULT_STREAM_KEY_TEMPLATE = 'sluice:{schema}.{table}';
export const DEFAULT_CHANNEL_TEMPLATE = 'sluice:{table}:{pk}';
export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_TRANSACTION_ROWS = 20_000;
/** Bounds of a sink's failed messages (`apply:` or the sink's own); plan/failed-messages.ts keeps them. */
export const DEFAULT_FAILED_MAX_MESSAGES = 10_000;
export const DEFAULT_FAILED_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_FAILED_ENVELOPE_MAX_BYTES = 1024 * 1024;

export const SINK_NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;
/** it names keys, metric labels and URL paths */
export const SINK_NAME_MAX = 100;
const TABLE_RE = new RegExp(`^(?:(${IDENT})\\.)?(${IDENT}|\\*)$`, 'u');

/** An aggregate's measure: `count` or `sum(column)` (config/aggregate-measures.ts). */
const measure = () =>
  nonEmptyString().superRefine((t, ctx) => {
    const m = parseMeasure(t);
    if (typeof m === 'string') ctx.addIssue({ code: 'custom', message: m, input: t });
  });

// ---------------------------------------------------------------------------------------------
// Templates: "sluice:{table}:{pk}" with {schema}, {table}, {pk} or a column name. They are checked
// with the parser the sinks render them with, so that what passes here also renders.

const template = () =>
  nonEmptyString().superRefine((t, ctx) => {
    try {
      parseTemplate(t);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message, input: t });
    }
  });

/** "schema.table", "table" (= public.table) or "schema.*"; normalized to "schema.table" / "schema.*". */
export const tablePatternSchema = z
  .string()
  .superRefine((t, ctx) => {
    if (!TABLE_RE.test(t)) {
      ctx.addIssue({
        code: 'custom',
        message: `must be "schema.table", "table" or "schema.*" (got ${JSON.stringify(t)})`,
      });
    } else if (t === '*') {
      ctx.addIssue({ code: 'custom', message: 'a bare "*" is not allowed: name the schema, e.g. "public.*"' });
    }
  })
  .transform((t) => (t.includes('.') ? t : `public.${t}`));

const actionsSchema = (defaults: SinkAction[]) =>
  z
    .array(z.enum(SINK_ACTIONS))
    .min(1, { error: 'must list at least one of insert, update, delete' })
    .transform((a) => SINK_ACTIONS.filter((x) => a.includes(x)))
    .default(defaults);

const ALL_ACTIONS: SinkAction[] = ['insert', 'update', 'delete'];

const columnName = () => z.string().regex(IDENT_RE, { error: 'must be a column name' });

const commonSinkShape = {
  name: z
    .string()
    .regex(SINK_NAME_RE, { error: 'must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, _ and -)' })
    .max(SINK_NAME_MAX, { error: `must be at most ${SINK_NAME_MAX} characters` }),
  /** a connection name from `redis:`; filled in (see defaultSinkRedis) when there is only one */
  redis: nonEmptyString().optional(),
  tables: z
    .array(tablePatternSchema)
    .min(1, { error: 'must list at least one table' })
    .superRefine((tables, ctx) => {
      const seen = new Set<string>();
      tables.forEach((t, i) => {
        if (seen.has(t)) ctx.addIssue({ code: 'custom', path: [i], message: `${JSON.stringify(t)} is listed twice` });
        seen.add(t);
      });
    }),
  actions: actionsSchema(ALL_ACTIONS),
  expire_ms: positiveInt().optional(),
  backfill: z.boolean().default(false),
  max_value_bytes: positiveInt().default(DEFAULT_MAX_VALUE_BYTES),
  max_transaction_rows: positiveInt().default(DEFAULT_MAX_TRANSACTION_ROWS),
  /** this sink's failed-message bounds; default: those under `apply:` */
  failed_max_messages: positiveInt().optional(),
  failed_max_bytes: positiveInt().optional(),
  failed_envelope_max_bytes: positiveInt().optional(),
  /** when a table's columns change: backfill the table again (the rows in Redis no longer match), or ignore it */
  on_schema_change: z.enum(['backfill', 'ignore']).default('backfill'),
  /** inline function source, or a path to a .ts/.js module */
  filter: nonEmptyString().optional(),
  transform: nonEmptyString().optional(),
  route: nonEmptyString().optional(),
};

const typeSpecificShapes = {
  string: {
    type: z.literal('string'),
    key: template().default(DEFAULT_KEY_TEMPLATE),
    value: z.enum(VALUE_FORMATS).default('record'),
  },
  hash: {
    type: z.literal('hash'),
    key: template().default(DEFAULT_KEY_TEMPLATE),
    /** default: `field` when `field` is given, else `row` */
    mode: z.enum(['row', 'field']).optional(),
    field: template().optional(),
    value: z.enum(VALUE_FORMATS).optional(),
  },
  list: {
    type: z.literal('list'),
    actions: actionsSchema(['insert']),
    key: template(),
    push: z.enum(['append', 'prepend']).default('append'),
    max_length: positiveInt().optional(),
    value: z.enum(VALUE_FORMATS).default('message'),
  },
  set: {
    type: z.literal('set'),
    key: template(),
    member: template(),
  },
  zset: {
    type: z.literal('zset'),
    key: template(),
    member: template(),
    score: columnName(),
  },
  stream: {
    type: z.literal('stream'),
    key: template().default(DEFAULT_STREAM_KEY_TEMPLATE),
    max_length: positiveInt().optional(),
    /** entries older than this, relative to the change's commit time, are trimmed (MINID) */
    max_age_ms: positiveInt().optional(),
  },
  pubsub: {
    type: z.literal('pubsub'),
    channel: template().default(DEFAULT_CHANNEL_TEMPLATE),
    value: z.enum(VALUE_FORMATS).default('message'),
  },
  geo: {
    type: z.literal('geo'),
    key: template(),
    member: template(),
    longitude: columnName(),
    latitude: columnName(),
  },
  hyperloglog: {
    type: z.literal('hyperloglog'),
    // a HyperLogLog cannot forget an element: deletes are left out unless asked for (sluice check warns)
    actions: actionsSchema(['insert', 'update']),
    key: template(),
    element: template(),
  },
  bitmap: {
    type: z.literal('bitmap'),
    key: template(),
    offset: columnName(),
  },
  aggregate: {
    type: z.literal('aggregate'),
    // running totals are right only from the rows that exist already: the GROUP BY backfill runs first
    backfill: z.boolean().default(true),
    key: template(),
    into: z.enum(['hash', 'zset']).default('hash'),
    /** into: hash — field name → `count` or `sum(column)`; default `{count: count}` */
    measures: z.record(nonEmptyString(), measure()).optional(),
    /** into: zset */
    member: template().optional(),
    score: measure().optional(),
  },
} as const;

/** For an unknown key in a sink: which other sink types have it. */
function sinkKeyHint(type: SinkType) {
  return (key: string): string | undefined => {
    const others = SINK_TYPES.filter((t) => t !== type && key in typeSpecificShapes[t]);
    return others.length > 0 ? `not an option of ${type} sinks; it belongs to ${others.join(', ')} sinks` : undefined;
  };
}

export const stringSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.string }, sinkKeyHint('string'));

export const hashSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.hash }, sinkKeyHint('hash'))
  .superRefine((h, ctx) => {
    if (h.mode === 'field' && h.field === undefined) {
      ctx.addIssue({ code: 'custom', path: ['field'], message: 'is required with mode: field (the hash field template, e.g. "{pk}")' });
    }
    if (h.mode === 'row') {
      for (const k of ['field', 'value'] as const) {
        if (h[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: 'is only valid with mode: field (mode: row writes one hash field per column)' });
      }
    } else if (h.mode === undefined && h.field === undefined && h.value !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['value'], message: 'is only valid in field mode: give `field` (the hash field template, e.g. "{pk}"); without it each row is a hash of its columns' });
    }
  })
  .transform((h) => {
    // `field` alone selects field mode
    const { field, value, mode, ...rest } = h;
    return (mode ?? (field !== undefined ? 'field' : 'row')) === 'field'
      ? { ...rest, mode: 'field' as const, field: field as string, value: value ?? ('record' as ValueFormat) }
      : { ...rest, mode: 'row' as const };
  });

export const listSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.list }, sinkKeyHint('list'));
export const setSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.set }, sinkKeyHint('set'));
export const zsetSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.zset }, sinkKeyHint('zset'));
export const streamSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.stream }, sinkKeyHint('stream'));
export const pubsubSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.pubsub }, sinkKeyHint('pubsub'));
export const geoSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.geo }, sinkKeyHint('geo'));
export const hyperloglogSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.hyperloglog }, sinkKeyHint('hyperloglog'));
export const bitmapSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.bitmap }, sinkKeyHint('bitmap'));
export const aggregateSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.aggregate }, sinkKeyHint('aggregate')).superRefine((a, ctx) => {
  const issue = (path: string, message: string): void => ctx.addIssue({ code: 'custom', path: [path], message });
  if (a.into === 'hash') {
    if (a.measures !== undefined && Object.keys(a.measures).length === 0) issue('measures', 'must map at least one hash field to count or sum(column), e.g. {orders: count, revenue: sum(amount)} (left out: {count: count})');
    for (const k of ['member', 'score'] as const) if (a[k] !== undefined) issue(k, 'is only valid with into: zset (into: hash writes `measures`)');
  } else {
    if (a.member === undefined) issue('member', 'is required with into: zset (the sorted set member template, e.g. "{player}")');
    if (a.score === undefined) issue('score', 'is required with into: zset: count or sum(column)');
    if (a.measures !== undefined) issue('measures', 'is only valid with into: hash (into: zset scores each member by `score`)');
  }
  // GROUP BY of one table: the backfill and verify read it in one consistent query
  if (a.tables.length !== 1 || a.tables[0]!.endsWith('.*')) issue('tables', 'an aggregate sink takes exactly one table (not a schema pattern): its groups are what GROUP BY computes over that table');
  if (a.actions.length !== SINK_ACTIONS.length) issue('actions', 'an aggregate needs every insert, update and delete to stay equal to GROUP BY: leave actions out');
  if (a.expire_ms !== undefined) issue('expire_ms', 'does not apply to aggregate sinks: an expired group would lose its running total');
  for (const f of FUNCTION_OPTIONS) if (a[f] !== undefined) issue(f, 'is not available on aggregate sinks: a function cannot be applied alike to the old and new row of every change, nor to the GROUP BY read of a backfill');
});

/** One sink as written; `redis` may still be missing (see defaultSinkRedis). */
export const sinkSchema = z.discriminatedUnion('type', [
  stringSinkSchema,
  hashSinkSchema,
  listSinkSchema,
  setSinkSchema,
  zsetSinkSchema,
  streamSinkSchema,
  pubsubSinkSchema,
  geoSinkSchema,
  hyperloglogSinkSchema,
  bitmapSinkSchema,
  aggregateSinkSchema,
]);

// ---------------------------------------------------------------------------------------------
// A sink's `redis`, against the connections defined under `redis:`

/**
 * What is wrong with a sink's `redis` value (as written, possibly missing), given the names of
 * the connections; undefined when it is fine. Not checked when there are no connections at all
 * (that is a problem of the `redis:` section).
 */
export function sinkRedisProblem(redis: unknown, connectionNames: readonly string[]): string | undefined {
  if (connectionNames.length === 0) return undefined;
  if (redis === undefined) {
    return connectionNames.length > 1
      ? `is required when there are several redis connections (one of ${connectionNames.join(', ')})`
      : undefined;
  }
  if (typeof redis === 'string' && !connectionNames.includes(redis)) {
    return `unknown redis connection ${JSON.stringify(redis)} (known: ${connectionNames.join(', ')})`;
  }
  return undefined;
}

/** The connection a sink writes to: its `redis`, else the only connection (once sinkRedisProblem passed). */
export function defaultSinkRedis(redis: string | undefined, connectionNames: readonly string[]): string {
  const name = redis ?? connectionNames[0];
  // sinkRedisProblem reports a sink without redis unless there is exactly one connection
  if (name === undefined) throw new Error('defaultSinkRedis: no redis connection to default to');
  return name;
}
