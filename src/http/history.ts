import type { FastifyInstance } from 'fastify';
import type { HttpDeps } from './deps.js';
import { apiError } from './api-error.js';
import type { ApiHistory, ApiHistorySample } from './api-types.js';

export const HISTORY_INTERVAL_MS = 2000;
export const HISTORY_WINDOW_MS = 15 * 60 * 1000;

type HistoryDeps = Pick<HttpDeps, 'config' | 'pipeline' | 'metrics' | 'monitor'>;

interface Totals {
  at: number;
  changes: Map<string, number>;
  failed: Map<string, number>;
  batches: number;
  applySeconds: number;
  /** per sink: sum (s) and count of commit → acknowledged (sluice_apply_latency_seconds) */
  latency: Map<string, { sum: number; count: number }>;
}

/**
 * A short history of the instance for the console's charts, so that a page opened late still
 * has curves: every 2 s, the changes applied per sink (from sluice_changes_total), messages
 * failed, batches and their mean apply time (sluice_batch_apply_seconds), each sink's mean time from
 * commit to acknowledged in Redis (sluice_apply_latency_seconds), the slot's lag and the WAL it
 * retains. Kept in memory for 15 minutes (450 samples); gone when the process stops.
 */
export class History {
  private readonly samples: ApiHistorySample[] = [];
  private last: Totals | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> | null = null;

  constructor(
    private readonly deps: HistoryDeps,
    readonly intervalMs = HISTORY_INTERVAL_MS,
    readonly windowMs = HISTORY_WINDOW_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sampling;
  }

  /** Samples after `since` (ms since the epoch), oldest first. */
  list(since = 0): ApiHistorySample[] {
    let i = this.samples.length;
    while (i > 0 && this.samples[i - 1]!.t > since) i--;
    return this.samples.slice(i);
  }

  /** Takes one sample (the first one only records the totals to compare the next with). */
  sample(now = Date.now()): Promise<void> {
    this.sampling ??= this.take(now).finally(() => {
      this.sampling = null;
    });
    return this.sampling;
  }

  private async take(now: number): Promise<void> {
    const { config, metrics, pipeline, monitor } = this.deps;
    const bySink = async (counter: typeof metrics.changes | typeof metrics.failed): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      for (const v of (await counter.get()).values) {
        const sink = String(v.labels.sink ?? '');
        out.set(sink, (out.get(sink) ?? 0) + v.value);
      }
      return out;
    };
    const histogram = (await metrics.batchSeconds.get()).values;
    const totals: Totals = {
      at: now,
      changes: await bySink(metrics.changes),
      failed: await bySink(metrics.failed),
      batches: histogram.find((v) => v.metricName === 'sluice_batch_apply_seconds_count')?.value ?? 0,
      applySeconds: histogram.find((v) => v.metricName === 'sluice_batch_apply_seconds_sum')?.value ?? 0,
      latency: new Map(),
    };
    for (const v of (await metrics.applyLatency.get()).values) {
      const sink = String(v.labels.sink ?? '');
      const t = totals.latency.get(sink) ?? { sum: 0, count: 0 };
      if (v.metricName === 'sluice_apply_latency_seconds_sum') t.sum = v.value;
      else if (v.metricName === 'sluice_apply_latency_seconds_count') t.count = v.value;
      else continue;
      totals.latency.set(sink, t);
    }
    const prev = this.last;
    this.last = totals;
    if (prev === null || now <= prev.at) return;
    const seconds = (now - prev.at) / 1000;
    const rates = (a: Map<string, number>, b: Map<string, number>): Record<string, number> => {
      const out: Record<string, number> = {};
      // every sink that exists now, at 0 when it applied nothing
      for (const s of config.sinks) out[s.name] = 0;
      for (const [sink, n] of a) if (Object.hasOwn(out, sink)) out[sink] = round(Math.max(0, n - (b.get(sink) ?? 0)) / seconds);
      return out;
    };
    const sinks = rates(totals.changes, prev.changes);
    const batches = totals.batches - prev.batches;
    const snap = monitor.last;
    this.samples.push({
      t: now,
      lag_bytes: snap?.lagBytes ?? null,
      lag_ms: pipeline.lagMs(),
      retained_wal_bytes: snap?.retainedBytes ?? null,
      changes_per_s: round(Object.values(sinks).reduce((a, b) => a + b, 0)),
      batches_per_s: round(batches / seconds),
      apply_ms: batches > 0 ? round(((totals.applySeconds - prev.applySeconds) * 1000) / batches) : null,
      sinks,
      failed: rates(totals.failed, prev.failed),
      commit_to_redis_ms: meanLatencies(config.sinks, totals.latency, prev.latency),
    });
    const keep = Math.ceil(this.windowMs / this.intervalMs);
    if (this.samples.length > keep) this.samples.splice(0, this.samples.length - keep);
  }
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

/** Per sink, the mean commit → acknowledged time of the transactions applied in the interval, in ms (null: none). */
function meanLatencies(sinks: readonly { name: string }[], now: Map<string, { sum: number; count: number }>, before: Map<string, { sum: number; count: number }>): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const { name } of sinks) {
    const a = now.get(name);
    const b = before.get(name) ?? { sum: 0, count: 0 };
    const count = a ? a.count - b.count : 0;
    out[name] = a && count > 0 ? round(((a.sum - b.sum) * 1000) / count) : null;
  }
  return out;
}

/** `GET /api/history[?since=<ms>]`: the samples kept, oldest first (only newer ones with since). */
export function registerHistoryRoute(app: FastifyInstance, history: History): void {
  app.get<{ Querystring: { since?: string } }>('/api/history', async (req, reply) => {
    const since = req.query.since === undefined ? 0 : Number(req.query.since);
    if (!Number.isFinite(since)) return apiError(reply, 400, 'bad_request', `since must be a time in milliseconds since the epoch (got ${JSON.stringify(req.query.since)})`);
    const body: ApiHistory = { interval_ms: history.intervalMs, window_ms: history.windowMs, samples: history.list(since) };
    return body;
  });
}
