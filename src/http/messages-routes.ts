import type { FastifyInstance } from 'fastify';
import type { HttpDeps } from './deps.js';
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, FailedMessages, discardFailed, getFailed, listFailed } from '../runtime/failed-retry.js';
import { apiError, sendError } from './api-error.js';
import { failedMessageForApi } from '../plan/failed-messages.js';
import { apiMessageId } from '../core/message-id.js';

export type MessageRoutesDeps = Pick<HttpDeps, 'config' | 'pipeline' | 'log' | 'deliveries'>;

const STATUSES: Readonly<Record<string, number>> = {
  sink_not_found: 404,
  message_not_found: 404,
  bad_request: 400,
  retry_running: 409,
  cannot_retry: 409,
  retry_failed: 422,
};

/** a retry waits this long for its write to be applied before answering 202 (still queued) */
const RETRY_WAIT_MS = 30_000;

const DELIVERED_NOTE = 'the last 100 deliveries of this instance since it started (keys and positions, no values); sluice_changes_total counts all';

type SinkParams = { Params: { name: string } };
type MessageParams = { Params: { name: string; id: string } };

/**
 * A sink's failed messages (SPEC §5, §6): list them, read one, retry one through the ordered
 * apply path, discard one. Ids are listed URL-safe (`0-16B3748-0`, core/message-id.ts) and
 * accepted in that form or as stored (`0/16B3748:0`, percent-encoded).
 */
export function registerMessageRoutes(app: FastifyInstance, deps: MessageRoutesDeps): void {
  const { config, pipeline } = deps;
  const failed = new FailedMessages(pipeline, config.source.url, deps.log);
  const known = (name: string): boolean => config.sinks.some((s) => s.name === name) && pipeline.sinkRuntime(name) !== undefined;
  const noSink = (name: string): string => `no sink named "${name}"`;

  app.get<SinkParams & { Querystring: { status?: string; limit?: string; cursor?: string } }>('/api/sinks/:name/messages', async (req, reply) => {
    const { name } = req.params;
    if (!known(name)) return apiError(reply, 404, 'sink_not_found', noSink(name));
    const status = req.query.status ?? 'failed';
    if (status !== 'failed' && status !== 'delivered') return apiError(reply, 400, 'bad_request', `status must be "failed" or "delivered" (got ${JSON.stringify(status)})`);
    const limitText = req.query.limit ?? String(DEFAULT_LIST_LIMIT);
    const limit = /^\d{1,6}$/.test(limitText) ? Number(limitText) : NaN;
    if (!(limit >= 0 && limit <= MAX_LIST_LIMIT)) return apiError(reply, 400, 'bad_request', `limit must be a whole number from 0 to ${MAX_LIST_LIMIT} (got ${JSON.stringify(limitText)})`);
    // the last deliveries this instance applied, newest first (kept in memory, keys only)
    if (status === 'delivered') return { messages: deps.deliveries.list(name, limit), next_cursor: null, note: DELIVERED_NOTE };
    try {
      const page = await listFailed(pipeline.redisFor(name), name, limit, req.query.cursor || null);
      // the stored JSON as it is: envelopes keep every digit of int8 and numeric values
      return reply
        .type('application/json; charset=utf-8')
        .send(`{"messages":[${page.messages.join(',')}],"next_cursor":${JSON.stringify(page.next_cursor)},"total":${page.total}}`);
    } catch (err) {
      return sendError(reply, err, STATUSES, 'redis_error');
    }
  });

  app.get<MessageParams>('/api/sinks/:name/messages/:id', async (req, reply) => {
    const { name } = req.params;
    const id = apiMessageId(req.params.id);
    if (!known(name)) return apiError(reply, 404, 'sink_not_found', noSink(name));
    try {
      const stored = await getFailed(pipeline.redisFor(name), name, id);
      if (stored === null) return apiError(reply, 404, 'message_not_found', `sink "${name}" has no failed message ${id}`);
      return reply.type('application/json; charset=utf-8').send(failedMessageForApi(stored));
    } catch (err) {
      return sendError(reply, err, STATUSES, 'redis_error');
    }
  });

  app.post<MessageParams>('/api/sinks/:name/messages/:id/retry', async (req, reply) => {
    const { name } = req.params;
    const id = apiMessageId(req.params.id);
    if (!known(name)) return apiError(reply, 404, 'sink_not_found', noSink(name));
    const retry = failed.retry(name, id);
    retry.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), RETRY_WAIT_MS);
      timer.unref();
    });
    try {
      const done = await Promise.race([retry, waited]);
      if (done === null) {
        return reply.code(202).send({ id, outcome: 'pending', note: 'the retry is queued behind the stream; the failed message is removed once it is applied' });
      }
      return done;
    } catch (err) {
      return sendError(reply, err, STATUSES, 'retry_error');
    } finally {
      clearTimeout(timer);
    }
  });

  app.post<MessageParams>('/api/sinks/:name/messages/:id/discard', async (req, reply) => {
    const { name } = req.params;
    const id = apiMessageId(req.params.id);
    if (!known(name)) return apiError(reply, 404, 'sink_not_found', noSink(name));
    try {
      if (!(await discardFailed(pipeline.redisFor(name), name, id, pipeline.failedStore))) return apiError(reply, 404, 'message_not_found', `sink "${name}" has no failed message ${id}`);
      deps.log.info({ sink: name, id }, 'failed message discarded');
      return { id, discarded: true };
    } catch (err) {
      return sendError(reply, err, STATUSES, 'redis_error');
    }
  });
}
