import pg from 'pg';
import { Cluster, type Redis } from 'ioredis';
import { configPathFrom, loadConfig } from '../config/load.js';
import type { RedisConnectionConfig, SluiceConfig } from '../config/schema.js';
import { explainPgConnectError, pgClientConfig } from '../pg/connection-config.js';
import { quoteIdent } from '../pg/replication-connection.js';
import { describePgUrl } from '../pg/url.js';
import { connectRedis, createRedisClient, describeRedis, explainRedisError } from '../redis/connect.js';
import { isOwnKey, OWN_KEY_PREFIXES, sinkOwnerKey, SLUICE_KEY_PATTERN } from '../core/keyspace.js';
import { NO_SYSTEM_IDENTIFIER, readInstanceName } from '../pg/instance.js';
import { ownKeyOf, ownSinks } from '../core/key-owner.js';
import { scanAll } from '../redis/scan-keys.js';
import { stateTables } from '../state/migrations.js';
import { errorMessage, SluiceError } from '../util/errors.js';
import { confirm } from './confirm.js';

export interface TeardownOptions {
  /** do not ask */
  yes: boolean;
  /** also delete Sluice's own keys in every Redis connection */
  keys: boolean;
}

/** What teardown found before changing anything. */
interface Survey {
  database: string;
  slot: { exists: boolean; plugin: string | null };
  publication: { exists: boolean; createdBySluice: string | null };
  state: { exists: boolean; migrated: boolean; whole: boolean; others: string[] };
}

const say = (line: string): void => void process.stdout.write(`${line}\n`);

async function connect(url: string, name: string, what: string): Promise<pg.Client> {
  const client = new pg.Client(pgClientConfig(url, { application_name: name, connectionTimeoutMillis: 10_000 }));
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw new SluiceError('pg_connect', `cannot connect to ${what} at ${describePgUrl(url)}: ${explainPgConnectError(err, url)}`, { cause: err });
  }
  return client;
}

/**
 * The state schema: whether it exists, whether it is Sluice's (schema_migrations), and whether it
 * holds anything else (then only Sluice's tables are dropped, never the schema with the rest).
 */
async function surveyState(client: pg.Client, schema: string, sourceDb: string | null, publication: string): Promise<{ state: Survey['state']; publicationCreated: string | null }> {
  const exists = (await client.query(`select 1 from pg_namespace where nspname = $1`, [schema])).rowCount === 1;
  if (!exists) return { state: { exists: false, migrated: false, whole: false, others: [] }, publicationCreated: null };
  const own = stateTables();
  const rels = await client.query<{ name: string; kind: string }>(
    `select c.relname as name, c.relkind::text as kind from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind not in ('i', 'I', 'S', 't')`,
    [schema],
  );
  const others = rels.rows.filter((r) => !(r.kind === 'r' && own.includes(r.name))).map((r) => r.name);
  const extra = await client.query<{ name: string }>(
    `select p.proname as name from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = $1
     union all
     select t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace where n.nspname = $1 and t.typrelid = 0 and t.typcategory <> 'A'`,
    [schema],
  );
  others.push(...extra.rows.map((r) => r.name));
  const migrated = rels.rows.some((r) => r.kind === 'r' && r.name === 'schema_migrations');
  let publicationCreated: string | null = null;
  if (sourceDb !== null && rels.rows.some((r) => r.kind === 'r' && r.name === 'created_objects')) {
    const r = await client.query<{ at: string }>(
      `select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') as at from ${quoteIdent(schema)}.created_objects where kind = 'publication' and database = $1 and name = $2`,
      [sourceDb, publication],
    );
    publicationCreated = r.rows[0]?.at ?? null;
  }
  return { state: { exists, migrated, whole: others.length === 0, others }, publicationCreated };
}

/**
 * Deletes this instance's own keys on a connection (core/key-owner.ts), on every master of a
 * Cluster; how many went, and how many of Sluice's keys were left as another instance's.
 */
async function deleteOwnKeys(name: string, spec: RedisConnectionConfig, instance: string, config: SluiceConfig): Promise<{ deleted: number; left: number }> {
  const client = createRedisClient(spec, 'sluice-teardown', { warn: () => undefined });
  client.on('error', () => undefined);
  try {
    await connectRedis(client).catch((err: unknown) => {
      throw new SluiceError('redis_connect', `redis.${name}: cannot use Redis at ${describeRedis(spec)}: ${explainRedisError(err, spec)}`);
    });
    const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
    const owners = new Map<string, string>();
    for (const node of nodes) {
      for (const key of await scanAll(node, `${sinkOwnerKey('')}*`)) {
        const owner = await node.get(key);
        if (owner !== null) owners.set(key.slice(sinkOwnerKey('').length), owner);
      }
    }
    const ours = {
      instance,
      connections: new Set(Object.keys(config.redis)),
      sinks: ownSinks(owners, config.sinks.filter((s) => s.redis === name).map((s) => s.name), instance),
    };
    let deleted = 0;
    let left = 0;
    for (const node of nodes) {
      const keys = (await scanAll(node, SLUICE_KEY_PATTERN)).filter(isOwnKey);
      const mine = keys.filter((k) => ownKeyOf(k, ours));
      left += keys.length - mine.length;
      // one key per UNLINK: on a Cluster the keys of one reply may be in different slots
      for (let i = 0; i < mine.length; i += 1000) deleted += (await Promise.all(mine.slice(i, i + 1000).map((k) => node.unlink(k)))).reduce((n, x) => n + x, 0);
    }
    return { deleted, left };
  } finally {
    client.disconnect();
  }
}

/**
 * `sluice teardown`: retires Sluice from a database. It drops the replication slot (so Postgres
 * stops keeping WAL for it), the publication if Sluice created it (recorded in the state store when
 * it did), and the state schema (only Sluice's tables when the schema holds anything else); with
 * `--keys`, Sluice's own keys in every Redis connection (positions, batch markers, failed messages,
 * backfill records, reverse indexes…; never the data the sinks wrote). It asks first (`--yes`
 * answers), and refuses while the slot is in use, that is while `sluice start` runs.
 */
export async function runTeardown(configArg: string | undefined, opts: TeardownOptions): Promise<number> {
  const config: SluiceConfig = loadConfig(configPathFrom(configArg));
  const { slot, publication } = config.source;
  const schema = config.state.schema;
  const sameDb = config.state.url === config.source.url;
  const source = await connect(config.source.url, 'sluice-teardown', 'Postgres');
  let state: pg.Client | null = null;
  try {
    const [info] = (await source.query<{ db: string }>(`select current_database() as db`)).rows;
    const database = info!.db;
    const instance = await readInstanceName(config.instance, slot, source, (err) => void process.stderr.write(`warn  ${NO_SYSTEM_IDENTIFIER} (${err})\n`));
    const slotRow = (await source.query<{ plugin: string | null; active: boolean; active_pid: number | null; database: string | null }>(
      `select plugin, active, active_pid, database from pg_replication_slots where slot_name = $1`,
      [slot],
    )).rows[0];
    if (slotRow?.active) {
      throw new SluiceError('slot_active', `replication slot "${slot}" is in use by process ${slotRow.active_pid ?? '?'} (a running sluice start?): stop it, then run sluice teardown again; nothing was changed`);
    }
    if (slotRow && slotRow.database !== null && slotRow.database !== database) {
      throw new SluiceError('slot_elsewhere', `replication slot "${slot}" belongs to database "${slotRow.database}", not "${database}": it is not this configuration's; nothing was changed`);
    }
    const pubExists = (await source.query(`select 1 from pg_publication where pubname = $1`, [publication])).rowCount === 1;
    state = sameDb ? source : await connect(config.state.url, 'sluice-teardown', 'the state database');
    const surveyed = await surveyState(state, schema, database, publication);
    const survey: Survey = {
      database,
      slot: { exists: slotRow !== undefined, plugin: slotRow?.plugin ?? null },
      publication: { exists: pubExists, createdBySluice: surveyed.publicationCreated },
      state: surveyed.state,
    };
    const where = describePgUrl(config.source.url);
    const stateWhere = sameDb ? 'the source database' : describePgUrl(config.state.url);

    // what will be done, and what will be left, before asking
    const plan: string[] = [];
    const kept: string[] = [];
    if (survey.slot.exists) plan.push(`drop the replication slot "${slot}" at ${where} (Postgres stops keeping WAL for it)`);
    else kept.push(`replication slot "${slot}": does not exist`);
    if (survey.publication.exists && survey.publication.createdBySluice !== null) plan.push(`drop the publication "${publication}" (Sluice created it on ${survey.publication.createdBySluice})`);
    else if (survey.publication.exists) kept.push(`publication "${publication}": Sluice did not create it (or no record says so), so it stays; DROP PUBLICATION ${quoteIdent(publication)}; removes it`);
    else kept.push(`publication "${publication}": does not exist`);
    if (survey.state.exists && !survey.state.migrated) kept.push(`schema "${schema}" in ${stateWhere}: not Sluice's state (no schema_migrations table), so it stays`);
    else if (survey.state.exists && survey.state.whole) plan.push(`drop the schema "${schema}" in ${stateWhere}: Sluice's state (sinks made through the API, pauses, their history)`);
    else if (survey.state.exists) plan.push(`drop Sluice's tables in schema "${schema}" in ${stateWhere} (${stateTables().join(', ')}); the schema stays, it also holds ${survey.state.others.slice(0, 5).join(', ')}${survey.state.others.length > 5 ? ', …' : ''}`);
    else kept.push(`state schema "${schema}": does not exist`);
    const connections = Object.keys(config.redis);
    if (opts.keys) plan.push(`delete this instance's ("${instance}") own keys (${OWN_KEY_PREFIXES.map((p) => `${p}*`).join(', ')}: its batch markers and those of the sinks it owns) in Redis ${connections.map((c) => `"${c}"`).join(', ')}; other instances' keys stay`);
    else kept.push(`Sluice's own keys in Redis (${OWN_KEY_PREFIXES.map((p) => `${p}*`).join(', ')}): --keys deletes them`);
    kept.push('what the sinks wrote to Redis stays (SCAN and UNLINK by key prefix to remove it)');

    if (plan.length === 0) {
      say('Nothing to tear down:');
      for (const k of kept) say(`  - ${k}`);
      return 0;
    }
    say('sluice teardown will, for good:');
    for (const p of plan) say(`  - ${p}`);
    say('and leave:');
    for (const k of kept) say(`  - ${k}`);
    if (!(await confirm('Tear down?', 'sluice teardown changes things for good', opts.yes))) {
      say('Nothing was changed.');
      return 1;
    }

    let failures = 0;
    const step = async (done: string, action: () => Promise<string | void>): Promise<void> => {
      try {
        const extra = await action();
        say(`ok    ${done}${extra ? ` ${extra}` : ''}`);
      } catch (err) {
        failures++;
        process.stderr.write(`error ${done}: ${errorMessage(err)}\n`);
      }
    };
    // Redis first: if the rest fails, the keys that name positions of a slot still there are gone
    // only when asked; the slot, then what describes it
    if (opts.keys) {
      for (const name of connections) {
        await step(`deleted Sluice's own keys in Redis "${name}"`, async () => {
          const { deleted, left } = await deleteOwnKeys(name, config.redis[name]!, instance, config);
          return `(${deleted} key(s)${left > 0 ? `; ${left} key(s) of other instances left` : ''})`;
        });
      }
    }
    if (survey.slot.exists) {
      await step(`dropped the replication slot "${slot}"`, async () => {
        await source.query(`select pg_drop_replication_slot($1)`, [slot]);
      });
    }
    if (survey.publication.exists && survey.publication.createdBySluice !== null) {
      await step(`dropped the publication "${publication}"`, async () => {
        await source.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(publication)}`);
      });
    }
    if (survey.state.exists && survey.state.migrated) {
      const st = state;
      if (survey.state.whole) {
        await step(`dropped the schema "${schema}"`, async () => {
          await st.query(`DROP SCHEMA ${quoteIdent(schema)} CASCADE`);
        });
      } else {
        await step(`dropped Sluice's tables in schema "${schema}"`, async () => {
          await st.query(`DROP TABLE IF EXISTS ${stateTables().map((t) => `${quoteIdent(schema)}.${quoteIdent(t)}`).join(', ')}`);
        });
      }
    }
    if (failures > 0) {
      process.stderr.write(`${failures} step(s) failed: fix what they say and run sluice teardown again (what is done stays done)\n`);
      return 1;
    }
    say('Sluice is torn down.');
    return 0;
  } finally {
    if (state !== null && state !== source) await state.end().catch(() => undefined);
    await source.end().catch(() => undefined);
  }
}
