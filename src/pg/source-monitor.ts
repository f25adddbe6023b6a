import pg from 'pg';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { pgClientConfig } from './connection-config.js';

export interface SourceSnapshot {
  currentLsn: string;
  confirmedFlushLsn: string | null;
  /** WAL the slot keeps on disk */
  retainedBytes: number;
  /** between the server's current position and the slot's confirmed position */
  lagBytes: number;
  active: boolean;
  at: Date;
}

/**
 * Polls the slot on a normal connection for status and metrics (lag in bytes, WAL retained).
 * Separate from the replication connection so a stalled stream is still visible.
 */
export class SourceMonitor {
  last: SourceSnapshot | null = null;
  private timer: NodeJS.Timeout | null = null;
  private client: pg.Client | null = null;
  private lastWarnAt = 0;

  constructor(
    private readonly url: string,
    private readonly slot: string,
    private readonly log: Logger,
    private readonly onSnapshot: (s: SourceSnapshot) => void,
    private readonly intervalMs = 5000,
    private readonly warnRetainedBytes = Number.POSITIVE_INFINITY,
    /** sinks that hold the slot back now (paused): named in the warning */
    private readonly holders: () => readonly string[] = () => [],
  ) {}

  start(): void {
    const tick = (): void => {
      this.poll().catch((err: unknown) => this.log.debug({ err: errorMessage(err) }, 'slot poll failed'));
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  async poll(): Promise<SourceSnapshot | null> {
    if (!this.client) {
      const c = new pg.Client(pgClientConfig(this.url, { application_name: 'sluice-monitor' }));
      c.on('error', () => {
        this.client = null;
      });
      await c.connect();
      this.client = c;
    }
    try {
      const r = await this.client.query<{ cur: string; conf: string | null; retained: string; lag: string | null; active: boolean }>(
        `select pg_current_wal_lsn()::text cur, confirmed_flush_lsn::text conf,
                coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::text retained,
                coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::text lag, active
           from pg_replication_slots where slot_name = $1`,
        [this.slot],
      );
      const row = r.rows[0];
      if (!row) return null;
      const snap: SourceSnapshot = {
        currentLsn: row.cur,
        confirmedFlushLsn: row.conf,
        retainedBytes: Number(row.retained),
        lagBytes: Number(row.lag ?? 0),
        active: row.active,
        at: new Date(),
      };
      this.last = snap;
      this.onSnapshot(snap);
      // WAL the slot holds stays on the server's disk: say so, with the size, every 5 minutes
      if (snap.retainedBytes > this.warnRetainedBytes && Date.now() - this.lastWarnAt > 300_000) {
        this.lastWarnAt = Date.now();
        const held = this.holders();
        const why = held.length > 0 ? `; paused sinks hold it back: ${held.join(', ')} (resume or delete them, or the disk fills up)` : '';
        this.log.warn(
          { slot: this.slot, retainedMb: Math.round(snap.retainedBytes / 1048576), lagMb: Math.round(snap.lagBytes / 1048576), active: snap.active, pausedSinks: held },
          `replication slot "${this.slot}" retains ${Math.round(snap.retainedBytes / 1048576)} MB of WAL on the Postgres server${why}`,
        );
      }
      return snap;
    } catch (err) {
      const c = this.client;
      this.client = null;
      await c?.end().catch(() => undefined);
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }
}
