import type { RedisClient } from '../redis/connect.js';
import type { Lane } from '../redis/apply-lane.js';
import type { SinkRuntime } from '../plan/route.js';

/** Something that keeps Sluice from streaming or a sink from writing, for /health. */
export interface Problem {
  readonly component: 'pipeline' | 'source' | 'postgres' | 'redis';
  readonly redis?: string;
  readonly sinks?: readonly string[];
  readonly reason: string;
}

export interface HealthInputs {
  state: string;
  fatal: Error | null;
  stream: { state: string; lastError: string | null };
  lookupsError: string | null;
  redis: ReadonlyMap<string, RedisClient>;
  /** the last error each Redis client reported (cleared once it is ready again) */
  redisErrors: ReadonlyMap<string, string>;
  lanes: ReadonlyMap<string, Lane>;
  sinks: readonly SinkRuntime[];
}

/**
 * Each problem, named: the pipeline not streaming (and why), the replication stream down,
 * Postgres row lookups failing, a Redis that refuses writes or is not connected. A paused sink
 * is not a problem. Empty: healthy.
 */
export function findProblems(h: HealthInputs): Problem[] {
  const out: Problem[] = [];
  if (h.state !== 'streaming') out.push({ component: 'pipeline', reason: h.fatal ? `stopped by an error: ${h.fatal.message}` : `Sluice is ${h.state}` });
  else if (h.stream.state !== 'streaming') out.push({ component: 'source', reason: `replication stream ${h.stream.state}${h.stream.lastError ? `: ${h.stream.lastError}` : ''}` });
  if (h.lookupsError) out.push({ component: 'postgres', reason: h.lookupsError });
  for (const [name, client] of h.redis) {
    const sinks = h.sinks.filter((s) => s.redis === name).map((s) => s.name);
    if (sinks.length === 0) continue;
    const lane = h.lanes.get(name);
    if (lane?.state === 'retrying') out.push({ component: 'redis', redis: name, sinks, reason: `writes fail: ${lane.lastError ?? 'unknown error'}` });
    else if (client.status !== 'ready' && client.status !== 'connecting' && h.state === 'streaming') {
      const err = h.redisErrors.get(name);
      out.push({ component: 'redis', redis: name, sinks, reason: `connection ${client.status}${err ? `: ${err}` : ''}` });
    }
  }
  return out;
}
