import type pg from 'pg';
import { Cluster } from 'ioredis';
import type { Pipeline } from '../runtime/pipeline.js';
import { readCatalogTable, type CatalogTable } from '../pg/catalog.js';
import { createTextClient } from '../pg/text-client.js';
import { emitWatermark } from '../pg/watermarks.js';
import type { RedisClient } from '../redis/connect.js';
import { aggregateMarkContent, aggregateRegistryPattern, backfillKey, WATERMARK_PREFIX } from '../core/keyspace.js';
import { isAggregateSink, type AggregateDefinition } from '../sinks/aggregate-sink.js';
import { aggregateBackfillCommands, groupByShape, mergeGroupRows, type GroupByShape, type MergedGroups } from '../sinks/aggregate-groups.js';
import { WindowRetry } from '../plan/windows.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';
import type { BackfillRecord, ChunkResult } from './backfill-worker.js';

/** How long the read waits for the SHARE lock (writers in flight) before it lets writers go and tries again. */
const LOCK_TIMEOUT_MS = 2000;
/** reads taken again (lock not granted, the sink paused or resumed meanwhile) before the backfill fails */
const MAX_ATTEMPTS = 20;

const FLOAT_OIDS = new Set([700, 701]);

const ident = (n: string): string => `"${n.replace(/"/g, '""')}"`;

/**
 * The GROUP BY an aggregate sink's groups are read with: grouped by the text Postgres prints for
 * each column of the group templates (format('%s', …) uses the type's output function, as
 * pgoutput does), rows with a NULL group column left out (the stream counts them nowhere), and rows
 * whose summed value is not a finite number left out (each is a failed message in the stream).
 * Columns: the group texts, count(*), then each sum (0 when every value is NULL).
 */
export function groupBySql(table: CatalogTable, shape: GroupByShape): string {
  const cols = shape.groupColumns.map((i) => ident(table.info.columns[i]!.name));
  const select = [...cols.map((c) => `format('%s', ${c})`), 'count(*)::text', ...shape.sums.map((s) => `coalesce(sum(${ident(s)}), 0)::text`)];
  const where = [...cols.map((c) => `${c} is not null`), ...shape.sums.map((s) => `(${ident(s)} is null or format('%s', ${ident(s)}) ~ '^-?[0-9]')`)];
  return (
    `select ${select.join(', ')} from ${table.quoted}` +
    (where.length > 0 ? ` where ${where.join(' and ')}` : '') +
    (cols.length > 0 ? ` group by ${cols.map((_, i) => i + 1).join(', ')}` : '')
  );
}

/** Reads and merges the groups of `table` (on `client`, inside whatever transaction it is in). */
export async function readGroups(client: pg.Client, def: AggregateDefinition, table: CatalogTable): Promise<MergedGroups> {
  const shape = groupByShape(def, table.info);
  const r = await client.query<(string | null)[]>({ text: groupBySql(table, shape), rowMode: 'array' });
  return mergeGroupRows(def, table.info, shape, r.rows as (string | null)[][]);
}

/** A float column cannot be summed exactly: the reason, or null. */
export function floatSumProblem(def: AggregateDefinition, table: CatalogTable): string | null {
  for (const { measure } of def.measures) {
    if (measure.kind !== 'sum') continue;
    const col = table.info.columns.find((c) => c.name === measure.column);
    if (!col) return `table ${table.info.qualifiedName} has no column "${measure.column}" to sum`;
    if (FLOAT_OIDS.has(col.typeOid)) return `column "${measure.column}" of ${table.info.qualifiedName} is a float, which cannot be summed exactly: make it numeric`;
  }
  return null;
}

/** Every registry key of an aggregate sink Redis holds (SCAN, every master of a cluster). */
export async function scanRegistries(redis: RedisClient, sink: string): Promise<string[]> {
  const out = new Set<string>();
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', aggregateRegistryPattern(sink), 'COUNT', 1000);
      cursor = next;
      for (const k of keys) out.add(k);
    } while (cursor !== '0');
  }
  return [...out];
}

/**
 * The backfill of an aggregate sink's table: one consistent GROUP BY placed in the stream
 * (plan/windows.ts explains why a rows window cannot do it). In order:
 *
 * 1. an aggregate window is registered (from now on the registries the sink writes are tracked)
 *    and a low watermark written; once its batch is applied, the registries Redis holds are read;
 * 2. on the backfill connection, one transaction: `BEGIN ISOLATION LEVEL REPEATABLE READ; LOCK
 *    TABLE t IN SHARE MODE` (writers of t wait, for the read only; those in flight commit first),
 *    `pg_logical_emit_message(true, 'sluice', 'ag:<id>')`, the GROUP BY (the snapshot is taken
 *    here, after the lock: it holds every transaction of t that commits before this one), the
 *    groups handed to the window, `COMMIT`;
 * 3. where the stream meets the message, the groups are set and the others removed, in the batch
 *    with the message's transaction; once that batch is applied, the backfill's record says 'done'
 *    (a crash before that runs it again: setting the groups twice is harmless).
 *
 * The table is one chunk: its groups are read and held in memory at once.
 */
export class AggregateBackfillWorker {
  private client: pg.Client | null = null;
  private table: CatalogTable | null = null;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly pipeline: Pipeline,
    private readonly url: string,
    readonly record: BackfillRecord,
  ) {}

  async open(): Promise<CatalogTable> {
    if (this.record.from) throw new Error('an aggregate backfill reads the whole table: --from does not apply');
    const client = createTextClient(this.url, 'sluice-backfill');
    client.on('error', () => undefined);
    await client.connect();
    // the watermark and the mark must reach the WAL (and the walsender) at once
    await client.query('set synchronous_commit = on');
    this.client = client;
    const table = await readCatalogTable(client, this.record.table);
    if (!table) throw new Error(`table ${this.record.table} does not exist`);
    const problem = floatSumProblem(this.definition(), table);
    if (problem) throw new Error(problem);
    this.table = table;
    if (this.record.estimated_total === null && table.estimatedRows >= 0) this.record.estimated_total = Math.round(table.estimatedRows);
    return table;
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Reads the whole table's groups and waits until they are applied (taken again when the lock is busy). */
  async chunk(): Promise<ChunkResult> {
    for (let attempt = 1; ; attempt++) {
      if (this.stopped) throw new Error('the backfill was stopped');
      try {
        return await this.readOnce();
      } catch (err) {
        const again = err instanceof WindowRetry || (err as { code?: string }).code === '55P03';
        if (!again || attempt >= MAX_ATTEMPTS || this.stopped) {
          throw again ? new Error(`the aggregate read was taken ${attempt} times without success: ${errorMessage(err)}`) : err;
        }
        await sleep(backoffDelayMs(attempt, 200, 5000), this.abort.signal).catch(() => undefined);
      }
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }

  private definition(): AggregateDefinition {
    const sink = this.pipeline.sinkRuntime(this.record.sink)?.sink;
    if (!sink || !isAggregateSink(sink)) throw new Error(`sink "${this.record.sink}" is not an aggregate sink`);
    return sink.aggregate;
  }

  private async readOnce(): Promise<ChunkResult> {
    const client = this.client!;
    const table = this.table!;
    const def = this.definition();
    const opened = this.pipeline.openAggregateWindow(this.record.sink, table.info);
    opened.applied.catch(() => undefined);
    try {
      await emitWatermark(client, 'low', opened.id);
      await untilAborted(opened.opened, this.abort.signal);
      const registries = await scanRegistries(this.pipeline.redisFor(this.record.sink), this.record.sink);
      let merged: MergedGroups;
      let next: BackfillRecord;
      await client.query('begin isolation level repeatable read');
      try {
        await client.query(`set local lock_timeout = ${LOCK_TIMEOUT_MS}`);
        await client.query(`lock table ${table.quoted} in share mode`);
        await client.query('select pg_logical_emit_message(true, $1, $2)', [WATERMARK_PREFIX, aggregateMarkContent(opened.id)]);
        merged = await readGroups(client, def, table);
        next = { ...this.record, cursor: null, rows: Number(merged.rows), estimated_total: Number(merged.rows), state: 'done', updated_at: new Date().toISOString() };
        const groups = merged.groups;
        this.pipeline.fillAggregateWindow(opened.id, { groups: groups.length, registries, build: (regs) => aggregateBackfillCommands(def, groups, regs) }, []);
        await client.query('commit');
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      }
      const r = await untilAborted(opened.applied, this.abort.signal);
      // 'done' only once every group is in Redis: on Redis Cluster the groups' slots are written
      // one MULTI each, and a crash among them must leave the backfill to run again
      await this.pipeline.redisFor(this.record.sink).hset(backfillKey(this.record.sink), this.record.table, JSON.stringify(next));
      Object.assign(this.record, next, { superseded: 0 });
      return { copied: Number(merged.rows), emitted: r.emitted, skipped: merged.unwritable, done: true };
    } catch (err) {
      this.pipeline.cancelBackfillWindow(opened.id, 'aggregate backfill failed');
      throw err;
    }
  }
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('the backfill was stopped'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
