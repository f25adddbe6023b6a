import type { CatalogTable } from '../pg/catalog.js';
import { literal } from '../pg/text-client.js';

/**
 * `--from "updated_at>=2026-01-01"`: a partial backfill from a column value. Only
 * `column op value` with op one of >= > <= < =, so nothing but a comparison reaches SQL; the
 * value is a literal cast to the column's type.
 */
const CONDITION = /^\s*([A-Za-z_][A-Za-z0-9_$]*)\s*(>=|<=|>|<|=)\s*(.*?)\s*$/;

export function conditionSql(text: string, table: CatalogTable): string {
  const m = CONDITION.exec(text);
  if (!m || m[3] === '') throw new Error(`cannot read the condition ${JSON.stringify(text)}: write it as column>=value (operators: >= > <= < =)`);
  const [, column, op, rawValue] = m as unknown as [string, string, string, string];
  const idx = table.info.columns.findIndex((c) => c.name === column);
  if (idx < 0) throw new Error(`column "${column}" is not in table ${table.info.qualifiedName} (columns: ${table.info.columns.map((c) => c.name).join(', ')})`);
  const value = /^'.*'$/.test(rawValue) ? rawValue.slice(1, -1).replace(/''/g, "'") : rawValue;
  return `"${column.replace(/"/g, '""')}" ${op} ${literal(value, table.sqlTypes[idx]!)}`;
}
