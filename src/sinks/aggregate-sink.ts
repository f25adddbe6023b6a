import type { Change, TableInfo } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { MessageError, TemplateCache, templateColumns, templatePrefix } from '../core/template.js';
import type { Tuple } from '../core/tuple.js';
import { isZeroDecimalText, negateDecimalText, subtractDecimalText } from '../core/decimal.js';
import { aggregateRegistryKey } from '../core/keyspace.js';
import { slotOf, slotTag } from '../core/slot-tags.js';
import { parseMeasure, type Measure } from '../config/aggregate-measures.js';
import { checkKey, planSafely, type PlanOutput, type RedisCommand, type Sink } from './sink.js';
import { encodeEntry } from './reverse-index.js';
import { AGGREGATE_APPLY_SCRIPT } from './aggregate-scripts.js';

export interface AggregateSinkOptions {
  name: string;
  key: string;
  into: 'hash' | 'zset';
  /** into: hash — field → `count` | `sum(column)` (default: `{count: count}`) */
  measures?: Readonly<Record<string, string>> | undefined;
  /** into: zset */
  member?: string | undefined;
  score?: string | undefined;
}

/** One measure of a group: the hash field it is written to ('' for a sorted set's score). */
export interface MeasureSpec {
  readonly field: string;
  readonly measure: Measure;
}

/** What an aggregate sink computes, for its planner, its backfill and verify. */
export interface AggregateDefinition {
  readonly sinkName: string;
  readonly into: 'hash' | 'zset';
  readonly key: TemplateCache;
  /** into: zset */
  readonly member: TemplateCache | null;
  /** into: hash, the measures in order; into: zset, the score alone */
  readonly measures: readonly MeasureSpec[];
}

export interface AggregateSink extends Sink {
  readonly aggregate: AggregateDefinition;
}

export function isAggregateSink(sink: Sink): sink is AggregateSink {
  return sink.type === 'aggregate' && 'aggregate' in sink;
}

/** A group: the key (and, into a sorted set, the member) its rows are counted under. */
export interface Group {
  readonly key: string;
  /** '' into a hash */
  readonly member: string;
}

/** What one row adds to its group: one decimal per measure (a count's is 1). */
interface Contribution extends Group {
  readonly values: readonly string[];
}

const FLOAT_OIDS = new Set([700, 701]);
const PLAIN_NUMBER = /^-?\d+(?:\.\d+)?$/;

export function aggregateDefinition(opts: AggregateSinkOptions): AggregateDefinition {
  const read = (field: string, text: string): MeasureSpec => {
    const m = parseMeasure(text);
    if (typeof m === 'string') throw new Error(`sink "${opts.name}": measure ${field === '' ? 'score' : JSON.stringify(field)}: ${m}`);
    return { field, measure: m };
  };
  if (opts.into === 'hash') {
    const measures = Object.entries(opts.measures ?? { count: 'count' }).map(([field, text]) => read(field, text));
    if (measures.length === 0) throw new Error(`sink "${opts.name}": an aggregate into a hash needs measures`);
    return { sinkName: opts.name, into: 'hash', key: new TemplateCache(opts.key), member: null, measures };
  }
  if (opts.member === undefined || opts.score === undefined) throw new Error(`sink "${opts.name}": an aggregate into a sorted set needs member and score`);
  return { sinkName: opts.name, into: 'zset', key: new TemplateCache(opts.key), member: new TemplateCache(opts.member), measures: [read('', opts.score)] };
}

/** The registry of the groups in `key`'s hash slot: same slot, so one script updates both. */
export function aggregateRegistryKeyOf(sinkName: string, key: string): string {
  return aggregateRegistryKey(sinkName, slotTag(slotOf(key)));
}

/** The registry field of a group. */
export function registryField(g: Group): string {
  return encodeEntry(g.key, g.member);
}

/** The script's mode: into a hash, into a sorted set scored by the count, or by a sum. */
export function scriptMode(def: AggregateDefinition): 'h' | 'c' | 's' {
  if (def.into === 'hash') return 'h';
  return def.measures[0]!.measure.kind === 'count' ? 'c' : 's';
}

/**
 * Reads rows into groups and contributions. A row whose group template reads a NULL column belongs
 * to no group (as the backfill's and verify's GROUP BY leave such rows out): it counts nowhere.
 */
export class Contributions {
  private readonly groupColumns = new WeakMap<TableInfo, readonly number[]>();
  private readonly measureColumns = new WeakMap<TableInfo, readonly number[]>();

  constructor(readonly def: AggregateDefinition) {}

  /** The row's group, or null when a column of the group is NULL. */
  group(table: TableInfo, row: Tuple): Group | null {
    let cols = this.groupColumns.get(table);
    if (cols === undefined) {
      cols = templateColumns(this.def.key.parts, table).concat(this.def.member ? templateColumns(this.def.member.parts, table) : []);
      this.groupColumns.set(table, cols);
    }
    for (const i of cols) if (row[i] === null) return null;
    const key = checkKey(this.def.key.render(table, row));
    return { key, member: this.def.member ? this.def.member.render(table, row) : '' };
  }

  of(table: TableInfo, row: Tuple): Contribution | null {
    const group = this.group(table, row);
    if (group === null) return null;
    const idx = this.columnIndexes(table);
    const values = this.def.measures.map(({ measure }, i) => (measure.kind === 'count' ? '1' : this.value(table, row, idx[i]!, measure.column)));
    return { ...group, values };
  }

  private columnIndexes(table: TableInfo): readonly number[] {
    let idx = this.measureColumns.get(table);
    if (idx === undefined) {
      idx = this.def.measures.map(({ measure }) => (measure.kind === 'sum' ? table.columns.findIndex((c) => c.name === measure.column) : -1));
      this.measureColumns.set(table, idx);
    }
    return idx;
  }

  /** A summed column's value as exact decimal text; NULL adds nothing (as SUM ignores it). */
  private value(table: TableInfo, row: Tuple, idx: number, column: string): string {
    if (idx < 0) throw new MessageError(`the summed column "${column}" is not in table ${table.qualifiedName}`);
    if (FLOAT_OIDS.has(table.columns[idx]!.typeOid)) {
      throw new MessageError(`the summed column "${column}" of ${table.qualifiedName} is a float: floats cannot be summed exactly (each addition rounds, in Postgres too); make it numeric (ALTER TABLE ${table.qualifiedName} ALTER COLUMN ${column} TYPE numeric) and backfill the sink`);
    }
    const v = row[idx];
    if (v === undefined) throw new MessageError(`the summed column "${column}" is not in the row Postgres sent (unchanged TOAST)`);
    if (v === null) return '0';
    if (!PLAIN_NUMBER.test(v)) {
      throw new MessageError(`the summed column "${column}" holds ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}, not a finite number`, `the summed column "${column}" holds no finite number`);
    }
    return v;
  }
}

/**
 * `type: aggregate`: what `GROUP BY` would compute, kept in Redis as running totals. Each row adds
 * its contribution to its group (a count of 1, the summed columns' values): an insert adds it, a
 * delete takes it away, an update takes the old row's away and adds the new row's (one command when
 * the group stays). Every change is one EVAL of AGGREGATE_APPLY_SCRIPT per group it touches,
 * inside the batch's MULTI with the sink's position, so a replay after a crash is skipped with it.
 *
 * Updates and deletes need the old row: with anything but REPLICA IDENTITY FULL they are failed
 * messages (sluice check and start refuse such a sink). A float column is not summed (inexact).
 */
export function createAggregateSink(opts: AggregateSinkOptions): AggregateSink {
  const def = aggregateDefinition(opts);
  const rows = new Contributions(def);
  const mode = scriptMode(def);
  const command = (g: Group, count: string, values: readonly string[]): RedisCommand => {
    const cmd = ['EVAL', AGGREGATE_APPLY_SCRIPT, '2', g.key, aggregateRegistryKeyOf(def.sinkName, g.key), mode, registryField(g), count];
    if (mode === 'h') def.measures.forEach((m, i) => cmd.push(m.field, values[i]!));
    else if (mode === 'c') cmd.push(g.member);
    else cmd.push(g.member, values[0]!);
    return cmd;
  };
  const oldRowOf = (change: Change): Tuple => {
    if (change.oldKind === 'O' && change.oldRow) return change.oldRow;
    const t = change.table.qualifiedName;
    throw new MessageError(
      `table ${t} is not REPLICA IDENTITY FULL: Postgres sent only the key of the old row, so this ${change.action}'s contribution cannot be taken from its group; run ALTER TABLE ${t} REPLICA IDENTITY FULL; then backfill the sink`,
    );
  };
  return {
    name: opts.name,
    type: 'aggregate',
    aggregate: def,
    plan(change: Change, _meta: MessageMeta, out: PlanOutput): void {
      planSafely(change, out, () => {
        const t = change.table;
        // every contribution is computed before anything is planned: a failure plans nothing
        switch (change.action) {
          case 'insert': {
            const c = rows.of(t, change.row);
            if (c) out.command(command(c, '1', c.values));
            return;
          }
          case 'delete': {
            const c = rows.of(t, oldRowOf(change));
            if (c) out.command(command(c, '-1', c.values.map(negateDecimalText)));
            return;
          }
          case 'update': {
            const before = rows.of(t, oldRowOf(change));
            const after = rows.of(t, change.row);
            if (before && after && before.key === after.key && before.member === after.member) {
              const delta = after.values.map((v, i) => subtractDecimalText(v, before.values[i]!));
              if (!delta.every(isZeroDecimalText)) out.command(command(after, '0', delta));
              return;
            }
            if (before) out.command(command(before, '-1', before.values.map(negateDecimalText)));
            if (after) out.command(command(after, '1', after.values));
            return;
          }
          case 'read':
            throw new MessageError('an aggregate sink takes no row reads: its backfill sets every group from one GROUP BY read');
        }
      });
    },
    truncatePattern(table: TableInfo): string | null {
      return templatePrefix(def.key.parts, table);
    },
  };
}
