// The measures of an aggregate sink (`count`, `sum(column)`): how they are written in sluice.yaml,
// read once here for the config schema, the sink, `sluice check`, schema changes, backfill and verify.

/** `count`: the rows of the group (count(*)); `sum`: the sum of a column over them (NULLs add nothing). */
export type Measure = { readonly kind: 'count' } | { readonly kind: 'sum'; readonly column: string };

const SUM = /^sum\(\s*([A-Za-z_][A-Za-z0-9_$]*)\s*\)$/;
const OTHER = /^(min|max|avg|count|sum)\s*\((.*)\)$/i;

/** Reads a measure; a string saying what is wrong when it is none. */
export function parseMeasure(text: string): Measure | string {
  const t = text.trim();
  if (t === 'count' || t === 'count(*)') return { kind: 'count' };
  const m = SUM.exec(t);
  if (m) return { kind: 'sum', column: m[1]! };
  const other = OTHER.exec(t);
  const fn = other?.[1]?.toLowerCase();
  if (fn === 'min' || fn === 'max') {
    return `${fn}() is not offered: a ${fn} cannot be kept exactly when rows are deleted without keeping every row of the group; use count or sum(column)`;
  }
  if (fn === 'avg') return 'avg() is not offered: keep count and sum(column) and divide when reading';
  if (fn === 'count') return 'count counts rows (count(*)); to count a column\'s non-NULL values, write count and filter NULL rows out of the table';
  if (fn === 'sum') return `sum() takes one column name, as sum(amount) (got ${JSON.stringify(t)})`;
  return `must be count or sum(column), as sum(amount) (got ${JSON.stringify(t)})`;
}

/** The columns the measures sum, each once, in order. */
export function summedColumns(measures: readonly string[]): string[] {
  const out: string[] = [];
  for (const text of measures) {
    const m = parseMeasure(text);
    if (typeof m !== 'string' && m.kind === 'sum' && !out.includes(m.column)) out.push(m.column);
  }
  return out;
}

/** The measure texts of an aggregate sink's options: `measures`' values (into: hash) or `score` (into: zset). */
export function measureTexts(sink: Readonly<Record<string, unknown>>): string[] {
  const out: string[] = [];
  const measures = sink.measures;
  if (typeof measures === 'object' && measures !== null) for (const v of Object.values(measures)) if (typeof v === 'string') out.push(v);
  if (typeof sink.score === 'string') out.push(sink.score);
  return out;
}
