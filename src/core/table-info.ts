import type { ColumnInfo, TableInfo } from './change.js';
import type { ReplicaIdentity } from './tuple.js';
import { codecFor, type TypeInfo } from './values.js';

export interface ColumnShape {
  readonly name: string;
  readonly typeOid: number;
  readonly isKey: boolean;
}

/**
 * Builds a TableInfo from a Relation message or from the catalog (backfills read tables the
 * stream has not described yet): one shape, so rows from both sources render identically.
 */
export function buildTableInfo(
  shape: { relationOid: number; schema: string; name: string; replicaIdentity: ReplicaIdentity; columns: readonly ColumnShape[] },
  typeInfo: (oid: number) => TypeInfo | undefined,
): TableInfo {
  const columns: ColumnInfo[] = shape.columns.map((c) => ({
    name: c.name,
    typeOid: c.typeOid,
    isKey: c.isKey,
    codec: codecFor(c.typeOid, typeInfo(c.typeOid), typeInfo),
    jsonName: `${JSON.stringify(c.name)}:`,
  }));
  const keyIndexes: number[] = [];
  columns.forEach((c, i) => {
    if (c.isKey) keyIndexes.push(i);
  });
  return {
    relationOid: shape.relationOid,
    schema: shape.schema,
    name: shape.name,
    qualifiedName: `${shape.schema}.${shape.name}`,
    replicaIdentity: shape.replicaIdentity,
    columns,
    keyIndexes,
  };
}

/** The identity of a row as text: its key columns' text values joined by a separator no value has. */
export function rowIdentity(table: TableInfo, row: readonly (string | null | undefined)[]): string {
  const k = table.keyIndexes;
  if (k.length === 1) return row[k[0]!] ?? '\u0000null';
  let s = '';
  for (let i = 0; i < k.length; i++) s += (i > 0 ? '\u0000' : '') + (row[k[i]!] ?? '\u0001null');
  return s;
}
