import type pg from 'pg';
import { quoteIdent } from '../pg/replication-connection.js';
import { SluiceError } from '../util/errors.js';
import type { Logger } from '../util/log.js';

/**
 * The state schema's migrations, in order. Each one is applied once per database, inside the
 * transaction that records it in `<schema>.schema_migrations`; see state-store.ts for the scheme.
 *
 * Never edit or reorder a migration that has shipped: append a new one with the next version.
 * `sql` receives the quoted schema name and returns the statements to run.
 */
export interface Migration {
  version: number;
  description: string;
  sql(schema: string): string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'sinks and sink_events',
    sql: (s) => [
      `CREATE TABLE ${s}.sinks (
        name text PRIMARY KEY,
        origin text NOT NULL CHECK (origin IN ('api', 'config')),
        spec jsonb,
        paused boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT sinks_spec_matches_origin CHECK ((origin = 'api') = (spec IS NOT NULL))
      )`,
      `CREATE TABLE ${s}.sink_events (
        id bigserial PRIMARY KEY,
        sink text NOT NULL,
        action text NOT NULL CHECK (action IN ('created', 'updated', 'paused', 'resumed', 'deleted')),
        detail jsonb,
        at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX sink_events_sink_id ON ${s}.sink_events (sink, id DESC)`,
    ],
  },
  {
    version: 2,
    description: 'table_schemas: the column shape of each published table last seen in the stream',
    sql: (s) => [
      `CREATE TABLE ${s}.table_schemas (
        qualified_name text PRIMARY KEY,
        signature text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
    ],
  },
  {
    version: 3,
    description: 'created_objects: what Sluice created in the source database (sluice teardown drops those only)',
    sql: (s) => [
      `CREATE TABLE ${s}.created_objects (
        kind text NOT NULL CHECK (kind IN ('publication')),
        database text NOT NULL,
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kind, database, name)
      )`,
    ],
  },
];

/** The tables the migrations create (sluice teardown drops these and schema_migrations, and nothing else). */
export function stateTables(): string[] {
  const names = MIGRATIONS.flatMap((m) => m.sql('s').flatMap((stmt) => [...stmt.matchAll(/CREATE TABLE s\.(\w+)/g)].map((x) => x[1]!)));
  return ['schema_migrations', ...names];
}

/** The highest version this Sluice knows. */
export const LATEST_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/** Postgres' limit on identifier length (NAMEDATALEN - 1). */
const MAX_IDENT_BYTES = 63;

/** Throws SluiceError('state_schema_name') unless `name` is a lower-case SQL identifier Postgres keeps as is. */
export function validateSchemaName(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name) || name.length > MAX_IDENT_BYTES) {
    throw new SluiceError(
      'state_schema_name',
      `state schema name ${JSON.stringify(name)} is not allowed: use lower-case letters, digits and underscores, starting with a letter or underscore, at most ${MAX_IDENT_BYTES} characters`,
    );
  }
  if (name.startsWith('pg_')) {
    throw new SluiceError('state_schema_name', `state schema name ${JSON.stringify(name)} is not allowed: names starting with pg_ are reserved by Postgres`);
  }
  return name;
}

/**
 * Key of the advisory lock held while migrating: a constant class ('SLUI') and the schema name's
 * hash, so that Sluice processes sharing a database only wait for each other on the same schema.
 */
const LOCK_CLASS = 0x534c5549;
/** How long a start waits for another process that is migrating the same schema. */
const LOCK_TIMEOUT = '60s';

/**
 * Creates the schema and brings it to LATEST_VERSION, in one transaction that holds the
 * migration lock (so two processes starting together apply each migration once). Idempotent.
 * `where` names the database in messages (no credentials). Returns the version found before.
 */
export async function migrate(client: pg.ClientBase, schemaName: string, where: string, log: Logger, migrations: readonly Migration[] = MIGRATIONS): Promise<number> {
  const s = quoteIdent(validateSchemaName(schemaName));
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
    await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [LOCK_CLASS, schemaName]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const res = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${s}.schema_migrations`);
    const current = res.rows[0]?.v ?? 0;
    if (current > latest) {
      throw new SluiceError(
        'state_schema_too_new',
        `the state schema "${schemaName}" at ${where} is at version ${current}, this Sluice knows up to ${latest}: upgrade Sluice`,
      );
    }
    const pending = [...migrations].filter((m) => m.version > current).sort((a, b) => a.version - b.version);
    for (const m of pending) {
      for (const stmt of m.sql(s)) await client.query(stmt);
      await client.query(`INSERT INTO ${s}.schema_migrations (version, applied_at) VALUES ($1, now())`, [m.version]);
    }
    await client.query('COMMIT');
    if (pending.length > 0) log.info({ schema: schemaName, from: current, to: latest }, 'state schema migrated');
    return current;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw explainMigrationError(err, schemaName, where);
  }
}

function explainMigrationError(err: unknown, schemaName: string, where: string): unknown {
  if (err instanceof SluiceError) return err;
  const code = (err as { code?: string } | undefined)?.code;
  const msg = err instanceof Error ? err.message : String(err);
  if (code === '42501') {
    return new SluiceError(
      'state_schema_permission',
      `cannot create or migrate the state schema "${schemaName}" at ${where} (${msg}): grant this role CREATE on the database (or create the schema for it), or configure another state database`,
      { cause: err },
    );
  }
  if (code === '55P03') {
    return new SluiceError(
      'state_schema_locked',
      `another Sluice process has been migrating the state schema "${schemaName}" at ${where} for over ${LOCK_TIMEOUT}: check for a stuck process, then restart`,
      { cause: err },
    );
  }
  return new SluiceError('state_schema_migrate', `cannot migrate the state schema "${schemaName}" at ${where}: ${msg}`, { cause: err });
}
