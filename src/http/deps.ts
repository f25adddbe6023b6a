import type { SluiceConfig } from '../config/schema.js';
import type { Pipeline } from '../runtime/pipeline.js';
import type { Metrics } from '../metrics.js';
import type { SourceMonitor } from '../pg/source-monitor.js';
import type { BackfillManager } from '../backfill/backfill-manager.js';
import type { SinkControl } from '../control/sink-control.js';
import type { Logger } from '../util/log.js';
import type { Deliveries } from '../runtime/deliveries.js';
import type { Fences } from '../runtime/fences.js';

/** What the HTTP routes work with: the running instance's parts. */
export interface HttpDeps {
  config: SluiceConfig;
  pipeline: Pipeline;
  metrics: Metrics;
  monitor: SourceMonitor;
  backfills: BackfillManager;
  control: SinkControl;
  /** read-your-writes waits (GET /api/wait) */
  fences: Fences;
  /** the last deliveries per sink (GET /api/sinks/:name/messages?status=delivered) */
  deliveries: Deliveries;
  log: Logger;
}
