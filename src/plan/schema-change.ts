import type { TableInfo } from '../core/change.js';
import { parseTemplate } from '../core/template.js';
import { measureTexts, summedColumns } from '../config/aggregate-measures.js';

/**
 * Schema changes that reach Redis. A table's shape is its columns (name and type, in order); when
 * the stream brings a Relation message with another shape than the one last seen, the rows
 * already in Redis were written with the old shape. Pure decisions: the shape, what changed,
 * and which sinks' output depends on it (those are backfilled again).
 */
export function columnsSignature(table: TableInfo): string {
  return table.columns.map((c) => `${c.name}:${c.typeOid}`).join(',');
}

export interface SchemaDiff {
  readonly added: readonly string[];
  readonly dropped: readonly string[];
  /** same name, another type */
  readonly retyped: readonly string[];
}

export function schemaDiff(before: string, now: string): SchemaDiff {
  const parse = (sig: string): Map<string, string> => new Map(sig === '' ? [] : sig.split(',').map((c) => {
    const at = c.lastIndexOf(':');
    return [c.slice(0, at), c.slice(at + 1)] as const;
  }));
  const a = parse(before);
  const b = parse(now);
  return {
    added: [...b.keys()].filter((n) => !a.has(n)),
    dropped: [...a.keys()].filter((n) => !b.has(n)),
    retyped: [...b.keys()].filter((n) => a.has(n) && a.get(n) !== b.get(n)),
  };
}

/** What of a sink's configuration decides whether a schema change touches what it wrote. */
export interface SinkShape {
  readonly type: string;
  /** the sink's templates and column options (key, field, member, score, channel, …) */
  readonly options: Readonly<Record<string, unknown>>;
  readonly hasTransform: boolean;
}

const HISTORY_SINKS = new Set(['list', 'stream', 'pubsub']);
const WHOLE_ROW_SINKS = new Set(['string', 'hash']);
/** options that name a column directly (not a template) */
const COLUMN_OPTIONS = ['score', 'longitude', 'latitude', 'offset'];
const TEMPLATE_OPTIONS = ['key', 'field', 'member', 'element', 'channel'];

/**
 * Must the sink's rows be written again? History sinks (list, stream, pub/sub) keep what was
 * sent: never. A sink that stores the whole row (string, hash; or any with a transform): for any
 * change. Others (set, zset, …): when a column their templates or options name was dropped,
 * renamed or retyped.
 */
export function sinkDependsOn(sink: SinkShape, diff: SchemaDiff): boolean {
  if (HISTORY_SINKS.has(sink.type)) return false;
  const changed = diff.added.length + diff.dropped.length + diff.retyped.length > 0;
  if (!changed) return false;
  if (WHOLE_ROW_SINKS.has(sink.type) || sink.hasTransform) return true;
  const touched = new Set([...diff.dropped, ...diff.retyped]);
  // an aggregate's sums: `sum(column)` in measures or score
  if (sink.type === 'aggregate' && summedColumns(measureTexts(sink.options)).some((c) => touched.has(c))) return true;
  for (const o of COLUMN_OPTIONS) {
    const v = sink.options[o];
    if (typeof v === 'string' && touched.has(v)) return true;
  }
  for (const o of TEMPLATE_OPTIONS) {
    const v = sink.options[o];
    if (typeof v !== 'string') continue;
    for (const p of parseTemplate(v)) if (p.kind === 'column' && touched.has(p.name)) return true;
    // {pk}: a change of the key columns moves every key
    if (parseTemplate(v).some((p) => p.kind === 'pk') && touched.size > 0) return true;
  }
  return false;
}
