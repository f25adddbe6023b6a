import type pg from 'pg';
import type { Change, TableInfo } from '../core/change.js';
import type { Tuple } from './pgoutput/types.js';
import { createTextClient, literal } from './text-client.js';
import { readCatalogTable, type CatalogTable } from './catalog.js';
import { splitTable } from './source-setup.js';

/**
 * Reads current rows by primary key, as text, for changes whose unchanged TOAST values Postgres
 * did not send. One query per table per transaction.
 */
export class RowFetcher {
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;
  private readonly catalog = new Map<string, CatalogTable>();

  constructor(private readonly url: string) {}

  /** For each change, the row as it is now (in the change's column order), or nothing if gone. */
  async fetch(changes: readonly Change[]): Promise<Map<Change, Tuple>> {
    const client = await this.connect();
    const out = new Map<Change, Tuple>();
    const byTable = new Map<TableInfo, Change[]>();
    for (const c of changes) byTable.set(c.table, [...(byTable.get(c.table) ?? []), c]);
    for (const [table, list] of byTable) {
      let cat = this.catalog.get(table.qualifiedName);
      if (!cat) {
        const read = await readCatalogTable(client, table.qualifiedName);
        if (!read) continue;
        cat = read;
        this.catalog.set(table.qualifiedName, cat);
      }
      const sqlType = (name: string): string => cat.sqlTypes[cat.info.columns.findIndex((c) => c.name === name)] ?? 'text';
      const keyNames = table.keyIndexes.map((i) => table.columns[i]!.name);
      const ident = (n: string): string => `"${n.replace(/"/g, '""')}"`;
      const tuples = list.map((c) => `(${table.keyIndexes.map((i, j) => literal(c.row[i] ?? '', sqlType(keyNames[j]!))).join(', ')})`);
      const sql = `select ${table.columns.map((c) => `${ident(c.name)}::text`).join(', ')} from ${cat.quoted} where (${keyNames.map(ident).join(', ')}) in (${tuples.join(', ')})`;
      const r = await client.query<(string | null)[]>({ text: sql, rowMode: 'array' });
      const rows = new Map<string, Tuple>();
      for (const row of r.rows) rows.set(table.keyIndexes.map((i) => row[i]).join('\u0000'), row);
      for (const c of list) {
        const found = rows.get(table.keyIndexes.map((i) => c.row[i]).join('\u0000'));
        if (found) out.set(c, found);
      }
    }
    return out;
  }

  /** The key columns of a table as the sinks' `{pk}` joins them (readPrimaryKey). */
  async primaryKey(qualified: string): Promise<string[] | null> {
    return readPrimaryKey(await this.connect(), qualified);
  }

  /** Closes the connection, and one being made: the next call connects again. */
  async close(): Promise<void> {
    const c = this.client;
    const pending = this.connecting;
    this.client = null;
    await c?.end().catch(() => undefined);
    const late = await pending?.catch(() => null);
    if (late) {
      if (this.client === late) this.client = null;
      await late.end().catch(() => undefined);
    }
  }

  /** One connection however many callers ask at once (lookups and sink definitions share it). */
  private connect(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const c = createTextClient(this.url, 'sluice-fetch');
      c.on('error', () => {
        if (this.client === c) this.client = null;
      });
      try {
        await c.connect();
      } finally {
        this.connecting = null;
      }
      this.client = c;
      return c;
    })();
    return this.connecting;
  }
}

/**
 * The key columns of a table as the sinks' `{pk}` joins them (null when it has none): those of
 * its primary key (REPLICA IDENTITY DEFAULT, and FULL, whose rows are keyed by the primary key)
 * or of its replica identity index (USING INDEX), in column order, as pgoutput marks them.
 */
export async function readPrimaryKey(client: pg.Client, qualified: string): Promise<string[] | null> {
  const [schema, name] = splitTable(qualified);
  const r = await client.query<{ attname: string }>(
    `select a.attname from pg_index i
       join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum = any(i.indkey::int2[])
      where n.nspname = $1 and c.relname = $2
        and (case when c.relreplident = 'i' then i.indisreplident else i.indisprimary end)
      order by a.attnum`,
    [schema, name],
  );
  return r.rows.length > 0 ? r.rows.map((x) => x.attname) : null;
}
