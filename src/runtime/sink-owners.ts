import { sinkOwnedElsewhere, sinkOwnerKey } from '../core/keyspace.js';
import { connectRedis, redisConnectError, type RedisClient } from '../redis/connect.js';
import { databaseFinding } from '../redis/inspect.js';
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
  private readonly checked = new Set<string>();

  constructor(
    /** this instance's identity (core/keyspace.ts instanceIdentity) */
    readonly instance: string,
    private readonly redis: ReadonlyMap<string, RedisClient>,
  ) {}

  /**
   * Throws a SluiceError (`sink_owned_elsewhere`) naming the first sink another instance owns,
   * writing nothing: for start-up, before Postgres is set up (claim once that succeeded).
   */
  async check(sinks: readonly { name: string; redis: string }[]): Promise<void> {
    for (const s of sinks) {
      const owner = await (await this.ready(s.redis)).get(sinkOwnerKey(s.name));
      if (owner !== null && owner !== this.instance) throw ownedElsewhere(s.name, s.redis, owner, this.instance);
    }
  }

  /**
   * Claims each sink's name on its Redis. Throws a SluiceError (`sink_owned_elsewhere`) naming
   * the first sink another instance owns; the names claimed before it stay claimed (they are this
   * instance's, whatever happens next).
   */
  async claim(sinks: readonly { name: string; redis: string }[]): Promise<void> {
    for (const s of sinks) {
      const client = await this.ready(s.redis);
      const key = sinkOwnerKey(s.name);
      if ((await client.set(key, this.instance, 'NX')) === 'OK') continue;
      const owner = await client.get(key);
      // deleted between the two calls: claim it again
      if (owner === null && (await client.set(key, this.instance, 'NX')) === 'OK') continue;
      if (owner !== this.instance) throw ownedElsewhere(s.name, s.redis, owner ?? '(unknown)', this.instance);
    }
  }

  /** The connection, connected, its database checked (once per connection). */
  private async ready(name: string): Promise<RedisClient> {
    const client = this.redis.get(name);
    if (!client) throw new Error(`no Redis connection named "${name}"`);
    if (this.checked.has(name)) return client;
    await connectRedis(client).catch((err: unknown) => {
      throw redisConnectError(client, name, err);
    });
    // a database the server does not have: ioredis would write the claim into database 0
    const db = await databaseFinding(name, client);
    if (db?.severity === 'error') throw new SluiceError('redis_database', db.message);
    this.checked.add(name);
    return client;
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
  return new SluiceError('sink_owned_elsewhere', sinkOwnedElsewhere(sink, redis, owner, instance));
}
