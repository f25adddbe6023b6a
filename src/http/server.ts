import Fastify, { type FastifyInstance } from 'fastify';
import { formatLsn, parseLsn } from '../core/lsn.js';
import { registerSinkRoutes } from './sinks-routes.js';
import { registerWaitRoute } from './wait-route.js';
import { apiError } from './api-error.js';
import type { HttpDeps } from './deps.js';
import { SluiceError, errorMessage } from '../util/errors.js';
import { Repairer } from '../verify/repair.js';
import { registerMessageRoutes } from './messages-routes.js';
import { registerRedisRoutes } from './redis-routes.js';
import { registerConsoleRoute } from './console-route.js';
import { registerOpenApiRoute } from './openapi.js';
import { clearStaleSocket, frameworkErrors, listenOptions, registerAccessControl, registerErrorHandler, restrictSocket } from './security.js';

export interface HttpServer {
  readonly url: string;
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

export type { HttpDeps };


/** A route as Fastify registered it (HEAD routes included), for the OpenAPI document's test. */
export interface RegisteredRoute {
  readonly method: string;
  readonly url: string;
}

/** API, console, /metrics and /health, listening. */
export async function startHttpServer(deps: HttpDeps): Promise<HttpServer> {
  const { app } = await buildHttpApp(deps);
  const http = deps.config.http;
  if (http.socket !== undefined) await clearStaleSocket(http.socket);
  const address = await app.listen(listenOptions(http));
  if (http.socket !== undefined) restrictSocket(http.socket);
  deps.log.info({ url: address }, 'HTTP server listening');
  return { url: address, app, close: () => app.close() };
}

/**
 * Every route, not listening yet, and the list of what was registered. Everything but /health,
 * the OpenAPI document and the console's page and assets needs the bearer token when one is set.
 */
export async function buildHttpApp(deps: HttpDeps): Promise<{ app: FastifyInstance; routes: RegisteredRoute[] }> {
  const { config, pipeline, metrics, monitor } = deps;
  const app = Fastify({ logger: false, bodyLimit: config.http.body_limit_bytes, frameworkErrors });
  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url });
  });
  // the token (401/403), no requests from other sites' pages, errors as the API's JSON
  registerAccessControl(app, config.http);
  registerErrorHandler(app, config.http, deps.log);
  // 200 only while the source streams and every sink can write; otherwise 503 naming each problem
  app.get('/health', async (_req, reply) => {
    const problems = pipeline.problems();
    const paused = pipeline.heldPositions().filter((h) => h.reason === 'paused').map((h) => h.sink);
    const body = { status: problems.length === 0 ? 'ok' : 'unhealthy', state: pipeline.state, source: pipeline.sourceState, problems, paused_sinks: paused };
    return reply.code(problems.length === 0 ? 200 : 503).send(body);
  });
  app.get('/metrics', async (_req, reply) => {
    metrics.lagSeconds.set(pipeline.lagMs() / 1000);
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  const heldWal = (): { sink: string; position: string | null; held_wal_bytes: number | null }[] => {
    const current = monitor.last?.currentLsn ?? null;
    // the server's position is the monitor's last poll (every 5 s): it may be older than a position
    return pipeline.heldPositions().filter((h) => h.reason === 'paused').map((h) => {
      const pos = h.position === null ? null : parseLsn(h.position.split(':')[0]!);
      return { sink: h.sink, position: h.position, held_wal_bytes: pos === null || current === null ? null : Math.max(0, Number(parseLsn(current) - pos)) };
    });
  };
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
      held_by_paused_sinks: heldWal(),
    };
  });
  registerSinkRoutes(app, deps);
  registerWaitRoute(app, deps);
  app.get<{ Params: { name: string } }>('/api/sinks/:name/backfills', async (req, reply) => {
    if (!pipeline.sinkRuntime(req.params.name)) return apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
    return { backfills: await deps.backfills.list(req.params.name) };
  });
  app.post<{ Params: { name: string }; Body: { table?: unknown; from?: unknown } | undefined }>('/api/sinks/:name/backfills', async (req, reply) => {
    if (!pipeline.sinkRuntime(req.params.name)) return apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
    const body = req.body ?? {};
    if (body.table !== undefined && typeof body.table !== 'string') return apiError(reply, 400, 'bad_request', 'table must be a string');
    if (body.from !== undefined && typeof body.from !== 'string') return apiError(reply, 400, 'bad_request', 'from must be a string like "updated_at>=2026-01-01"');
    try {
      const started = await deps.backfills.start(req.params.name, { table: body.table, from: body.from });
      // as GET lists them, with their progress
      const views = new Map((await deps.backfills.list(req.params.name)).map((v) => [`${v.id}\u0000${v.table}`, v]));
      return reply.code(202).send({ backfills: started.map((r) => views.get(`${r.id}\u0000${r.table}`) ?? { ...r, rate: 0, eta_seconds: null, percent: null }) });
    } catch (err) {
      const code = err instanceof SluiceError ? err.code : 'backfill_failed';
      return apiError(reply, 400, code, errorMessage(err));
    }
  });
  const repairer = new Repairer(config, pipeline, deps.backfills, deps.log);
  app.post<{ Params: { name: string } }>('/api/sinks/:name/repair', async (req, reply) => {
    if (!pipeline.sinkRuntime(req.params.name)) return apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
    try {
      return reply.code(202).send({ repair: await repairer.start(req.params.name) });
    } catch (err) {
      const code = err instanceof SluiceError ? err.code : 'repair_failed';
      return apiError(reply, code === 'repair_running' ? 409 : 400, code, errorMessage(err));
    }
  });
  app.get<{ Params: { name: string } }>('/api/sinks/:name/repair', async (req, reply) => {
    if (!pipeline.sinkRuntime(req.params.name)) return apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
    const repair = repairer.get(req.params.name);
    return repair ? { repair } : apiError(reply, 404, 'no_repair', `no repair of sink "${req.params.name}" since this instance started`);
  });
  registerMessageRoutes(app, deps);
  registerRedisRoutes(app, deps);
  registerOpenApiRoute(app);
  await registerConsoleRoute(app, deps);
  app.setNotFoundHandler((req, reply) => apiError(reply, 404, 'not_found', `no route ${req.method} ${req.url}`));
  await app.ready();
  return { app, routes };
}
