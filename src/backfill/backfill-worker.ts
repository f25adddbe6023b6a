import type pg from 'pg';
import type { Pipeline } from '../runtime/pipeline.js';
import type { CatalogTable } from '../pg/catalog.js';
import { readCatalogTable } from '../pg/catalog.js';
import { createTextClient, literal } from '../pg/text-client.js';
import { emitWatermark } from '../pg/watermarks.js';
import type { Rows } from '../core/tuple.js';
import { CopyRows } from './copy-text.js';
import { CopyOut } from './copy-out.js';
import { conditionSql } from './condition.js';
import type { RedisCommand } from '../sinks/sink.js';
import { backfillKey } from '../core/keyspace.js';
import type { BackfillRecord } from '../core/records.js';

// backfill-manager.ts imports them from here
export { backfillKey };
export type { BackfillRecord };

export interface ChunkResult {
  readonly copied: number;
  readonly emitted: number;
  readonly skipped: number;
  readonly done: boolean;
}

/** A chunk being read: its window, and its rows once COPY is done. */
interface ChunkRead {
  readonly window: { readonly id: string; readonly applied: Promise<{ emitted: number; skipped: number }>; cancel(reason: string): void };
  readonly read: Promise<ReadChunk>;
}

interface ReadChunk {
  /** kept as COPY text, parsed when planned (copy-text.ts `CopyRows`) */
  readonly rows: Rows;
  /** fewer rows than asked for: the table is read to its end */
  readonly done: boolean;
  /** key column values of the last row (the cursor after this chunk) */
  readonly cursor: string[] | null;
}

/** A chunk whose high watermark is written: it waits for its rows to be in Redis. */
interface Closed {
  readonly window: ChunkRead['window'];
  /** the record written with its rows */
  readonly next: BackfillRecord;
  readonly copied: number;
  readonly done: boolean;
}

/** closed chunks waiting for Redis at most: one applied while the next is planned */
const MAX_CLOSED = 2;
const MIN_CHUNK = 200;
const MAX_CHUNK = 20_000;
/** a chunk's COPY should take about this long: short enough to keep the window small */
const TARGET_CHUNK_MS = 250;

/**
 * Copies one table for one sink, chunk by chunk in key order, each chunk between a low and a
 * high watermark written to the WAL (DBLog). The pipeline drops from a chunk every row the
 * stream changed between its watermarks and emits the rest as `read` messages at the high
 * watermark, with the new cursor in the same MULTI: a restart resumes exactly after the last
 * chunk Redis holds. The next chunk is read while one is applied, never more than one ahead, and
 * it is closed only after the one before is in Redis: memory is bounded and the pace is the sink's.
 */
export class BackfillWorker {
  private client: pg.Client | null = null;
  private table: CatalogTable | null = null;
  private chunkSize = 1000;
  private stopped = false;
  /** aborted by stop(): a chunk no longer waits for its rows to be applied */
  private readonly abort = new AbortController();

  constructor(
    private readonly pipeline: Pipeline,
    private readonly url: string,
    readonly record: BackfillRecord,
  ) {}

  async open(): Promise<CatalogTable> {
    const client = createTextClient(this.url, 'sluice-backfill');
    client.on('error', () => undefined);
    await client.connect();
    // the watermarks must reach the WAL (and the walsender) at once
    await client.query('set synchronous_commit = on');
    this.client = client;
    const table = await readCatalogTable(client, this.record.table);
    if (!table) throw new Error(`table ${this.record.table} does not exist`);
    if (table.info.keyIndexes.length === 0 || table.info.replicaIdentity === 'f' && table.info.keyIndexes.length === table.info.columns.length && !(await this.hasUniqueKey(table))) {
      throw new Error(`table ${this.record.table} has no primary key or replica identity index to read it in order: add one (ALTER TABLE ${this.record.table} ADD PRIMARY KEY (…))`);
    }
    this.table = table;
    if (this.record.estimated_total === null) this.record.estimated_total = await this.estimateRows(table);
    return table;
  }

  /**
   * Stops after the chunk being read: its wait for Redis ends at once (the chunk rejects). The
   * pipeline may still apply the chunk, its cursor with it, or not: either way the next start
   * resumes after the last chunk Redis holds. Without this a stop could wait forever: once the
   * high watermark is planned, the window only settles when its batch is applied, and a batch
   * the pipeline drops when it stops (Redis down past the drain timeout) never is.
   */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Reads, hands over and waits for one chunk: low watermark → COPY → fill → high watermark →
   * wait until applied. Chunks follow each other on the one connection, and up to two are closed
   * (their high watermark written, with their cursor) and wait for Redis while the next one is
   * read (its low watermark and COPY): the pipeline plans a chunk while Redis applies the one
   * before. Memory stays bounded (three chunks) and the pace is still the sink's. Closed chunks are
   * planned and applied in stream order, so a chunk that fails never has a later cursor applied
   * after it: any failure cancels every window in flight. Resolves with the oldest chunk's result
   * once it is in Redis.
   */
  async chunk(): Promise<ChunkResult> {
    const client = this.client!;
    if (this.stopped) throw new Error('the backfill was stopped');
    try {
      this.planned ??= { ...this.record };
      // a held (paused) sink closes no more chunks: its backfill waits with it (backfill-manager.ts)
      while (this.closed.length < MAX_CLOSED && !this.planned.done && !this.stopped && (this.closed.length === 0 || this.pipeline.sinkRuntime(this.record.sink)?.hold == null)) {
        const cur: ChunkRead = this.ahead ?? this.startRead(this.planned.cursor);
        this.ahead = cur;
        const { rows, done, cursor } = await cur.read;
        this.ahead = null;
        const next: BackfillRecord = {
          ...this.record,
          cursor,
          rows: this.planned.rows + rows.length,
          state: done ? 'done' : 'running',
          updated_at: new Date().toISOString(),
        };
        // the new cursor is written in the same MULTI as the chunk's rows
        const persist: RedisCommand = ['HSET', backfillKey(this.record.sink), this.record.table, JSON.stringify(next)];
        this.pipeline.fillBackfillWindow(cur.window.id, rows, [persist]);
        this.closed.push({ window: cur.window, next, copied: rows.length, done });
        this.planned = { cursor, rows: next.rows, done };
        await emitWatermark(client, 'high', cur.window.id);
        if (!done && !this.stopped) this.readAhead(cursor);
      }
      const c = this.closed[0];
      if (!c) throw new Error('the backfill was stopped');
      const r = await c.window.applied;
      this.closed.shift();
      // a held (paused) sink's backfill waits with it between chunks (backfill-manager.ts): no
      // window stays open meanwhile, collecting every row the stream touches until the resume
      if (this.pipeline.sinkRuntime(this.record.sink)?.hold != null) this.dropAhead('the sink is held');
      c.next.superseded = this.record.superseded + r.skipped;
      Object.assign(this.record, c.next);
      return { copied: c.copied, emitted: r.emitted, skipped: r.skipped, done: c.done };
    } catch (err) {
      for (const c of this.closed) c.window.cancel('chunk failed');
      this.closed = [];
      this.planned = null;
      this.dropAhead('chunk failed');
      throw err;
    }
  }

  async close(): Promise<void> {
    for (const c of this.closed) c.window.cancel('the backfill was closed');
    this.closed = [];
    this.dropAhead('the backfill was closed');
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }

  private chunkSizeUsed = 0;
  /** the next chunk, being read while the last ones are applied */
  private ahead: ChunkRead | null = null;
  /** chunks whose high watermark is written, oldest first, until they are in Redis */
  private closed: Closed[] = [];
  /** where the chunks closed so far end (null: nothing closed yet, the record is) */
  private planned: { readonly cursor: string[] | null; readonly rows: number; readonly done?: boolean } | null = null;

  /** Opens a window and starts reading a chunk after `cursor`: low watermark, then COPY. */
  private startRead(cursor: string[] | null): ChunkRead {
    const client = this.client!;
    const table = this.table!;
    const opened = this.pipeline.openBackfillWindow(this.record.sink, table.info);
    const window: ChunkRead['window'] = {
      id: opened.id,
      applied: untilAborted(opened.applied, this.abort.signal, 'the backfill was stopped'),
      cancel: (reason: string) => this.pipeline.cancelBackfillWindow(opened.id, reason),
    };
    // a window rejected while nobody waits for it yet (Sluice stopping) is no unhandled rejection
    window.applied.catch(() => undefined);
    const read = (async (): Promise<ReadChunk> => {
      await emitWatermark(client, 'low', window.id);
      const started = performance.now();
      const rows = await this.copyChunk(client, table, cursor);
      this.adapt(performance.now() - started, rows.length);
      const last = rows.length > 0 ? rows.row(rows.length - 1) : undefined;
      return { rows, done: rows.length < this.chunkSizeUsed, cursor: last ? table.info.keyIndexes.map((i) => last[i] ?? '') : cursor };
    })();
    read.catch(() => undefined);
    return { window, read };
  }

  private readAhead(cursor: string[] | null): void {
    try {
      this.ahead = this.startRead(cursor);
    } catch {
      // the sink is gone: the next chunk() finds out and fails on its own
      this.ahead = null;
    }
  }

  private dropAhead(reason: string): void {
    this.ahead?.window.cancel(reason);
    this.ahead = null;
  }

  private async copyChunk(client: pg.Client, table: CatalogTable, cursor: string[] | null): Promise<Rows> {
    const ident = (n: string): string => `"${n.replace(/"/g, '""')}"`;
    const keys = table.info.keyIndexes;
    const keyList = keys.map((i) => ident(table.info.columns[i]!.name)).join(', ');
    const where: string[] = [];
    if (cursor) {
      const values = keys.map((i, j) => literal(cursor[j] ?? '', table.sqlTypes[i]!));
      where.push(`(${keyList}) > (${values.join(', ')})`);
    }
    if (this.record.from) where.push(conditionSql(this.record.from, table));
    this.chunkSizeUsed = this.chunkSize;
    const sql =
      `COPY (SELECT ${table.info.columns.map((c) => ident(c.name)).join(', ')} FROM ${table.quoted}` +
      `${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${keyList} LIMIT ${this.chunkSizeUsed}) TO STDOUT`;
    const rows = new CopyRows();
    try {
      await client.query(new CopyOut(sql, rows)).done;
      rows.end();
    } catch (err) {
      rows.release();
      throw err;
    }
    return rows;
  }

  /** Keeps each COPY near TARGET_CHUNK_MS so the window between watermarks stays short. */
  private adapt(ms: number, rows: number): void {
    if (rows < this.chunkSizeUsed) return;
    const factor = Math.max(0.5, Math.min(2, TARGET_CHUNK_MS / Math.max(ms, 1)));
    this.chunkSize = Math.round(Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, this.chunkSize * factor)));
  }

  private async estimateRows(table: CatalogTable): Promise<number> {
    if (table.estimatedRows >= 0 && table.estimatedRows > 2_000_000 && !this.record.from) return Math.round(table.estimatedRows);
    const where = this.record.from ? ` WHERE ${conditionSql(this.record.from, table)}` : '';
    const r = await this.client!.query<{ n: string }>(`select count(*) as n from ${table.quoted}${where}`);
    return Number(r.rows[0]?.n ?? 0);
  }

  private async hasUniqueKey(table: CatalogTable): Promise<boolean> {
    const r = await this.client!.query<{ n: string }>(
      `select count(*) as n from pg_index where indrelid = $1::oid and (indisprimary or indisreplident)`,
      [String(table.info.relationOid)],
    );
    return Number(r.rows[0]?.n ?? 0) > 0;
  }
}

/** `p`, or a rejection with `reason` as soon as `signal` aborts (`p` is left to settle unobserved). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal, reason: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error(reason));
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
