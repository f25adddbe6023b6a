import { Cluster } from 'ioredis';
import { scanAll } from './scan-keys.js';
import { batchMarkerKey, legacyBatchMarkerKey, legacySlotBatchMarkerKey, parseSlotKey, slotBatchMarkerKey } from '../core/keyspace.js';
import type { RedisClient } from './connect.js';

/**
 * Moves the old batch marker to the new name in one step, if the new one is not there yet:
 * KEYS[1] the old name, KEYS[2] the new one (same hash slot on Cluster: both carry the slot's tag).
 * GET, SET and DEL rather than RENAME or EXISTS: the commands the documented ACL already grants. If the new
 * marker exists, the old key is left alone: an instance of the previous version may still write it.
 */
const ADOPT = "if redis.call('GET', KEYS[2]) then return 0 end local v = redis.call('GET', KEYS[1]) if not v then return 0 end redis.call('SET', KEYS[2], v) redis.call('DEL', KEYS[1]) return 1";

/**
 * The first start after upgrading from a version whose batch marker was per connection name
 * (`sluice:batch:<lane>`, per slot on Cluster): the lane reads and writes the instance's marker
 * (`sluice:batch:<instance>:<lane>`) from now on. The old marker holds the last batch the previous
 * version applied; renaming it (once) keeps "Redis lost writes" detection exact across the
 * upgrade: the lane starts from what the previous version wrote, and the old key does not linger.
 * Call before the lane loads. Returns how many markers were renamed.
 */
export async function adoptLegacyMarkers(client: RedisClient, instance: string, lane: string): Promise<number> {
  if (!(client instanceof Cluster)) return Number(await client.eval(ADOPT, 2, legacyBatchMarkerKey(lane), batchMarkerKey(instance, lane)));
  let renamed = 0;
  // connection names match [A-Za-z0-9][A-Za-z0-9_-]*: no glob characters to escape
  for (const node of client.nodes('master')) {
    for (const key of await scanAll(node, `${legacyBatchMarkerKey(lane)}:{*}`)) {
      const k = parseSlotKey(key);
      if (!k || k.kind !== 'batch' || k.name !== lane || key !== legacySlotBatchMarkerKey(lane, k.tag)) continue;
      renamed += Number(await client.eval(ADOPT, 2, key, slotBatchMarkerKey(instance, lane, k.tag)));
    }
  }
  return renamed;
}
