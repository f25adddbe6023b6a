import { FENCE_REQUEST_CHANNEL } from '../core/keyspace.js';
import { parseLsn } from '../core/lsn.js';
import { closeRedisClient, connectRedis, type RedisClient } from '../redis/connect.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { Fences } from './fences.js';

/**
 * Listens on each Redis connection for clients' fence requests (`PUBLISH sluice:fence-request
 * <lsn> [sink,sink]`): a client waiting for an LSN the sinks have not reached gets a fence written
 * in Postgres, as /api/wait's waiters do, instead of waiting for the next keepalive on an idle
 * database. A request is only a nudge: a bad one is ignored.
 */
export function listenForFenceRequests(redis: ReadonlyMap<string, RedisClient>, fences: Fences, allSinks: () => readonly string[], log: Logger): () => Promise<void> {
  const subs: RedisClient[] = [];
  for (const [name, client] of redis) {
    const sub = client.duplicate();
    sub.on('error', (err: Error) => log.debug({ redis: name, err: err.message }, 'fence-request subscription error'));
    sub.on('message', (_channel: string, text: string) => {
      const [lsnText, sinksText] = text.split(' ');
      try {
        const lsn = parseLsn(lsnText ?? '');
        const sinks = sinksText ? sinksText.split(',').filter((s) => allSinks().includes(s)) : [...allSinks()];
        fences.nudge(lsn, sinks);
      } catch {
        // not an LSN: nothing to do
      }
    });
    subs.push(sub);
    // in the background: start-up does not wait for it; ioredis subscribes again after a reconnect
    connectRedis(sub)
      .then(() => sub.subscribe(FENCE_REQUEST_CHANNEL))
      .catch((err: unknown) => log.warn({ redis: name, err: errorMessage(err) }, 'cannot listen for clients\' fence requests on this Redis (sluice/client waits then follow the stream only)'));
  }
  return async () => {
    await Promise.all(subs.map((s) => closeRedisClient(s)));
  };
}
