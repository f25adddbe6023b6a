import pg from 'pg';
import { both as copyBoth } from 'pg-copy-streams';
import type { Duplex } from 'node:stream';
import type { Lsn } from '../core/lsn.js';
import { formatLsn } from '../core/lsn.js';
import { VALUE_SESSION_OPTIONS } from './text-client.js';
import { pgClientConfig } from './connection-config.js';
import { decodeReplicationMessage, encodeStandbyStatusUpdate } from './replication-protocol.js';
import { microsSince2000 } from '../core/time.js';
import type { ReplicationMessage } from './pgoutput/types.js';

/**
 * One physical replication connection streaming a logical slot with pgoutput.
 *
 *   connect() ──► streaming ──► (socket error | server closed | close())
 *
 * Reading is pull-based: frames are delivered to `onMessage` and when it returns false the
 * connection stops reading the socket (pause()) until resume(); TCP backpressure then reaches
 * the walsender, and WAL waits on the Postgres side. Standby status updates keep flowing from a
 * timer while paused, so the walsender never times out.
 */
export interface ReplicationConnectionOptions {
  url: string;
  slot: string;
  publication: string;
  /** where to start; Postgres starts from max(this, the slot's confirmed_flush_lsn) */
  startLsn: Lsn;
  /** pgoutput protocol version: 1, or 2 to stream large in-progress transactions (PG14+) */
  protoVersion: 1 | 2;
  statusIntervalMs: number;
  onMessage: (msg: ReplicationMessage) => void;
  /** called when the server asks for a reply or on the status timer: the position to confirm */
  flushedLsn: () => Lsn;
  receivedLsn: () => Lsn;
}

export class ReplicationConnection {
  private client: pg.Client | null = null;
  private stream: Duplex | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  readonly ended: Promise<Error | null>;
  private resolveEnded!: (err: Error | null) => void;

  constructor(private readonly opts: ReplicationConnectionOptions) {
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  async connect(): Promise<void> {
    const client = new pg.Client(
      pgClientConfig(this.opts.url, {
        replication: 'database',
        // Values are decoded in the walsender's session: fix the formats §3 conversion expects.
        options: VALUE_SESSION_OPTIONS,
      } as pg.ClientConfig),
    );
    this.client = client;
    client.on('error', (err) => this.finish(err));
    client.on('end', () => this.finish(this.closed ? null : new Error('replication connection closed by the server')));
    await client.connect();
    const o = this.opts;
    const params = [
      `proto_version '${o.protoVersion}'`,
      `publication_names '${quoteIdent(o.publication).replace(/'/g, "''")}'`,
      `messages 'true'`,
    ];
    if (o.protoVersion >= 2) params.push(`streaming 'on'`);
    const sql = `START_REPLICATION SLOT ${quoteIdent(o.slot)} LOGICAL ${formatLsn(o.startLsn)} (${params.join(', ')})`;
    const stream = copyBoth(sql, { alignOnCopyDataFrame: true });
    this.stream = stream;
    stream.on('error', (err: Error) => this.finish(err));
    stream.on('end', () => this.finish(this.closed ? null : new Error('replication stream ended')));
    stream.on('data', (frame: Buffer) => {
      let msg: ReplicationMessage;
      try {
        msg = decodeReplicationMessage(frame);
      } catch (err) {
        this.finish(err as Error);
        return;
      }
      try {
        this.opts.onMessage(msg);
      } catch (err) {
        // a protocol or decoding problem: drop this connection, the source reconnects
        this.finish(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      // answered after handling, so that an idle keepalive can confirm its own walEnd
      if (msg.tag === 'keepalive' && msg.replyRequested) this.sendStatus(false);
    });
    client.query(stream as unknown as pg.Submittable);
    this.timer = setInterval(() => this.sendStatus(false), this.opts.statusIntervalMs);
    this.timer.unref();
  }

  pause(): void {
    this.stream?.pause();
  }

  resume(): void {
    this.stream?.resume();
  }

  /** Sends a Standby Status Update with the current positions now. */
  sendStatus(replyRequested: boolean): void {
    const stream = this.stream;
    if (!stream || this.closed || stream.destroyed || !stream.writable) return;
    const flushed = this.opts.flushedLsn();
    stream.write(
      encodeStandbyStatusUpdate({
        written: this.opts.receivedLsn(),
        flushed,
        applied: flushed,
        nowMicros: microsSince2000(Date.now()),
        replyRequested,
      }),
    );
  }

  /** Sends a final status update and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return this.ended.then(() => undefined);
    this.sendStatus(false);
    this.closed = true;
    this.clearTimer();
    const client = this.client;
    try {
      this.stream?.end();
    } catch {
      // the stream may already be broken; closing the client below is what matters
    }
    try {
      await withTimeout(client?.end() ?? Promise.resolve(), 2000);
    } catch {
      // a half-dead socket: destroy it
      (client as unknown as { connection?: { stream?: { destroy(): void } } })?.connection?.stream?.destroy();
    }
    this.finish(null);
  }

  private clearTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private finish(err: Error | null): void {
    this.clearTimer();
    if (err && !this.closed) {
      this.closed = true;
      const client = this.client as unknown as { connection?: { stream?: { destroy(): void } } } | null;
      client?.connection?.stream?.destroy();
    }
    this.resolveEnded(err);
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
