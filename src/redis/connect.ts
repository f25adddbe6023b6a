import { Redis, Cluster, type RedisOptions } from 'ioredis';

export type RedisClient = Redis | Cluster;

import type { RedisConnectionConfig } from '../config/schema.js';

export type RedisConnectionSpec = RedisConnectionConfig;

/**
 * Options every connection gets. No hidden retries: a MULTI that ioredis re-sent by itself
 * after a reconnect could apply a transaction twice. The apply lane retries, after reading the
 * stored positions back, so a retry never duplicates anything.
 */
const SAFE_OPTIONS: RedisOptions = {
  maxRetriesPerRequest: 0,
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  lazyConnect: true,
  connectTimeout: 5000,
  retryStrategy: (times) => Math.min(200 * times, 2000),
};

export function createRedisClient(spec: RedisConnectionSpec, connectionName = 'sluice'): RedisClient {
  if (spec.kind === 'url') {
    return new Redis(spec.url, { ...SAFE_OPTIONS, connectionName });
  }
  if (spec.kind === 'cluster') {
    const nodes = spec.cluster.map((u) => {
      const p = new URL(u);
      return { host: p.hostname, port: Number(p.port || 6379) };
    });
    return new Cluster(nodes, { redisOptions: { ...SAFE_OPTIONS, connectionName }, enableOfflineQueue: false, lazyConnect: true });
  }
  {
    const sentinels = spec.sentinel.nodes.map((u) => {
      const p = new URL(u);
      return { host: p.hostname, port: Number(p.port || 26379) };
    });
    return new Redis({ ...SAFE_OPTIONS, sentinels, name: spec.sentinel.name, connectionName, db: spec.db ?? 0 });
  }
}

/** Connects and waits until the client is ready (lazyConnect clients). */
export async function connectRedis(client: RedisClient): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'wait') {
    await client.connect();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const onReady = (): void => {
      client.off('error', onError);
      resolve();
    };
    const onError = (err: Error): void => {
      client.off('ready', onReady);
      reject(err);
    };
    client.once('ready', onReady);
    client.once('error', onError);
  });
}
