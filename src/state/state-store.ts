/**
 * Sluice's own state, kept in Postgres.
 *
 * What is kept: the sinks created through the HTTP API (`POST /api/sinks`, with their YAML
 * block as JSON, changed by `PATCH`), the paused flag of every sink (also of sinks defined in
 * sluice.yaml: those rows have origin 'config' and no spec, the file stays the source of truth
 * for their definition), and an audit trail of every change (sink_events).
 *
 * Why Postgres: this state must survive a restart of Sluice and the loss of Redis (a flushed or
 * replaced Redis must not forget that a sink exists or is paused). It lives in a schema of its
 * own (`sluice` unless configured) in the source database, or in a configured state database,
 * next to the data it describes and with the same durability.
 *
 * Migrations: `<schema>.schema_migrations(version, applied_at)` records which of the ordered
 * MIGRATIONS (migrations.ts) were applied. On every open, one transaction takes an advisory
 * transaction lock (pg_advisory_xact_lock), creates the schema if missing, and applies the
 * missing migrations in order, each recorded in the same transaction: two processes starting
 * together apply each migration once, a crash mid-way applies nothing, and a database already
 * migrated is left alone. A database at a newer version than this code knows is refused.
 *
 * Every mutating call writes its sink_events row in the same transaction as the change.
 */
import pg from 'pg';
import { pgClientConfig, explainPgConnectError } from '../pg/connection-config.js';
import { quoteIdent } from '../pg/replication-connection.js';
import { describePgUrl } from '../pg/url.js';
import { errorMessage, SluiceError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { migrate, validateSchemaName } from './migrations.js';

export interface StoredSink {
  name: string;
  /** 'api': created through POST /api/sinks (spec holds its YAML block as JSON); 'config': defined in sluice.yaml, the row only carries runtime state (spec null) */
  origin: 'api' | 'config';
  spec: Record<string, unknown> | null;
  paused: boolean;
  created_at: string; // ISO
  updated_at: string;
}

export type SinkAction = 'created' | 'updated' | 'paused' | 'resumed' | 'deleted';

export interface SinkEvent {
  id: string;
  sink: string;
  action: SinkAction;
  detail: unknown;
  at: string;
}

export interface StateStoreOptions {
  url: string;
  /** default 'sluice' */
  schema?: string;
  /** how errors name the database (default "the state database"; "Postgres" when it is the source) */
  label?: string;
  log: Logger;
}

export const DEFAULT_STATE_SCHEMA = 'sluice';
const DEFAULT_EVENT_LIMIT = 100;
const MAX_EVENT_LIMIT = 10_000;

/** timestamptz as ISO 8601 in UTC with microseconds, whatever the session's settings */
const iso = (col: string): string => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const SINK_COLUMNS = `name, origin, spec, paused, ${iso('created_at')} AS created_at, ${iso('updated_at')} AS updated_at`;
const EVENT_COLUMNS = `id::text AS id, sink, action, detail, ${iso('at')} AS at`;

type Tx = pg.PoolClient;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class StateStore {
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    /** the quoted schema name */
    private readonly s: string,
    readonly schema: string,
    /** host:port/database, for messages */
    private readonly where: string,
  ) {}

  /** Connects, creates the schema and runs the migrations. Throws SluiceError. */
  static async open(opts: StateStoreOptions): Promise<StateStore> {
    const schema = validateSchemaName(opts.schema ?? DEFAULT_STATE_SCHEMA);
    const where = describePgUrl(opts.url);
    const config = pgClientConfig(opts.url, { application_name: 'sluice-state' });
    const pool = new pg.Pool({ ...config, max: 2, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000 } as pg.PoolConfig);
    // an idle connection that breaks (server restart) is replaced on the next query
    pool.on('error', (err) => opts.log.warn({ err: errorMessage(err), db: where }, 'state database connection lost'));
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      await pool.end().catch(() => {});
      throw new SluiceError('state_connect', `cannot connect to ${opts.label ?? 'the state database'} at ${where}: ${explainPgConnectError(err, opts.url)}`, { cause: err });
    }
    try {
      await migrate(client, schema, where, opts.log);
    } catch (err) {
      client.release(true);
      await pool.end().catch(() => {});
      throw err;
    }
    client.release();
    return new StateStore(pool, quoteIdent(schema), schema, where);
  }

  /** Every stored sink (deleted ones are gone), by name. */
  async listSinks(): Promise<StoredSink[]> {
    return this.run(async (c) => (await c.query<StoredSink>(`SELECT ${SINK_COLUMNS} FROM ${this.s}.sinks ORDER BY name`)).rows);
  }

  async getSink(name: string): Promise<StoredSink | null> {
    return this.run((c) => this.selectSink(c, name, false));
  }

  /**
   * Stores a sink created through the API. SluiceError('sink_exists') if an API sink of that
   * name is stored. A 'config' row of that name is runtime state left by a sink since removed
   * from sluice.yaml (the caller checks the file first): it is replaced, pause included, and the
   * 'created' event says so.
   */
  async createSink(name: string, spec: Record<string, unknown>): Promise<StoredSink> {
    const json = this.specJson(spec);
    return this.tx(async (c) => {
      const exists = (): SluiceError => new SluiceError('sink_exists', `a sink named "${name}" already exists: choose another name or delete it first`);
      const existing = await this.selectSink(c, name, true);
      if (existing?.origin === 'api') throw exists();
      if (existing) await c.query(`DELETE FROM ${this.s}.sinks WHERE name = $1`, [name]);
      // (ON CONFLICT: a concurrent create of the same name loses cleanly)
      const res = await c.query<StoredSink>(
        `INSERT INTO ${this.s}.sinks (name, origin, spec) VALUES ($1, 'api', $2::jsonb) ON CONFLICT (name) DO NOTHING RETURNING ${SINK_COLUMNS}`,
        [name, json],
      );
      const row = res.rows[0];
      if (!row) throw exists();
      await this.event(c, name, 'created', existing ? { spec, replaced: { origin: existing.origin, paused: existing.paused } } : { spec });
      return row;
    });
  }

  /** Replaces the spec of an API sink. SluiceError('sink_not_found') when absent, ('sink_read_only') for a sluice.yaml sink. */
  async updateSink(name: string, spec: Record<string, unknown>): Promise<StoredSink> {
    const json = this.specJson(spec);
    return this.tx(async (c) => {
      const before = await this.selectSink(c, name, true);
      if (!before) throw this.notFound(name);
      if (before.origin === 'config') {
        throw new SluiceError('sink_read_only', `sink "${name}" is defined in sluice.yaml: change it there and restart Sluice`);
      }
      const res = await c.query<StoredSink>(
        `UPDATE ${this.s}.sinks SET spec = $2::jsonb, updated_at = now() WHERE name = $1 RETURNING ${SINK_COLUMNS}`,
        [name, json],
      );
      await this.event(c, name, 'updated', { before: before.spec, after: spec });
      return res.rows[0]!;
    });
  }

  /**
   * Pauses or resumes a sink. A stored row of either origin gets the flag (so a file sink that
   * shadows a stale API row of the same name can still be paused). Without a row: for a
   * sluice.yaml sink (`origin` 'config') a row without spec is created, an API sink is
   * SluiceError('sink_not_found'). An event is written only when the flag changes.
   */
  async setPaused(name: string, paused: boolean, origin: 'api' | 'config'): Promise<StoredSink> {
    return this.tx(async (c) => {
      if (origin === 'config') {
        // (ON CONFLICT: two concurrent first pauses of the same sink do not collide)
        const res = await c.query<StoredSink>(
          `INSERT INTO ${this.s}.sinks (name, origin, spec, paused) VALUES ($1, 'config', NULL, $2) ON CONFLICT (name) DO NOTHING RETURNING ${SINK_COLUMNS}`,
          [name, paused],
        );
        const inserted = res.rows[0];
        if (inserted) {
          if (paused) await this.event(c, name, 'paused', { origin });
          return inserted;
        }
      }
      const row = await this.selectSink(c, name, true);
      if (!row) throw this.notFound(name);
      if (row.paused === paused) return row;
      const res = await c.query<StoredSink>(
        `UPDATE ${this.s}.sinks SET paused = $2, updated_at = now() WHERE name = $1 RETURNING ${SINK_COLUMNS}`,
        [name, paused],
      );
      await this.event(c, name, paused ? 'paused' : 'resumed', { origin });
      return res.rows[0]!;
    });
  }

  /** Removes a sink's row (API sink, or a sluice.yaml sink's runtime state). False when there was none. */
  async deleteSink(name: string): Promise<boolean> {
    return this.tx(async (c) => {
      const res = await c.query<{ origin: string; spec: unknown; paused: boolean }>(
        `DELETE FROM ${this.s}.sinks WHERE name = $1 RETURNING origin, spec, paused`,
        [name],
      );
      const row = res.rows[0];
      if (!row) return false;
      await this.event(c, name, 'deleted', { origin: row.origin, spec: row.spec, paused: row.paused });
      return true;
    });
  }

  /** The audit trail, newest first: of one sink, or of all. `limit` defaults to 100 (at most 10000). */
  async events(name?: string, limit: number = DEFAULT_EVENT_LIMIT): Promise<SinkEvent[]> {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new SluiceError('bad_limit', `limit must be a positive integer (got ${String(limit)})`);
    }
    const n = Math.min(limit, MAX_EVENT_LIMIT);
    return this.run(async (c) => {
      const res = name === undefined
        ? await c.query<SinkEvent>(`SELECT ${EVENT_COLUMNS} FROM ${this.s}.sink_events ORDER BY id DESC LIMIT $1`, [n])
        : await c.query<SinkEvent>(`SELECT ${EVENT_COLUMNS} FROM ${this.s}.sink_events WHERE sink = $1 ORDER BY id DESC LIMIT $2`, [name, n]);
      return res.rows;
    });
  }

  /** Closes the pool; idempotent. */
  /** The column shape of every table last seen in the stream (schema changes are told from it). */
  async tableSchemas(): Promise<Map<string, string>> {
    const r = await this.pool.query<{ qualified_name: string; signature: string }>(`SELECT qualified_name, signature FROM ${this.s}.table_schemas`);
    return new Map(r.rows.map((x) => [x.qualified_name, x.signature]));
  }

  async saveTableSchema(qualifiedName: string, signature: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.s}.table_schemas (qualified_name, signature) VALUES ($1, $2)
       ON CONFLICT (qualified_name) DO UPDATE SET signature = excluded.signature, updated_at = now()`,
      [qualifiedName, signature],
    );
  }

  /**
   * Records that Sluice created `name` (a publication) in the source database `database`, so that
   * sluice teardown drops it (and leaves alone one it did not create).
   */
  async recordCreated(kind: 'publication', database: string, name: string): Promise<void> {
    await this.run((c) => c.query(`INSERT INTO ${this.s}.created_objects (kind, database, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [kind, database, name]));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  // -------------------------------------------------------------------------------------------

  private async selectSink(c: Tx, name: string, forUpdate: boolean): Promise<StoredSink | null> {
    const res = await c.query<StoredSink>(`SELECT ${SINK_COLUMNS} FROM ${this.s}.sinks WHERE name = $1${forUpdate ? ' FOR UPDATE' : ''}`, [name]);
    return res.rows[0] ?? null;
  }

  private async event(c: Tx, sink: string, action: SinkAction, detail: unknown): Promise<void> {
    await c.query(`INSERT INTO ${this.s}.sink_events (sink, action, detail) VALUES ($1, $2, $3::jsonb)`, [sink, action, JSON.stringify(detail ?? null)]);
  }

  private specJson(spec: Record<string, unknown>): string {
    if (!isPlainObject(spec)) throw new SluiceError('bad_sink_spec', 'a sink spec must be a JSON object (the sink\'s YAML block)');
    return JSON.stringify(spec);
  }

  private notFound(name: string): SluiceError {
    return new SluiceError('sink_not_found', `there is no sink named "${name}"`);
  }

  /** Runs `fn` on a pooled connection; unexpected database errors become SluiceError('state_db'). */
  private async run<T>(fn: (c: Tx) => Promise<T>): Promise<T> {
    if (this.closed) throw new SluiceError('state_closed', 'the state store is closed');
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (err) {
      throw this.dbError(err);
    }
    let broken = false;
    try {
      return await fn(c);
    } catch (err) {
      broken = !(err instanceof SluiceError);
      throw this.dbError(err);
    } finally {
      c.release(broken);
    }
  }

  /** Runs `fn` in a transaction (its events commit with its change). */
  private async tx<T>(fn: (c: Tx) => Promise<T>): Promise<T> {
    return this.run(async (c) => {
      await c.query('BEGIN');
      try {
        const out = await fn(c);
        await c.query('COMMIT');
        return out;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  }

  private dbError(err: unknown): unknown {
    if (err instanceof SluiceError) return err;
    return new SluiceError('state_db', `the state database at ${this.where} failed: ${errorMessage(err)}`, { cause: err });
  }
}
