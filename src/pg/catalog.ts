import type pg from 'pg';
import type { TableInfo } from '../core/change.js';
import { buildTableInfo, type ColumnShape } from '../core/table-info.js';
import type { ReplicaIdentity } from './pgoutput/types.js';
import type { TypeInfo } from '../core/values.js';
import { splitTable } from './source-setup.js';

export interface CatalogTable {
  readonly info: TableInfo;
  /** SQL type of each column (format_type), for casts in keyset predicates */
  readonly sqlTypes: readonly string[];
  /** "schema"."table" */
  readonly quoted: string;
  /** the table's size as the planner estimates it (-1: never analyzed) */
  readonly estimatedRows: number;
}

interface ColumnRow {
  oid: string;
  schema: string;
  name: string;
  replident: string;
  reltuples: string;
  attname: string;
  atttypid: string;
  sqltype: string;
  is_key: string;
}

/**
 * Reads a table's shape as pgoutput would describe it: columns in attribute order without
 * dropped and generated ones, the key being the primary key, else the replica identity index,
 * else (REPLICA IDENTITY FULL) every column.
 */
export async function readCatalogTable(client: pg.Client, qualified: string): Promise<CatalogTable | null> {
  const [schema, name] = splitTable(qualified);
  const r = await client.query<ColumnRow>(
    `with t as (
       select c.oid, n.nspname, c.relname, c.relreplident, c.reltuples,
              coalesce((select i.indkey from pg_index i where i.indrelid = c.oid and i.indisprimary),
                       (select i.indkey from pg_index i where i.indrelid = c.oid and i.indisreplident)) as keycols
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p'))
     select t.oid::text as oid, t.nspname as schema, t.relname as name, t.relreplident::text as replident, t.reltuples::text as reltuples,
            a.attname, a.atttypid::text as atttypid, format_type(a.atttypid, a.atttypmod) as sqltype,
            (case when t.keycols is null then t.relreplident = 'f' else a.attnum = any(t.keycols::int2[]) end)::text as is_key
       from t join pg_attribute a on a.attrelid = t.oid
      where a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
      order by a.attnum`,
    [schema, name],
  );
  const first = r.rows[0];
  if (!first) return null;
  const columns: ColumnShape[] = r.rows.map((c) => ({ name: c.attname, typeOid: Number(c.atttypid), isKey: c.is_key === 'true' }));
  const types = await readTypeInfo(client, columns.map((c) => c.typeOid));
  const info = buildTableInfo(
    { relationOid: Number(first.oid), schema: first.schema, name: first.name, replicaIdentity: first.replident as ReplicaIdentity, columns },
    (oid) => types.get(oid),
  );
  return {
    info,
    sqlTypes: r.rows.map((c) => c.sqltype),
    quoted: `"${first.schema.replace(/"/g, '""')}"."${first.name.replace(/"/g, '""')}"`,
    estimatedRows: Number(first.reltuples),
  };
}

/** pg_type facts for non-built-in types (enums, domains, arrays of them). */
async function readTypeInfo(client: pg.Client, oids: number[]): Promise<Map<number, TypeInfo>> {
  const out = new Map<number, TypeInfo>();
  let pending = [...new Set(oids.filter((o) => o >= 16384))];
  while (pending.length > 0) {
    const r = await client.query<{ oid: string; typname: string; typcategory: string; typelem: string; typbasetype: string }>(
      `select oid::text, typname, typcategory::text, typelem::text, typbasetype::text from pg_type where oid = any($1::oid[])`,
      [pending],
    );
    const next: number[] = [];
    for (const t of r.rows) {
      const info: TypeInfo = { name: t.typname, category: t.typcategory, elementOid: Number(t.typelem) || undefined, baseOid: Number(t.typbasetype) || undefined };
      out.set(Number(t.oid), info);
      for (const o of [info.elementOid, info.baseOid]) if (o && o >= 16384 && !out.has(o)) next.push(o);
    }
    pending = next;
  }
  return out;
}
