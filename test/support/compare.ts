import type { Redis } from 'ioredis';
import type { TestPostgres } from '../harness/postgres.js';

/** Every key under `prefix` in Redis, with its string value (SCAN, never KEYS). */
export async function scanStrings(redis: Redis, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) {
      const values = await redis.mget(...keys);
      keys.forEach((k, i) => {
        const v = values[i];
        if (v !== null && v !== undefined) out.set(k, v);
      });
    }
  } while (cursor !== '0');
  return out;
}

/**
 * Rows of `table` as the string sink should store them: key `sluice:{table}:{id}`, value the
 * row's JSON (computed by Postgres as a cross-check of Sluice's own encoding for simple types).
 */
export async function expectedStrings(pg: TestPostgres, table: string): Promise<Map<string, string>> {
  const r = await pg.query(`select id::text id, row_to_json(t)::text j from ${table} t`);
  const out = new Map<string, string>();
  for (const row of r.rows as { id: string; j: string }[]) out.set(`sluice:${table}:${row.id}`, row.j);
  return out;
}

/** Differences between expected and actual, for assertion messages (first few only). */
export function diffMaps(expected: Map<string, string>, actual: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of expected) {
    const a = actual.get(k);
    if (a === undefined) out.push(`missing ${k}`);
    else if (a !== v) out.push(`stale ${k}: ${a} != ${v}`);
  }
  for (const k of actual.keys()) if (!expected.has(k)) out.push(`orphan ${k}`);
  return out;
}
