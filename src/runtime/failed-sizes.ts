import { failedKey } from '../core/keyspace.js';
import type { RedisClient } from '../redis/connect.js';
import { errorMessage } from '../util/errors.js';

/**
 * What a sink's failed-message hash holds: each field with the bytes of its field and value
 * (HSCAN NOVALUES and HSTRLEN; before Redis 7.4, HSCAN with the values). Read when a sink starts,
 * so that the store's bounds count what earlier runs kept (plan/failed-messages.ts FailedStore).
 */
export async function readFailedSizes(redis: RedisClient, sink: string): Promise<[string, number][]> {
  const key = failedKey(sink);
  const sizes = new Map<string, number>();
  let novalues = true;
  let cursor = '0';
  for (;;) {
    let reply: [string, string[]];
    try {
      reply = (await redis.call('HSCAN', key, cursor, 'COUNT', '500', ...(novalues ? ['NOVALUES'] : []))) as [string, string[]];
    } catch (err) {
      if (!novalues || !/syntax|argument/i.test(errorMessage(err))) throw err;
      novalues = false; // before Redis 7.4: fields and values
      cursor = '0';
      continue;
    }
    cursor = reply[0];
    const items = reply[1];
    if (novalues) {
      const fields = items.filter((f) => !sizes.has(f));
      const lengths = await Promise.all(fields.map((f) => redis.hstrlen(key, f)));
      fields.forEach((f, i) => sizes.set(f, Buffer.byteLength(f) + (lengths[i] ?? 0)));
    } else {
      for (let i = 0; i + 1 < items.length; i += 2) sizes.set(items[i]!, Buffer.byteLength(items[i]!) + Buffer.byteLength(items[i + 1]!));
    }
    if (cursor === '0') break;
  }
  // a field removed between HSCAN and HSTRLEN has length 0: it is gone
  return [...sizes].filter(([f, n]) => n > Buffer.byteLength(f));
}
