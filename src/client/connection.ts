import type { Cluster, Redis } from 'ioredis';

/**
 * The few things sluice/client asks of an ioredis connection (Redis or Cluster), so that both
 * are used the same way: commands through `call` (routed by key on a Cluster), pub/sub on a
 * duplicate the client creates and owns.
 */
export interface Conn {
  call(command: string, ...args: (string | number)[]): Promise<unknown>;
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  duplicate(): Conn;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  quit(): Promise<unknown>;
  disconnect(): void;
}

/** What the client is given: a URL or a connection of the application's. */
export type RedisInput = string | Redis | Cluster;

export function isConn(v: unknown): v is Conn {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  return ['call', 'subscribe', 'duplicate', 'quit', 'disconnect', 'on'].every((m) => typeof c[m] === 'function');
}

/** The key prefix an ioredis connection adds to every key (never to channels); '' when none. */
export function keyPrefixOf(v: Conn): string {
  const o = (v as unknown as { options?: { keyPrefix?: unknown; redisOptions?: { keyPrefix?: unknown } } }).options;
  const p = o?.keyPrefix ?? o?.redisOptions?.keyPrefix;
  return typeof p === 'string' ? p : '';
}

/** QUIT (waits for replies in flight), bounded: a connection that cannot say goodbye is dropped. Never rejects. */
export async function closeConn(c: Conn, boundMs = 1000): Promise<void> {
  // a lazy connection never used: QUIT would connect first
  if ((c as unknown as { status?: string }).status === 'wait') {
    c.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([c.quit().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, boundMs)))]);
  } finally {
    clearTimeout(timer);
    try {
      c.disconnect();
    } catch {
      // already gone
    }
  }
}
