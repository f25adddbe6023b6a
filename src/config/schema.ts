// The shape of sluice.yaml (SPEC §2, §4). This zod schema is the single source of truth: the
// exported types are inferred from it, with every default already filled in.
//
// Messages for zod's built-in issues (wrong type, bad enum value, ...) are written by the
// error map in load.ts; the messages written here are the ones only this file can know
// (unknown keys with suggestions, template syntax, cross-field rules).
import { z } from 'zod';
import { parseTemplate } from '../core/template.js';

// ---------------------------------------------------------------------------------------------
// Constants

export const SINK_TYPES = ['string', 'hash', 'list', 'set', 'zset', 'stream', 'pubsub'] as const;
export type SinkType = (typeof SINK_TYPES)[number];

/** The actions a sink can subscribe to. `read` (backfill rows) is implied when backfill is on. */
export const SINK_ACTIONS = ['insert', 'update', 'delete'] as const;
export type SinkAction = (typeof SINK_ACTIONS)[number];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const VALUE_FORMATS = ['record', 'message'] as const;
export type ValueFormat = (typeof VALUE_FORMATS)[number];

export const DEFAULT_KEY_TEMPLATE = 'sluice:{table}:{pk}';
export const DEFAULT_STREAM_KEY_TEMPLATE = 'sluice:{schema}.{table}';
export const DEFAULT_CHANNEL_TEMPLATE = 'sluice:{table}:{pk}';
export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_TRANSACTION_ROWS = 20_000;
export const DEFAULT_HTTP_PORT = 7376;
export const DEFAULT_HTTP_HOST = '127.0.0.1';
export const DEFAULT_SLOT = 'sluice';
export const DEFAULT_PUBLICATION = 'sluice';
export const PG_SSLMODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'] as const;

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Levenshtein distance with adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2][j - 2] + 1);
      d[i][j] = v;
    }
  }
  return d[a.length][b.length];
}

/** The known key closest to `key` when there is an obvious one (edit distance ≤ 2), else undefined. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const dist = k.toLowerCase() === key.toLowerCase() ? 0.5 : editDistance(key, k);
    // short keys: a distance of 2 would make almost anything "close"
    if (dist <= 2 && dist < Math.max(key.length, k.length) / 2 && dist < bestDistance) {
      best = k;
      bestDistance = dist;
    }
  }
  return best;
}

export function unknownKeyMessage(key: string, known: readonly string[], hint?: (key: string) => string | undefined): string {
  const close = closestKey(key, known);
  if (close !== undefined) return `unknown key "${key}"; did you mean "${close}"?`;
  const extra = hint?.(key);
  if (extra !== undefined) return `unknown key "${key}" (${extra})`;
  return `unknown key "${key}" (known keys: ${known.join(', ')})`;
}

/**
 * A strict object: unknown keys are errors. zod reports all unknown keys of an object in one
 * issue; the message holds one line per key, in the order of `issue.keys` (load.ts splits it).
 */
function strict<T extends z.ZodRawShape>(shape: T, hint?: (key: string) => string | undefined) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) =>
      iss.code === 'unrecognized_keys' ? iss.keys.map((k) => unknownKeyMessage(k, known, hint)).join('\n') : undefined,
  });
}

const positiveInt = () => z.int().positive();
const nonEmptyString = () => z.string().min(1, { error: 'must not be empty' });

// Identifiers: Postgres-style names as they are stored in the catalog (case-sensitive).
const IDENT = '[\\p{L}_][\\p{L}\\p{N}_$]*';
const IDENT_RE = new RegExp(`^${IDENT}$`, 'u');
const TABLE_RE = new RegExp(`^(?:(${IDENT})\\.)?(${IDENT}|\\*)$`, 'u');
export const SINK_NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;
export const CONNECTION_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

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

// ---------------------------------------------------------------------------------------------
// URLs

function parseUrl(s: string): URL | undefined {
  try {
    return new URL(s);
  } catch {
    return undefined;
  }
}

const redisUrl = () =>
  nonEmptyString().superRefine((s, ctx) => {
    const u = parseUrl(s);
    // the URL itself is not echoed back: it may hold a password
    if (u === undefined) {
      ctx.addIssue({ code: 'custom', message: 'is not a valid URL (expected redis://[user:password@]host[:port][/db] or rediss://...)' });
    } else if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
      ctx.addIssue({ code: 'custom', message: `must be a redis:// or rediss:// URL (got ${JSON.stringify(u.protocol + '//')})` });
    } else if (u.hostname === '') {
      ctx.addIssue({ code: 'custom', message: 'must name a host (redis://host:port)' });
    } else if (!/^\/?(\d+)?$/.test(u.pathname)) {
      ctx.addIssue({ code: 'custom', message: `the URL path must be a database number like /0 (got ${JSON.stringify(u.pathname)})` });
    }
  });

const postgresUrl = () =>
  nonEmptyString().superRefine((s, ctx) => {
    const u = parseUrl(s);
    if (u === undefined) {
      ctx.addIssue({ code: 'custom', message: 'is not a valid URL (expected postgres://user[:password]@host[:port]/database)' });
    } else if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
      ctx.addIssue({ code: 'custom', message: `must be a postgres:// or postgresql:// URL (got ${JSON.stringify(u.protocol + '//')})` });
    } else {
      const sslmode = u.searchParams.get('sslmode');
      if (sslmode !== null && !(PG_SSLMODES as readonly string[]).includes(sslmode)) {
        ctx.addIssue({
          code: 'custom',
          message: `sslmode must be one of ${PG_SSLMODES.join(', ')} (got ${JSON.stringify(sslmode)})`,
        });
      }
    }
  });

// ---------------------------------------------------------------------------------------------
// source

export const sourceSchema = strict({
  url: postgresUrl(),
  slot: z
    .string()
    .regex(/^[a-z0-9_]{1,63}$/, { error: 'must be 1 to 63 lowercase letters, digits or underscores (a replication slot name)' })
    .default(DEFAULT_SLOT),
  publication: z
    .string()
    .regex(new RegExp(`^${IDENT}$`, 'u'), { error: 'must be an identifier (letters, digits, _ and $, not starting with a digit)' })
    .max(63, { error: 'must be at most 63 characters' })
    .default(DEFAULT_PUBLICATION),
  /** warn (in the log) when the slot keeps more WAL than this on the server */
  retained_wal_warn_bytes: positiveInt().default(1024 * 1024 * 1024),
});

// ---------------------------------------------------------------------------------------------
// redis connections

export const tlsSchema = strict({
  /** path to a PEM file of trusted CA certificates (replaces the system CAs) */
  ca: nonEmptyString().optional(),
  /** client certificate (PEM path), for mutual TLS; needs `key` */
  cert: nonEmptyString().optional(),
  /** client private key (PEM path), for mutual TLS; needs `cert` */
  key: nonEmptyString().optional(),
  /** server name for SNI and certificate verification */
  servername: nonEmptyString().optional(),
  /** skip certificate verification. Only for testing. */
  insecure: z.boolean().default(false),
}).superRefine((t, ctx) => {
  if (t.cert !== undefined && t.key === undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: 'is required when cert is set (mutual TLS needs both)' });
  if (t.key !== undefined && t.cert === undefined) ctx.addIssue({ code: 'custom', path: ['cert'], message: 'is required when key is set (mutual TLS needs both)' });
});

const sentinelSchema = strict({
  /** the master group name monitored by the sentinels */
  name: nonEmptyString(),
  nodes: z.array(redisUrl()).min(1, { error: 'must list at least one sentinel' }),
});

const CONNECTION_KINDS = ['url', 'cluster', 'sentinel'] as const;

const rawRedisConnectionSchema = strict({
  url: redisUrl().optional(),
  cluster: z.array(redisUrl()).min(1, { error: 'must list at least one node' }).optional(),
  sentinel: sentinelSchema.optional(),
  tls: tlsSchema.optional(),
  db: z.int().min(0).optional(),
  username: nonEmptyString().optional(),
  password: nonEmptyString().optional(),
});

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function connectionUrls(c: Record<string, unknown>): string[] {
  const out: string[] = [];
  if (typeof c.url === 'string') out.push(c.url);
  if (Array.isArray(c.cluster)) out.push(...c.cluster.filter((x): x is string => typeof x === 'string'));
  if (isRecord(c.sentinel) && Array.isArray(c.sentinel.nodes)) {
    out.push(...c.sentinel.nodes.filter((x): x is string => typeof x === 'string'));
  }
  return out;
}

export const redisConnectionSchema = rawRedisConnectionSchema
  .superRefine(
    (c, ctx) => {
      // runs even when a field failed, so that all problems are reported at once: be defensive
      if (!isRecord(c)) return;
      const kinds = CONNECTION_KINDS.filter((k) => c[k] !== undefined);
      if (kinds.length === 0) {
        ctx.addIssue({ code: 'custom', message: 'needs exactly one of url, cluster or sentinel' });
        return;
      }
      if (kinds.length > 1) {
        ctx.addIssue({ code: 'custom', message: `has ${kinds.join(' and ')}: use exactly one of url, cluster or sentinel` });
        return;
      }
      const kind = kinds[0];
      if (c.db !== undefined && kind !== 'sentinel') {
        ctx.addIssue({
          code: 'custom',
          path: ['db'],
          message: kind === 'url' ? 'is only valid with sentinel (put the database in the URL: redis://host:6379/2)' : 'is only valid with sentinel (Redis Cluster has only database 0)',
        });
      }
      if (kind === 'url') {
        for (const k of ['username', 'password'] as const) {
          if (c[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: 'is only valid with cluster or sentinel (put credentials in the URL: redis://user:password@host)' });
        }
      }
      const urls = connectionUrls(c).map(parseUrl).filter((u): u is URL => u !== undefined);
      const schemes = new Set(urls.map((u) => u.protocol));
      if (schemes.size > 1) {
        ctx.addIssue({ code: 'custom', path: [kind], message: 'mixes redis:// and rediss:// URLs: use one scheme for all nodes' });
      } else if (c.tls !== undefined && schemes.has('redis:')) {
        ctx.addIssue({ code: 'custom', path: ['tls'], message: 'TLS options need rediss:// URLs (this connection uses redis://)' });
      }
    },
    { when: () => true },
  )
  .transform((c) => {
    const tls = c.tls;
    if (c.sentinel !== undefined) {
      return { kind: 'sentinel' as const, sentinel: c.sentinel, db: c.db, username: c.username, password: c.password, tls };
    }
    if (c.cluster !== undefined) {
      return { kind: 'cluster' as const, cluster: c.cluster, username: c.username, password: c.password, tls };
    }
    return { kind: 'url' as const, url: c.url as string, tls };
  });

// ---------------------------------------------------------------------------------------------
// sinks

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

const commonSinkShape = {
  name: z.string().regex(SINK_NAME_RE, { error: 'must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, _ and -)' }),
  /** a connection name from `redis:`; filled in by the top-level schema when there is only one */
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
    mode: z.enum(['row', 'field']).default('row'),
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
    score: z.string().regex(IDENT_RE, { error: 'must be a column name' }),
  },
  stream: {
    type: z.literal('stream'),
    key: template().default(DEFAULT_STREAM_KEY_TEMPLATE),
    max_length: positiveInt().optional(),
  },
  pubsub: {
    type: z.literal('pubsub'),
    channel: template().default(DEFAULT_CHANNEL_TEMPLATE),
    value: z.enum(VALUE_FORMATS).default('message'),
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
    }
  })
  .transform((h) => {
    const { field, value, ...rest } = h;
    return h.mode === 'field'
      ? { ...rest, mode: 'field' as const, field: field as string, value: value ?? ('record' as ValueFormat) }
      : { ...rest, mode: 'row' as const };
  });

export const listSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.list }, sinkKeyHint('list'));
export const setSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.set }, sinkKeyHint('set'));
export const zsetSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.zset }, sinkKeyHint('zset'));
export const streamSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.stream }, sinkKeyHint('stream'));
export const pubsubSinkSchema = strict({ ...commonSinkShape, ...typeSpecificShapes.pubsub }, sinkKeyHint('pubsub'));

export const sinkSchema = z.discriminatedUnion('type', [
  stringSinkSchema,
  hashSinkSchema,
  listSinkSchema,
  setSinkSchema,
  zsetSinkSchema,
  streamSinkSchema,
  pubsubSinkSchema,
]);

// ---------------------------------------------------------------------------------------------
// http, log, apply

export const httpSchema = strict({
  /** API, console and /metrics; 0 turns the HTTP server off */
  port: z.int().min(0).max(65535).default(DEFAULT_HTTP_PORT),
  host: nonEmptyString().default(DEFAULT_HTTP_HOST),
  token: z.string().min(1, { error: 'must not be empty (leave token out to run without one)' }).optional(),
});

export const logSchema = strict({
  level: z.enum(LOG_LEVELS).default('info'),
});

export const applySchema = strict({
  batch_max_commands: positiveInt().default(5000),
});

// ---------------------------------------------------------------------------------------------
// The whole file

const rawConfigSchema = strict({
  source: sourceSchema,
  redis: z.record(z.string(), redisConnectionSchema),
  sinks: z.array(sinkSchema).min(1, { error: 'must list at least one sink' }),
  http: httpSchema.prefault({}),
  log: logSchema.prefault({}),
  apply: applySchema.prefault({}),
});

/** Cross-field rules. Runs even when parts are invalid (so every problem is reported at once). */
function crossCheck(cfg: unknown, ctx: z.RefinementCtx): void {
  if (!isRecord(cfg)) return;
  const redis = isRecord(cfg.redis) ? cfg.redis : undefined;
  const connectionNames = redis === undefined ? [] : Object.keys(redis);
  if (redis !== undefined) {
    if (connectionNames.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['redis'], message: 'must define at least one connection' });
    }
    for (const name of connectionNames) {
      if (!CONNECTION_NAME_RE.test(name)) {
        ctx.addIssue({ code: 'custom', path: ['redis', name], message: `connection name must match [A-Za-z0-9][A-Za-z0-9_-]* (got ${JSON.stringify(name)})` });
      }
    }
  }
  if (!Array.isArray(cfg.sinks)) return;
  const firstIndex = new Map<string, number>();
  cfg.sinks.forEach((sink: unknown, i: number) => {
    if (!isRecord(sink)) return;
    if (typeof sink.name === 'string') {
      const first = firstIndex.get(sink.name);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['sinks', i, 'name'], message: `duplicate sink name ${JSON.stringify(sink.name)} (also used by sinks[${first}])` });
      } else {
        firstIndex.set(sink.name, i);
      }
    }
    if (redis === undefined || connectionNames.length === 0) return;
    if (sink.redis === undefined) {
      if (connectionNames.length > 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['sinks', i, 'redis'],
          message: `is required when there are several redis connections (one of ${connectionNames.join(', ')})`,
        });
      }
    } else if (typeof sink.redis === 'string' && !connectionNames.includes(sink.redis)) {
      ctx.addIssue({
        code: 'custom',
        path: ['sinks', i, 'redis'],
        message: `unknown redis connection ${JSON.stringify(sink.redis)} (known: ${connectionNames.join(', ')})`,
      });
    }
  });
}

export const sluiceConfigSchema = rawConfigSchema.superRefine(crossCheck, { when: () => true }).transform((cfg) => {
  const only = Object.keys(cfg.redis)[0];
  return { ...cfg, sinks: cfg.sinks.map((s) => ({ ...s, redis: s.redis ?? only })) };
});

// ---------------------------------------------------------------------------------------------
// Types (all defaults filled in)

export type SluiceConfig = z.output<typeof sluiceConfigSchema>;
/** What may be written in sluice.yaml (after env substitution), before defaults. */
export type SluiceConfigInput = z.input<typeof sluiceConfigSchema>;

export type SourceConfig = SluiceConfig['source'];
export type RedisConnectionConfig = SluiceConfig['redis'][string];
export type UrlRedisConnectionConfig = Extract<RedisConnectionConfig, { kind: 'url' }>;
export type ClusterRedisConnectionConfig = Extract<RedisConnectionConfig, { kind: 'cluster' }>;
export type SentinelRedisConnectionConfig = Extract<RedisConnectionConfig, { kind: 'sentinel' }>;
export type TlsConfig = z.output<typeof tlsSchema>;
export type HttpConfig = SluiceConfig['http'];
export type LogConfig = SluiceConfig['log'];
export type ApplyConfig = SluiceConfig['apply'];

export type SinkConfig = SluiceConfig['sinks'][number];
export type StringSinkConfig = Extract<SinkConfig, { type: 'string' }>;
export type HashSinkConfig = Extract<SinkConfig, { type: 'hash' }>;
export type HashRowSinkConfig = Extract<HashSinkConfig, { mode: 'row' }>;
export type HashFieldSinkConfig = Extract<HashSinkConfig, { mode: 'field' }>;
export type ListSinkConfig = Extract<SinkConfig, { type: 'list' }>;
export type SetSinkConfig = Extract<SinkConfig, { type: 'set' }>;
export type ZsetSinkConfig = Extract<SinkConfig, { type: 'zset' }>;
export type StreamSinkConfig = Extract<SinkConfig, { type: 'stream' }>;
export type PubsubSinkConfig = Extract<SinkConfig, { type: 'pubsub' }>;
