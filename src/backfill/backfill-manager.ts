import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Pipeline } from '../runtime/pipeline.js';
import type { Logger } from '../util/log.js';
import { errorMessage, SluiceError } from '../util/errors.js';
import { BackfillWorker, backfillKey, type BackfillRecord } from './backfill-worker.js';
import type { OrphanSweepState } from '../core/records.js';
import { isTransientBackfillError, retryDelayMs } from './retry.js';
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
  /**
   * Once every table is done, remove what no row accounts for (an orphan sweep): after Redis lost
   * writes, a row deleted in the lost window would otherwise keep its key, member or bit.
   */
  sweepOrphans?: boolean | undefined;
}

/** What an orphan sweep did (verify/orphan-sweep.ts, given by app.ts: verify/ sits above backfill/). */
export interface OrphanSweepOutcome {
  state: 'done' | 'skipped';
  deleted: number;
  kept: number;
  notes: string[];
}

export type OrphanSweeper = (sink: string) => Promise<OrphanSweepOutcome>;

/** A table's backfill: chunks between watermarks, or an aggregate sink's one GROUP BY read. */
type TableWorker = Pick<BackfillWorker, 'open' | 'chunk' | 'close' | 'stop' | 'isStopped' | 'record'>;

interface Running {
  /** the attempt running now; null while waiting to retry */
  worker: TableWorker | null;
  /** the backfill's record as it is now (the worker's, or the one waiting to retry) */
  record: BackfillRecord;
  samples: { at: number; rows: number }[];
  /** ends a wait for the next attempt (stop, forget) */
  readonly abort: AbortController;
}

/** How one attempt ended. */
type Attempt = { outcome: 'done' | 'stopped' } | { outcome: 'failed'; error: unknown };

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
  /** aborted by stop(): ends every wait for a retry */
  private readonly stopping = new AbortController();
  private sweeper: OrphanSweeper | null = null;
  /** ends the waits of orphan sweeps (stop, forget) */
  private readonly sweepAbort = new Map<string, AbortController>();

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
      } else if (records.some((r) => sweepWaiting(r))) {
        this.enqueue(name, []); // its tables are done: only the orphan sweep is left
      } else if (initial.includes(name) && sink.startPosition === null && records.length === 0) {
        this.log.info({ sink: name }, 'initial backfill of a new sink');
        await this.start(name, {});
      }
    }
  }

  /** Set by app.ts once the orphan sweep can be built (verify/ imports backfill/, not the reverse). */
  setOrphanSweeper(sweeper: OrphanSweeper): void {
    this.sweeper = sweeper;
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
    const redis = this.pipeline.redisFor(sinkName);
    // a sweep still owed by an earlier data-loss backfill is owed by this one, which replaces it
    const owed = opts.sweepOrphans === true || (await this.records(sinkName)).some((r) => sweepWaiting(r));
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
      ...(owed ? { orphan_sweep: { state: 'pending' as const } } : {}),
      started_at: now,
      updated_at: now,
    }));
    for (const r of records) await redis.hset(backfillKey(sinkName), r.table, JSON.stringify(r));
    this.enqueue(sinkName, records);
    return records;
  }

  /**
   * Redis lost writes: the sink is backfilled again, then swept of orphans (rows deleted in the
   * lost window). Starting needs Postgres (the tables) and Redis (the records), which may be
   * down right then (a failover, a restart): tried again with backoff until it starts, Sluice
   * stops or the sink is deleted. Resolves once started.
   */
  async startAfterDataLoss(sinkName: string, reason: string): Promise<void> {
    for (let attempt = 1; !this.stopped && this.pipeline.sinkRuntime(sinkName); attempt++) {
      try {
        await this.start(sinkName, { reason, sweepOrphans: true });
        return;
      } catch (err) {
        if (!isTransientBackfillError(err)) throw err;
        const delay = retryDelayMs(attempt);
        this.log.warn({ sink: sinkName, err: errorMessage(err), attempt, retryInMs: delay }, 'could not start the re-backfill: trying again');
        await sleep(delay, this.stopping.signal);
      }
    }
  }

  /** Every backfill of a sink, with live progress for the running one. */
  async list(sinkName: string): Promise<BackfillView[]> {
    const records = await this.records(sinkName);
    return records.map((r) => this.view(r));
  }

  /** Stops taking chunks; a chunk waiting for Redis stops waiting (BackfillWorker.stop). Resolves once the loops have ended. */
  stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    for (const r of this.running.values()) this.interrupt(r);
    for (const a of this.sweepAbort.values()) a.abort();
    return Promise.allSettled([...this.loops.values()]).then(() => undefined);
  }

  /** A deleted sink: its backfills stop and are forgotten (their records are removed with the sink). */
  async forget(sinkName: string): Promise<void> {
    this.queued.get(sinkName)?.splice(0);
    this.queued.delete(sinkName);
    for (const [key, r] of this.running) if (key.startsWith(`${sinkName}\u0000`)) this.interrupt(r);
    this.sweepAbort.get(sinkName)?.abort();
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
    const rec = live && live.record.id === r.id ? { ...live.record, ...(r.orphan_sweep ? { orphan_sweep: r.orphan_sweep } : {}) } : r;
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
    for (;;) {
      const q = this.queued.get(sinkName) ?? [];
      while (q.length > 0 && !this.stopped) {
        const record = q.shift()!;
        await this.runTable(record);
      }
      if (this.stopped || !this.pipeline.sinkRuntime(sinkName)) return;
      await this.sweepIfOwed(sinkName);
      // tables queued while the sweep ran (this loop is the sink's only one): copied now
      if ((this.queued.get(sinkName)?.length ?? 0) === 0) return;
    }
  }

  private interrupt(r: Running): void {
    r.worker?.stop();
    r.abort.abort();
  }

  /** `sluice_backfill_retries_total` */
  private countRetry(record: BackfillRecord): void {
    this.metrics?.backfillRetries.inc({ sink: record.sink, table: record.table });
  }

  /**
   * Runs a table's backfill until it is done: an attempt that fails with a transient error
   * (retry.ts) is tried again after a backoff (1 s doubling to 30 s, jittered), from the last
   * chunk it saw applied. The record says so meanwhile (`attempts`, `error`, `next_retry_at`).
   * Ends without retrying when Sluice stops, the sink is deleted, a newer backfill of the table
   * is queued, or the error is permanent (then the record is `failed`; a user can start it again).
   */
  private async runTable(resumed: BackfillRecord): Promise<void> {
    // a record resumed after a restart may still say when its next attempt was due
    const first: BackfillRecord = { ...resumed };
    delete first.next_retry_at;
    const key = `${first.sink}\u0000${first.table}`;
    const entry: Running = { worker: null, record: first, samples: [{ at: Date.now(), rows: first.rows }], abort: new AbortController() };
    this.running.set(key, entry);
    const { log } = this;
    const superseded = (): boolean => (this.queued.get(first.sink) ?? []).some((x) => x.table === first.table);
    try {
      for (let attempt = 1; ; attempt++) {
        const r = await this.attempt(entry, attempt === 1);
        if (r.outcome !== 'failed') return;
        const error = errorMessage(r.error);
        const redis = this.pipeline.redisFor(first.sink);
        if (superseded()) {
          log.warn({ sink: first.sink, table: first.table, err: error }, 'backfill attempt failed; a newer backfill of the table replaces it');
          return;
        }
        if (!isTransientBackfillError(r.error)) {
          const failed: BackfillRecord = { ...entry.record, state: 'failed', error, updated_at: new Date().toISOString() };
          delete failed.next_retry_at;
          entry.record = failed;
          log.error({ sink: first.sink, table: first.table, err: error, attempts: attempt }, 'backfill failed');
          await redis.hset(backfillKey(first.sink), first.table, JSON.stringify(failed)).catch(() => undefined);
          return;
        }
        const delay = retryDelayMs(attempt);
        const waiting: BackfillRecord = { ...entry.record, state: 'running', error, attempts: attempt, next_retry_at: new Date(Date.now() + delay).toISOString(), updated_at: new Date().toISOString() };
        entry.record = waiting;
        this.countRetry(waiting);
        log.warn({ sink: first.sink, table: first.table, err: error, attempt, retryInMs: delay, resumeAfter: waiting.cursor }, 'backfill attempt failed: trying again');
        // Redis may be the one that is down: the record in memory says it meanwhile (API, status)
        await redis.hset(backfillKey(first.sink), first.table, JSON.stringify(waiting)).catch(() => undefined);
        await sleep(delay, entry.abort.signal);
        // a paused sink writes nothing: its backfill waits with it
        while (this.pipeline.sinkRuntime(first.sink)?.hold != null && !this.stopped && !entry.abort.signal.aborted) await sleep(200, entry.abort.signal);
        if (this.stopped || entry.abort.signal.aborted || !this.pipeline.sinkRuntime(first.sink) || superseded()) return;
        const next: BackfillRecord = { ...entry.record };
        delete next.next_retry_at;
        entry.record = next;
      }
    } finally {
      this.running.delete(key);
    }
  }

  /** One attempt: opens the table, copies chunks until done. Throws nothing: says how it ended. */
  private async attempt(entry: Running, first: boolean): Promise<Attempt> {
    const record = entry.record;
    const aggregate = this.pipeline.sinkRuntime(record.sink)?.sink.type === 'aggregate';
    const worker: TableWorker = aggregate ? new AggregateBackfillWorker(this.pipeline, this.url, { ...record }) : new BackfillWorker(this.pipeline, this.url, { ...record });
    entry.worker = worker;
    entry.record = worker.record;
    if (entry.abort.signal.aborted) worker.stop();
    const { log } = this;
    let lastLog = 0;
    try {
      await worker.open();
      const at = { sink: record.sink, table: record.table, estimated: worker.record.estimated_total, from: record.from, resumeAfter: record.cursor };
      if (first) log.info(at, 'backfill started');
      else log.info({ ...at, attempt: (record.attempts ?? 0) + 1 }, 'backfill attempt started again');
      this.count(worker.record, 0);
      for (;;) {
        if (this.stopped || worker.isStopped) return { outcome: 'stopped' };
        // a paused sink writes nothing: its backfill waits with it
        while (this.pipeline.sinkRuntime(record.sink)?.hold != null && !this.stopped && !worker.isStopped) await sleep(200);
        if (this.stopped || worker.isStopped || !this.pipeline.sinkRuntime(record.sink)) return { outcome: 'stopped' };
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
      log.info({ sink: record.sink, table: record.table, rows: worker.record.rows, superseded: worker.record.superseded, attempts: (worker.record.attempts ?? 0) + 1 }, 'backfill done');
      return { outcome: 'done' };
    } catch (err) {
      // stopping, or the sink was deleted (forget): not a failure to record
      if (this.stopped || worker.isStopped || !this.pipeline.sinkRuntime(record.sink)) return { outcome: 'stopped' };
      return { outcome: 'failed', error: err };
    } finally {
      entry.worker = null;
      await worker.close();
    }
  }

  /**
   * The orphan sweep a data-loss backfill owes, once every table of it is done (retried like a
   * table when Postgres or Redis goes away). A table that failed for good leaves it pending: the
   * backfill started again (by a user) owes it then.
   */
  private async sweepIfOwed(sinkName: string): Promise<void> {
    const abort = new AbortController();
    this.sweepAbort.set(sinkName, abort);
    const { log } = this;
    try {
      for (let attempt = 1; !this.stopped && !abort.signal.aborted; attempt++) {
        let records: BackfillRecord[] = [];
        try {
          records = await this.records(sinkName);
          const owing = records.find((r) => sweepWaiting(r));
          if (!owing || this.sweeper === null) return;
          const mine = records.filter((r) => r.id === owing.id);
          if (mine.some((r) => r.state !== 'done')) return;
          while (this.pipeline.sinkRuntime(sinkName)?.hold != null && !this.stopped && !abort.signal.aborted) await sleep(200, abort.signal);
          if (this.stopped || abort.signal.aborted || !this.pipeline.sinkRuntime(sinkName)) return;
          await this.writeSweep(sinkName, mine, { state: 'running', ...(attempt > 1 ? { attempts: attempt - 1 } : {}) });
          log.info({ sink: sinkName, backfill: owing.id }, 'orphan sweep started: removing what no row accounts for, after a data-loss backfill');
          const r = await this.sweeper(sinkName);
          const state: OrphanSweepState = { state: r.state, deleted: r.deleted, kept: r.kept, ...(r.notes.length > 0 ? { notes: r.notes } : {}), ...(attempt > 1 ? { attempts: attempt - 1 } : {}), finished_at: new Date().toISOString() };
          this.metrics?.orphanSweeps.inc({ sink: sinkName, outcome: r.state });
          if (r.deleted > 0) this.metrics?.orphansDeleted.inc({ sink: sinkName }, r.deleted);
          log.info({ sink: sinkName, backfill: owing.id, state: r.state, deleted: r.deleted, kept: r.kept, notes: r.notes }, 'orphan sweep done');
          await this.writeSweep(sinkName, mine, state);
          return;
        } catch (err) {
          if (this.stopped || abort.signal.aborted || !this.pipeline.sinkRuntime(sinkName)) return;
          const error = errorMessage(err);
          const mine = records.filter((r) => sweepWaiting(r));
          if (!isTransientBackfillError(err)) {
            this.metrics?.orphanSweeps.inc({ sink: sinkName, outcome: 'failed' });
            log.error({ sink: sinkName, err: error }, 'orphan sweep failed');
            await this.writeSweep(sinkName, mine, { state: 'failed', error, attempts: attempt, finished_at: new Date().toISOString() }).catch(() => undefined);
            return;
          }
          const delay = retryDelayMs(attempt);
          this.metrics?.orphanSweeps.inc({ sink: sinkName, outcome: 'retried' });
          log.warn({ sink: sinkName, err: error, attempt, retryInMs: delay }, 'orphan sweep attempt failed: trying again');
          await this.writeSweep(sinkName, mine, { state: 'pending', error, attempts: attempt }).catch(() => undefined);
          await sleep(delay, abort.signal);
        }
      }
    } finally {
      if (this.sweepAbort.get(sinkName) === abort) this.sweepAbort.delete(sinkName);
    }
  }

  /** The sweep's state on every table record of its backfill (status, API and console show it). */
  private async writeSweep(sinkName: string, records: readonly BackfillRecord[], state: OrphanSweepState): Promise<void> {
    const redis = this.pipeline.redisFor(sinkName);
    for (const r of records) {
      // a newer backfill of the table (Redis lost writes again) keeps its own record
      const now = await redis.hget(backfillKey(sinkName), r.table);
      if (now !== null && (JSON.parse(now) as BackfillRecord).id !== r.id) continue;
      await redis.hset(backfillKey(sinkName), r.table, JSON.stringify({ ...r, orphan_sweep: state }));
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

/** A data-loss backfill's orphan sweep not yet done (pending, or running when Sluice stopped). */
function sweepWaiting(r: BackfillRecord): boolean {
  return r.orphan_sweep?.state === 'pending' || r.orphan_sweep?.state === 'running';
}

/** Rows copied over the estimate, 0 to 1; 1 once done (the estimate is only an estimate). */
export function progressRatio(r: Pick<BackfillRecord, 'rows' | 'estimated_total' | 'state'>): number {
  if (r.state === 'done') return 1;
  if (!r.estimated_total) return 0;
  return Math.min(1, r.rows / r.estimated_total);
}
