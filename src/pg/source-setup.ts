import pg from 'pg';
import { quoteIdent } from './replication-connection.js';
import type { Finding, Severity } from '../util/findings.js';
import { sinkColumnUses, type ColumnUse } from '../config/column-uses.js';
import type { SinkConfig } from '../config/schema.js';
import { closestKey } from '../config/schema-helpers.js';
import { SluiceError } from '../util/errors.js';
import { pgClientConfig } from './connection-config.js';

/**
 * Inspects and prepares the Postgres side: wal_level, privileges, tables and their keys, the
 * publication and the slot. `inspectSource` changes nothing (for `sluice check`);
 * `prepareSource` creates or extends what is missing (for `sluice start`).
 */
export interface SourceWants {
  slot: string;
  publication: string;
  /** table patterns per sink: "schema.table" or "schema.*" */
  sinks: readonly SinkWants[];
  /** source.failover_slot: the slot must be a failover slot (Postgres 17+) */
  failover?: boolean;
  /** source.url, for the replication connection that makes an existing slot a failover slot */
  url?: string;
}

export interface SinkWants {
  name: string;
  /** YAML path of the sink, e.g. `sinks[0]` */
  path: string;
  tables: readonly string[];
  /** columns its options name (config/column-uses.ts), checked against each of its tables */
  columns?: readonly ColumnUse[];
  /**
   * the sink's `filter` or `route` may keep a missing column from mattering (skip the table's rows,
   * give the key itself): a missing column is then a warning, not an error
   */
  functions?: readonly string[];
  /** created through the API: its column problems are warnings (see columnProblems) */
  api?: boolean;
  /** an aggregate sink: its tables must be REPLICA IDENTITY FULL and its sums not floats (aggregateProblems) */
  aggregate?: boolean;
}

/**
 * What the source must provide for these sinks: their tables, and the columns their options name.
 * A file sink's path is `sinks[i]` (its place in the file: file sinks come first in the list); a
 * sink `isApi` says was created through the API is `sink "name"`.
 */
export function sinkWantsOf(sinks: readonly SinkConfig[], isApi: (name: string) => boolean = () => false): SinkWants[] {
  return sinks.map((s, i) => {
    const api = isApi(s.name);
    return {
      name: s.name,
      path: api ? `sink "${s.name}"` : `sinks[${i}]`,
      tables: s.tables,
      columns: sinkColumnUses(s),
      functions: (['filter', 'route'] as const).filter((f) => s[f] !== undefined),
      ...(api ? { api } : {}),
      ...(s.type === 'aggregate' ? { aggregate: true } : {}),
    };
  });
}

/** A column as pgoutput sends it (generated columns are read too, to say why they are missing). */
export interface ColumnRow {
  name: string;
  /** format_type, e.g. `numeric(10,2)` */
  type: string;
  /** pg_type.typcategory 'N' (numbers: int2/4/8, float4/8, numeric, and domains over them) */
  numeric: boolean;
  /** a generated column: logical replication does not send it */
  generated: boolean;
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
  /** the tables each sink takes, by the sink's path (schema.* expanded) */
  sinkTables: Map<string, string[]>;
  /** the columns of every table in `tables`, in attribute order (dropped ones left out) */
  columns: Map<string, ColumnRow[]>;
  publication: { exists: boolean; allTables: boolean; viaRoot: boolean; tables: Set<string>; schemas: Set<string> };
  slot: {
    exists: boolean;
    plugin: string | null;
    database: string | null;
    active: boolean;
    activePid: number | null;
    confirmedFlush: string | null;
    /** a failover slot (Postgres 17+; null before) */
    failover: boolean | null;
    /** synchronized from the primary onto this standby (Postgres 17+; null before) */
    synced: boolean | null;
  };
  database: string;
  /** the server is a standby (pg_is_in_recovery()) */
  inRecovery: boolean;
  /** the primary's synchronized_standby_slots (Postgres 17+; null before, '' when unset) */
  standbySlots: string | null;
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
  const sinkTables = new Map<string, string[]>();
  for (const sink of wants.sinks) {
    const own: string[] = [];
    sinkTables.set(sink.path, own);
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
      for (const r of rows) {
        tables.set(`${r.schema}.${r.name}`, r);
        if (!own.includes(`${r.schema}.${r.name}`)) own.push(`${r.schema}.${r.name}`);
      }
    }
  }
  const columns = await readColumns(client, [...tables.keys()], Number(info!.v));
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
  const v17 = Number(info!.v) >= 170000;
  const slotRows = await q<{ plugin: string | null; database: string | null; active: boolean; active_pid: number | null; confirmed_flush_lsn: string | null; failover: boolean | null; synced: boolean | null }>(
    `select plugin, database, active, active_pid, confirmed_flush_lsn::text, ${v17 ? 'failover, synced' : 'null::bool failover, null::bool synced'}
       from pg_replication_slots where slot_name = $1`,
    [wants.slot],
  );
  const slot = slotRows[0];
  const [server] = await q<{ recovery: boolean; standby_slots: string | null }>(
    `select pg_is_in_recovery() recovery, ${v17 ? `current_setting('synchronized_standby_slots', true)` : 'null::text'} standby_slots`,
  );
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
    sinkTables,
    columns,
    publication: { exists: pubRows.length > 0, allTables: pubRows[0]?.puballtables ?? false, viaRoot: pubRows[0]?.pubviaroot ?? false, tables: pubTables, schemas: pubSchemas },
    slot: {
      exists: slot !== undefined,
      plugin: slot?.plugin ?? null,
      database: slot?.database ?? null,
      active: slot?.active ?? false,
      activePid: slot?.active_pid ?? null,
      confirmedFlush: slot?.confirmed_flush_lsn ?? null,
      failover: slot?.failover ?? null,
      synced: slot?.synced ?? null,
    },
    inRecovery: server?.recovery ?? false,
    standbySlots: server?.standby_slots ?? null,
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
  const columns = wants.sinks.flatMap((sink) => columnProblems(s, sink).map((p) => ({ severity: p.severity, message: `${sink.path}.${p.option}: ${p.message}` })));
  out.push(...columns);
  for (const sink of wants.sinks) for (const p of aggregateProblems(s, sink)) add(p.severity, `${sink.path}.${p.option}: ${p.message}`);
  const named = wants.sinks.reduce((n, sink) => n + (sink.columns?.length ?? 0), 0);
  if (named > 0 && columns.length === 0) add('ok', `every column the sinks' templates and options name exists in their tables`);
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
  out.push(...failoverFindings(s, wants));
  return out;
}

/**
 * A standby that may take over (docs/operations.md "Postgres failover"): the server must be the
 * primary; with source.failover_slot the slot must be a failover slot (Postgres 17+), and the
 * primary should hold logical changes back until the standby has them (synchronized_standby_slots).
 */
export function failoverFindings(
  s: Pick<SourceState, 'serverVersion' | 'inRecovery' | 'standbySlots'> & { slot: Pick<SourceState['slot'], 'exists' | 'failover' | 'synced'> },
  wants: Pick<SourceWants, 'slot' | 'failover'>,
): Finding[] {
  const out: Finding[] = [];
  if (s.inRecovery) {
    const synced = s.slot.synced === true ? ` (its slot "${wants.slot}" is synchronized from the primary, usable once this server is promoted)` : '';
    out.push({ severity: 'error', message: `Postgres is a standby (in recovery)${synced}: point source.url at the primary` });
  }
  const major = Math.floor(s.serverVersion / 10000);
  if (wants.failover !== true) {
    if (s.slot.failover === true) out.push({ severity: 'ok', message: `replication slot "${wants.slot}" is a failover slot` });
    return out;
  }
  if (major < 17) {
    out.push({ severity: 'error', message: `source.failover_slot: Postgres ${major} has no failover slots (they need Postgres 17 or later): set it to false; a standby promoted on Postgres ${major} has no slot (see "Postgres failover" in docs/operations.md)` });
    return out;
  }
  if (!s.slot.exists) out.push({ severity: 'ok', message: `replication slot "${wants.slot}" will be created as a failover slot` });
  else if (s.slot.failover === true) out.push({ severity: 'ok', message: `replication slot "${wants.slot}" is a failover slot` });
  else if (!s.inRecovery) out.push({ severity: 'warn', message: `replication slot "${wants.slot}" is not a failover slot: sluice start will make it one (ALTER_REPLICATION_SLOT ${quoteIdent(wants.slot)} ( FAILOVER true ) on a replication connection)` });
  if (s.inRecovery) return out;
  if (s.standbySlots === null || s.standbySlots.trim() === '') {
    out.push({
      severity: 'warn',
      message: `source.failover_slot is on but synchronized_standby_slots is not set on the primary: Sluice may apply changes the standby has not received, and after a takeover Redis would hold changes the new primary never had (ALTER SYSTEM SET synchronized_standby_slots = '<the standby's physical slot>'; SELECT pg_reload_conf();)`,
    });
  } else out.push({ severity: 'ok', message: `synchronized_standby_slots is "${s.standbySlots}": Sluice never gets ahead of that standby` });
  return out;
}

/** The columns of `tables` ("schema.table"), one query. Generated columns exist since Postgres 12. */
async function readColumns(client: pg.Client, tables: readonly string[], serverVersion: number): Promise<Map<string, ColumnRow[]>> {
  const out = new Map<string, ColumnRow[]>();
  if (tables.length === 0) return out;
  const generated = serverVersion >= 120000 ? `a.attgenerated <> ''` : 'false';
  const r = await client.query<{ t: string; name: string; type: string; numeric: boolean; generated: boolean }>(
    `select n.nspname || '.' || c.relname as t, a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
            ty.typcategory = 'N' as numeric, ${generated} as generated
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
       join pg_type ty on ty.oid = a.atttypid
      where a.attnum > 0 and not a.attisdropped and (n.nspname, c.relname) in (select split_part(x, '.', 1), substr(x, strpos(x, '.') + 1) from unnest($1::text[]) x)
      order by n.nspname, c.relname, a.attnum`,
    [tables],
  );
  for (const row of r.rows) {
    let list = out.get(row.t);
    if (!list) out.set(row.t, (list = []));
    list.push({ name: row.name, type: row.type, numeric: row.numeric, generated: row.generated });
  }
  return out;
}

/** A problem with a column a sink's option names (`option`: key, field, member, channel, score). */
export interface ColumnProblem {
  severity: Severity;
  option: string;
  message: string;
}

/**
 * The columns a sink's options name, against each of its tables: a column the table does not
 * have (with the closest one), a generated column (not replicated), a score that is not a number.
 * A missing column is an error, or a warning when the sink's filter or route may make it not
 * matter (`functions`) or the sink was created through the API (`api`: it must not keep Sluice
 * from starting, since the API is how it is fixed).
 */
export function columnProblems(s: Pick<SourceState, 'sinkTables' | 'columns'>, sink: SinkWants): ColumnProblem[] {
  const out: ColumnProblem[] = [];
  const uses = sink.columns ?? [];
  if (uses.length === 0) return out;
  const functions = sink.functions ?? [];
  for (const table of s.sinkTables.get(sink.path) ?? []) {
    const cols = s.columns.get(table);
    if (!cols) continue;
    for (const use of uses) {
      const col = cols.find((c) => c.name === use.column);
      let problem: string | null = null;
      if (!col) {
        const usable = cols.filter((c) => !c.generated).map((c) => c.name);
        const close = closestKey(use.column, usable);
        const list = usable.length > 20 ? `${usable.slice(0, 20).join(', ')}, …` : usable.join(', ');
        problem = `table ${table} has no column "${use.column}"${close !== undefined ? `; did you mean "${close}"?` : ` (its columns: ${list})`}`;
      } else if (col.generated) {
        problem = `column "${use.column}" of table ${table} is a generated column, which logical replication does not send: use the columns it is computed from`;
      } else if (!use.template && !col.numeric) {
        out.push({ severity: 'warn', option: use.option, message: `column "${use.column}" of table ${table} is ${col.type}, not a number: each row whose value is not a number becomes a failed message` });
      }
      if (problem === null) continue;
      if (sink.api) {
        out.push({ severity: 'warn', option: use.option, message: `${problem}: every row of it becomes a failed message (change the sink with PATCH /api/sinks/${sink.name}, or delete it)` });
      } else if (functions.length > 0) {
        out.push({ severity: 'warn', option: use.option, message: `${problem}: every row of it becomes a failed message unless the sink's ${functions.join(' or ')} ${functions.length > 1 ? 'skip it or set the value' : 'takes care of it'}` });
      } else {
        out.push({ severity: 'error', option: use.option, message: problem });
      }
    }
  }
  return out;
}

/**
 * An aggregate sink takes each update's and delete's contribution from the old row: its table must
 * be REPLICA IDENTITY FULL (else those changes are failed messages, and Redis drifts from GROUP BY).
 * A float column cannot be summed exactly. Errors; for a sink created through the API, warnings
 * at start (the API is how it is changed), errors when it is created.
 */
export function aggregateProblems(s: Pick<SourceState, 'sinkTables' | 'columns' | 'tables'>, sink: SinkWants, creating = false): ColumnProblem[] {
  const out: ColumnProblem[] = [];
  if (!sink.aggregate) return out;
  const severity: Severity = sink.api && !creating ? 'warn' : 'error';
  for (const table of s.sinkTables.get(sink.path) ?? []) {
    const t = s.tables.get(table);
    if (t && t.replident !== 'f') {
      const now = t.replident === 'd' ? 'DEFAULT' : t.replident === 'i' ? 'USING INDEX' : 'NOTHING';
      out.push({
        severity,
        option: 'tables',
        message: `table ${table} is REPLICA IDENTITY ${now}, but an aggregate sink needs the whole old row of every update and delete to take its contribution away: run ALTER TABLE ${table} REPLICA IDENTITY FULL;`,
      });
    }
    const cols = s.columns.get(table) ?? [];
    for (const use of sink.columns ?? []) {
      const col = use.template ? undefined : cols.find((c) => c.name === use.column);
      if (col && (col.type === 'real' || col.type === 'double precision')) {
        out.push({ severity, option: use.option, message: `column "${use.column}" of table ${table} is ${col.type}: a float cannot be summed exactly (each addition rounds); make it numeric (ALTER TABLE ${table} ALTER COLUMN ${use.column} TYPE numeric;)` });
      }
    }
  }
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
export async function prepareSource(client: pg.Client, wants: SourceWants, log: (msg: string) => void, warn: (msg: string) => void = log): Promise<SourceState & { slotCreated: boolean; publicationCreated: boolean }> {
  let s = await readSourceState(client, wants);
  const findings = sourceFindings(s, wants);
  const errors = findings.filter((f) => f.severity === 'error');
  if (errors.length > 0) throw new SluiceError('source_setup', errors.map((e) => e.message).join('\n'));
  // what sluice check would warn of about the sinks' columns (the rest is for check alone)
  for (const sink of wants.sinks) for (const p of columnProblems(s, sink)) if (p.severity === 'warn') warn(`${sink.path}.${p.option}: ${p.message}`);
  const schemaPatterns = [...new Set(wants.sinks.flatMap((k) => k.tables).filter((t) => t.endsWith('.*')).map((t) => t.slice(0, -2)))];
  const useSchemas = s.serverVersion >= 150000;
  const exactTables = [...s.tables.keys()].filter((t) => !(useSchemas && schemaPatterns.includes(t.split('.')[0]!)));
  const tableList = (names: string[]): string => names.map((n) => n.split('.').map(quoteIdent).join('.')).join(', ');
  const publicationCreated = !s.publication.exists;
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
  if (slotCreated && wants.failover === true) {
    await client.query(`select pg_create_logical_replication_slot($1, 'pgoutput', failover => true)`, [wants.slot]);
    log(`created replication slot "${wants.slot}" (pgoutput, failover)`);
  } else if (slotCreated) {
    await client.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [wants.slot]);
    log(`created replication slot "${wants.slot}" (pgoutput)`);
  } else if (wants.failover === true && s.slot.failover === false) {
    await alterSlotFailover(wants.url, wants.slot);
    log(`made replication slot "${wants.slot}" a failover slot`);
  }
  s = await readSourceState(client, wants);
  for (const f of failoverFindings(s, wants)) if (f.severity === 'warn') warn(f.message);
  return { ...s, slotCreated, publicationCreated };
}

/**
 * ALTER_REPLICATION_SLOT is a replication command (Postgres 17 has no SQL function for it): it
 * runs on a connection opened with replication=database, like the stream's own.
 */
async function alterSlotFailover(url: string | undefined, slot: string): Promise<void> {
  const command = `ALTER_REPLICATION_SLOT ${quoteIdent(slot)} ( FAILOVER true )`;
  if (url === undefined) throw new SluiceError('source_setup', `source.failover_slot: replication slot "${slot}" is not a failover slot: run ${command} on a replication connection`);
  const repl = new pg.Client(pgClientConfig(url, { replication: 'database', application_name: 'sluice-setup' } as pg.ClientConfig));
  repl.on('error', () => undefined);
  try {
    await repl.connect();
    await repl.query(command);
  } catch (err) {
    throw new SluiceError('source_setup', `source.failover_slot: could not make replication slot "${slot}" a failover slot (${err instanceof Error ? err.message : String(err)}): stop whatever streams it, or run ${command} on a replication connection`, { cause: err });
  } finally {
    await repl.end().catch(() => undefined);
  }
}

export function splitTable(pattern: string): [string, string] {
  const dot = pattern.indexOf('.');
  return dot === -1 ? ['public', pattern] : [pattern.slice(0, dot), pattern.slice(dot + 1)];
}
