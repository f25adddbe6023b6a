import type { Logger } from '../util/log.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';
import { ReplicationConnection } from './replication-connection.js';
import { formatLsn, maxLsn, type Lsn, ZERO_LSN } from '../core/lsn.js';
import type { ReplicationMessage } from './pgoutput/types.js';

/**
 * The replication connection over time: reconnects with backoff whenever it drops.
 *
 *   idle ─start()─► connecting ──ok──► streaming ──drop──► reconnecting ─backoff─► connecting
 *                        │                 │                                          │
 *                        └──fail──► reconnecting                    stop() from any ──► stopped
 *
 * restart() closes the connection on purpose and connects again at once (resumed sinks; row
 * lookups that find Postgres shutting down, whose walsender waits for the connection to close).
 *
 * Positions: `confirm(lsn)` records what Redis has acknowledged; only that is reported as
 * flushed, and every (re)connection starts from it. What was received but not confirmed is
 * sent again by Postgres after a reconnect; the pipeline drops what it already has.
 */
export type SourceState = 'idle' | 'connecting' | 'streaming' | 'reconnecting' | 'stopped';

export interface ReplicationSourceOptions {
  url: string;
  slot: string;
  publication: string;
  protoVersion: 1 | 2;
  log: Logger;
  statusIntervalMs?: number;
  onMessage: (msg: ReplicationMessage) => void;
  /** a new connection is streaming: anything half-received before it is void */
  onConnected: () => void;
}

export class ReplicationSource {
  state: SourceState = 'idle';
  lastError: string | null = null;
  reconnects = 0;
  /** counts connections: what arrives on a newer one comes after a restart or a reconnect */
  generation = 0;
  /** why the connection is being closed on purpose (null: it is not) */
  private restarting: string | null = null;
  private confirmed: Lsn = ZERO_LSN;
  private received: Lsn = ZERO_LSN;
  private conn: ReplicationConnection | null = null;
  private paused = false;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(private readonly opts: ReplicationSourceOptions) {}

  get confirmedLsn(): Lsn {
    return this.confirmed;
  }

  get receivedLsn(): Lsn {
    return this.received;
  }

  start(startLsn: Lsn): void {
    this.confirmed = maxLsn(this.confirmed, startLsn);
    this.loop ??= this.run();
  }

  /** Everything up to `lsn` is safely applied: it may be reported to Postgres as flushed. */
  confirm(lsn: Lsn): void {
    if (lsn > this.confirmed) this.confirmed = lsn;
  }

  pause(): void {
    this.paused = true;
    this.conn?.pause();
  }

  resume(): void {
    this.paused = false;
    this.conn?.resume();
  }

  /**
   * Streams again from the confirmed position at once (no backoff): Postgres resends what was
   * not confirmed. Used when a sink that held the slot back is resumed, and to give the
   * connection up while row lookups find Postgres shutting down (its walsender waits for the
   * connection to close). `reason` goes to the log.
   */
  restart(reason = 'to replay for a resumed sink'): void {
    if (this.state === 'stopped' || this.conn === null) return;
    this.restarting = reason;
    void this.conn.close();
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    this.abort.abort();
    await this.conn?.close();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { log } = this.opts;
    let attempt = 0;
    // failures in a row, for the backoff: a connection Postgres accepts but then refuses to stream
    // (a standby's synced slot: START_REPLICATION fails after connect()) is not a success
    let failures = 0;
    while (!this.abort.signal.aborted) {
      this.state = attempt === 0 ? 'connecting' : 'reconnecting';
      let streamed = false;
      const conn = new ReplicationConnection({
        url: this.opts.url,
        slot: this.opts.slot,
        publication: this.opts.publication,
        startLsn: this.confirmed,
        protoVersion: this.opts.protoVersion,
        statusIntervalMs: this.opts.statusIntervalMs ?? 5000,
        onMessage: (msg) => {
          streamed = true;
          if (msg.tag === 'xlogdata') {
            if (msg.walStart > this.received) this.received = msg.walStart;
          } else if (msg.walEnd > this.received) {
            this.received = msg.walEnd;
          }
          this.opts.onMessage(msg);
        },
        flushedLsn: () => this.confirmed,
        receivedLsn: () => maxLsn(this.received, this.confirmed),
      });
      this.conn = conn;
      let err: Error | null;
      try {
        await conn.connect();
        if (this.abort.signal.aborted) {
          await conn.close();
          break;
        }
        if (attempt > 0) log.info({ from: formatLsn(this.confirmed) }, 'replication stream reconnected');
        else log.info({ from: formatLsn(this.confirmed), slot: this.opts.slot }, 'replication stream started');
        this.state = 'streaming';
        this.lastError = null;
        attempt = 0;
        this.generation++;
        this.opts.onConnected();
        if (this.paused) conn.pause();
        err = await conn.ended;
      } catch (e) {
        err = e instanceof Error ? e : new Error(String(e));
        await conn.close().catch(() => undefined);
      }
      this.conn = null;
      if (streamed) failures = 0;
      if (this.abort.signal.aborted) break;
      if (this.restarting !== null) {
        log.info({ from: formatLsn(this.confirmed) }, `replication stream restarted ${this.restarting}`);
        this.restarting = null;
        continue;
      }
      attempt++;
      failures++;
      this.reconnects++;
      this.lastError = err ? streamError(err) : 'connection closed';
      const delay = backoffDelayMs(failures);
      log.warn({ err: this.lastError, retryInMs: delay, attempt: failures }, 'replication stream lost; reconnecting');
      this.state = 'reconnecting';
      await sleep(delay, this.abort.signal);
    }
    this.state = 'stopped';
  }
}

/**
 * The error, said for an operator. A standby refuses to decode a slot synchronized from its
 * primary (Postgres 17+) until it is promoted: that is a takeover not finished yet, retried like
 * any lost connection (docs/operations.md "Postgres failover").
 */
export function streamError(err: Error): string {
  const detail = (err as { detail?: unknown }).detail;
  const message = errorMessage(err);
  if (typeof detail === 'string' && /synchroni[sz]ed from the primary/i.test(detail)) {
    return `${message}: the server is a standby and the slot is synchronized from its primary; retrying until the standby is promoted`;
  }
  if (/recovery is in progress|in recovery|cannot execute .* during recovery/i.test(message)) return `${message}: the server is a standby; retrying until it is promoted`;
  return message;
}
