import { formatLsn } from '../core/lsn.js';
import type { PlanEvents } from '../plan/planner.js';
import type { Metrics } from '../metrics.js';
import type { Logger } from '../util/log.js';

/** What planning reports, as log lines and metrics. */
export function planEvents(metrics: Metrics, log: Logger): PlanEvents {
  return {
    failed: (sink, change, meta, _reason, logged, kept) => {
      metrics.failed.inc({ sink });
      // the reason as it may be logged: its row values only with --log-values (the failed message keeps them whole)
      const fields = { sink, table: change.table.qualifiedName, action: change.action, lsn: formatLsn(meta.commitLsn), idx: change.idx, id: kept?.id, reason: logged };
      if (kept?.kept === 'dropped') {
        metrics.failedDropped.inc({ sink });
        log.error({ ...fields, not_stored: kept.why }, "message failed and was not stored: the sink's failed messages are full (retry or discard some, or raise failed_max_messages / failed_max_bytes)");
      } else if (kept?.kept === 'stored_without_envelope') {
        log.warn({ ...fields, envelope_not_kept: kept.why }, 'message failed (kept without its envelope)');
      } else {
        log.warn(fields, 'message failed');
      }
      if (kept?.filled === true) {
        log.warn({ sink }, "the sink's failed messages are full: the next failures are not stored, only logged and counted (retry or discard them, or raise failed_max_messages / failed_max_bytes)");
      }
    },
    truncate: (sink, table, prefix) => {
      if (prefix === null) log.warn({ sink, table: table.qualifiedName }, 'TRUNCATE cannot be applied: the key template has no fixed prefix; run sluice verify --repair');
      else log.info({ sink, table: table.qualifiedName, prefix }, 'TRUNCATE: keys with this prefix will be removed');
    },
    chunk: (lsn, through) => log.info({ lsn: formatLsn(lsn), through }, 'large transaction: applying a chunk of it (atomic per chunk only)'),
  };
}
