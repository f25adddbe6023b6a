import { randomUUID } from 'node:crypto';
import type { SluiceConfig } from '../config/schema.js';
import type { Pipeline } from '../runtime/pipeline.js';
import type { BackfillManager } from '../backfill/backfill-manager.js';
import type { Logger } from '../util/log.js';
import { SluiceError, errorMessage } from '../util/errors.js';
import { unverifiableReason } from './shared.js';
import { sweepOrphans } from './orphan-sweep.js';

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
 * - orphans: one orphan sweep for the sink (verify/orphan-sweep.ts): keys, and members, fields
 *   and bits inside kept keys, that no row accounts for are removed at a high watermark, except
 *   what the stream wrote between the watermarks.
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
    const r = await sweepOrphans(this.config, this.pipeline, view.sink);
    view.orphans = { state: r.state, candidates: r.candidates, deleted: r.deleted, kept: r.kept, prefixes: r.prefixes, notes: r.notes };
  }
}
