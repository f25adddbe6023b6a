import type { SinkConfig } from '../config/schema.js';
import { sinkDefinitionKey } from '../core/keyspace.js';
import type { RedisClient } from '../redis/connect.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';

/**
 * What a client needs to render a sink's keys from a row (`sluice/client` keyFor): its type,
 * tables, the templates of its options, and each table's primary key columns (for `{pk}`).
 * Kept in Redis (`sluice:sink:<name>`), so applications never hand-build keys.
 */
export interface SinkDefinition {
  readonly name: string;
  readonly type: string;
  readonly tables: readonly string[];
  /** the sink's templates and options that name keys or members, as configured */
  readonly templates: Readonly<Record<string, string | number>>;
  /** "schema.table" → primary key (or replica identity) columns, in key order */
  readonly primary_keys: Readonly<Record<string, readonly string[]>>;
}

/** A table's key columns as `{pk}` joins them (null: it has none): pg/row-fetcher.ts readPrimaryKey. */
export type PrimaryKeyReader = (qualified: string) => Promise<readonly string[] | null>;

const TEMPLATE_OPTIONS = ['key', 'field', 'member', 'score', 'channel', 'element', 'longitude', 'latitude', 'offset'] as const;

export async function sinkDefinition(sink: SinkConfig, primaryKey: PrimaryKeyReader): Promise<SinkDefinition> {
  const templates: Record<string, string | number> = {};
  const options = sink as unknown as Record<string, unknown>;
  for (const o of TEMPLATE_OPTIONS) {
    const v = options[o];
    if (typeof v === 'string' || typeof v === 'number') templates[o] = v;
  }
  const primary_keys: Record<string, readonly string[]> = {};
  for (const t of definitionTables(sink)) {
    const pk = await primaryKey(t);
    if (pk) primary_keys[t] = pk;
  }
  return { name: sink.name, type: sink.type, tables: sink.tables, templates, primary_keys };
}

/** The tables whose keys a sink's definition has, as "schema.table" (a whole schema, `s.*`: the caller names the table). */
function definitionTables(sink: SinkConfig): string[] {
  return sink.tables.filter((t) => !t.endsWith('.*')).map((t) => (t.includes('.') ? t : `public.${t}`));
}

/**
 * The key columns of every table the sinks' definitions have, read at once (at start-up, on the
 * set-up connection before it closes); a table that cannot be read is left out.
 */
export async function readPrimaryKeys(read: PrimaryKeyReader, sinks: readonly SinkConfig[]): Promise<Map<string, readonly string[] | null>> {
  const keys = new Map<string, readonly string[] | null>();
  for (const t of new Set(sinks.flatMap(definitionTables))) {
    try {
      keys.set(t, await read(t));
    } catch {
      // read again when the definition is written (publishDefinitions logs what fails then)
    }
  }
  return keys;
}

/**
 * Writes sinks' definitions; failures are logged, never fatal. `primaryKey` reads on a
 * connection the caller has open (no connection of its own per call).
 */
export async function publishDefinitions(primaryKey: PrimaryKeyReader, sinks: readonly { sink: SinkConfig; redis: RedisClient }[], log: Logger): Promise<void> {
  for (const { sink, redis } of sinks) {
    try {
      await redis.set(sinkDefinitionKey(sink.name), JSON.stringify(await sinkDefinition(sink, primaryKey)));
    } catch (err) {
      log.warn({ sink: sink.name, err: errorMessage(err) }, 'could not publish the sink definition for clients');
    }
  }
}
