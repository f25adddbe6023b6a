import type pg from 'pg';
import type { SinkConfig, SluiceConfig } from '../config/schema.js';
import { readCatalogTable, type CatalogTable } from '../pg/catalog.js';
import { createTextClient } from '../pg/text-client.js';
import { connectRedis, createRedisClient, type RedisClient } from '../redis/connect.js';
import { createSink } from '../sinks/index.js';
import { aggregateRegistryKeyOf, isAggregateSink, registryField, scriptMode, type AggregateDefinition, type Group } from '../sinks/aggregate-sink.js';
import type { GroupTotals } from '../sinks/aggregate-groups.js';
import { decimalTextEquals, isDecimalText } from '../core/decimal.js';
import { readGroups, scanRegistries } from '../backfill/aggregate-backfill.js';
import { SluiceError, errorMessage } from '../util/errors.js';
import { batch } from './shared.js';

/**
 * `sluice verify` of an aggregate sink: the groups `GROUP BY` computes now (the query its backfill
 * runs, without the lock) against the groups in Redis. A group is missing (not in Redis), stale
 * (a measure, score or row count differs: sums compared as exact decimals, whatever their scale),
 * or orphaned (Redis holds a group GROUP BY does not: found through the sink's registries, and
 * among the members of its sorted sets). Live writes make one pass approximate: every difference
 * is checked once more after a pause, and only those that stay are reported. The result has the
 * shape compare.ts reports (its `rows` are groups).
 */

type Kind = 'missing' | 'stale' | 'orphan';

interface Diff {
  readonly kind: Kind;
  readonly key: string;
  readonly item?: string;
  readonly expected?: string;
  readonly actual?: string;
}

export interface AggregateCompareOptions {
  examples?: number;
  /** pause before re-checking, so the stream can apply what was in flight (default 1000 ms) */
  recheckDelayMs?: number;
}

const cannot = (message: string): SluiceError => new SluiceError('cannot_verify', message);

export async function compareAggregate(config: SluiceConfig, cfg: SinkConfig, opts: AggregateCompareOptions = {}) {
  const sink = createSink(cfg);
  if (!isAggregateSink(sink)) throw cannot(`sink "${cfg.name}" is not an aggregate sink`);
  const spec = config.redis[cfg.redis!];
  if (!spec) throw cannot(`sink "${cfg.name}" names Redis connection "${cfg.redis}", which is not in the config`);
  const client = createTextClient(config.source.url, 'sluice-verify');
  client.on('error', () => undefined);
  const redis = createRedisClient(spec, 'sluice-verify');
  redis.on('error', () => undefined);
  try {
    try {
      await client.connect();
    } catch (err) {
      throw cannot(`cannot connect to Postgres: ${errorMessage(err)}`);
    }
    try {
      await connectRedis(redis);
    } catch (err) {
      throw cannot(`cannot connect to Redis "${cfg.redis}": ${errorMessage(err)}`);
    }
    const name = cfg.tables[0]!;
    const table = await readCatalogTable(client, name.includes('.') ? name : `public.${name}`);
    if (!table) throw cannot(`table ${name} does not exist`);
    return await run(sink.aggregate, client, redis, table, opts);
  } finally {
    await client.end().catch(() => undefined);
    redis.disconnect();
  }
}

async function run(def: AggregateDefinition, client: pg.Client, redis: RedisClient, table: CatalogTable, opts: AggregateCompareOptions) {
  let pass = await comparePass(def, client, redis, table);
  const seen = pass.diffs.length;
  if (seen > 0) {
    await new Promise((r) => setTimeout(r, opts.recheckDelayMs ?? 1000));
    const first = new Set(pass.diffs.map(id));
    pass = await comparePass(def, client, redis, table);
    pass.diffs = pass.diffs.filter((d) => first.has(id(d)));
  }
  const count = (k: Kind): number => pass.diffs.filter((d) => d.kind === k).length;
  const order: Kind[] = ['missing', 'stale', 'orphan'];
  const firstOfEach = order.map((k) => pass.diffs.find((d) => d.kind === k)).filter((d): d is Diff => d !== undefined);
  const examples = [...new Set([...firstOfEach, ...pass.diffs])].slice(0, opts.examples ?? 10).sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
  const missing = count('missing');
  const stale = count('stale');
  const orphans = count('orphan');
  const report = {
    table: table.info.qualifiedName,
    rows: pass.groups,
    ok: pass.groups - missing - stale,
    missing,
    stale,
    orphans,
    failed: pass.unwritable,
    rechecked: seen - pass.diffs.length,
    orphansChecked: true,
    examples,
  };
  const notes = [
    `an aggregate sink: its "rows" are the groups GROUP BY computes (${pass.rows} rows of ${table.info.qualifiedName} in them); sums are compared as exact decimals`,
    'orphaned groups are looked for in the sink\'s group registries (sluice:agg:*) and among the members of its sorted sets: a hash Sluice never wrote is not seen',
  ];
  if (pass.unwritable > 0) notes.push(`${pass.unwritable} group(s) cannot be written (their key is refused): their rows are failed messages`);
  return { sink: def.sinkName, type: 'aggregate', tables: [report], notes, inSync: missing + stale + orphans === 0 };
}

function id(d: Diff): string {
  return `${d.kind}\u0000${d.key}\u0000${d.item ?? ''}`;
}

interface Pass {
  groups: number;
  rows: bigint;
  unwritable: number;
  diffs: Diff[];
}

const CHUNK = 1000;

async function comparePass(def: AggregateDefinition, client: pg.Client, redis: RedisClient, table: CatalogTable): Promise<Pass> {
  const merged = await readGroups(client, def, table);
  const mode = scriptMode(def);
  const diffs: Diff[] = [];
  const expected = new Set(merged.groups.map(registryField));
  for (let i = 0; i < merged.groups.length; i += CHUNK) {
    const part = merged.groups.slice(i, i + CHUNK);
    const replies = await batch(
      redis,
      part.flatMap((g) => [mode === 'h' ? ['HGETALL', g.key] : ['ZSCORE', g.key, g.member], ['HGET', aggregateRegistryKeyOf(def.sinkName, g.key), registryField(g)]]),
    );
    part.forEach((g, j) => {
      const d = judge(def, mode, g, replies[2 * j], replies[2 * j + 1]);
      if (d) diffs.push(d);
    });
  }
  diffs.push(...(await orphans(def, mode, redis, merged.groups, expected)));
  return { groups: merged.groups.length, rows: merged.rows, unwritable: merged.unwritable, diffs };
}

function judge(def: AggregateDefinition, mode: 'h' | 'c' | 's', g: GroupTotals, data: unknown, entry: unknown): Diff | null {
  const item = mode === 'h' ? undefined : g.member;
  const where = { key: g.key, ...(item !== undefined ? { item } : {}) };
  if (data instanceof Error) return { kind: 'stale', ...where, expected: 'a group', actual: data.message };
  const [count, sum] = typeof entry === 'string' ? entry.split(' ') : [undefined, undefined];
  if (mode === 'h') {
    const flat = (data ?? []) as string[];
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[String(flat[i])] = String(flat[i + 1]);
    if (Object.keys(fields).length === 0) return { kind: 'missing', ...where };
    const want = def.measures.map((m, i) => `${m.field}=${g.values[i]!}`).join(' ');
    const have = Object.entries(fields).map(([f, v]) => `${f}=${v}`).join(' ');
    const same = Object.keys(fields).length === def.measures.length && def.measures.every((m, i) => {
      const v = fields[m.field];
      return v !== undefined && isDecimalText(v) && decimalTextEquals(v, g.values[i]!);
    });
    if (!same) return { kind: 'stale', ...where, expected: want, actual: have };
  } else {
    if (data === null || data === undefined) return { kind: 'missing', ...where };
    const want = mode === 'c' ? g.count : g.values[0]!;
    // the score is a double; the exact sum is the registry's
    if (Number(data) !== Number(want)) return { kind: 'stale', ...where, expected: `score ${want}`, actual: `score ${String(data)}` };
    if (mode === 's' && !(sum !== undefined && isDecimalText(sum) && decimalTextEquals(sum, want))) {
      return { kind: 'stale', ...where, expected: `exact sum ${want}`, actual: `exact sum ${sum ?? '(none)'}` };
    }
  }
  if (count === undefined || count !== g.count) return { kind: 'stale', ...where, expected: `${g.count} row(s) (registry)`, actual: `${count ?? 'no registry entry'}` };
  return null;
}

/** Groups Redis holds that GROUP BY does not: in the registries (while their data exists), and extra members of the sorted sets. */
async function orphans(def: AggregateDefinition, mode: 'h' | 'c' | 's', redis: RedisClient, groups: readonly GroupTotals[], expected: ReadonlySet<string>): Promise<Diff[]> {
  const out: Diff[] = [];
  const candidates: Group[] = [];
  const registries = await scanRegistries(redis, def.sinkName);
  for (let i = 0; i < registries.length; i += CHUNK) {
    const replies = await batch(redis, registries.slice(i, i + CHUNK).map((r) => ['HKEYS', r]));
    for (const fields of replies) {
      if (!Array.isArray(fields)) continue;
      for (const f of fields as string[]) if (!expected.has(f)) candidates.push(decodeField(f));
    }
  }
  if (mode !== 'h') {
    const keys = new Set(groups.map((g) => g.key));
    for (const c of candidates) keys.add(c.key);
    const list = [...keys];
    for (let i = 0; i < list.length; i += CHUNK) {
      const part = list.slice(i, i + CHUNK);
      const members = await batch(redis, part.map((k) => ['ZRANGE', k, '0', '-1']));
      part.forEach((key, j) => {
        const m = members[j];
        if (!Array.isArray(m)) return;
        for (const member of m as string[]) if (!expected.has(registryField({ key, member }))) out.push({ kind: 'orphan', key, item: member });
      });
    }
    return dedupe(out);
  }
  for (let i = 0; i < candidates.length; i += CHUNK) {
    const part = candidates.slice(i, i + CHUNK);
    const exists = await batch(redis, part.map((g) => ['EXISTS', g.key]));
    part.forEach((g, j) => {
      if (Number(exists[j]) === 1) out.push({ kind: 'orphan', key: g.key });
    });
  }
  return dedupe(out);
}

function decodeField(f: string): Group {
  const c = f.indexOf(':');
  const bytes = Number(f.slice(0, c));
  const rest = Buffer.from(f.slice(c + 1));
  return { key: rest.subarray(0, bytes).toString(), member: rest.subarray(bytes).toString() };
}

function dedupe(diffs: Diff[]): Diff[] {
  const seen = new Set<string>();
  return diffs.filter((d) => {
    const k = id(d);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
