import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Pipeline } from '../runtime/pipeline.js';
import type { Logger } from '../util/log.js';
import { errorMessage, SluiceError } from '../util/errors.js';
import { BackfillWorker, backfillKey, type BackfillRecord } from './backfill-worker.js';
import { AggregateBackfillWorker } from './aggregate-backfill.js';
import { splitTable } from '../pg/source-setup.js';
import { pgClientConfig } from '../pg/connection-config.js';
import { sleep } from '../util/backoff.js';
import type { Metrics } from '../metrics.js';

export interface BackfillView extends BackfillRecord {
  /** rows per second over the last chunks */
  rate: number;
  /** seconds left at the current rate; null when unknown */
  eta_seconds: number | null;
  percent: number | null;
}

export interface StartBackfillOptions {
  table?: string | undefined;
  from?: string | undefined;
  /** why Sluice started it by itself (shown with its progress) */
  reason?: string | undefined;
}

/** A table's backfill: chunks between watermarks, or an aggregate sink's one GROUP BY read. */
type TableWorker = Pick<BackfillWorker, 'open' | 'chunk' | 'close' | 'stop' | 'isStopped' | 'record'>;

interface Running {
  worker: TableWorker;
  samples: { at: number; rows: number }[];
}

/**
 * Starts, resumes and reports backfills. Per sink, tables are copied one after the other;
 * different sinks' backfills run side by side. State lives in Redis (`sluice:backfill:<sink>`,
 * one field per table), written with each chunk's rows, so a restart resumes where Redis is.
 */
export class BackfillManager {
  private readonly running = new Map<string, Running>();
  private readonly loops = new Map<string, Promise<void>>();
  private readonly queued = new Map<string, BackfillRecord[]>();
  /** per sink, the tables with a `sluice_backfill_progress_ratio` series (removed with the sink) */
  private readonly progressSeries = new Map<string, Set<string>>();
  private stopped = false;

  constructor(
    private readonly pipeline: Pipeline,
    private readonly url: string,
    private readonly log: Logger,
    private readonly metrics: Metrics | null = null,
  ) {}

  /** Resumes unfinished backfills; starts the initial one of `backfill: true` sinks Redis has never seen. */
  async resume(initial: readonly string[]): Promise<void> {
    for (const sink of this.pipeline.sinks) {
      const name = sink.sink.name;
      const records = await this.records(name);
      const unfinished = records.filter((r) => r.state === 'running');
      if (unfinished.length > 0) {
        this.log.info({ sink: name, tables: unfinished.map((r) => r.table) }, 'resuming backfill');
        this.enqueue(name, unfinished);
      } else if (initial.includes(name) && sink.startPosition === null && records.length === 0) {
        this.log.info({ sink: name }, 'initial backfill of a new sink');
        await this.start(name, {});
      }
    }
  }

  async start(sinkName: string, opts: StartBackfillOptions): Promise<BackfillRecord[]> {
    const sink = this.pipeline.sinkRuntime(sinkName);
    if (!sink) throw new SluiceError('sink_not_found', `no sink named "${sinkName}"`);
    if (sink.sink.type === 'aggregate' && opts.from) throw new SluiceError('bad_request', `sink "${sinkName}" is an aggregate: its backfill reads the whole table in one GROUP BY, so --from does not apply`);
    let tables = await this.expandTables(sink.tables);
    if (opts.table) {
      const want = opts.table.includes('.') ? opts.table : `public.${opts.table}`;
      if (!tables.includes(want)) throw new SluiceError('table_not_in_sink', `table ${want} is not one of sink "${sinkName}"'s tables (${tables.join(', ')})`);
      tables = [want];
    }
    const now = new Date().toISOString();
    const id = randomUUID();
    const records: BackfillRecord[] = tables.map((table) => ({
      id,
      sink: sinkName,
      table,
      state: 'running',
      cursor: null,
      rows: 0,
      superseded: 0,
      estimated_total: null,
      from: opts.from ?? null,
      ...(opts.reason === undefined ? {} : { reason: opts.reason }),
      started_at: now,
      updated_at: now,
    }));
    const redis = this.pipeline.redisFor(sinkName);
    for (const r of records) await redis.hset(backfillKey(sinkName), r.table, JSON.stringify(r));
    this.enqueue(sinkName, records);
    return records;
  }

  /** Every backfill of a sink, with live progress for the running one. */
  async list(sinkName: string): Promise<BackfillView[]> {
    const records = await this.records(sinkName);
    return records.map((r) => this.view(r));
  }

  /** Stops taking chunks; a chunk waiting for Redis stops waiting (BackfillWorker.stop). Resolves once the loops have ended. */
  stop(): Promise<void> {
    this.stopped = true;
    for (const r of this.running.values()) r.worker.stop();
    return Promise.allSettled([...this.loops.values()]).then(() => undefined);
  }

  /** A deleted sink: its backfills stop and are forgotten (their records are removed with the sink). */
  async forget(sinkName: string): Promise<void> {
    this.queued.get(sinkName)?.splice(0);
    this.queued.delete(sinkName);
    for (const [key, r] of this.running) if (key.startsWith(`${sinkName}\u0000`)) r.worker.stop();
    await this.loops.get(sinkName)?.catch(() => undefined);
    for (const table of this.progressSeries.get(sinkName) ?? []) this.metrics?.backfillProgress.remove({ sink: sinkName, table });
    this.progressSeries.delete(sinkName);
  }

  /** `sluice_backfill_rows_total` and `sluice_backfill_progress_ratio` after a chunk (`copied` rows). */
  private count(record: BackfillRecord, copied: number): void {
    const m = this.metrics;
    if (m === null) return;
    const labels = { sink: record.sink, table: record.table };
    if (copied > 0) m.backfillRows.inc(labels, copied);
    m.backfillProgress.set(labels, progressRatio(record));
    let tables = this.progressSeries.get(record.sink);
    if (!tables) this.progressSeries.set(record.sink, (tables = new Set()));
    tables.add(record.table);
  }

  private view(r: BackfillRecord): BackfillView {
    const live = this.running.get(`${r.sink}\u0000${r.table}`);
    const rec = live ? live.worker.record : r;
    let rate = 0;
    if (live && live.samples.length >= 2) {
      const a = live.samples[0]!;
      const b = live.samples[live.samples.length - 1]!;
      rate = b.at > a.at ? ((b.rows - a.rows) * 1000) / (b.at - a.at) : 0;
    }
    const total = rec.estimated_total;
    const left = total !== null ? Math.max(0, total - rec.rows) : null;
    return {
      ...rec,
      rate: Math.round(rate),
      eta_seconds: rec.state === 'running' && left !== null && rate > 0 ? Math.round(left / rate) : rec.state === 'done' ? 0 : null,
      percent: total ? Math.min(100, Math.round((rec.rows / total) * 1000) / 10) : rec.state === 'done' ? 100 : null,
    };
  }

  private async records(sinkName: string): Promise<BackfillRecord[]> {
    const all = await this.pipeline.redisFor(sinkName).hgetall(backfillKey(sinkName));
    return Object.values(all).map((v) => JSON.parse(v) as BackfillRecord);
  }

  private enqueue(sinkName: string, records: BackfillRecord[]): void {
    const q = this.queued.get(sinkName) ?? [];
    for (const r of records) {
      const i = q.findIndex((x) => x.table === r.table);
      if (i >= 0) q[i] = r;
      else q.push(r);
    }
    this.queued.set(sinkName, q);
    if (!this.loops.has(sinkName)) {
      const loop = this.runSink(sinkName).finally(() => this.loops.delete(sinkName));
      this.loops.set(sinkName, loop);
    }
  }

  private async runSink(sinkName: string): Promise<void> {
    const q = this.queued.get(sinkName) ?? [];
    while (q.length > 0 && !this.stopped) {
      const record = q.shift()!;
      await this.runTable(record);
    }
  }

  private async runTable(record: BackfillRecord): Promise<void> {
    const key = `${record.sink}\u0000${record.table}`;
    const aggregate = this.pipeline.sinkRuntime(record.sink)?.sink.type === 'aggregate';
    const worker: TableWorker = aggregate ? new AggregateBackfillWorker(this.pipeline, this.url, { ...record }) : new BackfillWorker(this.pipeline, this.url, { ...record });
    const entry: Running = { worker, samples: [{ at: Date.now(), rows: record.rows }] };
    this.running.set(key, entry);
    const { log } = this;
    let lastLog = 0;
    try {
      await worker.open();
      log.info({ sink: record.sink, table: record.table, estimated: worker.record.estimated_total, from: record.from, resumeAfter: record.cursor }, 'backfill started');
      this.count(worker.record, 0);
      for (;;) {
        if (this.stopped || worker.isStopped) return;
        // a paused sink writes nothing: its backfill waits with it
        while (this.pipeline.sinkRuntime(record.sink)?.hold != null && !this.stopped && !worker.isStopped) await sleep(200);
        if (this.stopped || worker.isStopped || !this.pipeline.sinkRuntime(record.sink)) return;
        const rowsBefore = worker.record.rows;
        const r = await worker.chunk();
        this.count(worker.record, worker.record.rows - rowsBefore);
        entry.samples.push({ at: Date.now(), rows: worker.record.rows });
        if (entry.samples.length > 20) entry.samples.shift();
        if (r.done) break;
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          const v = this.view(worker.record);
          log.info({ sink: record.sink, table: record.table, rows: v.rows, total: v.estimated_total, percent: v.percent, rate: v.rate, etaSeconds: v.eta_seconds }, 'backfill progress');
        }
      }
      log.info({ sink: record.sink, table: record.table, rows: worker.record.rows, superseded: worker.record.superseded }, 'backfill done');
    } catch (err) {
      // stopping, or the sink was deleted (forget): not a failure to record
      if (this.stopped || worker.isStopped) return;
      const failed: BackfillRecord = { ...worker.record, state: 'failed', error: errorMessage(err), updated_at: new Date().toISOString() };
      log.error({ sink: record.sink, table: record.table, err: failed.error }, 'backfill failed');
      await this.pipeline.redisFor(record.sink).hset(backfillKey(record.sink), record.table, JSON.stringify(failed)).catch(() => undefined);
    } finally {
      this.running.delete(key);
      await worker.close();
    }
  }

  /** "schema.*" patterns become the schema's tables (partitions appear as their root). */
  private async expandTables(patterns: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    const schemas = patterns.filter((p) => p.endsWith('.*'));
    out.push(...patterns.filter((p) => !p.endsWith('.*')));
    if (schemas.length > 0) {
      const client = new pg.Client(pgClientConfig(this.url, { application_name: 'sluice-backfill' }));
      await client.connect();
      try {
        for (const s of schemas) {
          const [schema] = splitTable(s);
          const r = await client.query<{ t: string }>(
            `select n.nspname || '.' || c.relname as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition order by c.relname`,
            [schema],
          );
          out.push(...r.rows.map((x) => x.t));
        }
      } finally {
        await client.end();
      }
    }
    return [...new Set(out)];
  }
}

/** Rows copied over the estimate, 0 to 1; 1 once done (the estimate is only an estimate). */
export function progressRatio(r: Pick<BackfillRecord, 'rows' | 'estimated_total' | 'state'>): number {
  if (r.state === 'done') return 1;
  if (!r.estimated_total) return 0;
  return Math.min(1, r.rows / r.estimated_total);
}
