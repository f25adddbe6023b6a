import { Cluster } from 'ioredis';
import { ApplyLane, type Lane } from '../redis/apply-lane.js';
import { ClusterApplyLane } from '../redis/cluster-apply-lane.js';
import { connectRedis, redisConnectError, type RedisClient } from '../redis/connect.js';
import type { Logger } from '../util/log.js';
import { databaseFinding } from '../redis/inspect.js';
import { adoptLegacyMarkers } from '../redis/legacy-markers.js';
import { errorMessage, SluiceError } from '../util/errors.js';

/** The lane of a Redis connection, made (and the connection made ready) the first time a sink needs it. */
export async function ensureLane(lanes: Map<string, Lane>, redis: ReadonlyMap<string, RedisClient>, name: string, log: Logger, onDataLoss: () => void, instance = ''): Promise<Lane> {
  const existing = lanes.get(name);
  if (existing) return existing;
  const client = redis.get(name);
  if (!client) throw new Error(`no Redis connection named "${name}"`);
  await connectRedis(client).catch((err: unknown) => {
    throw redisConnectError(client, name, err);
  });
  // a database the server does not have: ioredis would write into database 0 instead
  const db = await databaseFinding(name, client);
  if (db?.severity === 'error') throw new SluiceError('redis_database', db.message);
  if (db) log.warn(db.message);
  // before the lane reads its marker: the previous version's one becomes this instance's
  // (a failure costs only the old key lingering: a missing marker is not taken for lost writes)
  const renamed = await adoptLegacyMarkers(client, instance, name).catch((err: unknown) => {
    log.warn({ redis: name, err: errorMessage(err) }, 'could not rename the previous version\'s batch marker (it stays in Redis, unused)');
    return 0;
  });
  if (renamed > 0) log.info({ redis: name, instance, markers: renamed }, 'batch marker of the previous version renamed to this instance\'s');
  const again = lanes.get(name); // made while connecting
  if (again) return again;
  const lane: Lane = client instanceof Cluster ? new ClusterApplyLane(name, client, log, onDataLoss, instance) : new ApplyLane(name, client, log, onDataLoss, instance);
  lanes.set(name, lane);
  return lane;
}
