import type pg from 'pg';
import { Cluster } from 'ioredis';
import { to as copyTo } from 'pg-copy-streams';
import type { SinkConfig, SluiceConfig } from '../config/schema.js';
import type { Change, TableInfo } from '../core/change.js';
import { recordJson, type MessageMeta } from '../core/render.js';
import { readCatalogTable, type CatalogTable } from '../pg/catalog.js';
import { literal } from '../pg/text-client.js';
import { splitTable } from '../pg/source-setup.js';
import type { Tuple } from '../pg/pgoutput/types.js';
import { CopyTextParser } from '../backfill/copy-text.js';
import type { RedisClient } from '../redis/connect.js';
import { createSink } from '../sinks/index.js';
import type { RedisCommand, Sink } from '../sinks/sink.js';
import { SluiceError } from '../util/errors.js';
import { isOwnKey } from '../core/keyspace.js';
import { geohashScore } from '../sinks/geo-sink.js';

/**
 * What verify and repair share: reading a sink's tables in key order, turning each row into what
 * the sink should hold in Redis (by planning it with the sink's own pure `plan()`), and scanning
 * key prefixes.
 */

/** Why a sink cannot be verified (exit 2), or null. */
export function unverifiableReason(cfg: SinkConfig): string | null {
  if (cfg.type === 'list' || cfg.type === 'stream' || cfg.type === 'pubsub') {
    return `sink type ${cfg.type} keeps history, not state: verify does not apply`;
  }
  if (cfg.type === 'hyperloglog') {
    return 'a hyperloglog sink keeps an estimate of distinct elements, not the rows: verify does not apply (compare PFCOUNT with count(distinct …) yourself, allowing for its 0.81% standard error)';
  }
  const fns = (['filter', 'transform', 'route'] as const).filter((f) => cfg[f] !== undefined);
  if (fns.length > 0) return `sink "${cfg.name}" has ${fns.join(', ')}: verify cannot reproduce what user functions decide, so it cannot tell what Redis should hold`;
  return null;
}

/** The Redis type every key of a sink has (TYPE's answer). */
export function redisTypeOf(cfg: SinkConfig): string {
  return cfg.type === 'hash' ? 'hash' : cfg.type === 'set' ? 'set' : cfg.type === 'zset' || cfg.type === 'geo' ? 'zset' : 'string';
}

/** One thing Redis should hold for a row. `prefix`: only the value's start is known (message envelopes). */
export type Expectation =
  | { kind: 'string'; key: string; value: string; prefix: boolean }
  | { kind: 'hash'; key: string; fields: Map<string, string> }
  | { kind: 'field'; key: string; field: string; value: string; prefix: boolean }
  | { kind: 'member'; key: string; member: string }
  | { kind: 'zmember'; key: string; member: string; score: string }
  /** a bitmap's bit, set */
  | { kind: 'bit'; key: string; offset: string };

export interface PlannedRow {
  readonly expectations: Expectation[];
  /** the sink refuses the row (key too long, value too big, …): it is a failed message, not Redis state */
  readonly failed: string | null;
}

const META: Omit<MessageMeta, 'sinkName'> = { commitLsn: 0n, commitTimeMicros: 0n };

/** Plans a row as a backfill `read` and reads the commands back as expectations. */
export function planRow(sink: Sink, cfg: SinkConfig, table: TableInfo, row: Tuple): PlannedRow {
  const change: Change = { action: 'read', table, row, oldRow: null, oldKind: null, idx: 0 };
  const commands: RedisCommand[] = [];
  let failed: string | null = null;
  sink.plan(change, { ...META, sinkName: cfg.name }, {
    command: (cmd) => commands.push(cmd),
    fail: (_c, reason) => {
      failed = reason;
    },
  });
  if (failed !== null) return { expectations: [], failed };
  const envelope = 'value' in cfg && cfg.value === 'message';
  // a message envelope holds commit metadata verify cannot know: only its record part is compared
  const value = (v: string): { value: string; prefix: boolean } => (envelope ? { value: `{"record":${recordJson(table, row)},`, prefix: true } : { value: v, prefix: false });
  const out: Expectation[] = [];
  const hashes = new Map<string, Map<string, string>>();
  for (const [name, ...args] of commands) {
    if (args[0] === undefined || isOwnKey(args[0])) continue; // reverse index, positions: not row state
    switch (name!.toUpperCase()) {
      case 'SET':
        out.push({ kind: 'string', key: args[0]!, ...value(args[1]!) });
        break;
      case 'HSET':
        if (cfg.type === 'hash' && cfg.mode === 'field') {
          for (let i = 1; i + 1 < args.length; i += 2) out.push({ kind: 'field', key: args[0]!, field: args[i]!, ...value(args[i + 1]!) });
        } else {
          let fields = hashes.get(args[0]!);
          if (!fields) {
            fields = new Map();
            hashes.set(args[0]!, fields);
            out.push({ kind: 'hash', key: args[0]!, fields });
          }
          for (let i = 1; i + 1 < args.length; i += 2) fields.set(args[i]!, args[i + 1]!);
        }
        break;
      case 'HDEL': {
        const fields = hashes.get(args[0]!);
        if (fields) for (const f of args.slice(1)) fields.delete(f);
        break;
      }
      case 'SADD':
        for (const m of args.slice(1)) out.push({ kind: 'member', key: args[0]!, member: m });
        break;
      case 'ZADD': {
        // ZADD key [flags…] score member
        const rest = args.slice(1).filter((a) => !['NX', 'XX', 'GT', 'LT', 'CH', 'INCR'].includes(a.toUpperCase()));
        for (let i = 0; i + 1 < rest.length; i += 2) out.push({ kind: 'zmember', key: args[0]!, score: rest[i]!, member: rest[i + 1]! });
        break;
      }
      case 'GEOADD':
        // GEOADD key lon lat member: a sorted-set member scored by the place's geohash
        for (let i = 1; i + 2 < args.length; i += 3) out.push({ kind: 'zmember', key: args[0]!, member: args[i + 2]!, score: String(geohashScore(Number(args[i]), Number(args[i + 1]))) });
        break;
      case 'SETBIT':
        if (args[2] === '1') out.push({ kind: 'bit', key: args[0]!, offset: args[1]! });
        break;
      default:
        // DEL (a moved key), PEXPIRE/EXPIRE (TTL refresh), LTRIM …: no state to compare
        break;
    }
  }
  return { expectations: out, failed: null };
}

/** "schema.*" patterns become the schema's tables (partitions appear as their root). */
export async function expandTables(client: pg.Client, patterns: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of patterns) {
    if (!p.endsWith('.*')) {
      out.push(p);
      continue;
    }
    const r = await client.query<{ t: string }>(
      `select n.nspname || '.' || c.relname as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition order by c.relname`,
      [splitTable(p)[0]],
    );
    out.push(...r.rows.map((x) => x.t));
  }
  return [...new Set(out)];
}

/** Reads the sink's tables' shapes; throws a SluiceError naming a table that cannot be read in key order. */
export async function readSinkTables(client: pg.Client, patterns: readonly string[]): Promise<CatalogTable[]> {
  const out: CatalogTable[] = [];
  for (const name of await expandTables(client, patterns)) {
    const t = await readCatalogTable(client, name);
    if (!t) throw new SluiceError('table_missing', `table ${name} does not exist`);
    if (t.info.keyIndexes.length === 0) throw new SluiceError('table_no_key', `table ${name} has no primary key or replica identity index to read it by: add one (ALTER TABLE ${name} ADD PRIMARY KEY (…))`);
    out.push(t);
  }
  return out;
}

const ident = (n: string): string => `"${n.replace(/"/g, '""')}"`;

/**
 * The table's rows in key order, `chunkRows` at a time (keyset pagination with COPY: each chunk
 * is a short statement, memory holds one chunk). Values are the text Postgres prints, as in the WAL.
 */
export async function* copyChunks(client: pg.Client, table: CatalogTable, chunkRows = 5000): AsyncGenerator<Tuple[]> {
  const keys = table.info.keyIndexes;
  const keyList = keys.map((i) => ident(table.info.columns[i]!.name)).join(', ');
  const cols = table.info.columns.map((c) => ident(c.name)).join(', ');
  let cursor: Tuple | null = null;
  for (;;) {
    const c: Tuple | null = cursor;
    const where = c ? ` WHERE (${keyList}) > (${keys.map((i) => literal(c[i] ?? '', table.sqlTypes[i]!)).join(', ')})` : '';
    const rows: Tuple[] = [];
    const parser = new CopyTextParser();
    const stream = client.query(copyTo(`COPY (SELECT ${cols} FROM ${table.quoted}${where} ORDER BY ${keyList} LIMIT ${chunkRows}) TO STDOUT`));
    for await (const chunk of stream as AsyncIterable<Buffer>) parser.push(chunk, (row) => rows.push(row));
    parser.end();
    if (rows.length > 0) yield rows;
    if (rows.length < chunkRows) return;
    cursor = rows[rows.length - 1]!;
  }
}

/** Rows by their key values (text), as they are now; rows that are gone are simply absent. */
export async function selectByKeys(client: pg.Client, table: CatalogTable, keyValues: readonly (readonly string[])[]): Promise<Tuple[]> {
  if (keyValues.length === 0) return [];
  const keys = table.info.keyIndexes;
  const keyList = keys.map((i) => ident(table.info.columns[i]!.name)).join(', ');
  const cols = table.info.columns.map((c) => ident(c.name)).join(', ');
  const tuples = keyValues.map((kv) => `(${keys.map((i, j) => literal(kv[j] ?? '', table.sqlTypes[i]!)).join(', ')})`);
  const r = await client.query<string[]>({ text: `SELECT ${cols} FROM ${table.quoted} WHERE (${keyList}) IN (${tuples.join(', ')})`, rowMode: 'array' });
  return r.rows as Tuple[];
}

export function keyValuesOf(table: CatalogTable, row: Tuple): string[] {
  return table.info.keyIndexes.map((i) => row[i] ?? '');
}

/** Every key matching `prefix*` (SCAN, never KEYS; every master of a cluster). */
export async function* scanPrefix(redis: RedisClient, prefix: string): AsyncGenerator<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) yield keys;
    } while (cursor !== '0');
  }
}

/**
 * Sends commands in one round trip (a pipeline; on a cluster, concurrently, since a pipeline
 * cannot span slots). Replies in order; an error reply (WRONGTYPE, …) comes back as an Error.
 */
export async function batch(redis: RedisClient, commands: readonly RedisCommand[]): Promise<unknown[]> {
  if (commands.length === 0) return [];
  if (redis instanceof Cluster) {
    return Promise.all(commands.map(([name, ...args]) => redis.call(name!, ...args).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))));
  }
  const p = redis.pipeline();
  for (const [name, ...args] of commands) p.call(name!, ...args);
  const results = await p.exec();
  if (results === null) throw new Error('the Redis pipeline was aborted');
  return results.map(([err, v]) => err ?? v);
}

/** Keeps only the keys of the given Redis type (keys of another sink type are not this sink's). */
export async function keysOfType(redis: RedisClient, keys: readonly string[], type: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < keys.length; i += 1000) {
    const part = keys.slice(i, i + 1000);
    const types = await batch(redis, part.map((k) => ['TYPE', k]));
    part.forEach((k, j) => {
      if (types[j] === type) out.push(k);
    });
  }
  return out;
}

export interface SinkPrefixes {
  /** table → the fixed key prefix its keys live under */
  readonly prefixes: Map<string, string>;
  /** why some tables' orphans cannot be checked (no fixed prefix, or shared with another sink) */
  readonly notes: string[];
}

/**
 * The key prefixes to look for orphans under. A table without a fixed prefix cannot be checked;
 * neither can a prefix that overlaps a prefix of another sink on the same Redis (its keys would
 * look like orphans). Other sinks' `schema.*` patterns are expanded with `client`.
 */
export async function orphanPrefixes(
  client: pg.Client,
  config: SluiceConfig,
  cfg: SinkConfig,
  sink: Sink,
  tables: readonly CatalogTable[],
): Promise<SinkPrefixes> {
  const prefixes = new Map<string, string>();
  const notes: string[] = [];
  const others: { name: string; prefix: string }[] = [];
  const prefixless = new Set<string>();
  for (const other of config.sinks) {
    if (other.name === cfg.name || other.redis !== cfg.redis) continue;
    let otherSink: Sink;
    try {
      otherSink = createSink(other);
    } catch {
      // a sink type this version cannot build: its template still tells its prefix
      otherSink = { name: other.name, type: other.type, plan: () => undefined };
    }
    // pubsub publishes to channels: it holds no keys
    if (other.type === 'pubsub') continue;
    const template = 'key' in other ? other.key : null;
    for (const t of await expandTables(client, other.tables)) {
      const [schema, name] = splitTable(t);
      const shape = { schema, name, qualifiedName: t, columns: [], keyIndexes: [], relationOid: 0, replicaIdentity: 'd' } as unknown as TableInfo;
      const p = otherSink.truncatePattern?.(shape) ?? (template !== null ? fixedPrefix(template, schema, name) : null);
      if (p !== null) others.push({ name: other.name, prefix: p });
      else if (other.type === cfg.type) prefixless.add(other.name);
    }
  }
  for (const name of prefixless) notes.push(`sink "${name}" writes ${cfg.type} keys without a fixed prefix on the same Redis: its keys may be counted as orphans here`);
  for (const t of tables) {
    const p = sink.truncatePattern?.(t.info) ?? null;
    if (p === null) {
      notes.push(`${t.info.qualifiedName}: orphans cannot be checked: the key template does not start with fixed text`);
      continue;
    }
    const clash = others.find((o) => o.prefix.startsWith(p) || p.startsWith(o.prefix));
    if (clash) {
      notes.push(`${t.info.qualifiedName}: orphans not checked: keys under "${p}" may belong to sink "${clash.name}" (prefix "${clash.prefix}")`);
      continue;
    }
    prefixes.set(t.info.qualifiedName, p);
  }
  return { prefixes, notes };
}

/** The literal start of a template with {schema}/{table} filled in (for sink types without a module yet). */
function fixedPrefix(template: string, schema: string, table: string): string | null {
  const m = /^[^{]*(?:\{(?:schema|table)\}[^{]*)*/.exec(template);
  const s = (m?.[0] ?? '').replace(/\{schema\}/g, schema).replace(/\{table\}/g, table);
  return s.length > 0 ? s : null;
}
