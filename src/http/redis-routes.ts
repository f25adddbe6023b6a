import type { FastifyInstance } from 'fastify';
import type { SluiceConfig } from '../config/schema.js';
import { connectRedis, createRedisClient } from '../redis/connect.js';
import { errorMessage } from '../util/errors.js';
import { apiError } from './api-error.js';

const TEST_TIMEOUT_MS = 5000;

export interface RedisTestResult {
  name: string;
  ok: true;
  /** round trip of the PING */
  latency_ms: number;
  ping: string;
  server: { version: string | null; mode: string | null; os: string | null; uptime_seconds: number | null };
  /** master, slave (replica) or sentinel, from INFO replication */
  role: string | null;
}

/** `INFO` text → its `field:value` lines. */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) out.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return out;
}

/**
 * `POST /api/redis/:name/test`: a new connection from the configured settings (not the one the
 * pipeline applies through), PING, INFO server and replication; the error when any step fails.
 */
export function registerRedisRoutes(app: FastifyInstance, deps: { config: SluiceConfig }): void {
  app.post<{ Params: { name: string } }>('/api/redis/:name/test', async (req, reply) => {
    const { name } = req.params;
    const spec = Object.hasOwn(deps.config.redis, name) ? deps.config.redis[name] : undefined;
    if (!spec) return apiError(reply, 404, 'redis_not_found', `no Redis connection named "${name}" (configured: ${Object.keys(deps.config.redis).join(', ')})`);
    const client = createRedisClient(spec, 'sluice:test');
    client.on('error', () => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${TEST_TIMEOUT_MS / 1000} s`)), TEST_TIMEOUT_MS);
    });
    try {
      const result = await Promise.race([
        (async (): Promise<RedisTestResult> => {
          await connectRedis(client);
          const started = performance.now();
          const ping = await client.ping();
          const latency = performance.now() - started;
          const server = parseInfo(await client.info('server'));
          const replication = parseInfo(await client.info('replication'));
          const uptime = server.get('uptime_in_seconds');
          return {
            name,
            ok: true,
            latency_ms: Math.round(latency * 100) / 100,
            ping,
            server: {
              version: server.get('redis_version') ?? server.get('valkey_version') ?? null,
              mode: server.get('redis_mode') ?? server.get('server_mode') ?? null,
              os: server.get('os') ?? null,
              uptime_seconds: uptime === undefined ? null : Number(uptime),
            },
            role: replication.get('role') ?? null,
          };
        })(),
        timeout,
      ]);
      return result;
    } catch (err) {
      return apiError(reply, 502, 'redis_unreachable', `Redis "${name}": ${errorMessage(err)}`);
    } finally {
      clearTimeout(timer);
      client.disconnect();
    }
  });
}
