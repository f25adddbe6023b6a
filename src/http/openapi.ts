import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { SINK_NAME_RE } from '../config/sink-schema.js';
import { CONNECTION_NAME_RE } from '../config/redis-schema.js';
import { componentSchemas, obj, ref, type Schema } from './openapi-schemas.js';

/*
 * The OpenAPI 3.1 document of the whole HTTP API, written by hand next to the routes and served
 * at GET /api/openapi.json. Two tests keep it true: test/unit/openapi-routes.test.ts (every route
 * Fastify registers is in it, and nothing else), and test/integration/openapi.test.ts (each
 * operation called on a running instance answers a documented status with a body of the
 * documented schema).
 *
 * The document is served without the token: it holds no data, only the shape of the API, the
 * same for every instance of this version.
 */

export const OPENAPI_PATH = '/api/openapi.json';

/** A Fastify route path as OpenAPI writes it: `/api/sinks/:name` → `/api/sinks/{name}`, `/assets/*` → `/assets/{path}`. */
export function toOpenApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\/\*$/, '/{path}');
}

interface Param {
  name: string;
  in: 'path' | 'query';
  description: string;
  required?: boolean;
  schema: Schema;
}

interface Operation {
  operationId: string;
  tags: string[];
  summary: string;
  description?: string;
  parameters?: Param[];
  requestBody?: unknown;
  responses: Record<string, unknown>;
  security?: unknown[];
}

type Method = 'get' | 'post' | 'patch' | 'delete';

// ---- parameters ---------------------------------------------------------------------------

const sinkName: Param = { name: 'name', in: 'path', required: true, description: "the sink's name, as listed", schema: { type: 'string', pattern: SINK_NAME_RE.source } };
const messageIdParam: Param = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'a failed message id as listed (`0-16B3748-0`); the stored form `0/16B3748:0`, percent-encoded, is accepted too',
  schema: { type: 'string' },
};
const redisName: Param = { name: 'name', in: 'path', required: true, description: 'a connection name under `redis:` in sluice.yaml', schema: { type: 'string', pattern: CONNECTION_NAME_RE.source } };
const query = (name: string, description: string, schema: Schema): Param => ({ name, in: 'query', description, schema });

// ---- responses ----------------------------------------------------------------------------

const json = (schema: Schema, description: string): unknown => ({ description, content: { 'application/json': { schema } } });
const error = (description: string): unknown => json(ref('Error'), description);
const notFound = error('no sink by that name (`sink_not_found`)');
const jsonBody = (schema: Schema, description: string, required = true): unknown => ({ required, description, content: { 'application/json': { schema } } });

// ---- the operations -----------------------------------------------------------------------

function operations(): Record<string, Partial<Record<Method, Operation>>> {
  return {
    '/health': {
      get: {
        operationId: 'getHealth',
        tags: ['health'],
        summary: 'Whether the source streams and every sink can write',
        description: '200 only while the replication stream streams and every sink can write; otherwise 503 naming each problem. A paused sink is not a problem.',
        security: [],
        responses: { 200: json(ref('Health'), 'healthy'), 503: json(ref('Health'), 'unhealthy: each problem named') },
      },
    },
    '/metrics': {
      get: {
        operationId: 'getMetrics',
        tags: ['health'],
        summary: 'Prometheus metrics (text exposition format)',
        responses: { 200: { description: 'the metrics', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    [OPENAPI_PATH]: {
      get: {
        operationId: 'getOpenApi',
        tags: ['health'],
        summary: 'This document',
        description: 'Served without the token: it holds no data, only the shape of the API.',
        security: [],
        responses: { 200: json({ type: 'object', required: ['openapi', 'info', 'paths'] }, 'the OpenAPI 3.1 document') },
      },
    },
    '/api/source': {
      get: {
        operationId: 'getSource',
        tags: ['source'],
        summary: 'The replication slot: state, confirmed position, lag, WAL retained and held by paused sinks',
        responses: { 200: json(ref('Source'), 'the source') },
      },
    },
    '/api/wait': {
      get: {
        operationId: 'waitForLsn',
        tags: ['source'],
        summary: 'Read your writes: wait until sinks have applied an LSN',
        description: 'Answers 200 once every named sink (default: all) has applied every transaction committed at or before `lsn` (e.g. from `pg_current_wal_lsn()` after a commit).',
        parameters: [
          { ...query('lsn', 'the LSN to wait for, e.g. 0/16B3748', { type: 'string' }), required: true },
          query('sinks', 'comma-separated sink names (default: every sink)', { type: 'string' }),
          query('timeout_ms', 'how long to wait, 0 to 60000 (default 5000)', { type: 'integer', minimum: 0, maximum: 60000, default: 5000 }),
        ],
        responses: {
          200: json(ref('Wait'), 'applied by every sink named'),
          400: error('a malformed LSN or timeout (`bad_request`), or an unknown sink (`sink_not_found`)'),
          504: json(ref('WaitTimeout'), 'not applied within the timeout (`timeout`): the sinks behind are named'),
        },
      },
    },
    '/api/history': {
      get: {
        operationId: 'getHistory',
        tags: ['source'],
        summary: "The last 15 minutes sampled every 2 s, for the console's charts",
        parameters: [query('since', 'only samples after this time (ms since the epoch)', { type: 'integer' })],
        responses: { 200: json(ref('History'), 'the samples, oldest first'), 400: error('since is not a number (`bad_request`)') },
      },
    },
    '/api/sinks': {
      get: {
        operationId: 'listSinks',
        tags: ['sinks'],
        summary: 'Every sink, from sluice.yaml or the API',
        responses: { 200: json(obj({ sinks: { type: 'array', items: ref('Sink') } }), 'the sinks') },
      },
      post: {
        operationId: 'createSink',
        tags: ['sinks'],
        summary: 'Create a sink while Sluice runs',
        description: 'Validated by the same schema as the file: each mistake is a problem with its path in the body, and nothing changes. It takes every change committed from then on; with `"backfill": true` it also copies the existing rows.',
        requestBody: jsonBody(ref('SinkBlock'), "the sink's block, as under `sinks:` in sluice.yaml"),
        responses: {
          201: json(obj({ sink: ref('Sink') }), 'created'),
          400: error('the block does not validate (`invalid_sink`, with `problems`), or the name is taken (`sink_exists`)'),
          503: error('the sink could not be started, or its tables not added to the publication'),
        },
      },
    },
    '/api/sinks/preview': {
      post: {
        operationId: 'previewSink',
        tags: ['sinks'],
        summary: 'What a sink would write for a few real rows, before it is saved',
        description: 'Reads up to 20 rows of one of its tables and plans them as the pipeline would (functions included); nothing is written.',
        requestBody: jsonBody(ref('PreviewRequest'), 'the sink block and which rows'),
        responses: {
          200: json(ref('Preview'), 'each row with the commands it would become, or why it would fail'),
          400: error('the block or the request does not validate (with `problems`)'),
          502: error('the rows could not be read from Postgres (`preview_failed`)'),
        },
      },
    },
    '/api/sinks/{name}': {
      get: {
        operationId: 'getSink',
        tags: ['sinks'],
        summary: 'One sink: origin, state, position, lag, failed messages, config',
        parameters: [sinkName],
        responses: { 200: json(ref('Sink'), 'the sink'), 404: notFound },
      },
      patch: {
        operationId: 'patchSink',
        tags: ['sinks'],
        summary: 'Change a sink made through the API (a JSON merge patch of its block)',
        description: '`null` removes an option. `name` and `redis` cannot change. What is in Redis is not rewritten.',
        parameters: [sinkName],
        requestBody: jsonBody({ type: 'object', description: 'a JSON merge patch (RFC 7396) of the sink block' }, 'the options to change'),
        responses: {
          200: json(obj({ sink: ref('Sink') }), 'changed'),
          400: error('the patched block does not validate (with `problems`)'),
          404: notFound,
          409: error('the sink is defined in sluice.yaml (`sink_in_config_file`): change it there'),
        },
      },
      delete: {
        operationId: 'deleteSink',
        tags: ['sinks'],
        summary: 'Delete a sink made through the API',
        description: "It stops at once; what it wrote stays in Redis. Its position, failed messages, backfill records and reverse index go.",
        parameters: [sinkName],
        responses: {
          200: json(obj({ deleted: { type: 'string' } }), 'deleted'),
          404: notFound,
          409: error('the sink is defined in sluice.yaml (`sink_in_config_file`): remove it there'),
        },
      },
    },
    '/api/sinks/{name}/pause': {
      post: {
        operationId: 'pauseSink',
        tags: ['sinks'],
        summary: "Stop a sink's writes while the others flow",
        description: 'Postgres keeps the WAL the sink has not applied until it is resumed or deleted (`held_wal_bytes`).',
        parameters: [sinkName],
        responses: { 200: json(obj({ sink: ref('Sink') }), 'paused'), 404: notFound },
      },
    },
    '/api/sinks/{name}/resume': {
      post: {
        operationId: 'resumeSink',
        tags: ['sinks'],
        summary: 'Apply everything a paused sink missed, in order',
        parameters: [sinkName],
        responses: { 200: json(obj({ sink: ref('Sink') }), 'resumed'), 404: notFound },
      },
    },
    '/api/sinks/{name}/backfills': {
      get: {
        operationId: 'listBackfills',
        tags: ['backfills'],
        summary: "A sink's backfills with their progress",
        parameters: [sinkName],
        responses: { 200: json(obj({ backfills: { type: 'array', items: ref('Backfill') } }), 'the backfills'), 404: notFound },
      },
      post: {
        operationId: 'startBackfill',
        tags: ['backfills'],
        summary: 'Copy existing rows into a sink beside live changes',
        parameters: [sinkName],
        requestBody: jsonBody(
          obj({}, { table: { type: 'string', description: "one of the sink's tables (default: all)" }, from: { type: 'string', description: 'one comparison, e.g. updated_at>=2026-01-01' } }),
          'which rows (both optional)',
          false,
        ),
        responses: {
          202: json(obj({ backfills: { type: 'array', items: ref('Backfill') } }), 'started: one per table'),
          400: error('a table the sink does not have, a bad condition, …'),
          404: notFound,
        },
      },
    },
    '/api/sinks/{name}/repair': {
      get: {
        operationId: 'getRepair',
        tags: ['backfills'],
        summary: "The sink's last repair since this instance started",
        parameters: [sinkName],
        responses: { 200: json(obj({ repair: ref('Repair') }), 'the repair'), 404: error('no such sink (`sink_not_found`), or no repair since the start (`no_repair`)') },
      },
      post: {
        operationId: 'startRepair',
        tags: ['backfills'],
        summary: 'Repair a sink: a full backfill and an orphan sweep, through the ordered apply path',
        parameters: [sinkName],
        responses: {
          202: json(obj({ repair: ref('Repair') }), 'started'),
          400: error('the sink cannot be repaired (`cannot_repair`: list, stream, pubsub, or functions)'),
          404: notFound,
          409: error('a repair of this sink is running (`repair_running`)'),
        },
      },
    },
    '/api/sinks/{name}/messages': {
      get: {
        operationId: 'listMessages',
        tags: ['messages'],
        summary: "A sink's failed messages (newest first, by pages), or its recent deliveries",
        parameters: [
          sinkName,
          query('status', 'failed (default) or delivered (the last 100 since this instance started; keys, no values)', { type: 'string', enum: ['failed', 'delivered'], default: 'failed' }),
          query('limit', '0 to 500 (default 50); 0 answers only `total`', { type: 'integer', minimum: 0, maximum: 500, default: 50 }),
          query('cursor', 'next_cursor of the previous page', { type: 'string' }),
        ],
        responses: {
          200: json({ oneOf: [ref('FailedPage'), ref('Deliveries')] }, 'a page of failed messages, or the recent deliveries'),
          400: error('a bad status, limit or cursor (`bad_request`)'),
          404: notFound,
        },
      },
    },
    '/api/sinks/{name}/messages/{id}': {
      get: {
        operationId: 'getMessage',
        tags: ['messages'],
        summary: 'One failed message, envelope included',
        parameters: [sinkName, messageIdParam],
        responses: { 200: json(ref('FailedMessage'), 'the failed message'), 404: error('no such sink or message (`message_not_found`)') },
      },
    },
    '/api/sinks/{name}/messages/{id}/retry': {
      post: {
        operationId: 'retryMessage',
        tags: ['messages'],
        summary: 'Retry a failed message through the ordered apply path',
        description: 'A state sink (string, hash, set, zset, geo, bitmap) writes the row as it is now in Postgres; a list, stream, pubsub or hyperloglog sink replays the stored message; an aggregate sink\'s message cannot be retried on its own (409 `cannot_retry`: backfill the sink, then discard). Waits up to 30 s for the write.',
        parameters: [sinkName, messageIdParam],
        responses: {
          200: json(ref('RetryResult'), 'done'),
          202: json(ref('RetryResult'), 'queued behind the stream (`pending`): the entry goes once it is applied'),
          404: error('no such sink or message'),
          409: error('it cannot be replayed exactly (`cannot_retry`), or is being retried (`retry_running`)'),
          422: error('it failed again (`retry_failed`): the message is the new reason; the entry stays'),
        },
      },
    },
    '/api/sinks/{name}/messages/{id}/discard': {
      post: {
        operationId: 'discardMessage',
        tags: ['messages'],
        summary: 'Delete a failed message',
        parameters: [sinkName, messageIdParam],
        responses: { 200: json(obj({ id: { type: 'string' }, discarded: { const: true } }), 'deleted'), 404: error('no such sink or message') },
      },
    },
    '/api/redis/{name}/test': {
      post: {
        operationId: 'testRedis',
        tags: ['redis'],
        summary: 'PING and INFO through a new connection built from `redis.<name>`',
        parameters: [redisName],
        responses: {
          200: json(ref('RedisTest'), 'it answers'),
          404: error('no connection by that name (`redis_not_found`)'),
          502: error('refused, wrong password, TLS, or no answer within 5 s (`redis_unreachable`)'),
        },
      },
    },
    '/': { get: consolePage('getConsole') },
    '/index.html': { get: consolePage('getConsoleIndex') },
    '/assets/{path}': {
      get: {
        operationId: 'getConsoleAsset',
        tags: ['console'],
        summary: "The console's scripts and styles (no data; cached for a year, their names carry a hash)",
        security: [],
        parameters: [{ name: 'path', in: 'path', required: true, description: 'a file of the console build', schema: { type: 'string' } }],
        responses: { 200: { description: 'the file' }, 404: error('no such file') },
      },
    },
  };
}

function consolePage(operationId: string): Operation {
  return {
    operationId,
    tags: ['console'],
    summary: 'The console (a single page; it holds no data: the API calls it makes send the token)',
    security: [],
    responses: {
      200: { description: 'the page', content: { 'text/html': { schema: { type: 'string' } } } },
      500: { description: 'the console is not built (`npm run build:console`)', content: { 'text/html': { schema: { type: 'string' } } } },
    },
  };
}

let cached: Record<string, unknown> | null = null;

/** The whole document. Every operation that needs the token also documents its 401 and 403. */
export function openApiDocument(): Record<string, unknown> {
  if (cached) return cached;
  const paths = operations();
  for (const item of Object.values(paths)) {
    for (const op of Object.values(item)) {
      if (op.security === undefined) {
        op.responses[401] = error('`http.token` is set and the request does not carry it (`unauthorized`)');
        op.responses[403] = error('the request carries another token than `http.token` (`forbidden`)');
      }
    }
  }
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'Sluice HTTP API',
      version,
      description:
        'Sluice keeps Redis in sync with PostgreSQL. This API reads the running instance (health, source, sinks, backfills, messages) and changes it (sinks, backfills, repairs, retries) without a restart. Errors are `{"error": {"code", "message"}}`. See docs/operations.md.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    security: [{ bearer: [] }],
    tags: [
      { name: 'health', description: 'health, metrics, this document' },
      { name: 'source', description: 'the replication slot, read-your-writes, history' },
      { name: 'sinks', description: 'sinks at runtime' },
      { name: 'backfills', description: 'backfills and repairs' },
      { name: 'messages', description: 'failed messages and recent deliveries' },
      { name: 'redis', description: 'Redis connections' },
      { name: 'console', description: 'the web console' },
    ],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: '`http.token` of sluice.yaml. Without `http.token`, no route needs it.' },
      },
      schemas: componentSchemas(),
    },
  };
  return cached;
}

/** `GET /api/openapi.json`, without the token (see above). */
export function registerOpenApiRoute(app: FastifyInstance): void {
  app.get(OPENAPI_PATH, async (_req, reply) => reply.header('Cache-Control', 'no-cache').send(openApiDocument()));
}

