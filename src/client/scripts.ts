import { createHash } from 'node:crypto';
import type { Conn } from './connection.js';

/**
 * The Lua scripts of read(). Each touches one key, so they run on Redis Cluster too (a lock key
 * and the value's key may live in different slots).
 */
export interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/** The value and its remaining time to live in ms (-1: none, the value is Sluice's; -2: no key). */
export const LOOKUP = script(`return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}`);

/**
 * Writes a loaded value with its TTL unless the key holds a value without one: that is Sluice's
 * own (the sink reached the row), newer than anything a loader read, and must stay. Returns 1
 * when written.
 */
export const WRITE = script(`if redis.call('PTTL', KEYS[1]) == -1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`);

/** Compare-and-delete: only the owner (the holder of the random token) releases a lock. */
export const RELEASE = script(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`);

/** EVALSHA, and EVAL when the server does not know the script yet (NOSCRIPT: nothing ran). */
export async function run(conn: Conn, s: Script, key: string, ...args: (string | number)[]): Promise<unknown> {
  try {
    return await conn.call('EVALSHA', s.sha, 1, key, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return conn.call('EVAL', s.source, 1, key, ...args);
  }
}
