import { formatLsn } from '../core/lsn.js';
import type { PlanEvents } from '../plan/planner.js';
import type { Metrics } from '../metrics.js';
import type { Logger } from '../util/log.js';

/** What planning reports, as log lines and metrics. */
export function planEvents(metrics: Metrics, log: Logger): PlanEvents {
  return {
    failed: (sink, change, meta, _reason, logged) => {
      metrics.failed.inc({ sink });
      // the reason as it may be logged: its row values only with --log-values (the failed message keeps them whole)
      log.warn({ sink, table: change.table.qualifiedName, lsn: formatLsn(meta.commitLsn), idx: change.idx, reason: logged }, 'message failed');
    },
    truncate: (sink, table, prefix) => {
      if (prefix === null) log.warn({ sink, table: table.qualifiedName }, 'TRUNCATE cannot be applied: the key template has no fixed prefix; run sluice verify --repair');
      else log.info({ sink, table: table.qualifiedName, prefix }, 'TRUNCATE: keys with this prefix will be removed');
    },
    chunk: (lsn, through) => log.info({ lsn: formatLsn(lsn), through }, 'large transaction: applying a chunk of it (atomic per chunk only)'),
  };
}
