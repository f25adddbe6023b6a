// Shared pieces of the Redis topology harnesses (cluster, sentinel, TLS): one redis-server
// process on a given port, waiting until it answers, and one-shot commands to a node.

import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { spawnManaged } from '../../src/util/process.js';
import type { ManagedProcess } from '../../src/util/process.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs one command on the server at 127.0.0.1:port over a fresh connection (no retries, no
 * offline queue) and closes it. Rejects on connection errors and error replies.
 */
export async function nodeCommand(port: number, args: readonly (string | number)[], opts: RedisOptions = {}): Promise<unknown> {
  const c = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    commandTimeout: 5000,
    ...opts,
  });
  c.on('error', () => {});
  try {
    await c.connect();
    const [name, ...rest] = args;
    return await c.call(String(name), ...rest.map(String));
  } finally {
    c.disconnect();
  }
}

/** nodeCommand, returning undefined instead of rejecting. */
export function tryNodeCommand(port: number, args: readonly (string | number)[], opts: RedisOptions = {}): Promise<unknown> {
  return nodeCommand(port, args, opts).catch(() => undefined);
}

/** Parses the `key:value` lines of INFO / CLUSTER INFO. */
export function parseInfo(text: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of String(text ?? '').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** Polls `probe` every `everyMs` until it returns a value other than undefined/false. */
export async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(everyMs);
  }
}

export interface RedisNodeProcess {
  readonly proc: ManagedProcess;
}

/**
 * Spawns `redis-server args` and waits until `ping()` resolves true. Throws with the output
 * tail when the server exits first or does not answer in time.
 */
export async function spawnRedisServer(
  args: readonly string[],
  name: string,
  ping: () => Promise<boolean>,
  timeoutMs = 15_000,
): Promise<ManagedProcess> {
  const p = spawnManaged('redis-server', args, { name, unref: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!p.running) {
      const info = await p.exited;
      if (info.error && (info.error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new Error('redis-server was not found on PATH (apt-get install redis-server)');
      }
      throw new Error(`${name} exited during startup (code ${info.code}, signal ${info.signal}):\n${p.tail()}`);
    }
    if (await ping().catch(() => false)) return p;
    if (Date.now() > deadline) {
      await p.kill('SIGKILL');
      throw new Error(`${name} did not answer within ${timeoutMs} ms:\n${p.tail()}`);
    }
    await sleep(30);
  }
}

/** PING over plain TCP, true on +PONG (also true when `-NOAUTH`: the server is up). */
export async function plainPing(port: number): Promise<boolean> {
  try {
    return (await nodeCommand(port, ['PING'])) === 'PONG';
  } catch (err) {
    return err instanceof Error && /NOAUTH|LOADING/.test(err.message) ? !err.message.includes('LOADING') : false;
  }
}
