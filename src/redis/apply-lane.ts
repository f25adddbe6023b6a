import type { Logger } from '../util/log.js';
import type { RedisClient } from './connect.js';
import type { RedisCommand } from '../sinks/sink.js';
import type { Change } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { formatLsn, parseLsn, type Lsn } from '../pg/lsn.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';

/** What one Redis connection must apply for one batch of whole transactions. */
export interface ApplyPart {
  readonly commands: RedisCommand[];
  /** for each command, who to blame if Redis rejects it (null: bookkeeping commands) */
  readonly origins: (CommandOrigin | null)[];
  /** commit LSN of the batch's last transaction: written to every sink's position key */
  readonly lastCommitLsn: Lsn;
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

export type LaneState = 'ready' | 'retrying' | 'stopped';

/**
 * Applies parts to one Redis connection, strictly one after the other. Each part is one
 * MULTI … EXEC holding the data commands and `SET sluice:pos:<sink> <commit lsn>` for every
 * sink of the connection, so Redis holds the data and the position of the same instant.
 *
 * Only one part is in flight: with two, a part that Redis refuses (OOM, READONLY) could be
 * followed by one it accepts, and order would be lost. While a part is applied the pipeline
 * plans the next one, so Redis and Node still work in parallel.
 *
 * On any failure the lane reads the positions back: if the part's position is there, the EXEC
 * went through and only its reply was lost; otherwise the part is sent again. Backoff with
 * jitter in between, until it succeeds or the lane is stopped.
 */
export class ApplyLane {
  state: LaneState = 'ready';
  lastError: string | null = null;
  retries = 0;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(
    readonly name: string,
    readonly redis: RedisClient,
    readonly sinks: readonly string[],
    private readonly log: Logger,
    private readonly onRejected: (rejected: RejectedCommand[]) => void,
  ) {}

  async readPositions(): Promise<Map<string, Lsn | null>> {
    const out = new Map<string, Lsn | null>();
    for (const sink of this.sinks) {
      const v = await this.redis.get(positionKey(sink));
      out.set(sink, v === null ? null : parseLsn(v));
    }
    return out;
  }

  /** Resolves once the part is in Redis (exactly once), or rejects if the lane was stopped. */
  async apply(part: ApplyPart): Promise<void> {
    let attempt = 0;
    for (;;) {
      if (this.stopped) throw new Error(`apply to Redis "${this.name}" stopped`);
      try {
        if (attempt > 0 && (await this.alreadyApplied(part))) {
          this.log.info({ redis: this.name, lsn: formatLsn(part.lastCommitLsn) }, 'batch was applied before its reply was lost');
        } else {
          await this.exec(part);
        }
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

  private async alreadyApplied(part: ApplyPart): Promise<boolean> {
    const positions = await this.readPositions();
    for (const sink of this.sinks) {
      const p = positions.get(sink);
      if (p === null || p === undefined || p < part.lastCommitLsn) return false;
    }
    return true;
  }

  private async exec(part: ApplyPart): Promise<void> {
    const lsn = formatLsn(part.lastCommitLsn);
    const commands: RedisCommand[] = part.commands.slice();
    for (const sink of this.sinks) commands.push(['SET', positionKey(sink), lsn]);
    let results: [Error | null, unknown][] | null;
    try {
      const multi = this.redis.multi();
      for (const [name, ...args] of commands) multi.call(name!, ...args);
      results = await multi.exec();
    } catch (err) {
      // EXECABORT: Redis refused a command while queueing (OOM, NOPERM, READONLY, …): nothing applied.
      const prev = (err as { previousErrors?: Error[] }).previousErrors;
      const detail = prev && prev.length > 0 ? `: ${prev[0]!.message}` : '';
      throw new Error(`${errorMessage(err)}${detail}`, { cause: err });
    }
    if (results === null) throw new Error('MULTI was aborted by Redis');
    // Runtime errors inside EXEC (e.g. WRONGTYPE) do not undo the other commands: every reply
    // is checked, and each rejected command's message goes to its sink's failed messages.
    const rejected: RejectedCommand[] = [];
    for (let i = 0; i < results.length; i++) {
      const err = results[i]![0];
      if (!err) continue;
      const origin = part.origins[i];
      if (!origin) throw new Error(`Redis rejected a bookkeeping command: ${err.message}`);
      rejected.push({ origin, error: err.message });
    }
    if (rejected.length > 0) this.onRejected(rejected);
  }
}
