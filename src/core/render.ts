import type { Action, Change, TableInfo } from './change.js';
import type { Tuple } from './tuple.js';
import { toJson } from './values.js';
import { formatLsn, type Lsn } from './lsn.js';
import { microsToIsoUtc } from './time.js';
import { MessageError } from './template.js';

/**
 * JSON of rows and messages (SPEC §3), built as text straight from the Postgres text values:
 * no intermediate objects, so int8 and numeric keep every digit and each row is serialized once.
 *
 * The pieces are joined, not concatenated with `+=`: V8 makes every `+=` of a long string a
 * rope node, and a value kept until its batch is written to Redis kept its whole rope alive
 * through the young generation's collections (twice the CPU of a flat string in a batch-sized
 * test). `join` makes one flat string, and the pieces die young.
 */
export function recordJson(table: TableInfo, row: Tuple): string {
  const cols = table.columns;
  // the braces are pieces too: `{${…}}` would wrap the flat string in rope nodes again
  const parts: string[] = new Array<string>(cols.length + 2);
  parts[0] = '{';
  for (let i = 0; i < cols.length; i++) {
    const col = cols[i]!;
    const v = row[i];
    if (v === undefined) throw new MessageError(`column "${col.name}" is an unchanged TOASTed value that Postgres did not send`);
    parts[i + 1] = (i > 0 ? ',' : '') + col.jsonName + toJson(col.codec, v);
  }
  parts[cols.length + 1] = '}';
  return parts.join('');
}

/**
 * Old values of the columns an update changed, when Postgres sent the old row
 * (REPLICA IDENTITY FULL); `null` when they are not known.
 */
export function changesJson(change: Change): string {
  if (change.action !== 'update' || change.oldKind !== 'O' || !change.oldRow) return 'null';
  const { columns } = change.table;
  const old = change.oldRow;
  const parts: string[] = ['{'];
  for (let i = 0; i < columns.length; i++) {
    const before = old[i];
    const after = change.row[i];
    if (after === undefined || before === undefined || before === after) continue;
    const col = columns[i]!;
    parts.push((parts.length > 1 ? ',' : '') + col.jsonName + toJson(col.codec, before));
  }
  parts.push('}');
  return parts.join('');
}

export interface MessageMeta {
  readonly commitLsn: Lsn;
  readonly commitTimeMicros: bigint;
  readonly sinkName: string;
}

export function idempotencyKey(commitLsn: Lsn, idx: number): string {
  return `${formatLsn(commitLsn)}:${idx}`;
}

/** The envelope's `metadata` object (also what user functions receive as `metadata`). */
export function metadataJson(change: Change, meta: MessageMeta): string {
  const t = change.table;
  const lsn = formatLsn(meta.commitLsn);
  // joined for a flat string (see recordJson)
  return [
    `{"table_schema":${JSON.stringify(t.schema)},"table_name":${JSON.stringify(t.name)},`,
    `"commit_timestamp":"${microsToIsoUtc(meta.commitTimeMicros)}","commit_lsn":"${lsn}","commit_idx":${change.idx},`,
    `"idempotency_key":"${lsn}:${change.idx}","sink":{"name":${JSON.stringify(meta.sinkName)}}}`,
  ].join('');
}

/** The Sequin-compatible envelope: record, changes, action, metadata. */
export function messageJson(change: Change, meta: MessageMeta, action: Action = change.action): string {
  return ['{"record":', recordJson(change.table, change.row), ',"changes":', changesJson(change), ',"action":"', action, '","metadata":', metadataJson(change, meta), '}'].join('');
}
