// An in-memory Redis and the apply lane (Lane) a Pipeline writes to it through: for model tests of
// the runtime with no Redis server. MemoryRedis outlives Pipelines (a crash keeps what it holds);
// a MemoryLane belongs to one Pipeline.
//
// A part is applied atomically, as MULTI … EXEC: its data commands, the positions it carries
// (`sluice:pos:<sink>`) and the batch marker, all at once. The lane can be stalled (applies wait,
// as with a slow or unreachable Redis) and crashed (the process dies with a part in flight, which
// either reached Redis or did not).
import { Redis } from 'ioredis';
import type { RedisCommand } from '../../../src/core/command.js';
import { parsePosition, type Position } from '../../../src/core/position.js';
import type { ApplyOutcome, ApplyPart, Lane, LaneState, LoadedSink } from '../../../src/redis/apply-lane.js';
import type { RedisClient } from '../../../src/redis/connect.js';
import type { KeyType } from '../../../src/plan/tail-probe.js';

export class MemoryRedis {
  readonly strings = new Map<string, string>();
  readonly lists = new Map<string, string[]>();
  readonly hashes = new Map<string, Map<string, string>>();
  /** `sluice:pos:<sink>` */
  readonly positions = new Map<string, string>();
  /** `sluice:batch:<lane>` */
  marker: string | null = null;
  /** parts applied, for the test's own counters */
  applied = 0;

  position(sink: string): Position | null {
    const p = this.positions.get(sink);
    return p === undefined ? null : parsePosition(p);
  }

  /** What TYPE answers for each key (the tail probe's reads). */
  keyTypes(keys: readonly string[]): Map<string, KeyType> {
    return new Map(keys.map((k) => [k, this.strings.has(k) ? 'string' : this.lists.has(k) ? 'list' : this.hashes.has(k) ? 'hash' : 'none'] as const));
  }

  /** One MULTI … EXEC: every command, then the positions and the marker. */
  exec(part: ApplyPart): void {
    for (const cmd of part.commands) this.command(cmd);
    for (const [sink, pos] of part.positions) if (pos !== null) this.positions.set(sink, pos);
    this.marker = part.batchId;
    this.applied++;
  }

  private command(cmd: RedisCommand): void {
    const [name, key, ...args] = cmd;
    if (key === undefined) throw new Error(`memory Redis: ${name} without a key`);
    switch (name) {
      case 'RPUSH':
        this.lists.set(key, [...(this.lists.get(key) ?? []), ...args]);
        return;
      case 'LPUSH':
        this.lists.set(key, [...[...args].reverse(), ...(this.lists.get(key) ?? [])]);
        return;
      case 'SET':
        if (args[0] === undefined) throw new Error('memory Redis: SET without a value');
        this.strings.set(key, args[0]);
        return;
      case 'DEL':
        for (const k of [key, ...args]) {
          this.strings.delete(k);
          this.lists.delete(k);
          this.hashes.delete(k);
        }
        return;
      case 'HSET': {
        const h = this.hashes.get(key) ?? new Map<string, string>();
        for (let i = 0; i + 1 < args.length; i += 2) h.set(args[i]!, args[i + 1]!);
        this.hashes.set(key, h);
        return;
      }
      case 'HSETNX': {
        // a failed-message record made by the tail probe (the model's Redis refuses nothing: the test finds none)
        const h = this.hashes.get(key) ?? new Map<string, string>();
        if (!h.has(args[0]!)) h.set(args[0]!, args[1]!);
        this.hashes.set(key, h);
        return;
      }
      default:
        throw new Error(`memory Redis: ${name} is not modelled (the model test's sinks should not need it)`);
    }
  }
}

/** A lane whose Redis is a MemoryRedis: `redis` is a client that never connects (nothing uses it). */
export class MemoryLane implements Lane {
  state: LaneState = 'ready';
  readonly lastError: string | null = null;
  readonly retries = 0;
  readonly behindCheck = true;
  readonly redis: RedisClient;
  private stalled = false;
  private dead = false;
  private readonly waiting: { part: ApplyPart; resolve: (r: ApplyOutcome) => void }[] = [];

  constructor(
    readonly name: string,
    private readonly store: MemoryRedis,
    client: RedisClient,
  ) {
    this.redis = client;
  }

  /** A client object for `Lane.redis` that never connects. */
  static idleClient(): RedisClient {
    return new Redis({ lazyConnect: true, enableOfflineQueue: false });
  }

  get inFlight(): number {
    return this.waiting.length;
  }

  load(sinks: readonly string[]): Promise<Map<string, LoadedSink>> {
    const out = new Map<string, LoadedSink>();
    for (const s of sinks) {
      const skip = this.store.position(s);
      out.set(s, { skip, known: skip !== null });
    }
    return Promise.resolve(out);
  }

  apply(part: ApplyPart): Promise<ApplyOutcome> {
    if (this.dead) return new Promise(() => undefined); // the process is gone: never answers
    if (this.state === 'stopped') return Promise.reject(new Error(`apply to Redis "${this.name}" stopped`));
    if (this.stalled) return new Promise((resolve) => this.waiting.push({ part, resolve }));
    this.store.exec(part);
    return Promise.resolve({ rejected: [], unsure: [] });
  }

  forget(sink: string): Promise<void> {
    if (!this.dead) this.store.positions.delete(sink);
    return Promise.resolve();
  }

  stop(): void {
    this.state = 'stopped';
  }

  /** Applies wait until unstall() (Redis is slow or unreachable; nothing is lost). */
  stall(): void {
    this.stalled = true;
  }

  unstall(): void {
    this.stalled = false;
    for (const w of this.waiting.splice(0)) {
      if (this.dead) return;
      this.store.exec(w.part);
      w.resolve({ rejected: [], unsure: [] });
    }
  }

  /** Redis answers the oldest waiting part only (and stays slow). */
  applyOne(): void {
    const w = this.waiting.shift();
    if (!w || this.dead) return;
    this.store.exec(w.part);
    w.resolve({ rejected: [], unsure: [] });
  }

  /**
   * The process dies. A part in flight reached Redis (`landed`: the EXEC ran, its reply was
   * lost with the process) or did not; either way nobody hears of it.
   */
  crash(landed: boolean): void {
    if (landed) for (const w of this.waiting) this.store.exec(w.part);
    this.waiting.length = 0;
    this.dead = true;
  }
}
