import type pg from 'pg';
import type { SinkConfig, SluiceConfig } from '../config/schema.js';
import type { CatalogTable } from '../pg/catalog.js';
import { createTextClient } from '../pg/text-client.js';
import type { Tuple } from '../pg/pgoutput/types.js';
import { connectRedis, createRedisClient, type RedisClient } from '../redis/connect.js';
import { createSink } from '../sinks/index.js';
import type { RedisCommand, Sink } from '../sinks/sink.js';
import { SluiceError, errorMessage } from '../util/errors.js';
import { isOwnKey } from '../core/keyspace.js';
import { compareAggregate } from './aggregate-compare.js';
import {
  batch,
  copyChunks,
  keysOfType,
  keyValuesOf,
  orphanPrefixes,
  planRow,
  readSinkTables,
  redisTypeOf,
  scanPrefix,
  selectByKeys,
  unverifiableReason,
  type Expectation,
} from './shared.js';

/**
 * `sluice verify`: compares what a sink should hold in Redis (each row planned by the sink's own
 * `plan()`) with what Redis holds. Rows are read with COPY in key order, a chunk at a time;
 * Redis is asked in pipelined batches (one round trip per ~1000 rows). Orphans (keys under a
 * table's fixed prefix that no row accounts for) are found with SCAN, never KEYS.
 *
 * Memory: the keys found under the sinks' prefixes are held in a Set until the rows that account
 * for them are read (~100 bytes per key), plus one chunk of rows.
 *
 * Live writes make a comparison approximate: a row changed during the scan may look stale or
 * missing until the stream applies it. Every difference is therefore checked once more at the end
 * (the row re-read from Postgres by key, the key re-read from Redis) before it is reported.
 */

export type DifferenceKind = 'missing' | 'stale' | 'orphan';

export interface Difference {
  readonly kind: DifferenceKind;
  readonly key: string;
  /** hash field or set/zset member, when the difference is inside a key */
  readonly item?: string;
  /** what Postgres says (stale only), at most 200 characters */
  readonly expected?: string;
  /** what Redis holds (stale only), at most 200 characters */
  readonly actual?: string;
}

export interface TableReport {
  readonly table: string;
  rows: number;
  ok: number;
  missing: number;
  stale: number;
  orphans: number;
  /** rows the sink refuses (key too long, value too big): failed messages, not Redis state */
  failed: number;
  /** differences seen during the scan that were gone when checked again */
  rechecked: number;
  /** false: this table's orphans could not be looked for (see the notes) */
  orphansChecked: boolean;
  examples: Difference[];
}

export interface VerifyResult {
  readonly sink: string;
  readonly type: string;
  readonly tables: TableReport[];
  readonly notes: string[];
  readonly inSync: boolean;
}

export interface CompareOptions {
  /** examples kept per table (default 10) */
  examples?: number;
  /** rows per COPY statement (default 5000) */
  chunkRows?: number;
  /** rows per Redis round trip (default 1000) */
  checkRows?: number;
  /** differences per table checked again at the end; more are reported as seen (default 10000) */
  maxRecheck?: number;
  /** pause before re-checking, so the stream can apply what was in flight (default 1000 ms) */
  recheckDelayMs?: number;
}

/** The sink cannot be verified (a history-keeping type, user functions, a missing table): exit 2. */
export class CannotVerifyError extends SluiceError {
  constructor(message: string) {
    super('cannot_verify', message);
  }
}

const SHOW = 200;

function clip(s: string): string {
  return s.length > SHOW ? `${s.slice(0, SHOW - 1)}…` : s;
}

type Verdict = { state: 'ok' } | { state: 'missing' } | { state: 'stale'; actual: string };

function command(e: Expectation): RedisCommand {
  switch (e.kind) {
    case 'string':
      return ['GET', e.key];
    case 'hash':
      return ['HGETALL', e.key];
    case 'field':
      return ['HGET', e.key, e.field];
    case 'member':
      return ['SISMEMBER', e.key, e.member];
    case 'zmember':
      return ['ZSCORE', e.key, e.member];
    case 'bit':
      return ['GETBIT', e.key, e.offset];
  }
}

function judge(e: Expectation, reply: unknown): Verdict {
  if (reply instanceof Error) {
    if (/^WRONGTYPE/.test(reply.message)) return { state: 'stale', actual: `(a key of another type: ${reply.message})` };
    throw reply;
  }
  switch (e.kind) {
    case 'string':
    case 'field': {
      if (reply === null || reply === undefined) return { state: 'missing' };
      const v = String(reply);
      return (e.prefix ? v.startsWith(e.value) : v === e.value) ? { state: 'ok' } : { state: 'stale', actual: v };
    }
    case 'hash': {
      const flat = (reply ?? []) as string[];
      if (flat.length === 0) return { state: 'missing' };
      const actual = new Map<string, string>();
      for (let i = 0; i + 1 < flat.length; i += 2) actual.set(String(flat[i]), String(flat[i + 1]));
      const same = actual.size === e.fields.size && [...e.fields].every(([f, v]) => actual.get(f) === v);
      return same ? { state: 'ok' } : { state: 'stale', actual: JSON.stringify(Object.fromEntries(actual)) };
    }
    case 'member':
      return Number(reply) === 1 ? { state: 'ok' } : { state: 'missing' };
    case 'zmember':
      if (reply === null || reply === undefined) return { state: 'missing' };
      return Number(reply) === Number(e.score) ? { state: 'ok' } : { state: 'stale', actual: `score ${String(reply)}` };
    case 'bit':
      return Number(reply) === 1 ? { state: 'ok' } : { state: 'missing' };
  }
}

function expectedText(e: Expectation): string {
  switch (e.kind) {
    case 'string':
    case 'field':
      return e.prefix ? `${e.value}…` : e.value;
    case 'hash':
      return JSON.stringify(Object.fromEntries(e.fields));
    case 'member':
      return e.member;
    case 'zmember':
      return `score ${e.score}`;
    case 'bit':
      return `bit ${e.offset} set`;
  }
}

function itemOf(e: Expectation): string | undefined {
  return e.kind === 'field' ? e.field : e.kind === 'member' || e.kind === 'zmember' ? e.member : e.kind === 'bit' ? e.offset : undefined;
}

/** A difference seen during the scan, kept to be checked again. */
interface Pending {
  kind: DifferenceKind;
  keyValues: string[];
  expectation: Expectation;
  actual?: string;
}

async function checkAll(redis: RedisClient, exps: readonly Expectation[]): Promise<Verdict[]> {
  const replies = await batch(redis, exps.map(command));
  return exps.map((e, i) => judge(e, replies[i]));
}

/** Compares one sink; throws CannotVerifyError when it cannot be compared. */
export async function compareSink(config: SluiceConfig, sinkName: string, opts: CompareOptions = {}): Promise<VerifyResult> {
  const cfg = config.sinks.find((s) => s.name === sinkName);
  if (!cfg) throw new CannotVerifyError(`no sink named "${sinkName}" in the config (sinks: ${config.sinks.map((s) => s.name).join(', ')})`);
  // an aggregate's groups are compared with GROUP BY, not row by row
  if (cfg.type === 'aggregate') return compareAggregate(config, cfg, opts);
  const reason = unverifiableReason(cfg);
  if (reason) throw new CannotVerifyError(reason);
  let sink: Sink;
  try {
    sink = createSink(cfg);
  } catch (err) {
    throw new CannotVerifyError(errorMessage(err));
  }
  const spec = config.redis[cfg.redis!];
  if (!spec) throw new CannotVerifyError(`sink "${sinkName}" names Redis connection "${cfg.redis}", which is not in the config`);
  const client = createTextClient(config.source.url, 'sluice-verify');
  client.on('error', () => undefined);
  const redis = createRedisClient(spec, 'sluice-verify');
  redis.on('error', () => undefined);
  try {
    try {
      await client.connect();
    } catch (err) {
      throw new CannotVerifyError(`cannot connect to Postgres: ${errorMessage(err)}`);
    }
    try {
      await connectRedis(redis);
    } catch (err) {
      throw new CannotVerifyError(`cannot connect to Redis "${cfg.redis}": ${errorMessage(err)}`);
    }
    let tables: CatalogTable[];
    try {
      tables = await readSinkTables(client, cfg.tables);
    } catch (err) {
      throw new CannotVerifyError(errorMessage(err));
    }
    return await new Comparison(config, cfg, sink, client, redis, tables, opts).run();
  } finally {
    await client.end().catch(() => undefined);
    redis.disconnect();
  }
}

class Comparison {
  private readonly examples: number;
  private readonly reports: TableReport[];
  private readonly pending: Pending[][];
  /** differences beyond maxRecheck: counted as seen */
  private readonly unchecked: Map<DifferenceKind, number>[];
  private readonly notes: string[] = [];

  constructor(
    private readonly config: SluiceConfig,
    private readonly cfg: SinkConfig,
    private readonly sink: Sink,
    private readonly client: pg.Client,
    private readonly redis: RedisClient,
    private readonly tables: readonly CatalogTable[],
    private readonly opts: CompareOptions,
  ) {
    this.examples = opts.examples ?? 10;
    this.reports = tables.map((t) => ({ table: t.info.qualifiedName, rows: 0, ok: 0, missing: 0, stale: 0, orphans: 0, failed: 0, rechecked: 0, orphansChecked: false, examples: [] }));
    this.pending = tables.map(() => []);
    this.unchecked = tables.map(() => new Map());
  }

  async run(): Promise<VerifyResult> {
    const { prefixes, notes } = await orphanPrefixes(this.client, this.config, this.cfg, this.sink, this.tables);
    this.notes.push(...notes);
    // Keys are listed before the rows are read: a key that exists before the row snapshot and
    // that no row of the snapshot accounts for is an orphan (or a delete still in flight, which
    // the re-check at the end sees gone).
    const candidates = new Map<string, number>();
    const prefixList = [...new Set(prefixes.values())];
    for (const [ti, t] of this.tables.entries()) if (prefixes.has(t.info.qualifiedName)) this.reports[ti]!.orphansChecked = true;
    for (const prefix of prefixList) {
      // a key under several prefixes belongs to the table with the longest one
      const owner = (key: string): number => {
        let best = -1;
        let len = -1;
        this.tables.forEach((t, i) => {
          const p = prefixes.get(t.info.qualifiedName);
          if (p !== undefined && key.startsWith(p) && p.length > len) {
            best = i;
            len = p.length;
          }
        });
        return best;
      };
      for await (const keys of scanPrefix(this.redis, prefix)) for (const k of keys) if (!isOwnKey(k)) candidates.set(k, owner(k));
    }
    for (const [ti, table] of this.tables.entries()) await this.compareTable(ti, table, candidates);
    // keys of another Redis type are not this sink's (another sink's, or the user's)
    let orphanKeys = await keysOfType(this.redis, [...candidates.keys()], redisTypeOf(this.cfg));
    if (this.cfg.type === 'bitmap' && orphanKeys.length > 0) {
      // clearing a bitmap's last bit leaves its key, all zeros: that holds nothing, it is no orphan
      const counts = await batch(this.redis, orphanKeys.map((k) => ['BITCOUNT', k]));
      orphanKeys = orphanKeys.filter((_k, i) => Number(counts[i]) !== 0);
    }
    const orphans = orphanKeys.map((k) => ({ key: k, ti: candidates.get(k)! }));
    candidates.clear();
    const maxRecheck = this.opts.maxRecheck ?? 10_000;
    for (const o of orphans) {
      const list = this.pending[o.ti]!;
      const exp: Expectation = { kind: 'string', key: o.key, value: '', prefix: false };
      if (list.length < maxRecheck) list.push({ kind: 'orphan', keyValues: [], expectation: exp });
      else this.bump(o.ti, 'orphan');
    }
    await this.recheck();
    this.finish();
    if (this.cfg.expire_ms !== undefined) this.notes.push(`the sink sets expire_ms=${this.cfg.expire_ms}: keys that expired count as missing`);
    const actions = new Set(this.cfg.actions);
    if (!actions.has('delete')) this.notes.push('the sink does not apply deletes: keys of deleted rows count as orphans');
    if (!actions.has('insert') || !actions.has('update')) this.notes.push(`the sink applies only ${[...actions].join(', ')}: rows it never received count as missing or stale`);
    const inSync = this.reports.every((r) => r.missing + r.stale + r.orphans === 0);
    return { sink: this.cfg.name, type: this.cfg.type, tables: this.reports, notes: this.notes, inSync };
  }

  private bump(ti: number, kind: DifferenceKind): void {
    const m = this.unchecked[ti]!;
    m.set(kind, (m.get(kind) ?? 0) + 1);
  }

  private async compareTable(ti: number, table: CatalogTable, candidates: Map<string, number>): Promise<void> {
    const report = this.reports[ti]!;
    const checkRows = this.opts.checkRows ?? 1000;
    const maxRecheck = this.opts.maxRecheck ?? 10_000;
    for await (const rows of copyChunks(this.client, table, this.opts.chunkRows ?? 5000)) {
      for (let i = 0; i < rows.length; i += checkRows) {
        const part = rows.slice(i, i + checkRows);
        const exps: Expectation[] = [];
        const owners: number[] = [];
        part.forEach((row, r) => {
          report.rows++;
          const planned = planRow(this.sink, this.cfg, table.info, row);
          if (planned.failed !== null) {
            report.failed++;
            return;
          }
          for (const e of planned.expectations) {
            candidates.delete(e.key);
            exps.push(e);
            owners.push(r);
          }
        });
        const verdicts = await checkAll(this.redis, exps);
        // a row is missing if anything of it is missing, else stale if anything is stale
        const worst = new Map<number, { v: Verdict; e: Expectation }>();
        verdicts.forEach((v, j) => {
          const r = owners[j]!;
          const prev = worst.get(r);
          if (v.state === 'ok' || prev?.v.state === 'missing' || (prev && v.state === 'stale')) return;
          worst.set(r, { v, e: exps[j]! });
        });
        for (const [r, { v, e }] of worst) {
          const kind = v.state as 'missing' | 'stale';
          if (this.pending[ti]!.length < maxRecheck) {
            this.pending[ti]!.push({ kind, keyValues: keyValuesOf(table, part[r]!), expectation: e, ...(v.state === 'stale' ? { actual: v.actual } : {}) });
          } else this.bump(ti, kind);
        }
      }
    }
  }

  /** Checks every difference once more, as things are now. */
  private async recheck(): Promise<void> {
    if (this.pending.every((p) => p.length === 0)) return;
    await new Promise((r) => setTimeout(r, this.opts.recheckDelayMs ?? 1000));
    for (const [ti, table] of this.tables.entries()) {
      const list = this.pending[ti]!;
      const report = this.reports[ti]!;
      const still: Pending[] = [];
      const rowDiffs = list.filter((p) => p.kind !== 'orphan');
      const orphanDiffs = list.filter((p) => p.kind === 'orphan');
      for (let i = 0; i < rowDiffs.length; i += 500) {
        const part = rowDiffs.slice(i, i + 500);
        const now = new Map<string, Tuple>();
        for (const row of await selectByKeys(this.client, table, part.map((p) => p.keyValues))) now.set(keyValuesOf(table, row).join('\u0000'), row);
        const exps: Expectation[] = [];
        const owners: number[] = [];
        const gone = new Set<number>();
        part.forEach((p, j) => {
          const row = now.get(p.keyValues.join('\u0000'));
          if (row === undefined) {
            // the row was deleted meanwhile: in sync if Redis no longer has it, else an orphan
            gone.add(j);
            exps.push(p.expectation);
            owners.push(j);
            return;
          }
          const planned = planRow(this.sink, this.cfg, table.info, row);
          if (planned.failed !== null) return; // now a failed message: nothing to hold in Redis
          for (const e of planned.expectations) {
            exps.push(e);
            owners.push(j);
          }
        });
        const verdicts = await checkAll(this.redis, exps);
        const worst = new Map<number, Pending>();
        verdicts.forEach((v, k) => {
          const j = owners[k]!;
          const p = part[j]!;
          const e = exps[k]!;
          if (gone.has(j)) {
            if (v.state !== 'missing') worst.set(j, { kind: 'orphan', keyValues: p.keyValues, expectation: e });
            return;
          }
          const prev = worst.get(j);
          if (v.state === 'ok' || prev?.kind === 'missing' || (prev && v.state === 'stale')) return;
          worst.set(j, { kind: v.state, keyValues: p.keyValues, expectation: e, ...(v.state === 'stale' ? { actual: v.actual } : {}) });
        });
        report.rechecked += part.length - worst.size;
        still.push(...worst.values());
      }
      for (let i = 0; i < orphanDiffs.length; i += 1000) {
        const part = orphanDiffs.slice(i, i + 1000);
        const exists = await batch(this.redis, part.map((p) => ['EXISTS', p.expectation.key]));
        part.forEach((p, j) => {
          if (Number(exists[j]) === 1) still.push(p);
          else report.rechecked++;
        });
      }
      this.pending[ti] = still;
    }
  }

  private finish(): void {
    for (const [ti, report] of this.reports.entries()) {
      const list = this.pending[ti]!;
      const extra = this.unchecked[ti]!;
      const count = (k: DifferenceKind): number => list.filter((p) => p.kind === k).length + (extra.get(k) ?? 0);
      const rowOrphans = list.filter((p) => p.kind === 'orphan' && p.keyValues.length > 0).length;
      report.missing = count('missing');
      report.stale = count('stale');
      report.orphans = count('orphan');
      // rows found stale or missing that were deleted meanwhile and still have keys: orphans now
      report.ok = report.rows - report.failed - report.missing - report.stale - rowOrphans;
      const order: DifferenceKind[] = ['missing', 'stale', 'orphan'];
      const sorted = [...list].sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
      // examples of every kind first, then more of each
      const firstOfEach = order.map((k) => sorted.find((p) => p.kind === k)).filter((p): p is Pending => p !== undefined);
      const chosen = [...new Set([...firstOfEach, ...sorted])].slice(0, this.examples);
      chosen.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
      report.examples = chosen.map((p) => {
        const item = p.kind === 'orphan' && p.keyValues.length === 0 ? undefined : itemOf(p.expectation);
        return {
          kind: p.kind,
          key: p.expectation.key,
          ...(item !== undefined ? { item } : {}),
          ...(p.kind === 'stale' ? { expected: clip(expectedText(p.expectation)), actual: clip(p.actual ?? '') } : {}),
        };
      });
    }
  }
}
