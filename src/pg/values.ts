// placeholder: the §3 value conversion is being written (see test/unit/values.test.ts)
export interface ColumnCodec {
  /** true when the §3 JSON encoding of this column is a JSON string */
  readonly stringy: boolean;
  /**
   * Converts one value from Postgres text output: returns the string itself when `stringy`
   * (to be JSON-quoted by the caller when JSON is wanted), otherwise a ready JSON literal.
   */
  convert(text: string): string;
}
