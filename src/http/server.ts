import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import type { SluiceConfig } from '../config/schema.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Metrics } from '../metrics.js';
import type { SourceMonitor } from '../pg/source-monitor.js';
import type { Logger } from '../util/log.js';
import { formatLsn } from '../core/lsn.js';
import type { BackfillManager } from '../backfill/backfill-manager.js';
import { SluiceError, errorMessage } from '../util/errors.js';
import { Repairer } from '../verify/repair.js';
import { registerMessageRoutes } from './messages-routes.js';
import { registerRedisRoutes } from './redis-routes.js';
import { CONSOLE_PATHS, registerConsoleRoute } from './console-route.js';

export interface HttpServer {
  readonly url: string;
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

export interface HttpDeps {
  config: SluiceConfig;
  pipeline: Pipeline;
  metrics: Metrics;
  monitor: SourceMonitor;
  backfills: BackfillManager;
  log: Logger;
}

function apiError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message } });
}

/** API, console, /metrics and /health. Everything but /health and the console's page needs the bearer token when one is set. */
export async function startHttpServer(deps: HttpDeps): Promise<HttpServer> {
  const { config, pipeline, metrics, monitor } = deps;
  const app = Fastify({ logger: false });
  const token = config.http.token;
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (!token || req.url === '/health' || CONSOLE_PATHS.has(req.url.split('?', 1)[0]!)) return;
    const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    if (a.length !== b.length || !timingSafeEqual(a, b)) return apiError(reply, 401, 'unauthorized', 'missing or wrong bearer token: send Authorization: Bearer <http.token>');
  });
  app.get('/health', async () => ({ status: pipeline.state === 'running' ? 'ok' : pipeline.state, source: pipeline.sourceState }));
  app.get('/metrics', async (_req, reply) => {
    metrics.lagSeconds.set(pipeline.lagMs() / 1000);
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get('/api/source', async () => {
    const snap = monitor.last;
    return {
      slot: config.source.slot,
      publication: config.source.publication,
      state: pipeline.sourceState,
      confirmed_lsn: formatLsn(pipeline.confirmedLsn),
      current_lsn: snap?.currentLsn ?? null,
      lag_bytes: snap?.lagBytes ?? null,
      lag_ms: pipeline.lagMs(),
      retained_wal_bytes: snap?.retainedBytes ?? null,
      last_error: pipeline.lastError,
      redis: pipeline.laneStates(),
    };
  });
  const sinkView = async (name: string): Promise<Record<string, unknown> | null> => {
    const s = config.sinks.find((x) => x.name === name);
    if (!s) return null;
    const changes = await metrics.changes.get();
    const failed = await metrics.failed.get();
    const applied = changes.values.filter((v) => v.labels.sink === name).reduce((n, v) => n + v.value, 0);
    return {
      name: s.name,
      type: s.type,
      redis: s.redis,
      tables: s.tables,
      state: pipeline.state,
      changes_applied: applied,
      failed_messages: failed.values.filter((v) => v.labels.sink === name).reduce((n, v) => n + v.value, 0),
      lag_ms: pipeline.lagMs(),
      lag_bytes: monitor.last?.lagBytes ?? null,
      backfills: (await deps.backfills.list(name)).filter((b) => b.state !== 'done'),
    };
  };
  app.get('/api/sinks', async () => ({ sinks: await Promise.all(config.sinks.map((s) => sinkView(s.name))) }));
  app.get<{ Params: { name: string } }>('/api/sinks/:name', async (req, reply) => {
    const view = await sinkView(req.params.name);
    return view ?? apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
  });
  app.get<{ Params: { name: string } }>('/api/sinks/:name/backfills', async (req, reply) => {
    if (!config.sinks.some((s) => s.name === req.params.name)) return apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
    return { backfills: await deps.backfills.list(req.params.name) };
  });
  app.post<{ Params: { name: string }; Body: { table?: unknown; from?: unknown } | undefined }>('/api/sinks/:name/backfills', async (req, reply) => {
    if (!config.sinks.some((s) => s.name === req.params.name)) return apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
    const body = req.body ?? {};
    if (body.table !== undefined && typeof body.table !== 'string') return apiError(reply, 400, 'bad_request', 'table must be a string');
    if (body.from !== undefined && typeof body.from !== 'string') return apiError(reply, 400, 'bad_request', 'from must be a string like "updated_at>=2026-01-01"');
    try {
      const started = await deps.backfills.start(req.params.name, { table: body.table, from: body.from });
      return reply.code(202).send({ backfills: started });
    } catch (err) {
      const code = err instanceof SluiceError ? err.code : 'backfill_failed';
      return apiError(reply, 400, code, errorMessage(err));
    }
  });
  const repairer = new Repairer(config, pipeline, deps.backfills, deps.log);
  app.post<{ Params: { name: string } }>('/api/sinks/:name/repair', async (req, reply) => {
    if (!config.sinks.some((s) => s.name === req.params.name)) return apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
    try {
      return reply.code(202).send({ repair: await repairer.start(req.params.name) });
    } catch (err) {
      const code = err instanceof SluiceError ? err.code : 'repair_failed';
      return apiError(reply, code === 'repair_running' ? 409 : 400, code, errorMessage(err));
    }
  });
  app.get<{ Params: { name: string } }>('/api/sinks/:name/repair', async (req, reply) => {
    if (!config.sinks.some((s) => s.name === req.params.name)) return apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
    const repair = repairer.get(req.params.name);
    return repair ? { repair } : apiError(reply, 404, 'no_repair', `no repair of sink "${req.params.name}" since this instance started`);
  });
  registerMessageRoutes(app, deps);
  registerRedisRoutes(app, deps);
  registerConsoleRoute(app);
  app.setNotFoundHandler((req, reply) => apiError(reply, 404, 'not_found', `no route ${req.method} ${req.url}`));
  const address = await app.listen({ port: config.http.port, host: config.http.host });
  deps.log.info({ url: address }, 'HTTP server listening');
  return { url: address, app, close: () => app.close() };
}
