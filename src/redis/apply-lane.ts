import { Redis } from 'ioredis';
import type { Logger } from '../util/log.js';
import type { RedisClient } from './connect.js';
import type { CommandOrigin, RedisCommand, RejectedCommand } from '../core/command.js';
import type { EncodedCommands } from '../core/encoded-commands.js';
import { parsePosition, type Position } from '../core/position.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';
import { appliedKey, batchMarkerKey, isOwnKey, positionKey } from '../core/keyspace.js';
import { RespConnection } from './resp-connection.js';
import { endpointOf, execGroup, execGroupResp, type GroupResult, type GroupWrite } from './multi-exec.js';

export type { CommandOrigin, RejectedCommand };

/** What one Redis connection must apply for one batch. */
export interface ApplyPart {
  /** unique per batch: written with the batch, read back to tell whether a lost reply's EXEC ran */
  readonly batchId: string;
  readonly commands: RedisCommand[];
  /** for each command, who to blame if Redis rejects it (null: bookkeeping commands) */
  readonly origins: (CommandOrigin | null)[];
  /** more data commands, after `commands`, already encoded (only for a lane whose `preEncoded` is true) */
  readonly encoded?: EncodedCommands | null | undefined;
  /** each sink's position, written to its position key in the same MULTI (null: not written) */
  readonly positions: readonly (readonly [string, string | null])[];
  /** key prefixes to remove (SCAN + UNLINK) before the MULTI: TRUNCATE */
  readonly unlinkPrefixes: readonly string[];
}

/** A data command that ran in an EXEC whose reply was lost with the connection. */
export interface UnsureCommand {
  readonly command: RedisCommand;
  readonly origin: CommandOrigin;
}

/** What came of a part: the data commands Redis refused, and those whose fate is unknown. */
export interface ApplyOutcome {
  readonly rejected: RejectedCommand[];
  /**
   * The EXEC ran (its batch marker says so) but its replies were lost: whether Redis refused some
   * of these is not known. The applier probes them as it probes a restart's unconfirmed tail.
   */
  readonly unsure: readonly UnsureCommand[];
}

/** The data commands of a part (those with an origin), as unsure. */
export function unsureOf(commands: readonly RedisCommand[], origins: readonly (CommandOrigin | null)[], encoded: EncodedCommands | null = null): UnsureCommand[] {
  const out: UnsureCommand[] = [];
  commands.forEach((command, i) => {
    const origin = origins[i];
    if (origin) out.push({ command, origin });
  });
  if (encoded !== null) {
    for (let i = 0; i < encoded.length; i++) {
      const origin = encoded.origin(i);
      if (origin) out.push({ command: encoded.command(i), origin });
    }
  }
  return out;
}

export type LaneState = 'ready' | 'retrying' | 'stopped';

/** What Redis holds for one sink when the lane starts (or the sink is added). */
export interface LoadedSink {
  /** the position the pipeline may skip up to (null: nothing, or the lane filters replays itself) */
  readonly skip: Position | null;
  /**
   * the sink's position Redis holds, compared with the slot's at start (behind it: Redis lost
   * writes); absent: `skip` (a Cluster lane skips nothing by itself but holds a position)
   */
  readonly stored?: Position | null;
  /** Redis has a position for the sink */
  readonly known: boolean;
}

/** Applies batches to one Redis connection (standalone/Sentinel, or Cluster), in order. */
export interface Lane {
  readonly name: string;
  readonly redis: RedisClient;
  readonly state: LaneState;
  readonly lastError: string | null;
  readonly retries: number;
  /** the sinks' positions can be compared with the slot's at start (`LoadedSink.stored`) */
  readonly behindCheck: boolean;
  /** it takes data commands encoded as they are planned (`ApplyPart.encoded`); absent: arrays only */
  readonly preEncoded?: boolean;
  /** Reads what Redis holds for the lane (its batch marker) and for these sinks. */
  load(sinks: readonly string[]): Promise<Map<string, LoadedSink>>;
  /**
   * Applies a part exactly once; resolves with the data commands Redis refused (their messages
   * fail) and those whose replies were lost, or rejects if the lane was stopped.
   */
  apply(part: ApplyPart): Promise<ApplyOutcome>;
  /** Removes what Redis holds of Sluice's own keys for a deleted sink (positions). */
  forget(sink: string): Promise<void>;
  stop(): void;
}

/** Redis no longer holds the last batch this lane applied: it lost writes. */
export interface DataLoss {
  readonly lane: string;
  /** the marker found instead of the last batch id (null: no marker at all) */
  readonly found: string | null;
}

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

  /** `unsure`: the part's data commands, for when the EXEC ran but its replies were lost. */
  protected async applyExactlyOnce(redis: RedisClient, markerKey: string, batchId: string, where: Record<string, unknown>, write: () => Promise<RejectedCommand[]>, unsure: () => UnsureCommand[]): Promise<ApplyOutcome> {
    let attempt = 0;
    for (;;) {
      if (this.stopped) throw new Error(`apply to Redis "${this.name}" stopped`);
      try {
        let outcome: ApplyOutcome;
        if (attempt > 0 && (await redis.get(markerKey)) === batchId) {
          // the replies are gone with the connection: the applier probes what Redis may have refused
          this.log.info({ redis: this.name, ...where }, 'batch was applied before its reply was lost');
          outcome = { rejected: [], unsure: unsure() };
        } else {
          outcome = { rejected: await write(), unsure: [] };
        }
        if (attempt > 0) this.log.info({ redis: this.name, ...where, attempts: attempt + 1 }, 'Redis writes resumed');
        this.state = 'ready';
        this.lastError = null;
        return outcome;
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

/**
 * Applies parts to one Redis connection (standalone or Sentinel), strictly one after the other.
 * Each part is one MULTI … EXEC (multi-exec.ts) holding the data commands, every sink's
 * position and the batch marker: Redis holds the data and the position of the same instant.
 *
 * Only one part is in flight: with two, a part that Redis refuses (OOM, READONLY) could be
 * followed by one it accepts, and order would be lost. While a part is applied the pipeline
 * plans the next one, so Redis and Node still work in parallel.
 */
export class ApplyLane extends RetryingLane implements Lane {
  readonly behindCheck = true;
  /** the id of the last batch this lane applied (or found at start) */
  private lastBatchId: string | null = null;
  private loaded = false;
  /** the MULTI … EXEC of each batch goes as one pre-encoded write on its own connection */
  private readonly resp: RespConnection | null;

  constructor(
    name: string,
    readonly redis: RedisClient,
    log: Logger,
    private readonly onDataLoss: (loss: DataLoss) => void = () => undefined,
    /** whose batch marker this lane reads and writes (core/keyspace.ts instanceIdentity) */
    private readonly instance = '',
  ) {
    super(name, log);
    this.resp = redis instanceof Redis ? new RespConnection(() => endpointOf(redis)) : null;
  }

  get preEncoded(): boolean {
    return this.resp !== null;
  }

  async load(sinks: readonly string[]): Promise<Map<string, LoadedSink>> {
    // the batch marker Redis holds now: what later batches are compared with
    if (!this.loaded) this.lastBatchId = await this.redis.get(batchMarkerKey(this.instance, this.name));
    this.loaded = true;
    const out = new Map<string, LoadedSink>();
    for (const sink of sinks) {
      const v = await this.redis.get(positionKey(sink));
      const skip = v === null ? null : parsePosition(v);
      out.set(sink, { skip, known: skip !== null });
    }
    return out;
  }

  /** Resolves once the part is in Redis (exactly once), or rejects if the lane was stopped. */
  async apply(part: ApplyPart): Promise<ApplyOutcome> {
    const outcome = await this.applyExactlyOnce(this.redis, batchMarkerKey(this.instance, this.name), part.batchId, {}, () => this.exec(part), () => unsureOf(part.commands, part.origins, part.encoded ?? null));
    this.lastBatchId = part.batchId;
    return outcome;
  }

  async forget(sink: string): Promise<void> {
    await this.redis.del(positionKey(sink));
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

  private async exec(part: ApplyPart): Promise<RejectedCommand[]> {
    for (const prefix of part.unlinkPrefixes) {
      const n = await this.unlinkPrefix(prefix);
      this.log.info({ redis: this.name, prefix, removed: n }, 'TRUNCATE applied: keys removed');
    }
    const { commands, origins } = withAppliedPositions(part);
    const group: GroupWrite = {
      markerKey: batchMarkerKey(this.instance, this.name),
      batchId: part.batchId,
      // the applied positions are arrays, written before the pre-encoded data commands: one MULTI
      // either way, so no reader sees them apart
      commands,
      origins,
      encoded: part.encoded ?? null,
      positions: part.positions.map(([sink, pos]) => [positionKey(sink), pos] as const),
    };
    const result: GroupResult = await (this.resp ? execGroupResp(this.resp, group) : execGroup(this.redis, group));
    if (result.before !== this.lastBatchId) {
      this.log.error({ redis: this.name, expected: this.lastBatchId, found: result.before }, 'Redis lost writes (restart without persistence, failover to a lagging replica, or FLUSHALL)');
      this.onDataLoss({ lane: this.name, found: result.before });
    }
    return result.rejected;
  }
}

/**
 * The part's commands, then for each sink with a position `SET sluice:applied:<sink>` and
 * `PUBLISH` on the same name, for read-your-writes clients (sluice/client): in the batch's own
 * MULTI, the applied position a client sees is exactly what Redis holds, and a one-row
 * transaction costs one write to Redis, not two (runtime/progress.ts does this after the batch on
 * Cluster, where a MULTI cannot reach the sinks' keys). Bookkeeping: a refusal retries the batch.
 */
export function withAppliedPositions(part: ApplyPart): { commands: RedisCommand[]; origins: (CommandOrigin | null)[] } {
  const extra: RedisCommand[] = [];
  for (const [sink, position] of part.positions) {
    if (position === null) continue;
    const key = appliedKey(sink);
    extra.push(['SET', key, position], ['PUBLISH', key, position]);
  }
  if (extra.length === 0) return { commands: part.commands, origins: part.origins };
  return { commands: part.commands.concat(extra), origins: part.origins.concat(extra.map(() => null)) };
}
