import type { Change, TableInfo, Transaction } from '../core/change.js';
import { hasUnchangedToast } from '../core/toast.js';
import { RowFetcher } from '../pg/row-fetcher.js';
import { keyedByPrimaryKey, type SinkRuntime } from '../plan/route.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';

/** The replication connection as the lookups see it: they may give it up (see RowLookups). */
export interface LookupStream {
  /** counts connections */
  generation(): number;
  /** closes the connection; a new one streams from the confirmed position */
  restart(reason: string): void;
}

/**
 * What a transaction may need from Postgres before it can be planned: the primary key of a
 * REPLICA IDENTITY FULL table (pgoutput marks every column as key), and unchanged TOASTed
 * values Postgres did not send. A lookup that fails is retried with backoff until it succeeds
 * or Sluice stops; meanwhile `lastError` says why, and /health reports it.
 *
 * Reading the stream waits for the lookup, so nothing after the transaction can be confirmed.
 * When a lookup fails because Postgres is shutting down or gone, the replication connection is
 * given up (once per connection): a fast shutdown's walsender exits only once its client has
 * confirmed the end of the WAL or closed the connection, and would otherwise wait for Sluice
 * while Sluice waits for Postgres. The transaction is streamed again from the slot on the next
 * connection; what was taken in twice is skipped by position, as after any reconnect.
 */
export class RowLookups {
  lastError: string | null = null;
  private readonly fetcher: RowFetcher;
  private readonly primaryKeys = new Map<string, readonly string[] | null>();
  private readonly keyedTables = new WeakMap<TableInfo, TableInfo>();
  private readonly abort = new AbortController();
  /** the generation of the connection last given up */
  private gaveUp = -1;

  constructor(
    url: string,
    private readonly log: Logger,
    private readonly stream: LookupStream,
  ) {
    this.fetcher = new RowFetcher(url);
  }

  /** Does `txn` need a lookup before planning? */
  needs(txn: Transaction, sinks: readonly SinkRuntime[]): boolean {
    for (const c of txn.changes) {
      if (c.table.replicaIdentity === 'f' && !this.primaryKeys.has(c.table.qualifiedName)) return true;
      if (needsToast(c) && sinks.some((s) => s.matcher.matches(c.table))) return true;
    }
    return false;
  }

  /** Looks up what `txn` needs, retrying until it succeeds (or rejects once stopped). */
  async prepare(txn: Transaction, sinks: readonly SinkRuntime[]): Promise<Transaction> {
    for (let attempt = 1; ; attempt++) {
      if (this.abort.signal.aborted) throw new Error('Sluice is stopping');
      try {
        const out = await this.lookup(txn, sinks);
        if (this.lastError !== null) this.log.info('Postgres row lookups work again');
        this.lastError = null;
        return out;
      } catch (err) {
        this.lastError = `row lookups in Postgres fail (unchanged TOAST values, primary keys): ${errorMessage(err)}`;
        const delay = backoffDelayMs(attempt, 200, 5000);
        this.log.warn({ err: errorMessage(err), retryInMs: delay, attempt }, 'Postgres row lookup failed; will retry');
        await this.fetcher.close();
        if (postgresGoingAway(err) && this.stream.generation() !== this.gaveUp) {
          this.gaveUp = this.stream.generation();
          this.log.warn({ err: errorMessage(err) }, 'Postgres is shutting down or gone: giving up the replication connection while the lookup waits (the transaction is streamed again)');
          this.stream.restart('after row lookups found Postgres shutting down or gone');
        }
        await sleep(delay, this.abort.signal);
      }
    }
  }

  /** With REPLICA IDENTITY FULL, the changes re-keyed by the table's primary key. */
  keyed(txn: Transaction): Transaction {
    if (!txn.changes.some((c) => c.table.replicaIdentity === 'f')) return txn;
    return { ...txn, changes: txn.changes.map((c) => (c.table.replicaIdentity === 'f' ? { ...c, table: this.keyedTable(c.table) } : c)) };
  }

  /**
   * A table's key columns as the sinks' `{pk}` joins them, read on the lookups' connection
   * (sink definitions for clients: runtime/definitions.ts).
   */
  async primaryKey(qualified: string): Promise<string[] | null> {
    if (this.abort.signal.aborted) throw new Error('Sluice is stopping');
    return this.fetcher.primaryKey(qualified);
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.fetcher.close();
  }

  private keyedTable(table: TableInfo): TableInfo {
    let t = this.keyedTables.get(table);
    if (!t) {
      t = keyedByPrimaryKey(table, this.primaryKeys.get(table.qualifiedName));
      this.keyedTables.set(table, t);
    }
    return t;
  }

  private async lookup(txn: Transaction, sinks: readonly SinkRuntime[]): Promise<Transaction> {
    for (const c of txn.changes) {
      const name = c.table.qualifiedName;
      if (c.table.replicaIdentity === 'f' && !this.primaryKeys.has(name)) this.primaryKeys.set(name, await this.fetcher.primaryKey(name));
    }
    const wanted = txn.changes.filter((c) => needsToast(c) && sinks.some((s) => s.matcher.matches(c.table)));
    return wanted.length === 0 ? txn : this.fillToast(txn, wanted);
  }

  /**
   * Unchanged TOASTed values that Postgres did not send (no REPLICA IDENTITY FULL): read from
   * the row as it is now. It is never older than this change, since the column was not changed
   * by it, and any later change of it follows in the stream. A row deleted since is dropped
   * here: its delete follows in the stream too.
   */
  private async fillToast(txn: Transaction, wanted: readonly Change[]): Promise<Transaction> {
    const current = await this.fetcher.fetch(wanted);
    const changes: Change[] = [];
    for (const c of txn.changes) {
      if (!wanted.includes(c)) {
        changes.push(c);
        continue;
      }
      const now = current.get(c);
      if (!now) {
        this.log.debug({ table: c.table.qualifiedName, idx: c.idx }, 'row deleted since; its unchanged TOAST values are not needed');
        continue;
      }
      changes.push({ ...c, row: c.row.map((v, i) => (v === undefined ? now[i] : v)) });
    }
    return { ...txn, changes };
  }
}

/** An update whose unchanged TOAST values were not sent with an old row to fill them from. */
function needsToast(c: Change): boolean {
  return c.action === 'update' && !(c.oldKind === 'O' && c.oldRow) && hasUnchangedToast(c);
}

/**
 * Postgres is shutting down, starting, or not there: SQLSTATE class 57P (admin_shutdown,
 * crash_shutdown, cannot_connect_now, …), a refused or reset connection, or one that ended.
 */
export function postgresGoingAway(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (code.startsWith('57P') || code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE')) return true;
  return /Connection terminated|terminating connection|database system is (shutting down|starting up)/i.test(errorMessage(err));
}
