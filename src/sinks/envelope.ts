import type { Change } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { formatLsn } from '../pg/lsn.js';
import { microsToIsoUtc } from '../pg/replication-protocol.js';

/**
 * The `metadata` object of the §3 envelope on its own, for sinks that store the envelope's parts
 * as separate fields (stream). Byte for byte what messageJson() embeds (a unit test holds them
 * together).
 */
export function metadataJson(change: Change, meta: MessageMeta): string {
  const t = change.table;
  const lsn = formatLsn(meta.commitLsn);
  return (
    `{"table_schema":${JSON.stringify(t.schema)},"table_name":${JSON.stringify(t.name)},` +
    `"commit_timestamp":"${microsToIsoUtc(meta.commitTimeMicros)}","commit_lsn":"${lsn}","commit_idx":${change.idx},` +
    `"idempotency_key":"${lsn}:${change.idx}","sink":{"name":${JSON.stringify(meta.sinkName)}}}`
  );
}
