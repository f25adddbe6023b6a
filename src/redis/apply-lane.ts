import type { Logger } from '../util/log.js';
import type { RedisClient } from './connect.js';
import type { RedisCommand } from '../sinks/sink.js';
import type { Change } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { parsePosition, type Position } from '../pipeline/position.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';

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

export function positionKey(sink: string): string {
  return `sluice:pos:${sink}`;
}

export function batchMarkerKey(lane: string): string {
  return `sluice:batch:${lane}`;
}

export type LaneState = 'ready' | 'retrying' | 'stopped';

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
export class ApplyLane {
  state: LaneState = 'ready';
  lastError: string | null = null;
  retries = 0;
  private stopped = false;
  private readonly abort = new AbortController();
  /** the id of the last batch this lane applied (or found at start) */
  private lastBatchId: string | null = null;

  constructor(
    readonly name: string,
    readonly redis: RedisClient,
    readonly sinks: readonly string[],
    private readonly log: Logger,
    private readonly onRejected: (rejected: RejectedCommand[]) => void,
    private readonly onDataLoss: (loss: DataLoss) => void = () => undefined,
  ) {}

  /** Reads the batch marker Redis holds now (at start: what later batches are compared with). */
  async readMarker(): Promise<string | null> {
    this.lastBatchId = await this.redis.get(batchMarkerKey(this.name));
    return this.lastBatchId;
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
    let attempt = 0;
    for (;;) {
      if (this.stopped) throw new Error(`apply to Redis "${this.name}" stopped`);
      try {
        if (attempt > 0 && (await this.redis.get(batchMarkerKey(this.name))) === part.batchId) {
          this.log.info({ redis: this.name }, 'batch was applied before its reply was lost');
        } else {
          await this.exec(part);
        }
        this.lastBatchId = part.batchId;
        if (attempt > 0) this.log.info({ redis: this.name, attempts: attempt + 1 }, 'Redis writes resumed');
        this.state = 'ready';
        this.lastError = null;
        return;
      } catch (err) {
        attempt++;
        this.retries++;
        this.state = 'retrying';
        this.lastError = errorMessage(err);
        const delay = backoffDelayMs(attempt, 100, 5000);
        this.log.warn({ redis: this.name, err: this.lastError, retryInMs: delay, attempt }, 'Redis write failed; will retry');
        await sleep(delay, this.abort.signal);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.state = 'stopped';
    this.abort.abort();
  }

  /** Removes every key starting with `prefix` (SCAN, never KEYS; UNLINK frees memory lazily). */
  async unlinkPrefix(prefix: string): Promise<number> {
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    let removed = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) removed += await this.redis.unlink(...keys);
    } while (cursor !== '0');
    return removed;
  }

  private async exec(part: ApplyPart): Promise<void> {
    for (const prefix of part.unlinkPrefixes) {
      const n = await this.unlinkPrefix(prefix);
      this.log.info({ redis: this.name, prefix, removed: n }, 'TRUNCATE applied: keys removed');
    }
    const multi = this.redis.multi();
    // the marker as it was before this batch: if it is not the last batch applied, Redis lost writes
    multi.get(batchMarkerKey(this.name));
    for (const [name, ...args] of part.commands) multi.call(name!, ...args);
    for (const [sink, position] of part.positions) if (position !== null) multi.set(positionKey(sink), position);
    multi.set(batchMarkerKey(this.name), part.batchId);
    let results: [Error | null, unknown][] | null;
    try {
      results = await multi.exec();
    } catch (err) {
      // EXECABORT: Redis refused a command while queueing (OOM, NOPERM, READONLY, …): nothing applied.
      const prev = (err as { previousErrors?: Error[] }).previousErrors;
      const detail = prev && prev.length > 0 ? `: ${prev[0]!.message}` : '';
      throw new Error(`${errorMessage(err)}${detail}`, { cause: err });
    }
    if (results === null) throw new Error('MULTI was aborted by Redis');
    const before = results[0]![1] as string | null;
    if (before !== this.lastBatchId) {
      const loss: DataLoss = { lane: this.name, found: before };
      this.log.error({ redis: this.name, expected: this.lastBatchId, found: before }, 'Redis lost writes (restart without persistence, failover to a lagging replica, or FLUSHALL)');
      this.onDataLoss(loss);
    }
    // Runtime errors inside EXEC (e.g. WRONGTYPE) do not undo the other commands: every reply
    // is checked, and each rejected command's message goes to its sink's failed messages.
    const rejected: RejectedCommand[] = [];
    for (let i = 1; i < results.length; i++) {
      const err = results[i]![0];
      if (!err) continue;
      const origin = part.origins[i - 1];
      if (!origin) throw new Error(`Redis rejected a bookkeeping command: ${err.message}`);
      rejected.push({ origin, error: err.message });
    }
    if (rejected.length > 0) this.onRejected(rejected);
  }
}
