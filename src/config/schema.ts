// The shape of sluice.yaml (docs/configuration.md). This zod schema is the single source of truth: the
// exported types are inferred from it, with every default already filled in.
//
// This file holds the top level (source, http, log, apply, state, and the cross-field rules);
// the `redis:` connections are in redis-schema.ts, one sink in sink-schema.ts, the shared
// building blocks in schema-helpers.ts. Everything is exported from here as well.
//
// Messages for zod's built-in issues (wrong type, bad enum value, ...) are written by the
// error map in issues.ts; the messages written here are the ones only these files can know
// (unknown keys with suggestions, template syntax, cross-field rules).
import { z } from 'zod';
import { CONNECTION_NAME_RE, redisConnectionSchema } from './redis-schema.js';
import { IDENT, isRecord, nonEmptyString, parseUrl, positiveInt, strict } from './schema-helpers.js';
import { DEFAULT_FAILED_ENVELOPE_MAX_BYTES, DEFAULT_FAILED_MAX_BYTES, DEFAULT_FAILED_MAX_MESSAGES, defaultSinkRedis, sinkRedisProblem, sinkSchema } from './sink-schema.js';
import { INSTANCE_NAME_RE } from '../core/keyspace.js';

export { closestKey, editDistance, unknownKeyMessage } from './schema-helpers.js';
export {
  CONNECTION_NAME_RE,
  redisConnectionSchema,
  tlsSchema,
  type ClusterRedisConnectionConfig,
  type RedisConnectionConfig,
  type SentinelRedisConnectionConfig,
  type TlsConfig,
  type UrlRedisConnectionConfig,
} from './redis-schema.js';
export {
  DEFAULT_CHANNEL_TEMPLATE,
  DEFAULT_FAILED_ENVELOPE_MAX_BYTES,
  DEFAULT_FAILED_MAX_BYTES,
  DEFAULT_FAILED_MAX_MESSAGES,
  DEFAULT_KEY_TEMPLATE,
  DEFAULT_MAX_TRANSACTION_ROWS,
  DEFAULT_MAX_VALUE_BYTES,
  DEFAULT_STREAM_KEY_TEMPLATE,
  FUNCTION_OPTIONS,
  hashSinkSchema,
  listSinkSchema,
  pubsubSinkSchema,
  setSinkSchema,
  SINK_ACTIONS,
  SINK_NAME_RE,
  SINK_TYPES,
  sinkSchema,
  streamSinkSchema,
  stringSinkSchema,
  tablePatternSchema,
  VALUE_FORMATS,
  zsetSinkSchema,
  type SinkAction,
  type SinkType,
  type ValueFormat,
} from './sink-schema.js';

// ---------------------------------------------------------------------------------------------
// Constants

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_HTTP_PORT = 7376;
export const DEFAULT_HTTP_HOST = '127.0.0.1';
/** the largest request body the API reads (Fastify's bodyLimit); a sink block is a few KB */
export const DEFAULT_HTTP_BODY_LIMIT_BYTES = 1024 * 1024;
/** what the kernel takes as a Unix socket's path (sun_path, with its NUL) */
const MAX_SOCKET_PATH_BYTES = 107;
export const DEFAULT_SLOT = 'sluice';
export const DEFAULT_PUBLICATION = 'sluice';
export const DEFAULT_STATE_SCHEMA = 'sluice';
export const STATE_SCHEMA_RE = /^[a-z_][a-z0-9_]*$/;
export const PG_SSLMODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'] as const;

// ---------------------------------------------------------------------------------------------
// source

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
  /**
   * create the slot as a failover slot (Postgres 17+), synchronized to a physical standby that
   * can take over (docs/operations.md "Postgres failover")
   */
  failover_slot: z.boolean().default(false),
});

// ---------------------------------------------------------------------------------------------
// http, log, apply, state

export const httpSchema = strict({
  /** API, console and /metrics; 0 turns the HTTP server off */
  port: z.int().min(0).max(65535).default(DEFAULT_HTTP_PORT),
  host: nonEmptyString().default(DEFAULT_HTTP_HOST),
  token: z.string().min(1, { error: 'must not be empty (leave token out to run without one)' }).optional(),
  /** a Unix socket to listen on instead of host:port (only local processes that may open the file can connect) */
  socket: nonEmptyString()
    .refine((p) => p.startsWith('/'), { error: 'must be an absolute path' })
    .refine((p) => Buffer.byteLength(p) <= MAX_SOCKET_PATH_BYTES, { error: `must be at most ${MAX_SOCKET_PATH_BYTES} bytes long (the limit of a Unix socket's path)` })
    .optional(),
  /** requests with a larger body are refused (413) before they are read */
  body_limit_bytes: positiveInt().default(DEFAULT_HTTP_BODY_LIMIT_BYTES),
});

/** true for host names and addresses that only this machine can reach (127.0.0.0/8, ::1, localhost) */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(?:\.\d{1,3}){3}$/.test(h) || /^::ffff:127(?:\.\d{1,3}){3}$/.test(h);
}

export const logSchema = strict({
  level: z.enum(LOG_LEVELS).default('info'),
  /** log row values where a line would quote them (a function's error, …); `sluice start --log-values` too */
  values: z.boolean().default(false),
});

export const applySchema = strict({
  batch_max_commands: positiveInt().default(2000),
  /** bounds of each sink's failed messages (a sink may set its own) */
  failed_max_messages: positiveInt().default(DEFAULT_FAILED_MAX_MESSAGES),
  failed_max_bytes: positiveInt().default(DEFAULT_FAILED_MAX_BYTES),
  failed_envelope_max_bytes: positiveInt().default(DEFAULT_FAILED_ENVELOPE_MAX_BYTES),
});

/**
 * Where Sluice keeps its own state (sinks created through the API, pauses, ...): tables in a
 * schema of a Postgres database. `url` defaults to source.url (filled in by sluiceConfigSchema).
 */
export const stateSchema = strict({
  url: postgresUrl().optional(),
  schema: z
    .string()
    .regex(STATE_SCHEMA_RE, { error: 'must be a lowercase schema name: letters, digits and _, not starting with a digit' })
    .max(63, { error: 'must be at most 63 characters' })
    .refine((s) => !s.startsWith('pg_'), { error: 'must not start with pg_ (reserved by Postgres)' })
    .default(DEFAULT_STATE_SCHEMA),
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
  state: stateSchema.prefault({}),
  /**
   * What tells this Sluice instance from others writing to the same Redis (its batch markers,
   * the sink names it owns). Default: `<slot>@<Postgres system identifier>` (core/keyspace.ts
   * instanceIdentity), unique without configuration; set it to keep an identity across a move
   * to another Postgres cluster (a new system identifier).
   */
  instance: z.string().regex(INSTANCE_NAME_RE, { error: 'must be 1 to 100 letters, digits, _ . @ or - (no ":": it is part of Redis key names)' }).optional(),
});

/** Cross-field rules. Runs even when parts are invalid (so every problem is reported at once). */
function crossCheck(cfg: unknown, ctx: z.RefinementCtx): void {
  if (!isRecord(cfg)) return;
  const http = isRecord(cfg.http) ? cfg.http : {};
  // an API without a token may only be reachable from this machine (it creates sinks, runs their functions, shows failed rows)
  const host = typeof http.host === 'string' ? http.host : DEFAULT_HTTP_HOST;
  if (http.port !== 0 && http.socket === undefined && http.token === undefined && !isLoopbackHost(host)) {
    ctx.addIssue({
      code: 'custom',
      path: ['http', 'token'],
      message: `is required when http.host is ${JSON.stringify(host)}, which other machines can reach: without it anyone who reaches the port could create sinks, run functions and read failed rows. Set a token, or listen on 127.0.0.1 or a Unix socket (http.socket)`,
    });
  }
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
    const problem = sinkRedisProblem(sink.redis, connectionNames);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['sinks', i, 'redis'], message: problem });
  });
}

export const sluiceConfigSchema = rawConfigSchema.superRefine(crossCheck, { when: () => true }).transform((cfg) => {
  const names = Object.keys(cfg.redis);
  return {
    ...cfg,
    sinks: cfg.sinks.map((s) => ({ ...s, redis: defaultSinkRedis(s.redis, names) })),
    state: { url: cfg.state.url ?? cfg.source.url, schema: cfg.state.schema },
  };
});

// ---------------------------------------------------------------------------------------------
// Types (all defaults filled in)

export type SluiceConfig = z.output<typeof sluiceConfigSchema>;
/** What may be written in sluice.yaml (after env substitution), before defaults. */
export type SluiceConfigInput = z.input<typeof sluiceConfigSchema>;

export type SourceConfig = SluiceConfig['source'];
export type HttpConfig = SluiceConfig['http'];
export type LogConfig = SluiceConfig['log'];
export type ApplyConfig = SluiceConfig['apply'];
export type StateConfig = SluiceConfig['state'];

/** One sink, with every default filled in (its `redis` too). */
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
