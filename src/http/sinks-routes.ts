import type { FastifyInstance, FastifyReply } from 'fastify';
import { ControlError } from '../control/sink-control.js';
import type { HttpDeps } from './deps.js';
import { parseLsn } from '../core/lsn.js';
import { failedKey } from '../core/keyspace.js';
import { formatPosition } from '../core/position.js';
import { sinkState } from '../plan/states.js';
import { errorMessage, SluiceError } from '../util/errors.js';
import { apiError } from './api-error.js';


type NameParams = { Params: { name: string } };

/** Reads that touch Redis answer within this, so the API keeps answering while a Redis is down. */
const REDIS_READ_TIMEOUT_MS = 1000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms).unref())]);
}

/**
 * Sinks (docs/operations.md, HTTP API): list and read them; create (the sink's YAML block as JSON), change (a JSON
 * merge patch), delete, pause and resume them while Sluice runs.
 */
export function registerSinkRoutes(app: FastifyInstance, deps: HttpDeps): void {
  const { config, pipeline, metrics, monitor, control } = deps;

  const view = async (name: string): Promise<Record<string, unknown> | null> => {
    const s = config.sinks.find((x) => x.name === name);
    const runtime = pipeline.sinkRuntime(name);
    if (!s || !runtime) return null;
    const changes = await metrics.changes.get();
    const failed = await metrics.failed.get();
    const current = monitor.last?.currentLsn ?? null;
    const held = runtime.hold !== null && runtime.position !== null && current !== null ? Math.max(0, Number(parseLsn(current) - runtime.position.lsn)) : null;
    // waiting now: what the sink's hash holds (what Sluice counted when Redis does not answer);
    // read beside the backfills, so a Redis that is down costs one timeout, not two
    const store = pipeline.failedStore.view(name);
    const waitingRead = withTimeout(pipeline.redisFor(name).hlen(failedKey(name)), REDIS_READ_TIMEOUT_MS, `Redis "${s.redis}"`).catch(() => store.messages);
    let backfills: unknown = null;
    let backfillsError: string | null = null;
    try {
      backfills = (await withTimeout(deps.backfills.list(name), REDIS_READ_TIMEOUT_MS, `Redis "${s.redis}"`)).filter((b) => b.state !== 'done');
    } catch (err) {
      backfillsError = errorMessage(err);
    }
    const lane = pipeline.laneStates().find((l) => l.name === s.redis);
    const waiting = await waitingRead;
    return {
      name: s.name,
      type: s.type,
      origin: control.origin(name),
      redis: s.redis,
      tables: s.tables,
      state: pipeline.state !== 'streaming' ? pipeline.state : lane?.state === 'retrying' && runtime.hold === null ? 'retrying' : sinkState(runtime),
      paused: runtime.hold === 'paused',
      position: runtime.position === null ? null : formatPosition(runtime.position),
      changes_applied: changes.values.filter((v) => v.labels.sink === name).reduce((n, v) => n + v.value, 0),
      failed_messages: waiting,
      failed_total: failed.values.filter((v) => v.labels.sink === name).reduce((n, v) => n + v.value, 0),
      failed_store: store,
      lag_ms: runtime.hold === null ? pipeline.lagMs() : null,
      lag_bytes: runtime.hold === null ? (monitor.last?.lagBytes ?? null) : held,
      held_wal_bytes: held,
      redis_error: lane?.lastError ?? null,
      backfills,
      ...(backfillsError === null ? {} : { backfills_error: backfillsError }),
      config: s,
    };
  };

  const fail = (reply: FastifyReply, err: unknown): FastifyReply => {
    if (err instanceof ControlError) return reply.code(err.status).send({ error: { code: err.code, message: err.message, ...(err.problems.length > 0 ? { problems: err.problems } : {}) } });
    if (err instanceof SluiceError) return apiError(reply, 400, err.code, err.message);
    return apiError(reply, 500, 'internal_error', errorMessage(err));
  };

  app.get('/api/sinks', async () => ({ sinks: (await Promise.all(config.sinks.map((s) => view(s.name)))).filter((v) => v !== null) }));
  app.get<NameParams>('/api/sinks/:name', async (req, reply) => {
    const v = await view(req.params.name);
    return v ?? apiError(reply, 404, 'sink_not_found', `no sink named "${req.params.name}"`);
  });
  /** Runs a control action; a ControlError becomes its status with the problems' paths. */
  const act = async (reply: FastifyReply, status: number, action: () => Promise<unknown>): Promise<FastifyReply> => {
    try {
      return reply.code(status).send(await action());
    } catch (err) {
      return fail(reply, err);
    }
  };
  app.post('/api/sinks', (req, reply) => act(reply, 201, async () => ({ sink: await view((await control.create(req.body)).name) })));
  app.patch<NameParams>('/api/sinks/:name', (req, reply) => act(reply, 200, async () => {
    await control.patch(req.params.name, req.body);
    return { sink: await view(req.params.name) };
  }));
  app.delete<NameParams>('/api/sinks/:name', (req, reply) => act(reply, 200, async () => {
    await control.remove(req.params.name);
    return { deleted: req.params.name };
  }));
  app.post<NameParams>('/api/sinks/:name/pause', (req, reply) => act(reply, 200, async () => {
    await control.pause(req.params.name);
    return { sink: await view(req.params.name) };
  }));
  app.post<NameParams>('/api/sinks/:name/resume', (req, reply) => act(reply, 200, async () => {
    await control.resume(req.params.name);
    return { sink: await view(req.params.name) };
  }));
}
