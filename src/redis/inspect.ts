import type { RedisConnectionConfig } from '../config/schema.js';
import type { Finding } from '../pg/source-setup.js';
import { connectRedis, createRedisClient } from './connect.js';
import { errorMessage } from '../util/errors.js';

function describe(spec: RedisConnectionConfig): string {
  const hostOf = (u: string): string => {
    try {
      const p = new URL(u);
      return `${p.hostname}:${p.port || 6379}`;
    } catch {
      return u;
    }
  };
  if (spec.kind === 'url') return hostOf(spec.url);
  if (spec.kind === 'cluster') return `cluster ${spec.cluster.map(hostOf).join(',')}`;
  return `sentinel ${spec.sentinel.name}@${spec.sentinel.nodes.map(hostOf).join(',')}`;
}

/** Reachability, auth, version, mode and eviction policy of one Redis connection. */
export async function checkRedisConnection(name: string, spec: RedisConnectionConfig, used: boolean): Promise<Finding[]> {
  const out: Finding[] = [];
  const client = createRedisClient(spec, 'sluice-check');
  client.on('error', () => undefined);
  try {
    await withTimeout(connectRedis(client), 6000, 'timed out');
    await client.ping();
    const info = await client.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    const mode = /redis_mode:(\S+)/.exec(info)?.[1] ?? '?';
    out.push({ severity: 'ok', message: `redis.${name}: reachable at ${describe(spec)} (Redis ${version}, ${mode})${used ? '' : ', not used by any sink'}` });
    try {
      const policy = (await client.config('GET', 'maxmemory-policy')) as string[];
      if (policy[1]?.startsWith('allkeys-')) {
        out.push({ severity: 'warn', message: `redis.${name}: maxmemory-policy is ${policy[1]}: Redis may evict Sluice's position keys and data; use noeviction or volatile-* (Sluice notices lost positions and re-applies, but evicted data is served stale until then)` });
      }
    } catch {
      // CONFIG may be renamed or forbidden for this user: not a problem for Sluice itself
    }
  } catch (err) {
    out.push({ severity: 'error', message: `redis.${name}: cannot use Redis at ${describe(spec)}: ${errorMessage(err)}` });
  } finally {
    client.disconnect();
  }
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_r, reject) => (t = setTimeout(() => reject(new Error(what)), ms)))]).finally(() => clearTimeout(t));
}
