import type { TableInfo } from '../core/change.js';
import { MessageError, type TemplatePart } from '../core/template.js';
import type { Tuple } from '../core/tuple.js';
import { toPlain } from '../core/values.js';

/**
 * The value of one column an option names (a geo sink's `longitude`/`latitude`, a bitmap's
 * `offset`), as plain text (toPlain). Its `parts` make it usable where a template is (Placement
 * reads them to tell whether the column is in the replica identity).
 */
export class ColumnValue {
  readonly parts: readonly TemplatePart[];
  private readonly indexes = new WeakMap<TableInfo, number>();

  /** `option`: the option naming the column, for messages ("the offset column \"slot\""). */
  constructor(
    readonly column: string,
    readonly option: string,
  ) {
    this.parts = [{ kind: 'column', name: column }];
  }

  /** The column's value (null: NULL). Throws MessageError when the table or the row lacks it. */
  read(table: TableInfo, row: Tuple): string | null {
    let idx = this.indexes.get(table);
    if (idx === undefined) {
      idx = table.columns.findIndex((c) => c.name === this.column);
      this.indexes.set(table, idx);
    }
    if (idx < 0) throw new MessageError(`the ${this.option} column "${this.column}" is not in table ${table.qualifiedName}`);
    const raw = row[idx];
    if (raw === undefined) throw new MessageError(`the ${this.option} column "${this.column}" is not in the row Postgres sent (unchanged TOAST or not in the replica identity)`);
    return toPlain(table.columns[idx]!.codec, raw);
  }

  /** The value, NULL being an error (as a template's column is). */
  render(table: TableInfo, row: Tuple): string {
    const v = this.read(table, row);
    if (v === null) throw new MessageError(`the ${this.option} column "${this.column}" is NULL`);
    return v;
  }
}

/** Shows a value in a failure reason, cut short. */
export function quoteValue(v: string): string {
  return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
}
