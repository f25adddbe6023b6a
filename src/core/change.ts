import type { Lsn } from './lsn.js';
import type { ColumnCodec } from './values.js';
import type { ReplicaIdentity, Tuple } from './tuple.js';

export type Action = 'insert' | 'update' | 'delete' | 'read';
export const ACTIONS: readonly Action[] = ['insert', 'update', 'delete', 'read'];

export interface ColumnInfo {
  readonly name: string;
  readonly typeOid: number;
  readonly isKey: boolean;
  readonly codec: ColumnCodec;
  /** `"name":` ready to be concatenated into a JSON object */
  readonly jsonName: string;
}

/** What the pipeline knows of a published table, rebuilt from every Relation message. */
export interface TableInfo {
  readonly relationOid: number;
  readonly schema: string;
  readonly name: string;
  /** "schema.name" */
  readonly qualifiedName: string;
  readonly replicaIdentity: ReplicaIdentity;
  readonly columns: readonly ColumnInfo[];
  /** indexes of the replica identity (primary key) columns, in column order */
  readonly keyIndexes: readonly number[];
}

/** One row change, in the Postgres text format, not yet turned into anything else. */
export interface Change {
  readonly action: Action;
  readonly table: TableInfo;
  /** the row after the change; for a delete, what is known of the old row */
  readonly row: Tuple;
  /** the old row when Postgres sent it ('O' = whole row, 'K' = identity columns only) */
  readonly oldRow: Tuple | null;
  readonly oldKind: 'K' | 'O' | null;
  /** position of the change inside its transaction (0-based) */
  readonly idx: number;
}

export interface Truncate {
  readonly tables: readonly TableInfo[];
  readonly idx: number;
}

/**
 * A committed Postgres transaction: the unit of atomic apply. A transaction larger than the
 * configured limit arrives as several chunks (`complete: false` on all but the last), each
 * applied atomically on its own.
 */
export interface Transaction {
  readonly xid: number;
  readonly commitLsn: Lsn;
  /** confirmed to Postgres once every sink has applied this transaction; 0 for an incomplete chunk */
  readonly endLsn: Lsn;
  readonly commitTimeMicros: bigint;
  readonly changes: readonly Change[];
  readonly truncates: readonly Truncate[];
  /** transactional logical messages (backfill watermarks), after the changes */
  readonly messages: readonly LogicalMessage[];
  readonly complete: boolean;
}

/** A message written with pg_logical_emit_message (watermarks, fences), as the stream carries it. */
export interface LogicalMessage {
  readonly tag: 'message';
  readonly xid?: number;
  readonly transactional: boolean;
  readonly lsn: Lsn;
  readonly prefix: string;
  readonly content: Buffer;
}
