import pg from 'pg';
import { quoteIdent } from './replication-connection.js';
import type { Finding, Severity } from '../util/findings.js';

/**
 * Inspects and prepares the Postgres side: wal_level, privileges, tables and their keys, the
 * publication and the slot. `inspectSource` changes nothing (for `sluice check`);
 * `prepareSource` creates or extends what is missing (for `sluice start`).
 */
export interface SourceWants {
  slot: string;
  publication: string;
  /** table patterns per sink: "schema.table" or "schema.*" */
  sinks: readonly { name: string; path: string; tables: readonly string[] }[];
}

interface TableRow {
  schema: string;
  name: string;
  relkind: string;
  replident: string;
  has_pk: boolean;
  has_ident_index: boolean;
  is_partition: boolean;
}

export interface SourceState {
  serverVersion: number;
  walLevel: string;
  role: string;
  canReplicate: boolean;
  canCreate: boolean;
  /** qualified name → row, for every table the sinks name (schema.* expanded) */
  tables: Map<string, TableRow>;
  /** qualified names the patterns asked for that do not exist, with the sink path */
  missing: { table: string; path: string }[];
  emptySchemas: { pattern: string; path: string }[];
  publication: { exists: boolean; allTables: boolean; viaRoot: boolean; tables: Set<string>; schemas: Set<string> };
  slot: { exists: boolean; plugin: string | null; database: string | null; active: boolean; activePid: number | null; confirmedFlush: string | null };
  database: string;
}

export async function readSourceState(client: pg.Client, wants: SourceWants): Promise<SourceState> {
  const q = async <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> => (await client.query<T>(sql, params)).rows;
  const [info] = await q<{ v: string; wal: string; role: string; db: string; rep: boolean; su: boolean; can_create: boolean }>(
    `select current_setting('server_version_num') v, current_setting('wal_level') wal, current_user role, current_database() db,
            r.rolreplication rep, r.rolsuper su, has_database_privilege(current_database(), 'CREATE') can_create
       from pg_roles r where r.rolname = current_user`,
  );
  const tables = new Map<string, TableRow>();
  const missing: { table: string; path: string }[] = [];
  const emptySchemas: { pattern: string; path: string }[] = [];
  for (const sink of wants.sinks) {
    for (const [i, pattern] of sink.tables.entries()) {
      const [schema, name] = splitTable(pattern);
      const rows = await q<TableRow>(
        `select n.nspname as schema, c.relname as name, c.relkind::text as relkind, c.relreplident::text as replident,
                exists(select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary) as has_pk,
                exists(select 1 from pg_index i where i.indrelid = c.oid and i.indisreplident) as has_ident_index,
                c.relispartition as is_partition
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = $1 and ($2::text is null or c.relname = $2) and c.relkind in ('r', 'p') and not c.relispartition
          order by c.relname`,
        [schema, name === '*' ? null : name],
      );
      if (rows.length === 0) {
        if (name === '*') emptySchemas.push({ pattern, path: `${sink.path}.tables[${i}]` });
        else missing.push({ table: `${schema}.${name}`, path: `${sink.path}.tables[${i}]` });
      }
      for (const r of rows) tables.set(`${r.schema}.${r.name}`, r);
    }
  }
  const pubRows = await q<{ puballtables: boolean; pubviaroot: boolean }>(`select puballtables, pubviaroot from pg_publication where pubname = $1`, [wants.publication]);
  const pubTables = new Set<string>();
  const pubSchemas = new Set<string>();
  if (pubRows.length > 0) {
    for (const r of await q<{ t: string }>(`select schemaname || '.' || tablename as t from pg_publication_tables where pubname = $1`, [wants.publication])) pubTables.add(r.t);
    if (Number(info!.v) >= 150000) {
      for (const r of await q<{ s: string }>(
        `select n.nspname as s from pg_publication_namespace pn join pg_namespace n on n.oid = pn.pnnspid join pg_publication p on p.oid = pn.pnpubid where p.pubname = $1`,
        [wants.publication],
      )) pubSchemas.add(r.s);
    }
  }
  const slotRows = await q<{ plugin: string | null; database: string | null; active: boolean; active_pid: number | null; confirmed_flush_lsn: string | null }>(
    `select plugin, database, active, active_pid, confirmed_flush_lsn::text from pg_replication_slots where slot_name = $1`,
    [wants.slot],
  );
  const slot = slotRows[0];
  return {
    serverVersion: Number(info!.v),
    walLevel: info!.wal,
    role: info!.role,
    database: info!.db,
    canReplicate: info!.rep || info!.su,
    canCreate: info!.can_create || info!.su,
    tables,
    missing,
    emptySchemas,
    publication: { exists: pubRows.length > 0, allTables: pubRows[0]?.puballtables ?? false, viaRoot: pubRows[0]?.pubviaroot ?? false, tables: pubTables, schemas: pubSchemas },
    slot: {
      exists: slot !== undefined,
      plugin: slot?.plugin ?? null,
      database: slot?.database ?? null,
      active: slot?.active ?? false,
      activePid: slot?.active_pid ?? null,
      confirmedFlush: slot?.confirmed_flush_lsn ?? null,
    },
  };
}

/** Everything `sluice check` reports about Postgres, one finding per line. */
export function sourceFindings(s: SourceState, wants: SourceWants): Finding[] {
  const out: Finding[] = [];
  const add = (severity: Severity, message: string): void => void out.push({ severity, message });
  if (s.walLevel !== 'logical') {
    add('error', `Postgres wal_level is "${s.walLevel}" but Sluice needs "logical": run ALTER SYSTEM SET wal_level = logical; then restart Postgres`);
  } else add('ok', 'Postgres wal_level is logical');
  if (!s.canReplicate) add('error', `role "${s.role}" may not stream replication: run ALTER ROLE ${quoteIdent(s.role)} WITH REPLICATION;`);
  else add('ok', `role "${s.role}" has the REPLICATION attribute`);
  for (const m of s.missing) add('error', `${m.path}: table ${m.table} does not exist in database "${s.database}"`);
  for (const m of s.emptySchemas) add('warn', `${m.path}: schema pattern ${m.pattern} matches no table yet`);
  for (const [name, t] of s.tables) {
    const problem = keyProblem(name, t);
    if (problem) add('error', problem);
  }
  if (s.missing.length === 0 && s.tables.size > 0 && [...s.tables].every(([n, t]) => !keyProblem(n, t))) add('ok', `${s.tables.size} table(s) found, each with a usable primary key or replica identity`);
  const notPublished = [...s.tables.keys()].filter((t) => !isPublished(s, t));
  if (!s.publication.exists) {
    add(s.canCreate ? 'ok' : 'error', s.canCreate ? `publication "${wants.publication}" does not exist yet; sluice start will create it` : `publication "${wants.publication}" does not exist and role "${s.role}" may not create it: create it as a superuser (CREATE PUBLICATION ${quoteIdent(wants.publication)} FOR TABLE …)`);
  } else if (notPublished.length > 0) {
    add('ok', `publication "${wants.publication}" lacks ${notPublished.join(', ')}; sluice start will add them`);
  } else add('ok', `publication "${wants.publication}" covers every table`);
  if (!s.slot.exists) add('ok', `replication slot "${wants.slot}" does not exist yet; sluice start will create it`);
  else if (s.slot.plugin !== 'pgoutput') add('error', `replication slot "${wants.slot}" uses plugin "${s.slot.plugin ?? 'none (physical slot)'}", not pgoutput: drop it (SELECT pg_drop_replication_slot('${wants.slot}')) or set source.slot to another name`);
  else if (s.slot.database !== s.database) add('error', `replication slot "${wants.slot}" belongs to database "${s.slot.database ?? '?'}", not "${s.database}": set source.slot to another name`);
  else if (s.slot.active) add('warn', `replication slot "${wants.slot}" is in use by process ${s.slot.activePid ?? '?'} (another Sluice?); only one may stream it`);
  else add('ok', `replication slot "${wants.slot}" exists at ${s.slot.confirmedFlush ?? '?'}`);
  return out;
}

function keyProblem(name: string, t: TableRow): string | null {
  if (t.replident === 'n') return `table ${name} has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be replicated: run ALTER TABLE ${name} REPLICA IDENTITY DEFAULT; with a primary key`;
  if (t.has_pk || (t.replident === 'i' && t.has_ident_index)) return null;
  return `table ${name} has no primary key or replica identity index, so Redis keys cannot be derived: add one (ALTER TABLE ${name} ADD PRIMARY KEY (…)) or run ALTER TABLE ${name} REPLICA IDENTITY USING INDEX <unique index>;`;
}

function isPublished(s: SourceState, qualified: string): boolean {
  if (s.publication.allTables) return true;
  return s.publication.tables.has(qualified) || s.publication.schemas.has(qualified.split('.')[0]!);
}

/**
 * Creates the publication (publish_via_partition_root, so partitions appear as their root) and
 * the slot when missing, and adds the sinks' tables to an existing publication.
 * Fails with one clear sentence when the source cannot work.
 */
export async function prepareSource(client: pg.Client, wants: SourceWants, log: (msg: string) => void): Promise<SourceState & { slotCreated: boolean }> {
  let s = await readSourceState(client, wants);
  const errors = sourceFindings(s, wants).filter((f) => f.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('\n'));
  const schemaPatterns = [...new Set(wants.sinks.flatMap((k) => k.tables).filter((t) => t.endsWith('.*')).map((t) => t.slice(0, -2)))];
  const useSchemas = s.serverVersion >= 150000;
  const exactTables = [...s.tables.keys()].filter((t) => !(useSchemas && schemaPatterns.includes(t.split('.')[0]!)));
  const tableList = (names: string[]): string => names.map((n) => n.split('.').map(quoteIdent).join('.')).join(', ');
  if (!s.publication.exists) {
    const parts: string[] = [];
    if (exactTables.length > 0) parts.push(`TABLE ${tableList(exactTables)}`);
    if (useSchemas && schemaPatterns.length > 0) parts.push(`TABLES IN SCHEMA ${schemaPatterns.map(quoteIdent).join(', ')}`);
    const forWhat = parts.length > 0 ? ` FOR ${parts.join(', ')}` : '';
    await client.query(`CREATE PUBLICATION ${quoteIdent(wants.publication)}${forWhat} WITH (publish_via_partition_root = true)`);
    log(`created publication "${wants.publication}"${forWhat}`);
  } else if (!s.publication.allTables) {
    const add = exactTables.filter((t) => !isPublished(s, t));
    if (add.length > 0) {
      await client.query(`ALTER PUBLICATION ${quoteIdent(wants.publication)} ADD TABLE ${tableList(add)}`);
      log(`added ${add.join(', ')} to publication "${wants.publication}"`);
    }
    if (useSchemas) {
      const addSchemas = schemaPatterns.filter((sc) => !s.publication.schemas.has(sc));
      if (addSchemas.length > 0) {
        await client.query(`ALTER PUBLICATION ${quoteIdent(wants.publication)} ADD TABLES IN SCHEMA ${addSchemas.map(quoteIdent).join(', ')}`);
        log(`added schema(s) ${addSchemas.join(', ')} to publication "${wants.publication}"`);
      }
    }
  }
  const slotCreated = !s.slot.exists;
  if (slotCreated) {
    await client.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [wants.slot]);
    log(`created replication slot "${wants.slot}" (pgoutput)`);
  }
  s = await readSourceState(client, wants);
  return { ...s, slotCreated };
}

export function splitTable(pattern: string): [string, string] {
  const dot = pattern.indexOf('.');
  return dot === -1 ? ['public', pattern] : [pattern.slice(0, dot), pattern.slice(dot + 1)];
}
