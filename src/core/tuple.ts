/**
 * One column value of a TupleData:
 * - string: the value in Postgres's text output format
 * - null: SQL NULL
 * - undefined: an unchanged TOASTed value ('u'): Postgres did not send it, and it must never
 *   be written anywhere as if it were the value.
 */
export type TupleValue = string | null | undefined;
export type Tuple = TupleValue[];

/** 'd' default (primary key), 'n' nothing, 'f' full, 'i' index */
export type ReplicaIdentity = 'd' | 'n' | 'f' | 'i';

/**
 * Rows read in one go (a backfill chunk), kept compact and parsed when asked for: `row(i)` builds
 * row `i` anew on each call (equal rows, not the same array).
 */
export interface Rows {
  readonly length: number;
  row(i: number): Tuple;
  /** nothing reads the rows any more (their batch is applied): their memory may be used again */
  release?(): void;
  /** rows kept as lines of COPY text: the buffer, and where each line ends (its newline) */
  lines?(): { readonly buf: Buffer; readonly ends: Uint32Array };
}

/** A list of rows as `Rows`. */
export function rowsOf(list: readonly Tuple[]): Rows {
  return { length: list.length, row: (i) => list[i]! };
}

/** Every row, as a list. */
export function rowList(rows: Rows): Tuple[] {
  const out: Tuple[] = [];
  for (let i = 0; i < rows.length; i++) out.push(rows.row(i));
  return out;
}
