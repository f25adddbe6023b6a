import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { appliedKey, FENCE_REQUEST_CHANNEL, sinkDefinitionKey } from '../core/keyspace.js';
import { formatLsn } from '../core/lsn.js';
import type { Position } from '../core/position.js';
import { closeConn, isConn, keyPrefixOf, type Conn } from './connection.js';
import { redisError, SluiceClientError } from './errors.js';
import { later, reaches, readPosition, timeoutError, toLsn, type LsnInput } from './fence.js';
import { parseDefinition, renderFromDefinition, type SinkDefinition } from './keys.js';
import { LOOKUP, RELEASE, run, WRITE } from './scripts.js';
import {
  DEFAULT_DEFINITIONS_MAX_AGE_MS,
  DEFAULT_LOCK_MS,
  DEFAULT_LOCK_PREFIX,
  DEFAULT_WAIT_TIMEOUT_MS,
  MAX_RECHECK_MS,
  positive,
  Signal,
  type KeyForOptions,
  type ReadOptions,
  type SluiceClientOptions,
  type WaitForOptions,
  type Waiter,
} from './options.js';

export { DEFAULT_DEFINITIONS_MAX_AGE_MS, DEFAULT_LOCK_MS, DEFAULT_LOCK_PREFIX, DEFAULT_WAIT_TIMEOUT_MS, type KeyForOptions, type ReadOptions, type SluiceClientOptions, type WaitForOptions };
import { Subscriptions } from './subscriptions.js';

/**
 * Read-your-writes and cache-aside for applications that read what Sluice keeps in Redis. Talks
 * to Redis only. See docs/client.md.
 *
 * ```ts
 * const sluice = new SluiceClient({ redis: 'redis://127.0.0.1:6379', sinks: ['products'] });
 * await db.query('update products set price = 9.5 where id = 1');
 * const { rows } = await db.query('select pg_current_wal_lsn()::text as lsn');
 * await sluice.waitFor(rows[0].lsn);           // Redis now holds the update
 * ```
 */
export class SluiceClient {
  private readonly conn: Conn;
  private readonly ownsConn: boolean;
  private readonly defaultSinks: readonly string[];
  private readonly definitionsMaxAgeMs: number;
  private readonly lockPrefix: string;
  private readonly onError: (error: unknown, key: string) => void;
  private readonly subs: Subscriptions;

  /** the latest applied position seen per sink (GET or message); only moves forward */
  private readonly positions = new Map<string, Position | null>();
  /** sinks whose `sluice:applied:<sink>` channel is subscribed (kept until close) */
  private readonly tracked = new Map<string, Promise<void>>();
  private readonly waiters = new Set<Waiter>();

  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly refreshing = new Set<string>();
  private readonly sleepers = new Set<Signal>();
  private readonly definitions = new Map<string, { at: number; def: Promise<SinkDefinition> }>();

  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(options: SluiceClientOptions) {
    if (typeof options !== 'object' || options === null) throw new SluiceClientError('bad_option', 'new SluiceClient({ redis }) needs an options object');
    const { redis } = options;
    if (typeof redis === 'string') {
      // lazyConnect: a client that is created and closed without use opens nothing
      this.conn = new Redis(redis, { lazyConnect: true }) as unknown as Conn;
      this.ownsConn = true;
      this.conn.on('error', () => undefined); // errors reach the callers of the commands
    } else if (isConn(redis)) {
      const prefix = keyPrefixOf(redis);
      if (prefix !== '') throw new SluiceClientError('bad_option', `the Redis connection has keyPrefix ${JSON.stringify(prefix)}: Sluice's keys have none; give the client a connection without one`);
      this.conn = redis;
      this.ownsConn = false;
    } else {
      throw new SluiceClientError('bad_option', 'redis must be a URL (redis://host:port) or an ioredis Redis or Cluster instance');
    }
    const sinks = options.sinks ?? [];
    if (!Array.isArray(sinks) || !sinks.every((s) => typeof s === 'string' && s !== '')) throw new SluiceClientError('bad_option', 'sinks must be an array of sink names');
    this.defaultSinks = [...sinks];
    this.definitionsMaxAgeMs = options.definitionsMaxAgeMs === undefined ? DEFAULT_DEFINITIONS_MAX_AGE_MS : positive(options.definitionsMaxAgeMs, 'definitionsMaxAgeMs', true);
    this.lockPrefix = options.lockPrefix ?? DEFAULT_LOCK_PREFIX;
    if (typeof this.lockPrefix !== 'string' || this.lockPrefix === '') throw new SluiceClientError('bad_option', 'lockPrefix must be a non-empty string');
    this.onError = options.onError ?? (() => undefined);
    this.subs = new Subscriptions(() => this.conn.duplicate(), () => this.afterReconnect());
  }

  // ---- waitFor -------------------------------------------------------------------------------

  /**
   * Resolves `true` once every sink has applied every transaction that committed at or before
   * `lsn` (read it with `SELECT pg_current_wal_lsn()` after your commit); rejects with code
   * `timeout` (naming the sinks behind) when `timeoutMs` passes first. The same fence as
   * `GET /api/wait`, from the positions Sluice keeps in Redis: subscribed to each sink's
   * progress, then read, then woken by the progress Sluice publishes (no polling).
   *
   * Unlike /api/wait it cannot make Postgres send anything: on a database where nothing
   * published is written, positions move with Sluice's keepalives only (see docs/client.md).
   */
  async waitFor(lsn: LsnInput, options: WaitForOptions = {}): Promise<true> {
    this.assertOpen();
    const target = toLsn(lsn);
    const sinks = [...new Set(options.sinks ?? this.defaultSinks)];
    if (sinks.length === 0) throw new SluiceClientError('no_sinks', 'waitFor needs the sinks to wait for: new SluiceClient({ sinks }) or waitFor(lsn, { sinks })');
    if (!sinks.every((s) => typeof s === 'string' && s !== '')) throw new SluiceClientError('bad_option', 'sinks must be an array of sink names');
    const timeoutMs = options.timeoutMs === undefined ? DEFAULT_WAIT_TIMEOUT_MS : positive(options.timeoutMs, 'timeoutMs', true);
    // the positions of subscribed sinks are kept current: a wait for an LSN already applied costs nothing
    if (sinks.every((s) => this.tracked.has(s) && reaches(this.positions.get(s) ?? null, target))) return true;
    return new Promise<true>((resolve, reject) => {
      const w: Waiter = { lsn: target, sinks, timeoutMs, resolve, reject, timer: null };
      w.timer = setTimeout(() => this.settle(w, timeoutError(target, timeoutMs, this.positionsOf(sinks))), timeoutMs);
      this.waiters.add(w);
      this.prepare(sinks).then(
        () => {
          if (!this.waiters.has(w)) return;
          if (sinks.every((s) => reaches(this.positions.get(s) ?? null, target))) this.settle(w, null);
          // not there yet: ask Sluice for a fence, so an idle database does not leave the wait to
          // the next keepalive (a nudge only: the wait does not depend on it)
          else this.command('asking for a fence', 'PUBLISH', FENCE_REQUEST_CHANNEL, `${formatLsn(target)} ${sinks.join(',')}`).catch(() => undefined);
        },
        (err: unknown) => this.settle(w, err instanceof Error ? err : redisError(err, 'reading applied positions')),
      );
    });
  }

  /** The last applied position seen for each sink (`<LSN>` or `<LSN>:<idx>`), read from Redis now. */
  async positionsNow(sinks: readonly string[] = this.defaultSinks): Promise<Record<string, string | null>> {
    this.assertOpen();
    const out: Record<string, string | null> = {};
    const texts = await Promise.all(sinks.map((s) => this.command<string | null>('reading applied positions', 'GET', appliedKey(s))));
    sinks.forEach((s, i) => (out[s] = texts[i] ?? null));
    return out;
  }

  /** Subscribe (once per sink), then read every sink's position; a sink Redis knows nothing of is refused. */
  private async prepare(sinks: readonly string[]): Promise<void> {
    await Promise.all(sinks.map((s) => this.track(s)));
    const texts = await Promise.all(sinks.map((s) => this.command<string | null>('reading applied positions', 'GET', appliedKey(s))));
    const unknown: string[] = [];
    await Promise.all(
      sinks.map(async (s, i) => {
        const p = readPosition(texts[i]);
        this.advance(s, p);
        if (p === null && (this.positions.get(s) ?? null) === null) {
          const defined = await this.command<number>('reading sink definitions', 'EXISTS', sinkDefinitionKey(s));
          if (defined === 0) unknown.push(s);
        }
      }),
    );
    if (unknown.length > 0) {
      throw new SluiceClientError('sink_not_found', `Redis holds no sink named ${unknown.map((s) => `"${s}"`).join(', ')} (no ${unknown.map((s) => sinkDefinitionKey(s)).join(', ')}): not started by Sluice yet, deleted, or written to another Redis`);
    }
  }

  private track(sink: string): Promise<void> {
    let t = this.tracked.get(sink);
    if (!t) {
      t = this.subs.add(appliedKey(sink), (text) => this.advance(sink, readPosition(text))).then(
        () => undefined,
        (err: unknown) => {
          this.tracked.delete(sink);
          throw err;
        },
      );
      this.tracked.set(sink, t);
    }
    return t;
  }

  private advance(sink: string, p: Position | null): void {
    const before = this.positions.get(sink) ?? null;
    const now = later(before, p);
    if (now === before) {
      if (!this.positions.has(sink)) this.positions.set(sink, null);
      return;
    }
    this.positions.set(sink, now);
    for (const w of this.waiters) {
      if (w.sinks.includes(sink) && w.sinks.every((s) => reaches(this.positions.get(s) ?? null, w.lsn))) this.settle(w, null);
    }
  }

  private positionsOf(sinks: readonly string[]): Map<string, Position | null> {
    return new Map(sinks.map((s) => [s, this.positions.get(s) ?? null]));
  }

  private settle(w: Waiter, err: Error | null): void {
    if (!this.waiters.delete(w)) return;
    if (w.timer) clearTimeout(w.timer);
    if (err) w.reject(err);
    else w.resolve(true);
  }

  /** Messages may have been lost while the subscriber was reconnecting: read again what is waited for. */
  private afterReconnect(): void {
    if (this.closed) return;
    const sinks = new Set<string>();
    for (const w of this.waiters) w.sinks.forEach((s) => sinks.add(s));
    for (const s of sinks) {
      this.command<string | null>('reading applied positions', 'GET', appliedKey(s)).then(
        (text) => this.advance(s, readPosition(text)),
        () => undefined,
      );
    }
    for (const sleeper of this.sleepers) sleeper.notify();
  }

  // ---- read (cache-aside) --------------------------------------------------------------------

  /**
   * Cache-aside for keys Sluice does not hold yet (a sink still backfilling, a derived value): the
   * JSON value at `key` when there is one; otherwise exactly one caller across every process
   * runs `loader` (under a lock with a TTL and a random token), writes its result as JSON with
   * `ttlMs`, and the others wait for it instead of all querying Postgres.
   *
   * - Calls in this process for the same key share one read.
   * - A loader's error reaches its caller unchanged; its lock is released and the waiting callers
   *   try again (one of them loads).
   * - A value Sluice wrote (a key without TTL) is returned and never overwritten by a loader.
   */
  read<T>(key: string, loader: () => T | Promise<T>, options: ReadOptions): Promise<T> {
    try {
      this.assertOpen();
      if (typeof key !== 'string' || key === '') throw new SluiceClientError('bad_option', 'key must be a non-empty string');
      if (typeof loader !== 'function') throw new SluiceClientError('bad_option', 'loader must be a function');
      const o = this.readOptions(options);
      const shared = this.inflight.get(key);
      if (shared) return shared as Promise<T>;
      const p = this.readShared(key, loader, o).finally(() => {
        if (this.inflight.get(key) === p) this.inflight.delete(key);
      });
      this.inflight.set(key, p);
      return p;
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private readOptions(o: ReadOptions): Required<ReadOptions> {
    if (typeof o !== 'object' || o === null) throw new SluiceClientError('bad_option', 'read(key, loader, { ttlMs }) needs its options');
    const ttlMs = positive(o.ttlMs, 'ttlMs');
    const lockMs = o.lockMs === undefined ? DEFAULT_LOCK_MS : positive(o.lockMs, 'lockMs');
    const waitMs = o.waitMs === undefined ? 2 * lockMs : positive(o.waitMs, 'waitMs', true);
    const staleWhileRevalidateMs = o.staleWhileRevalidateMs === undefined ? 0 : positive(o.staleWhileRevalidateMs, 'staleWhileRevalidateMs', true);
    return { ttlMs, lockMs, waitMs, staleWhileRevalidateMs };
  }

  private async readShared<T>(key: string, loader: () => T | Promise<T>, o: Required<ReadOptions>): Promise<T> {
    const lockKey = this.lockPrefix + key;
    const deadline = performance.now() + o.waitMs;
    const signal = new Signal();
    let unsubscribe: (() => void) | null = null;
    this.sleepers.add(signal);
    try {
      for (;;) {
        this.assertOpen();
        const [text, ttl] = (await this.script(LOOKUP, key)) as [string | null, number];
        if (text !== null) {
          const value = parseValue<T>(key, text);
          if (o.staleWhileRevalidateMs > 0 && ttl >= 0 && ttl <= o.staleWhileRevalidateMs) this.revalidate(key, loader, o);
          return value;
        }
        const token = randomBytes(16).toString('hex');
        if ((await this.command('taking a read lock', 'SET', lockKey, token, 'NX', 'PX', o.lockMs)) === 'OK') {
          return await this.load(key, lockKey, token, loader, o, 'read');
        }
        // another caller loads: listen for its word first, then look again before sleeping
        if (unsubscribe === null) {
          unsubscribe = await this.subs.add(lockKey, signal.notify);
          continue;
        }
        const lockTtl = await this.command<number>('reading a read lock', 'PTTL', lockKey);
        if (lockTtl === -2) continue; // released or expired meanwhile: look again, maybe take it
        const left = deadline - performance.now();
        if (left <= 0) throw new SluiceClientError('timeout', `no value for ${JSON.stringify(key)} within ${o.waitMs} ms while another caller held its lock (${lockKey})`);
        // the loader's message wakes us; otherwise look again when its lock expires (a crashed
        // loader), and at least every second in case a message was lost
        await signal.sleep(Math.min(left, lockTtl < 0 ? o.lockMs : lockTtl + 1, MAX_RECHECK_MS));
      }
    } finally {
      this.sleepers.delete(signal);
      unsubscribe?.();
    }
  }

  /** Runs the loader as the lock's owner: writes its value, announces it, releases the lock. */
  private async load<T>(key: string, lockKey: string, token: string, loader: () => T | Promise<T>, o: Required<ReadOptions>, why: 'read' | 'refresh'): Promise<T> {
    let value: T;
    let json: string | undefined;
    try {
      value = await loader();
      json = JSON.stringify(value);
      if (json === undefined) throw new SluiceClientError('bad_value', `the loader of ${JSON.stringify(key)} returned ${typeof value}, which JSON cannot hold (return null for "no such row")`);
    } catch (err) {
      // released at once, so that a waiting caller can load; they are told to look again
      await this.script(RELEASE, lockKey, token).catch(() => undefined);
      this.publish(lockKey, 'failed');
      throw err;
    }
    try {
      // a loader that outlived its lock may race a newer load: its value is not written
      if ((await this.command<string | null>('reading a read lock', 'GET', lockKey)) === token) {
        await this.script(WRITE, key, json, o.ttlMs + o.staleWhileRevalidateMs);
      }
      await this.script(RELEASE, lockKey, token);
      this.publish(lockKey, 'loaded');
    } catch (err) {
      if (!this.closed) this.onError(redisError(err, `writing the value loaded for ${why}`), key);
    }
    return value;
  }

  /** Stale-while-revalidate: one caller (across processes) reloads in the background. */
  private revalidate<T>(key: string, loader: () => T | Promise<T>, o: Required<ReadOptions>): void {
    if (this.refreshing.has(key) || this.closed) return;
    this.refreshing.add(key);
    const lockKey = this.lockPrefix + key;
    const token = randomBytes(16).toString('hex');
    this.command('taking a read lock', 'SET', lockKey, token, 'NX', 'PX', o.lockMs)
      .then((ok) => (ok === 'OK' ? this.load(key, lockKey, token, loader, o, 'refresh') : undefined))
      .catch((err: unknown) => {
        if (!this.closed) this.onError(err, key);
      })
      .finally(() => this.refreshing.delete(key));
  }

  private publish(channel: string, message: string): void {
    this.conn.call('PUBLISH', channel, message).catch(() => undefined);
  }

  // ---- keyFor --------------------------------------------------------------------------------

  /**
   * The Redis key a sink writes for `row` (or its `field`, `member` or `channel` with
   * `{ template }`), rendered with the sink's own template and rules from the definition
   * Sluice publishes in `sluice:sink:<sink>` (kept `definitionsMaxAgeMs`).
   */
  async keyFor(sink: string, row: Readonly<Record<string, unknown>>, options: KeyForOptions = {}): Promise<string> {
    const def = await this.definition(sink, options.refresh === true);
    return renderFromDefinition(def, row, options);
  }

  /** A sink's definition as Sluice published it (kept `definitionsMaxAgeMs`). */
  definition(sink: string, refresh = false): Promise<SinkDefinition> {
    try {
      this.assertOpen();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const kept = this.definitions.get(sink);
    if (kept && !refresh && performance.now() - kept.at < this.definitionsMaxAgeMs) return kept.def;
    const def = this.command<string | null>('reading sink definitions', 'GET', sinkDefinitionKey(sink)).then((text) => {
      if (text === null) throw new SluiceClientError('sink_not_found', `Redis holds no sink named "${sink}" (no ${sinkDefinitionKey(sink)}): not started by Sluice yet, deleted, or written to another Redis`);
      const d = parseDefinition(text);
      if (d === null) throw new SluiceClientError('bad_value', `${sinkDefinitionKey(sink)} is not a sink definition`);
      return d;
    });
    const entry = { at: performance.now(), def };
    this.definitions.set(sink, entry);
    def.catch(() => {
      if (this.definitions.get(sink) === entry) this.definitions.delete(sink);
    });
    return def;
  }

  /** Forgets the sink definitions kept for keyFor: the next calls read them again. */
  refreshDefinitions(): void {
    this.definitions.clear();
  }

  // ---- close ---------------------------------------------------------------------------------

  /**
   * Stops the client: pending waits and reads reject with code `closed`; closes the connections
   * the client created (never the application's own). Always resolves, and may be called again.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    for (const w of [...this.waiters]) this.settle(w, new SluiceClientError('closed', 'the client was closed while waiting'));
    for (const s of this.sleepers) s.notify();
    this.closing = (async () => {
      const sub = this.subs.take();
      await Promise.all([sub ? closeConn(sub) : undefined, this.ownsConn ? closeConn(this.conn) : undefined]);
    })().catch(() => undefined);
    return this.closing;
  }

  // ---- helpers -------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new SluiceClientError('closed', 'the client is closed');
  }

  private async command<R = unknown>(doing: string, name: string, ...args: (string | number)[]): Promise<R> {
    try {
      return (await this.conn.call(name, ...args)) as R;
    } catch (err) {
      throw this.closed ? new SluiceClientError('closed', 'the client was closed') : redisError(err, doing);
    }
  }

  private async script(s: typeof LOOKUP, key: string, ...args: (string | number)[]): Promise<unknown> {
    try {
      return await run(this.conn, s, key, ...args);
    } catch (err) {
      throw this.closed ? new SluiceClientError('closed', 'the client was closed') : redisError(err, `reading or writing ${JSON.stringify(key)}`);
    }
  }
}

function parseValue<T>(key: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new SluiceClientError('bad_value', `the value at ${JSON.stringify(key)} is not JSON`);
  }
}
