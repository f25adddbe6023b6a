import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { SluiceConfig } from '../config/schema.js';
import type { Pipeline } from '../runtime/pipeline.js';
import type { BackfillManager } from '../backfill/backfill-manager.js';
import { createTextClient } from '../pg/text-client.js';
import { withWatermarkWindow } from '../pg/watermarks.js';
import type { Logger } from '../util/log.js';
import { SluiceError, errorMessage } from '../util/errors.js';
import { isOwnKey } from '../core/keyspace.js';
import { copyChunks, keysOfType, orphanPrefixes, planRow, readSinkTables, redisTypeOf, scanPrefix, unverifiableReason } from './shared.js';

export interface RepairView {
  id: string;
  sink: string;
  state: 'running' | 'done' | 'failed';
  /** the backfill that rewrites every row (missing and stale keys) */
  backfill_id: string | null;
  /** the orphan sweep: keys found under the sink's prefixes that no row accounts for */
  orphans: { state: 'running' | 'done' | 'failed' | 'skipped'; candidates: number; deleted: number; kept: number; prefixes: string[]; notes: string[] };
  started_at: string;
  finished_at: string | null;
  error?: string;
}

/**
 * `POST /api/sinks/:name/repair`: repairs a sink through the ordered apply path, so that a repair
 * never leaves an older value in Redis than Postgres has, even with live writes:
 *
 * - missing and stale keys: a full backfill of the sink (DBLog watermark chunks);
 * - orphaned keys: one orphan sweep for the sink. An orphan window is opened, the low watermark
 *   is written to the WAL, then the expected keys are computed from the rows (COPY + the sink's
 *   `plan()`) and the prefixes are scanned; the keys no row accounts for are handed to the window
 *   and deleted when the high watermark comes through the stream, except those the stream wrote
 *   between the watermarks (a row inserted meanwhile keeps its key).
 *
 * Memory: the sweep holds the sink's expected keys in a Set (~100 bytes per row).
 */
export class Repairer {
  private readonly repairs = new Map<string, RepairView>();

  constructor(
    private readonly config: SluiceConfig,
    private readonly pipeline: Pipeline,
    private readonly backfills: BackfillManager,
    private readonly log: Logger,
  ) {}

  get(sinkName: string): RepairView | null {
    return this.repairs.get(sinkName) ?? null;
  }

  async start(sinkName: string): Promise<RepairView> {
    const cfg = this.config.sinks.find((s) => s.name === sinkName);
    if (!cfg || !this.pipeline.sinkRuntime(sinkName)) throw new SluiceError('sink_not_found', `no sink named "${sinkName}"`);
    const reason = unverifiableReason(cfg);
    if (reason) throw new SluiceError('cannot_repair', reason);
    const running = this.repairs.get(sinkName);
    if (running?.state === 'running') throw new SluiceError('repair_running', `a repair of sink "${sinkName}" is already running (started ${running.started_at})`);
    const backfill = await this.backfills.start(sinkName, {});
    const view: RepairView = {
      id: randomUUID(),
      sink: sinkName,
      state: 'running',
      backfill_id: backfill[0]?.id ?? null,
      orphans: { state: 'running', candidates: 0, deleted: 0, kept: 0, prefixes: [], notes: [] },
      started_at: new Date().toISOString(),
      finished_at: null,
    };
    this.repairs.set(sinkName, view);
    this.log.info({ sink: sinkName, backfill: view.backfill_id }, 'repair started: backfill and orphan sweep');
    void this.sweep(view).then(
      () => {
        view.state = 'done';
        view.finished_at = new Date().toISOString();
        this.log.info({ sink: sinkName, ...view.orphans }, 'repair: orphan sweep done');
      },
      (err: unknown) => {
        view.state = 'failed';
        view.orphans.state = 'failed';
        view.error = errorMessage(err);
        view.finished_at = new Date().toISOString();
        this.log.error({ sink: sinkName, err: view.error }, 'repair: orphan sweep failed');
      },
    );
    return view;
  }

  private async sweep(view: RepairView): Promise<void> {
    const cfg = this.config.sinks.find((s) => s.name === view.sink)!;
    if (cfg.type === 'aggregate') {
      // its backfill sets every group from GROUP BY and removes the others: nothing left to sweep
      view.orphans.state = 'skipped';
      view.orphans.notes = ['an aggregate backfill removes the groups GROUP BY does not have: no orphan sweep'];
      return;
    }
    const runtime = this.pipeline.sinkRuntime(view.sink)!;
    const sink = runtime.sink;
    const redis = this.pipeline.redisFor(view.sink);
    const client: pg.Client = createTextClient(this.config.source.url, 'sluice-repair');
    client.on('error', () => undefined);
    await client.connect();
    try {
      // the watermarks must reach the WAL (and the walsender) at once
      await client.query('set synchronous_commit = on');
      const tables = await readSinkTables(client, cfg.tables);
      const { prefixes, notes } = await orphanPrefixes(client, this.config, cfg, sink, tables);
      view.orphans.notes = notes;
      const prefixList = [...new Set(prefixes.values())];
      view.orphans.prefixes = prefixList;
      if (prefixList.length === 0) {
        view.orphans.state = 'skipped';
        return;
      }
      const opened = this.pipeline.openOrphanWindow(view.sink);
      const window = { ...opened, cancel: (reason: string) => this.pipeline.cancelBackfillWindow(opened.id, reason) };
      const { applied: r } = await withWatermarkWindow(client, window, {
        read: async () => {
          // every table of the sink: prefixes of different tables may overlap
          const expected = new Set<string>();
          for (const table of tables) {
            for await (const rows of copyChunks(client, table)) {
              for (const row of rows) for (const e of planRow(sink, cfg, table.info, row).expectations) expected.add(e.key);
            }
          }
          const scanned: string[] = [];
          for (const prefix of prefixList) {
            for await (const keys of scanPrefix(redis, prefix)) for (const k of keys) if (!isOwnKey(k) && !expected.has(k)) scanned.push(k);
          }
          expected.clear();
          // keys of another Redis type are not this sink's: never delete them
          const candidates = await keysOfType(redis, [...new Set(scanned)], redisTypeOf(cfg));
          view.orphans.candidates = candidates.length;
          return candidates;
        },
        fill: (candidates) => this.pipeline.fillOrphanWindow(window.id, candidates),
        failure: 'orphan sweep failed',
      });
      view.orphans.deleted = r.emitted;
      view.orphans.kept = r.skipped;
      view.orphans.state = 'done';
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
