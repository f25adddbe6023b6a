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
  for (const t of sink.tables) {
    if (t.endsWith('.*')) continue; // a whole schema: the caller names the table
    const pk = await primaryKey(t.includes('.') ? t : `public.${t}`);
    if (pk) primary_keys[t.includes('.') ? t : `public.${t}`] = pk;
  }
  return { name: sink.name, type: sink.type, tables: sink.tables, templates, primary_keys };
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
