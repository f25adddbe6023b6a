import type { TableInfo } from '../core/change.js';
import { MessageError, templateColumns } from '../core/template.js';
import type { Tuple } from '../core/tuple.js';
import { addDecimalText, isDecimalText } from '../core/decimal.js';
import { isAggregateRegistryKey } from '../core/keyspace.js';
import type { RedisCommand } from './sink.js';
import { AGGREGATE_SWEEP_SCRIPT } from './aggregate-scripts.js';
import { aggregateRegistryKeyOf, Contributions, registryField, scriptMode, type AggregateDefinition, type Group } from './aggregate-sink.js';

/**
 * Groups as `GROUP BY` computes them, for an aggregate sink's backfill and verify (pure: the
 * query runs in backfill/aggregate-read.ts). The query groups by the text of the columns the
 * group templates read; rows whose texts render to the same group (a template that joins columns)
 * are merged here, so a group is exactly what the stream counts under one key and member.
 */

/** What the GROUP BY query reads: the columns of the group (table column indexes) and the summed ones. */
export interface GroupByShape {
  readonly groupColumns: readonly number[];
  /** summed column names, each once */
  readonly sums: readonly string[];
}

/** One group with its totals: `values` has one decimal per measure of the definition. */
export interface GroupTotals extends Group {
  /** rows in the group */
  readonly count: string;
  readonly values: readonly string[];
}

export function groupByShape(def: AggregateDefinition, table: TableInfo): GroupByShape {
  const cols = templateColumns(def.key.parts, table);
  if (def.member) for (const c of templateColumns(def.member.parts, table)) if (!cols.includes(c)) cols.push(c);
  const sums: string[] = [];
  for (const { measure } of def.measures) if (measure.kind === 'sum' && !sums.includes(measure.column)) sums.push(measure.column);
  return { groupColumns: cols, sums };
}

export interface MergedGroups {
  readonly groups: GroupTotals[];
  /** GROUP BY rows whose group cannot be written (a key over 512 bytes …): failed messages in the stream */
  readonly unwritable: number;
  /** rows in the groups */
  readonly rows: bigint;
}

/**
 * The query's rows (group column texts in `shape.groupColumns` order, then count(*), then each
 * sum in `shape.sums` order) as groups, merged by rendered key and member.
 */
export function mergeGroupRows(def: AggregateDefinition, table: TableInfo, shape: GroupByShape, rows: readonly (readonly (string | null)[])[]): MergedGroups {
  const contributions = new Contributions(def);
  const n = shape.groupColumns.length;
  const byGroup = new Map<string, { group: Group; count: string; sums: string[] }>();
  let unwritable = 0;
  let total = 0n;
  for (const r of rows) {
    const count = r[n] ?? '0';
    if (count === '0') continue; // an empty table under a group template without columns
    const row: Tuple = new Array<string | null | undefined>(table.columns.length).fill(undefined);
    shape.groupColumns.forEach((col, i) => {
      row[col] = r[i] ?? null;
    });
    let group: Group | null;
    try {
      group = contributions.group(table, row);
    } catch (err) {
      if (!(err instanceof MessageError)) throw err;
      unwritable++;
      continue;
    }
    if (group === null) continue;
    const sums = shape.sums.map((_, i) => r[n + 1 + i] ?? '0');
    if (!sums.every(isDecimalText)) throw new Error(`GROUP BY returned a sum that is not a decimal number for group ${group.key}`);
    total += BigInt(count);
    const id = registryField(group);
    const prev = byGroup.get(id);
    if (prev) {
      prev.count = addDecimalText(prev.count, count);
      prev.sums = prev.sums.map((s, i) => addDecimalText(s, sums[i]!));
    } else byGroup.set(id, { group, count, sums });
  }
  const groups: GroupTotals[] = [];
  for (const { group, count, sums } of byGroup.values()) {
    const values = def.measures.map(({ measure }) => (measure.kind === 'count' ? count : sums[shape.sums.indexOf(measure.column)]!));
    groups.push({ ...group, count, values });
  }
  return { groups, unwritable, rows: total };
}

/**
 * The commands that set an aggregate sink's groups to `groups`, planned where the backfill's
 * message is in the stream: every registry in `registries` (those Redis held when the read began,
 * and those the sink wrote since) is swept of the groups not in `groups`, then each group is
 * written whole (a hash replaced, a member's score set) with its registry entry.
 */
export function aggregateBackfillCommands(def: AggregateDefinition, groups: readonly GroupTotals[], registries: Iterable<string>): RedisCommand[] {
  const mode = scriptMode(def);
  const keep = new Map<string, string[]>();
  for (const g of groups) {
    const reg = aggregateRegistryKeyOf(def.sinkName, g.key);
    let list = keep.get(reg);
    if (!list) keep.set(reg, (list = []));
    list.push(registryField(g));
  }
  const out: RedisCommand[] = [];
  for (const reg of new Set(registries)) {
    if (!isAggregateRegistryKey(def.sinkName, reg)) continue;
    out.push(['EVAL', AGGREGATE_SWEEP_SCRIPT, '1', reg, mode === 'h' ? 'h' : 'z', ...(keep.get(reg) ?? [])]);
  }
  for (const g of groups) {
    const reg = aggregateRegistryKeyOf(def.sinkName, g.key);
    if (mode === 'h') {
      out.push(['DEL', g.key]);
      const hset = ['HSET', g.key];
      def.measures.forEach((m, i) => hset.push(m.field, g.values[i]!));
      out.push(hset, ['HSET', reg, registryField(g), g.count]);
    } else if (mode === 'c') {
      out.push(['ZADD', g.key, g.count, g.member], ['HSET', reg, registryField(g), g.count]);
    } else {
      out.push(['ZADD', g.key, g.values[0]!, g.member], ['HSET', reg, registryField(g), `${g.count} ${g.values[0]!}`]);
    }
  }
  return out;
}
