import { failedKey } from '../core/keyspace.js';
import type { RedisClient } from '../redis/connect.js';
import { scanHashFields } from '../redis/hash-scan.js';

/**
 * What a sink's failed-message hash holds: each field with the bytes of its field and value
 * (HSCAN NOVALUES and HSTRLEN; before Redis 7.4, HSCAN with the values). Read when a sink starts,
 * so that the store's bounds count what earlier runs kept (plan/failed-messages.ts FailedStore).
 */
export async function readFailedSizes(redis: RedisClient, sink: string): Promise<[string, number][]> {
  const key = failedKey(sink);
  const sizes = new Map<string, number>();
  await scanHashFields(redis, key, async (fields, values) => {
    if (values !== null) {
      fields.forEach((f, i) => sizes.set(f, Buffer.byteLength(f) + Buffer.byteLength(values[i] ?? '')));
      return;
    }
    const fresh = fields.filter((f) => !sizes.has(f));
    const lengths = await Promise.all(fresh.map((f) => redis.hstrlen(key, f)));
    fresh.forEach((f, i) => sizes.set(f, Buffer.byteLength(f) + (lengths[i] ?? 0)));
  });
  // a field removed between HSCAN and HSTRLEN has length 0: it is gone
  return [...sizes].filter(([f, n]) => n > Buffer.byteLength(f));
}
