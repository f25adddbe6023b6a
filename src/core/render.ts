import type { Action, Change, TableInfo } from './change.js';
import type { Tuple } from './tuple.js';
import { toJson } from './values.js';
import { formatLsn, type Lsn } from './lsn.js';
import { microsToIsoUtc } from './time.js';
import { MessageError } from './template.js';

/**
 * JSON of rows and messages (SPEC §3), built as text straight from the Postgres text values:
 * no intermediate objects, so int8 and numeric keep every digit and each row is serialized once.
 */
export function recordJson(table: TableInfo, row: Tuple): string {
  const cols = table.columns;
  let s = '{';
  for (let i = 0; i < cols.length; i++) {
    const col = cols[i]!;
    const v = row[i];
    if (v === undefined) throw new MessageError(`column "${col.name}" is an unchanged TOASTed value that Postgres did not send`);
    if (i > 0) s += ',';
    s += col.jsonName + toJson(col.codec, v);
  }
  return s + '}';
}

/**
 * Old values of the columns an update changed, when Postgres sent the old row
 * (REPLICA IDENTITY FULL); `null` when they are not known.
 */
export function changesJson(change: Change): string {
  if (change.action !== 'update' || change.oldKind !== 'O' || !change.oldRow) return 'null';
  const { columns } = change.table;
  const old = change.oldRow;
  let s = '{';
  let first = true;
  for (let i = 0; i < columns.length; i++) {
    const before = old[i];
    const after = change.row[i];
    if (after === undefined || before === undefined || before === after) continue;
    const col = columns[i]!;
    s += (first ? '' : ',') + col.jsonName + toJson(col.codec, before);
    first = false;
  }
  return s + '}';
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
  return (
    `{"table_schema":${JSON.stringify(t.schema)},"table_name":${JSON.stringify(t.name)},` +
    `"commit_timestamp":"${microsToIsoUtc(meta.commitTimeMicros)}","commit_lsn":"${lsn}","commit_idx":${change.idx},` +
    `"idempotency_key":"${lsn}:${change.idx}","sink":{"name":${JSON.stringify(meta.sinkName)}}}`
  );
}

/** The Sequin-compatible envelope: record, changes, action, metadata. */
export function messageJson(change: Change, meta: MessageMeta, action: Action = change.action): string {
  return `{"record":${recordJson(change.table, change.row)},"changes":${changesJson(change)},"action":"${action}","metadata":${metadataJson(change, meta)}}`;
}
