import { sinkOwnerKey } from '../core/keyspace.js';
import { connectRedis, redisConnectError, type RedisClient } from '../redis/connect.js';
import { SluiceError } from '../util/errors.js';

/**
 * Which Sluice instance owns each sink name on a Redis. A sink keeps its keys under its name
 * (`sluice:pos:<sink>`, failed, backfill, idx, applied, definition): two instances running a sink
 * of the same name on one Redis would overwrite each other's positions and skip or replay each
 * other's changes. So a name is claimed (`SET sluice:owner:<sink> <instance> NX`) before the sink
 * runs, and a name another instance holds is refused.
 *
 * A restart of the same instance finds its own identity there and goes on; a sink deleted through
 * the API gives its name back (release). A sink only dropped from sluice.yaml keeps its claim:
 * nothing tells Sluice it is gone for good (the refusal says which key to delete).
 */
export class SinkOwners {
  constructor(
    /** this instance's identity (core/keyspace.ts instanceIdentity) */
    readonly instance: string,
    private readonly redis: ReadonlyMap<string, RedisClient>,
  ) {}

  /**
   * Claims each sink's name on its Redis. Throws a SluiceError (`sink_owned_elsewhere`) naming
   * the first sink another instance owns; the names claimed before it stay claimed (they are this
   * instance's, whatever happens next).
   */
  async claim(sinks: readonly { name: string; redis: string }[]): Promise<void> {
    for (const s of sinks) {
      const client = this.redis.get(s.redis);
      if (!client) throw new Error(`no Redis connection named "${s.redis}"`);
      await connectRedis(client).catch((err: unknown) => {
        throw redisConnectError(client, s.redis, err);
      });
      const key = sinkOwnerKey(s.name);
      const set = await client.set(key, this.instance, 'NX');
      if (set === 'OK') continue;
      const owner = await client.get(key);
      // deleted between the two calls: claim it again
      if (owner === null && (await client.set(key, this.instance, 'NX')) === 'OK') continue;
      if (owner !== this.instance) throw ownedElsewhere(s.name, s.redis, owner ?? '(unknown)', this.instance);
    }
  }

  /** Gives a sink's name back, if this instance holds it (a deleted sink, a create that failed). */
  async release(sink: { name: string; redis: string }): Promise<void> {
    const client = this.redis.get(sink.redis);
    if (!client) return;
    // compare and delete in one step: never remove a claim another instance made meanwhile
    await client.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, sinkOwnerKey(sink.name), this.instance);
  }
}

export function ownedElsewhere(sink: string, redis: string, owner: string, instance: string): SluiceError {
  return new SluiceError(
    'sink_owned_elsewhere',
    `sink "${sink}" on Redis "${redis}" belongs to another Sluice instance ("${owner}"), not to this one ("${instance}"): give this sink another name; if "${owner}" no longer runs it, delete the key ${sinkOwnerKey(sink)}; if "${owner}" was this instance before its Postgres changed, set instance: ${owner} in sluice.yaml`,
  );
}
