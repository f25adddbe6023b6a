// Options, defaults and small helpers of SluiceClient (client.ts).
import type { Lsn } from '../core/lsn.js';
import type { RedisInput } from './connection.js';
import { SluiceClientError } from './errors.js';
import type { RenderOptions } from './keys.js';

export interface SluiceClientOptions {
  /**
   * The Redis Sluice writes to: a URL (`redis://…`, `rediss://…`) or an ioredis `Redis` or
   * `Cluster` of the application's. A connection given is used as is and never closed by
   * close(); the client creates (and closes) only its own: the one of a URL, and one duplicate
   * for pub/sub. A connection with a `keyPrefix` is refused (Sluice's keys have none).
   */
  redis: RedisInput;
  /**
   * The sinks waitFor waits for when a call names none.
   * @default none: each waitFor call names its sinks
   */
  sinks?: readonly string[];
  /**
   * How long a sink definition read for keyFor is reused before it is read again from Redis
   * (a sink changed through the API gets a new one). refreshDefinitions() drops them at once.
   * @default 60000
   */
  definitionsMaxAgeMs?: number;
  /**
   * What read() puts before a key to name its lock (a Redis key) and the channel the loader
   * announces its result on (a pub/sub channel of the same name).
   * @default 'lock:'
   */
  lockPrefix?: string;
  /**
   * Errors no caller can receive: a stale-while-revalidate refresh that failed (its readers were
   * served the stale value), a loaded value that could not be written to Redis (its caller got
   * the value). Called with the error and the key.
   * @default ignored
   */
  onError?: (error: unknown, key: string) => void;
}

export interface WaitForOptions {
  /**
   * The sinks that must have applied the LSN.
   * @default the client's `sinks`
   */
  sinks?: readonly string[];
  /**
   * How long to wait before rejecting with code `timeout`.
   * @default 5000
   */
  timeoutMs?: number;
}

export interface ReadOptions {
  /** How long a loaded value stays fresh in Redis, in ms. Required. */
  ttlMs: number;
  /**
   * The TTL of the lock that makes one caller (across processes) the loader: it bounds how long
   * a crashed loader blocks the others, and should exceed the loader's longest run (a loader
   * that outlives its lock has its value returned to its caller but not written to Redis).
   * @default 5000
   */
  lockMs?: number;
  /**
   * How long a caller waits for another caller's load before rejecting with code `timeout`.
   * @default 2 × lockMs
   */
  waitMs?: number;
  /**
   * After `ttlMs`, the value is kept this much longer and served stale while one caller
   * reloads it in the background. 0 turns it off: an expired value is a miss.
   * @default 0
   */
  staleWhileRevalidateMs?: number;
}

export interface KeyForOptions extends RenderOptions {
  /**
   * Read the sink's definition from Redis again instead of using the one kept.
   * @default false
   */
  refresh?: boolean;
}

/** The default timeout of waitFor, as GET /api/wait. */
export const DEFAULT_WAIT_TIMEOUT_MS = 5000;
export const DEFAULT_LOCK_MS = 5000;
export const DEFAULT_DEFINITIONS_MAX_AGE_MS = 60_000;
export const DEFAULT_LOCK_PREFIX = 'lock:';
/** A waiter for another caller's load looks again at least this often (messages can be lost). */
export const MAX_RECHECK_MS = 1000;

export interface Waiter {
  readonly lsn: Lsn;
  readonly sinks: readonly string[];
  readonly timeoutMs: number;
  readonly resolve: (v: true) => void;
  readonly reject: (err: Error) => void;
  timer: NodeJS.Timeout | null;
}

/** Wakes a sleeping loop; a wake that comes while it is busy is kept for its next sleep. */
export class Signal {
  private pending = false;
  private wake: (() => void) | null = null;

  notify = (): void => {
    this.pending = true;
    this.wake?.();
  };

  sleep(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.wake = null;
        self.pending = false;
        resolve();
      }
      this.wake = done;
    });
  }
}

/** The longest delay a Node timer takes (about 24.8 days). */
const MAX_MS = 2 ** 31 - 1;

export const positive = (v: unknown, name: string, allowZero = false): number => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_MS || (!allowZero && v === 0)) {
    throw new SluiceClientError('bad_option', `${name} must be a ${allowZero ? 'non-negative' : 'positive'} number of milliseconds up to ${MAX_MS} (got ${JSON.stringify(v)})`);
  }
  return Math.round(v);
};

