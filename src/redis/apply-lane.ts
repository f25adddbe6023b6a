import { Redis } from 'ioredis';
import type { Logger } from '../util/log.js';
import type { RedisClient } from './connect.js';
import type { RedisCommand } from '../sinks/sink.js';
import type { Change } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { parsePosition, type Position } from '../core/position.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';
import { batchMarkerKey, isOwnKey, positionKey } from '../core/keyspace.js';
import { RespConnection } from './resp-connection.js';
import { endpointOf, execGroupResp } from './resp-exec-group.js';

/** What one Redis connection must apply for one batch. */
export interface ApplyPart {
  /** unique per batch: written with the batch, read back to tell whether a lost reply's EXEC ran */
  readonly batchId: string;
  readonly commands: RedisCommand[];
  /** for each command, who to blame if Redis rejects it (null: bookkeeping commands) */
  readonly origins: (CommandOrigin | null)[];
  /** each sink's position, written to its position key in the same MULTI (null: none yet) */
  readonly positions: readonly (readonly [string, string | null])[];
  /** key prefixes to remove (SCAN + UNLINK) before the MULTI: TRUNCATE */
  readonly unlinkPrefixes: readonly string[];
}

/** The message a data command was planned from, to blame if Redis rejects the command. */
export interface CommandOrigin {
  readonly sink: string;
  readonly change: Change;
  readonly meta: MessageMeta;
}

export interface RejectedCommand {
  readonly origin: CommandOrigin;
  readonly error: string;
}

export type LaneState = 'ready' | 'retrying' | 'stopped';

/** Applies batches to one Redis connection (standalone/Sentinel, or Cluster), in order. */
export interface Lane {
  readonly name: string;
  readonly redis: RedisClient;
  readonly sinks: readonly string[];
  readonly state: LaneState;
  readonly lastError: string | null;
  readonly retries: number;
  /**
   * Reads what Redis holds at start. `skip`: per sink, what the pipeline may skip (null: let
   * the lane decide); `known`: Redis has a position for the sink; `behindCheck`: positions can
   * be compared with the slot's (not on Cluster, where untouched slots keep old positions).
   */
  load(): Promise<{ skip: Map<string, Position | null>; known: Set<string>; behindCheck: boolean }>;
  apply(part: ApplyPart): Promise<void>;
  stop(): void;
}

/** Redis no longer holds the last batch this lane applied: it lost writes. */
export interface DataLoss {
  readonly lane: string;
  /** the marker found instead of the last batch id (null: no marker at all) */
  readonly found: string | null;
}

/**
 * Applies parts to one Redis connection, strictly one after the other. Each part is one
 * MULTI … EXEC holding the data commands, `SET sluice:pos:<sink> <position>` for every sink of
 * the connection, and `SET sluice:batch:<lane> <batch id>`: Redis holds the data and the
 * position of the same instant.
 *
 * Only one part is in flight: with two, a part that Redis refuses (OOM, READONLY) could be
 * followed by one it accepts, and order would be lost. While a part is applied the pipeline
 * plans the next one, so Redis and Node still work in parallel.
 *
 * On any failure the lane reads the batch marker back: if it holds this part's id, the EXEC
 * went through and only its reply was lost; otherwise the part is sent again. Backoff with
 * jitter in between, until it succeeds or the lane is stopped.
 */
/**
 * What both lanes share: state for status, and the exactly-once retry of one MULTI. After a
 * failure, the marker key is read back: if it holds the batch id, the EXEC went through and only
 * its reply was lost; otherwise the write is sent again, after a backoff with jitter, until it
 * succeeds or the lane is stopped.
 */
export abstract class RetryingLane {
  state: LaneState = 'ready';
  lastError: string | null = null;
  retries = 0;
  protected stopped = false;
  private readonly abort = new AbortController();

  constructor(
    readonly name: string,
    protected readonly log: Logger,
  ) {}

  stop(): void {
    this.stopped = true;
    this.state = 'stopped';
    this.abort.abort();
  }

  protected async applyExactlyOnce(redis: RedisClient, markerKey: string, batchId: string, where: Record<string, unknown>, write: () => Promise<void>): Promise<void> {
    let attempt = 0;
    for (;;) {
      if (this.stopped) throw new Error(`apply to Redis "${this.name}" stopped`);
      try {
        if (attempt > 0 && (await redis.get(markerKey)) === batchId) {
          this.log.info({ redis: this.name, ...where }, 'batch was applied before its reply was lost');
        } else {
          await write();
        }
        if (attempt > 0) this.log.info({ redis: this.name, ...where, attempts: attempt + 1 }, 'Redis writes resumed');
        this.state = 'ready';
        this.lastError = null;
        return;
      } catch (err) {
        attempt++;
        this.retries++;
        this.state = 'retrying';
        this.lastError = errorMessage(err);
        const delay = backoffDelayMs(attempt, 100, 5000);
        this.log.warn({ redis: this.name, ...where, err: this.lastError, retryInMs: delay, attempt }, 'Redis write failed; will retry');
        await sleep(delay, this.abort.signal);
      }
    }
  }
}

export class ApplyLane extends RetryingLane implements Lane {
  /** the id of the last batch this lane applied (or found at start) */
  private lastBatchId: string | null = null;
  /** the MULTI … EXEC of each batch goes as one pre-encoded write on its own connection */
  private readonly resp: RespConnection | null;

  constructor(
    name: string,
    readonly redis: RedisClient,
    readonly sinks: readonly string[],
    log: Logger,
    private readonly onRejected: (rejected: RejectedCommand[]) => void,
    private readonly onDataLoss: (loss: DataLoss) => void = () => undefined,
  ) {
    super(name, log);
    this.resp = redis instanceof Redis ? new RespConnection(() => endpointOf(redis)) : null;
  }

  async load(): Promise<{ skip: Map<string, Position | null>; known: Set<string>; behindCheck: boolean }> {
    // the batch marker Redis holds now: what later batches are compared with
    this.lastBatchId = await this.redis.get(batchMarkerKey(this.name));
    const skip = await this.readPositions();
    return { skip, known: new Set([...skip].filter(([, p]) => p !== null).map(([s]) => s)), behindCheck: true };
  }

  async readPositions(): Promise<Map<string, Position | null>> {
    const out = new Map<string, Position | null>();
    for (const sink of this.sinks) {
      const v = await this.redis.get(positionKey(sink));
      out.set(sink, v === null ? null : parsePosition(v));
    }
    return out;
  }

  /** Resolves once the part is in Redis (exactly once), or rejects if the lane was stopped. */
  async apply(part: ApplyPart): Promise<void> {
    await this.applyExactlyOnce(this.redis, batchMarkerKey(this.name), part.batchId, {}, () => this.exec(part));
    this.lastBatchId = part.batchId;
  }

  override stop(): void {
    super.stop();
    this.resp?.close();
  }

  /** Removes every key starting with `prefix` (SCAN, never KEYS; UNLINK frees memory lazily). */
  async unlinkPrefix(prefix: string): Promise<number> {
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    let removed = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      const data = keys.filter((k) => !isOwnKey(k));
      if (data.length > 0) removed += await this.redis.unlink(...data);
    } while (cursor !== '0');
    return removed;
  }

  private async exec(part: ApplyPart): Promise<void> {
    for (const prefix of part.unlinkPrefixes) {
      const n = await this.unlinkPrefix(prefix);
      this.log.info({ redis: this.name, prefix, removed: n }, 'TRUNCATE applied: keys removed');
    }
    const group: GroupWrite = {
      markerKey: batchMarkerKey(this.name),
      batchId: part.batchId,
      commands: part.commands,
      origins: part.origins,
      positions: part.positions.map(([sink, pos]) => [positionKey(sink), pos] as const),
      onRejected: this.onRejected,
    };
    const before = await (this.resp ? execGroupResp(this.resp, group) : execGroup(this.redis, group));
    if (before !== this.lastBatchId) {
      this.log.error({ redis: this.name, expected: this.lastBatchId, found: before }, 'Redis lost writes (restart without persistence, failover to a lagging replica, or FLUSHALL)');
      this.onDataLoss({ lane: this.name, found: before });
    }
  }
}

export interface GroupWrite {
  readonly markerKey: string;
  readonly batchId: string;
  readonly commands: readonly RedisCommand[];
  readonly origins: readonly (CommandOrigin | null)[];
  /** position keys and values (null: not written) */
  readonly positions: readonly (readonly [string, string | null])[];
  readonly onRejected: (rejected: RejectedCommand[]) => void;
}

/**
 * One MULTI … EXEC: `GET marker`, the commands, the positions, `SET marker batchId`. Returns
 * the marker as it was before (the caller compares it with the last batch it applied). Every
 * reply is checked: a queue-time error (EXECABORT: OOM, NOPERM, READONLY, MOVED…) throws and
 * nothing was applied; a runtime error of a data command (WRONGTYPE) is reported through
 * onRejected while the rest of the MULTI stands.
 */
export async function execGroup(redis: RedisClient, w: GroupWrite): Promise<string | null> {
  const multi = redis.multi();
  multi.get(w.markerKey);
  for (const [name, ...args] of w.commands) multi.call(name!, ...args);
  for (const [key, position] of w.positions) if (position !== null) multi.set(key, position);
  multi.set(w.markerKey, w.batchId);
  let results: [Error | null, unknown][] | null;
  try {
    results = await multi.exec();
  } catch (err) {
    const prev = (err as { previousErrors?: Error[] }).previousErrors;
    const detail = prev && prev.length > 0 ? `: ${prev[0]!.message}` : '';
    throw new Error(`${errorMessage(err)}${detail}`, { cause: err });
  }
  if (results === null) throw new Error('MULTI was aborted by Redis');
  const before = results[0]![1] as string | null;
  const rejected: RejectedCommand[] = [];
  for (let i = 1; i < results.length; i++) {
    const err = results[i]![0];
    if (!err) continue;
    const origin = w.origins[i - 1];
    if (!origin) throw new Error(`Redis rejected a bookkeeping command: ${err.message}`);
    rejected.push({ origin, error: err.message });
  }
  if (rejected.length > 0) w.onRejected(rejected);
  return before;
}
