import type { Change, TableInfo, Transaction, Truncate } from '../core/change.js';
import { buildTableInfo } from '../core/table-info.js';
import type { LogicalMessage, PgoutputMessage, RelationMessage } from './pgoutput/types.js';
import { builtinTypeOid, type TypeInfo } from '../core/values.js';
import type { Lsn } from '../core/lsn.js';

interface OpenTransaction {
  xid: number;
  finalLsn: Lsn;
  commitTimeMicros: bigint;
  changes: Change[];
  truncates: Truncate[];
  messages: LogicalMessage[];
  /** index of the next change (counts across chunks) */
  nextIdx: number;
  /** wire size of the changes held (pgoutput bytes) */
  bytes: number;
}

export interface AssemblerOutput {
  transaction(txn: Transaction): void;
  /** a non-transactional logical message (backfill watermarks), at its place in the stream */
  logicalMessage(msg: LogicalMessage): void;
  /** a table's shape changed (or was first seen) */
  relation?(table: TableInfo): void;
}

/**
 * Turns the pgoutput message sequence into whole transactions. Pure: no I/O, state is the
 * relation cache and the transaction being received. Relation messages are re-sent by Postgres
 * before the first change after a schema change, so the cache always matches the rows.
 */
export class TransactionAssembler {
  private readonly relations = new Map<number, TableInfo>();
  private readonly types = new Map<number, TypeInfo>();
  private open: OpenTransaction | null = null;

  /**
   * @param maxRows a transaction with more changes than this is handed over in chunks of this
   *   size (without protocol streaming, pgoutput sends only committed transactions, so a chunk
   *   can be applied before the Commit message arrives; memory stays bounded)
   * @param maxBytes the same bound in pgoutput bytes, for wide rows
   */
  constructor(
    private readonly out: AssemblerOutput,
    private readonly maxRows = Number.POSITIVE_INFINITY,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  /** Forget the transaction being received (the connection dropped; Postgres will resend it). */
  reset(): void {
    this.open = null;
  }

  get inTransaction(): boolean {
    return this.open !== null;
  }

  /** changes held for the transaction being received (counts toward backpressure) */
  get openRows(): number {
    return this.open?.changes.length ?? 0;
  }

  get openBytes(): number {
    return this.open?.bytes ?? 0;
  }

  table(relationOid: number): TableInfo | undefined {
    return this.relations.get(relationOid);
  }

  /** @param size the message's size on the wire, for the byte bound of chunks */
  push(msg: PgoutputMessage, size = 0): void {
    if (this.open) this.open.bytes += size;
    switch (msg.tag) {
      case 'begin':
        this.open = { xid: msg.xid, finalLsn: msg.finalLsn, commitTimeMicros: msg.commitTimeMicros, changes: [], truncates: [], messages: [], nextIdx: 0, bytes: 0 };
        return;
      case 'commit': {
        const open = this.requireOpen('commit');
        this.open = null;
        this.out.transaction({
          xid: open.xid,
          commitLsn: msg.commitLsn,
          endLsn: msg.endLsn,
          commitTimeMicros: msg.commitTimeMicros,
          changes: open.changes,
          truncates: open.truncates,
          messages: open.messages,
          complete: true,
        });
        return;
      }
      case 'relation': {
        const table = this.buildTable(msg);
        this.relations.set(msg.relationOid, table);
        this.out.relation?.(table);
        return;
      }
      case 'type': {
        // a domain arrives with its base type's name and schema: resolve it through that type
        const base = msg.schema === '' || msg.schema === 'pg_catalog' ? builtinTypeOid(msg.name) : undefined;
        this.types.set(msg.typeOid, base !== undefined && base !== msg.typeOid ? { name: msg.name, baseOid: base } : { name: msg.name });
        return;
      }
      case 'insert': {
        const open = this.requireOpen('insert');
        open.changes.push({ action: 'insert', table: this.requireTable(msg.relationOid), row: msg.newTuple, oldRow: null, oldKind: null, idx: open.nextIdx++ });
        this.maybeFlushChunk(open);
        return;
      }
      case 'update': {
        const open = this.requireOpen('update');
        open.changes.push({ action: 'update', table: this.requireTable(msg.relationOid), row: msg.newTuple, oldRow: msg.oldTuple, oldKind: msg.oldKind, idx: open.nextIdx++ });
        this.maybeFlushChunk(open);
        return;
      }
      case 'delete': {
        const open = this.requireOpen('delete');
        open.changes.push({ action: 'delete', table: this.requireTable(msg.relationOid), row: msg.oldTuple, oldRow: msg.oldTuple, oldKind: msg.oldKind, idx: open.nextIdx++ });
        this.maybeFlushChunk(open);
        return;
      }
      case 'truncate': {
        const open = this.requireOpen('truncate');
        open.truncates.push({ tables: msg.relationOids.map((oid) => this.requireTable(oid)), idx: open.nextIdx });
        return;
      }
      case 'message':
        if (!msg.transactional) this.out.logicalMessage(msg);
        else this.requireOpen('message').messages.push(msg);
        return;
      case 'origin':
        return;
      case 'stream_start':
      case 'stream_stop':
      case 'stream_commit':
      case 'stream_abort':
        throw new Error(`pgoutput ${msg.tag} received, but streaming of in-progress transactions was not requested`);
    }
  }

  private maybeFlushChunk(open: OpenTransaction): void {
    if (open.changes.length < this.maxRows && open.bytes < this.maxBytes) return;
    this.out.transaction({
      xid: open.xid,
      commitLsn: open.finalLsn,
      endLsn: 0n,
      commitTimeMicros: open.commitTimeMicros,
      changes: open.changes,
      truncates: open.truncates,
      messages: [],
      complete: false,
    });
    open.changes = [];
    open.truncates = [];
    open.bytes = 0;
  }

  private requireOpen(what: string): OpenTransaction {
    if (!this.open) throw new Error(`pgoutput ${what} outside a transaction (protocol out of sync)`);
    return this.open;
  }

  private requireTable(oid: number): TableInfo {
    const t = this.relations.get(oid);
    if (!t) throw new Error(`pgoutput change for relation ${oid} before its Relation message`);
    return t;
  }

  private buildTable(msg: RelationMessage): TableInfo {
    return buildTableInfo(msg, (oid) => this.types.get(oid));
  }

}
