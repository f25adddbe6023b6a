import type { RedisClient } from './connect.js';
import { errorMessage } from '../util/errors.js';

/**
 * Walks a hash with HSCAN, a page at a time: `page` gets the fields, and their values when Redis
 * sent them. NOVALUES (Redis ≥ 7.4) is asked for; an older server refuses it, and the walk
 * starts again with the values. HSCAN may return a field more than once.
 */
export async function scanHashFields(redis: RedisClient, key: string, page: (fields: string[], values: string[] | null) => void | Promise<void>): Promise<void> {
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
      await page(items, null);
    } else {
      const fields: string[] = [];
      const values: string[] = [];
      for (let i = 0; i + 1 < items.length; i += 2) {
        fields.push(items[i]!);
        values.push(items[i + 1]!);
      }
      await page(fields, values);
    }
    if (cursor === '0') break;
  }
}
