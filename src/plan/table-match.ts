import type { TableInfo } from '../core/change.js';

/**
 * Matches tables against a sink's `tables` list: "schema.table" or "schema.*" (the config
 * normalizes a bare "table" to "public.table").
 */
export class TableMatcher {
  private readonly exact = new Set<string>();
  private readonly schemas = new Set<string>();
  private readonly cache = new WeakMap<TableInfo, boolean>();

  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      if (p.endsWith('.*')) this.schemas.add(p.slice(0, -2));
      else this.exact.add(p.includes('.') ? p : `public.${p}`);
    }
  }

  matches(table: TableInfo): boolean {
    let m = this.cache.get(table);
    if (m === undefined) {
      m = this.exact.has(table.qualifiedName) || this.schemas.has(table.schema);
      this.cache.set(table, m);
    }
    return m;
  }
}
