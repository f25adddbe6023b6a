import type { FastifyInstance } from 'fastify';
import { formatLsn, parseLsn, type Lsn } from '../core/lsn.js';
import { formatPosition } from '../core/position.js';
import { apiError } from './api-error.js';
import type { HttpDeps } from './deps.js';

export const DEFAULT_WAIT_TIMEOUT_MS = 5000;
export const MAX_WAIT_TIMEOUT_MS = 60_000;

type WaitQuery = { Querystring: { lsn?: string; sinks?: string; timeout_ms?: string } };

/**
 * `GET /api/wait?lsn=<LSN>[&sinks=a,b][&timeout_ms=5000]`: 200 once every named sink (default:
 * all) has applied every transaction that committed at or before `lsn`; 504 `timeout` when the
 * timeout passes first; 400 for a malformed LSN, timeout or an unknown sink.
 */
export function registerWaitRoute(app: FastifyInstance, deps: Pick<HttpDeps, 'pipeline' | 'fences'>): void {
  const { pipeline, fences } = deps;
  app.get<WaitQuery>('/api/wait', async (req, reply) => {
    const q = req.query;
    let lsn: Lsn;
    try {
      lsn = parseLsn(q.lsn ?? '');
    } catch {
      return apiError(reply, 400, 'bad_request', `lsn must be an LSN like 0/16B3748, as pg_current_wal_lsn() prints it (got ${JSON.stringify(q.lsn ?? '')})`);
    }
    const timeoutText = q.timeout_ms ?? String(DEFAULT_WAIT_TIMEOUT_MS);
    const timeoutMs = /^\d{1,6}$/.test(timeoutText) ? Number(timeoutText) : NaN;
    if (!(timeoutMs >= 0 && timeoutMs <= MAX_WAIT_TIMEOUT_MS)) return apiError(reply, 400, 'bad_request', `timeout_ms must be a whole number from 0 to ${MAX_WAIT_TIMEOUT_MS} (got ${JSON.stringify(timeoutText)})`);
    const all = pipeline.sinks.map((s) => s.name);
    const sinks = q.sinks === undefined || q.sinks === '' ? all : q.sinks.split(',').map((s) => s.trim());
    const unknown = sinks.filter((s) => !all.includes(s));
    if (unknown.length > 0) return apiError(reply, 400, 'sink_not_found', `no sink named ${unknown.map((s) => `"${s}"`).join(', ')} (sinks: ${all.join(', ')})`);
    const applied = await fences.wait(lsn, sinks, timeoutMs);
    const positions = Object.fromEntries(sinks.map((s) => {
      const p = pipeline.appliedPosition(s);
      return [s, p === null ? null : formatPosition(p)];
    }));
    if (!applied) {
      const behind = sinks.filter((s) => !fences.reached(s, lsn));
      return reply.code(504).send({ error: { code: 'timeout', message: `not applied within ${timeoutMs} ms by ${behind.map((s) => `"${s}"`).join(', ')} (paused, behind, or its Redis is down: see /health)` }, positions });
    }
    return { applied: true, lsn: formatLsn(lsn), positions };
  });
}
