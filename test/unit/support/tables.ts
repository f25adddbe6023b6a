// Builds TableInfo objects from a compact description, for tests of the pure core:
//   table('public', 'products', [['id', 20, true], ['name', 25], ['price', 1700]])
// Codecs come from codecFor (built-in type oids need no TypeInfo). Written independently of
// buildTableInfo, so tests of code that consumes a TableInfo do not depend on it.
import type { Change, ColumnInfo, TableInfo } from '../../../src/core/change.js';
import type { ReplicaIdentity, Tuple } from '../../../src/pg/pgoutput/types.js';
import { codecFor } from '../../../src/core/values.js';
import fc from 'fast-check';

/** [column name, type oid, part of the primary key?] */
export type ColumnDesc = readonly [name: string, typeOid: number, isKey?: boolean];

/** Built-in type oids used by the tests. */
export const T = {
  bool: 16,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  float8: 701,
  json: 114,
  jsonb: 3802,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  varchar: 1043,
  uuid: 2950,
  textArray: 1009,
  int4Array: 1007,
} as const;

let nextOid = 50_000;

export function table(
  schema: string,
  name: string,
  columns: readonly ColumnDesc[],
  opts: { replicaIdentity?: ReplicaIdentity; relationOid?: number } = {},
): TableInfo {
  const cols: ColumnInfo[] = columns.map(([n, typeOid, isKey]) => ({
    name: n,
    typeOid,
    isKey: isKey === true,
    codec: codecFor(typeOid),
    jsonName: `${JSON.stringify(n)}:`,
  }));
  const keyIndexes: number[] = [];
  cols.forEach((c, i) => {
    if (c.isKey) keyIndexes.push(i);
  });
  return {
    relationOid: opts.relationOid ?? nextOid++,
    schema,
    name,
    qualifiedName: `${schema}.${name}`,
    replicaIdentity: opts.replicaIdentity ?? 'd',
    columns: cols,
    keyIndexes,
  };
}

/** A tuple in column order from values by name; absent columns are NULL, `undefined` is unchanged TOAST. */
export function tuple(t: TableInfo, values: Record<string, string | null | undefined>): Tuple {
  return t.columns.map((c) => (c.name in values ? values[c.name] : null));
}

/** The identity-only old tuple ('K'): key columns, every other column NULL. */
export function keyTuple(t: TableInfo, values: Record<string, string | null>): Tuple {
  return t.columns.map((c) => (c.isKey ? (values[c.name] ?? null) : null));
}

export function insertChange(t: TableInfo, values: Record<string, string | null | undefined>, idx = 0): Change {
  return { action: 'insert', table: t, row: tuple(t, values), oldRow: null, oldKind: null, idx };
}

/**
 * An update. `old` is sent as 'K' (identity columns only) unless `oldKind` says 'O' (the whole
 * old row, REPLICA IDENTITY FULL); no `old` means Postgres sent no old tuple.
 */
export function updateChange(
  t: TableInfo,
  values: Record<string, string | null | undefined>,
  old?: Record<string, string | null>,
  oldKind: 'K' | 'O' = 'K',
  idx = 0,
): Change {
  if (!old) return { action: 'update', table: t, row: tuple(t, values), oldRow: null, oldKind: null, idx };
  return { action: 'update', table: t, row: tuple(t, values), oldRow: oldKind === 'O' ? tuple(t, old) : keyTuple(t, old), oldKind, idx };
}

export function deleteChange(t: TableInfo, values: Record<string, string | null>, oldKind: 'K' | 'O' = 'K', idx = 0): Change {
  const r = oldKind === 'O' ? tuple(t, values) : keyTuple(t, values);
  return { action: 'delete', table: t, row: r, oldRow: r, oldKind, idx };
}

/**
 * Characters for property tests: ASCII, template and JSON specials, BMP letters, an astral
 * character (surrogate pair) and NUL-free control characters. Cheaper to set up than
 * fast-check's 'binary' unit. (Postgres text never holds NUL.)
 */
export const textChar: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('a', 'Z', '0', ':', '{', '}', ',', ' ', 'é', '€', '😀', '\\', '"', '\n', '\t', '\u0001', 'NULL'),
  fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0xa0, max: 0xd7ff }).map((c) => String.fromCharCode(c)),
);

export const anyText = (maxLength = 20): fc.Arbitrary<string> => fc.string({ unit: textChar, maxLength });
