// TableInfo, Change and PlanOutput fixtures for sink planning tests.
import type { Change, TableInfo } from '../../../src/core/change.js';
import type { MessageMeta } from '../../../src/core/render.js';
import { buildTableInfo } from '../../../src/core/table-info.js';
import type { ReplicaIdentity, Tuple } from '../../../src/pg/pgoutput/types.js';
import type { PlanExtras, PlanOutput, RedisCommand, Sink } from '../../../src/sinks/sink.js';

export const OID = { bool: 16, int8: 20, int4: 23, text: 25, float8: 701, numeric: 1700, jsonb: 3802, textArray: 1009, timestamptz: 1184 } as const;

/** `table('public.products', [['id', 'int4', true], ['name', 'text']])` */
export function table(qualified: string, columns: [name: string, type: keyof typeof OID, isKey?: boolean][], replicaIdentity: ReplicaIdentity = 'd'): TableInfo {
  const [schema, name] = qualified.includes('.') ? (qualified.split('.') as [string, string]) : ['public', qualified];
  return buildTableInfo(
    { relationOid: 16_384, schema, name, replicaIdentity, columns: columns.map(([n, t, k]) => ({ name: n, typeOid: OID[t], isKey: k === true })) },
    () => undefined,
  );
}

/** A row by column name; absent columns are NULL, `undefined` values are unchanged TOAST. */
export function row(t: TableInfo, values: Record<string, string | null | undefined>): Tuple {
  return t.columns.map((c) => (c.name in values ? values[c.name] : null));
}

/** The identity-only old tuple ('K') Postgres sends: key columns, others NULL. */
export function keyRow(t: TableInfo, values: Record<string, string | null>): Tuple {
  return t.columns.map((c) => (c.isKey ? (values[c.name] ?? null) : null));
}

export function insert(t: TableInfo, values: Record<string, string | null | undefined>, idx = 0): Change {
  return { action: 'insert', table: t, row: row(t, values), oldRow: null, oldKind: null, idx };
}

export function read(t: TableInfo, values: Record<string, string | null | undefined>): Change {
  return { action: 'read', table: t, row: row(t, values), oldRow: null, oldKind: null, idx: 0 };
}

/** An update; `old` is sent as 'O' (whole row) when `full`, else as 'K' (identity columns). */
export function update(t: TableInfo, values: Record<string, string | null | undefined>, old?: Record<string, string | null>, full = false): Change {
  if (!old) return { action: 'update', table: t, row: row(t, values), oldRow: null, oldKind: null, idx: 0 };
  return { action: 'update', table: t, row: row(t, values), oldRow: full ? row(t, old) : keyRow(t, old), oldKind: full ? 'O' : 'K', idx: 0 };
}

/** A delete as Postgres sends it: the identity columns ('K') or, when `full`, the whole row ('O'). */
export function del(t: TableInfo, values: Record<string, string | null>, full = false): Change {
  const r = full ? row(t, values) : keyRow(t, values);
  return { action: 'delete', table: t, row: r, oldRow: r, oldKind: full ? 'O' : 'K', idx: 0 };
}

export const META: MessageMeta = { commitLsn: 0x16b3748n, commitTimeMicros: 817_125_063_123_456n, sinkName: 'test' };

export interface Planned {
  commands: RedisCommand[];
  failures: string[];
}

export function plan(sink: Sink, change: Change, extras?: PlanExtras, meta: MessageMeta = { ...META, sinkName: sink.name }): Planned {
  const commands: RedisCommand[] = [];
  const failures: string[] = [];
  const out: PlanOutput = { command: (c) => commands.push(c), fail: (_c, reason) => failures.push(reason) };
  sink.plan(change, meta, out, extras);
  return { commands, failures };
}

/** Commands without EVAL's script body (shown as "<script>"), for readable assertions. */
export function brief(commands: RedisCommand[]): string[][] {
  return commands.map((c) => (c[0] === 'EVAL' ? ['EVAL', '<script>', ...c.slice(2)] : c));
}
