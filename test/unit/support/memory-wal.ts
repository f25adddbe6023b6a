// An in-memory WAL with a replication slot, and the change stream (ChangeSource) a Pipeline reads
// it through: for model tests of the runtime with no Postgres. Nothing happens on a timer: the test
// says when transactions and keepalives are delivered, so a run is the same every time.
//
//   MemoryWal ── the database and its slot: committed transactions, the slot's confirmed position
//     │            (monotonic, kept across "process" crashes), the WAL's end
//     └─► MemorySource (one per Pipeline): connections numbered by `generation`; each connection
//         delivers, when told to, the transactions whose endLsn is past the position it started
//         from, in commit order.
//
// restart() (a resumed sink) closes the connection on purpose: the next deliver() connects again
// first. Until then the old connection may still hand over what it had buffered (`stale`), as a
// socket being closed does.
import type { Change, TableInfo, Transaction } from '../../../src/core/change.js';
import { maxLsn, type Lsn, ZERO_LSN } from '../../../src/core/lsn.js';
import type { ChangeSource, ChangeStreamOptions } from '../../../src/pg/change-stream.js';
import type { SourceState } from '../../../src/pg/replication-source.js';
import { T, table } from './tables.js';

/** `public.items (id int4 primary key, v text)`: the table of the model tests. */
export const ITEMS: TableInfo = table('public', 'items', [
  ['id', T.int4, true],
  ['v', T.text],
]);

/** One row change of a model transaction: the row's id and its new value (null: deleted). */
export interface RowWrite {
  readonly id: number;
  readonly v: string | null;
  readonly action: 'insert' | 'update' | 'delete';
}

export class MemoryWal {
  readonly txns: Transaction[] = [];
  /** what each transaction wrote, for building expectations */
  readonly writes: (readonly RowWrite[])[] = [];
  /** the slot's confirmed_flush: only moves forward, survives crashes of the process */
  confirmed: Lsn = ZERO_LSN;
  /** the end of the WAL (after the last commit: other WAL not published follows it) */
  head: Lsn = 0x1000n;
  /** the source of the running Pipeline (a crashed one is detached) */
  current: MemorySource | null = null;
  private xid = 700;

  /** Commits a transaction of these row changes (in order) and returns it. */
  commit(writes: readonly RowWrite[]): Transaction {
    const commitLsn = this.head + 0x40n;
    const endLsn = commitLsn + 0x20n;
    this.head = endLsn + 0x8n;
    const changes: Change[] = writes.map((w, idx) => {
      const key: (string | null)[] = [String(w.id), null];
      if (w.action === 'delete') return { action: 'delete', table: ITEMS, row: key, oldRow: key, oldKind: 'K', idx };
      return { action: w.action, table: ITEMS, row: [String(w.id), w.v], oldRow: null, oldKind: null, idx };
    });
    const txn: Transaction = {
      xid: this.xid++,
      commitLsn,
      endLsn,
      commitTimeMicros: 800_000_000_000_000n + BigInt(this.txns.length) * 1000n,
      changes,
      truncates: [],
      messages: [],
      complete: true,
    };
    this.txns.push(txn);
    this.writes.push(writes);
    return txn;
  }

  /** WAL that is not published (other tables, other databases): the server's position moves on. */
  noise(): void {
    this.head += 0x100n;
  }

  /** How many transactions end at or before `lsn` (the ones a position or the slot covers). */
  countThrough(lsn: Lsn): number {
    let n = 0;
    while (n < this.txns.length && this.txns[n]!.endLsn <= lsn) n++;
    return n;
  }

  /** Index of the transaction committed at `commitLsn`, or -1. */
  indexOfCommit(commitLsn: Lsn): number {
    return this.txns.findIndex((t) => t.commitLsn === commitLsn);
  }

  /** The `makeStream` of a Pipeline: a new source for a new process; the old one is detached. */
  readonly makeStream = (opts: ChangeStreamOptions): ChangeSource => {
    this.current?.detach();
    this.current = new MemorySource(this, opts);
    return this.current;
  };
}

/** What a Pipeline sees of the WAL: connections, delivery on demand, confirm into the slot. */
export class MemorySource implements ChangeSource {
  state: SourceState = 'idle';
  readonly lastError: string | null = null;
  generation = 0;
  readonly inTransaction = false;
  readonly openRows = 0;
  readonly openBytes = 0;
  /** this process's confirmed position (0 until the first confirm, as ReplicationSource) */
  private confirmed: Lsn = ZERO_LSN;
  /** the next transaction this connection delivers */
  private cursor = 0;
  /** where this connection has sent up to (what a keepalive reports) */
  private sent: Lsn = ZERO_LSN;
  private paused = false;
  private restartPending = false;
  private detached = false;
  /** transactions handed over on the current connection */
  sinceConnect = 0;
  /** the furthest this process was sent on any connection */
  maxSent: Lsn = ZERO_LSN;

  constructor(
    private readonly wal: MemoryWal,
    private readonly opts: ChangeStreamOptions,
  ) {}

  get confirmedLsn(): Lsn {
    return this.confirmed;
  }

  /** a restart() has closed the connection and the new one is not made yet */
  get restarting(): boolean {
    return this.restartPending;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** everything committed has been handed over on the current connection */
  get caughtUp(): boolean {
    return !this.restartPending && this.cursor >= this.wal.txns.length;
  }

  start(from: Lsn): void {
    if (this.state !== 'idle') return;
    this.confirmed = maxLsn(this.confirmed, from);
    this.connect();
  }

  confirm(lsn: Lsn): void {
    if (this.detached) return;
    if (lsn > this.confirmed) this.confirmed = lsn;
    if (lsn > this.wal.confirmed) this.wal.confirmed = lsn;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  restart(): void {
    if (this.state !== 'streaming' || this.detached) return;
    this.restartPending = true;
  }

  stop(): Promise<void> {
    this.state = 'stopped';
    return Promise.resolve();
  }

  /** The connection drops and a new one streams from the confirmed position (Postgres resends). */
  reconnect(): void {
    if (this.state !== 'streaming' || this.detached) return;
    this.connect();
  }

  /**
   * Hands over up to `n` transactions on the current connection (a pending restart connects
   * first, unless `stale`: then the closing connection hands over what it still had). Stops
   * early while paused (the Pipeline may pause it from inside onTransaction). Returns how many.
   */
  deliver(n: number, stale = false): number {
    if (this.detached || this.state !== 'streaming') return 0;
    if (this.restartPending && !stale) this.connect();
    let done = 0;
    while (done < n && !this.paused && !this.detached && this.cursor < this.wal.txns.length) {
      const txn = this.wal.txns[this.cursor++]!;
      this.sent = txn.endLsn;
      this.maxSent = maxLsn(this.maxSent, txn.endLsn);
      done++;
      this.sinceConnect++;
      this.opts.onTransaction(txn, this.generation);
    }
    return done;
  }

  /**
   * A keepalive on the current connection (`stale`: on the one being closed by a restart): its
   * walEnd is where the walsender has sent up to, the WAL's end once everything was sent.
   */
  keepalive(stale = false): void {
    if (this.detached || this.state !== 'streaming' || this.paused) return;
    if (this.restartPending && !stale) this.connect();
    this.opts.onKeepalive(this.walEnd, this.generation);
  }

  /** What a keepalive on the current connection says now. */
  get walEnd(): Lsn {
    return this.cursor >= this.wal.txns.length ? maxLsn(this.sent, this.wal.head) : this.sent;
  }

  /** The process died: this source does nothing more. */
  detach(): void {
    this.detached = true;
    this.state = 'stopped';
  }

  private connect(): void {
    // Postgres streams from the slot's confirmed position when asked for an older one
    const from = maxLsn(this.confirmed, this.wal.confirmed);
    this.cursor = this.wal.countThrough(from);
    this.sent = from;
    this.sinceConnect = 0;
    this.restartPending = false;
    this.state = 'streaming';
    this.generation++;
    this.opts.onConnected(this.generation);
  }
}
