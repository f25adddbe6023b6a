import { Cluster } from 'ioredis';
import type { RedisCommand } from '../core/command.js';
import { slotOf } from '../core/slot-tags.js';
import type { Planner } from '../plan/planner.js';
import { keyTypeOf, probeReads, refusals, type KeyType, type ProbeReads, type TailItem } from '../plan/tail-probe.js';
import type { Lane } from '../redis/apply-lane.js';
import type { RedisClient } from '../redis/connect.js';
import type { Logger } from '../util/log.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';

/**
 * Reads what the probe needs of the keys a lane's tail writes: TYPE of each, and the first four
 * bytes of those a PFADD writes (a HyperLogLog is a string starting with "HYLL").
 */
export type KeyReader = (lane: Lane, reads: ProbeReads) => Promise<Map<string, KeyType>>;

/**
 * The reads as pipelines: one round trip on a standalone or Sentinel connection; on a Cluster,
 * one pipeline per hash slot (a Cluster pipeline must stay in one slot), all sent at once.
 */
export const readKeyTypes: KeyReader = async (lane, reads) => {
  const client = lane.redis;
  if (!(client instanceof Cluster)) return readOn(client, reads.keys, new Set(reads.hllKeys));
  const bySlot = new Map<number, string[]>();
  for (const k of reads.keys) {
    const slot = slotOf(k);
    const list = bySlot.get(slot);
    if (list) list.push(k);
    else bySlot.set(slot, [k]);
  }
  const hll = new Set(reads.hllKeys);
  const parts = await Promise.all([...bySlot.values()].map((keys) => readOn(client, keys, hll)));
  return new Map(parts.flatMap((m) => [...m]));
};

async function readOn(client: RedisClient, keys: readonly string[], hll: ReadonlySet<string>): Promise<Map<string, KeyType>> {
  const p = client.pipeline();
  for (const k of keys) {
    p.type(k);
    if (hll.has(k)) p.getrange(k, 0, 3);
  }
  const results = (await p.exec()) ?? [];
  const out = new Map<string, KeyType>();
  let i = 0;
  for (const k of keys) {
    const [err, type] = results[i++] ?? [new Error('no reply')];
    let head: string | null = null;
    if (hll.has(k)) {
      const [herr, h] = results[i++] ?? [new Error('no reply')];
      if (!herr && typeof h === 'string') head = h;
    }
    if (err) throw err;
    out.set(k, keyTypeOf(String(type), head));
  }
  return out;
}

/**
 * Before a batch carrying tail items is applied on a lane: the failed-message records of the
 * commands Redis refused when they were first applied, as HSETNX (a record that survived the
 * crash is kept as it is: same id, its own failed_at), to be written in the batch's own MULTI.
 */
export async function probeTail(lane: Lane, items: readonly TailItem[], planner: Planner, read: KeyReader, log: Logger | undefined): Promise<RedisCommand[]> {
  const reads = probeReads(items);
  if (reads.keys.length === 0) return [];
  const now = await readRetrying(lane, reads, read, log);
  const { refused, unknown } = refusals(items, now);
  if (refused.length > 0 || unknown > 0) {
    log?.info({ redis: lane.name, probed: items.length, keys: reads.keys.length, refused: refused.length, unknown }, 'unconfirmed tail probed: commands Redis refused before a restart are recorded as failed messages');
  }
  if (unknown > 0) log?.warn({ redis: lane.name, unknown }, 'unconfirmed tail: whether Redis refused some commands cannot be told (their key was deleted or overwritten later in the same batch); if one was, its failed message was lost in the crash');
  return planner.rejected(refused).map(asSetIfAbsent);
}

/** As the lanes' writes: a Redis that does not answer is waited for (with backoff) until the lane stops. */
async function readRetrying(lane: Lane, reads: ProbeReads, read: KeyReader, log: Logger | undefined): Promise<Map<string, KeyType>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read(lane, reads);
    } catch (err) {
      if (lane.state === 'stopped') throw err;
      const delay = backoffDelayMs(attempt, 100, 5000);
      log?.warn({ redis: lane.name, err: errorMessage(err), retryInMs: delay, attempt }, 'unconfirmed tail: reading key types failed; will retry');
      await sleep(delay);
    }
  }
}

/** HSET key field value → HSETNX key field value (the records are one field each). */
function asSetIfAbsent(cmd: RedisCommand): RedisCommand {
  if (cmd[0] !== 'HSET' || cmd.length !== 4) return cmd;
  return ['HSETNX', cmd[1]!, cmd[2]!, cmd[3]!];
}
