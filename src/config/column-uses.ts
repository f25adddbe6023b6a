// The columns a sink's options name: `{column}` placeholders of its templates (key, field, member,
// channel, element) and the options that are column names (a zset's `score`, a geo sink's
// `longitude` and `latitude`, a bitmap's `offset`). `sluice check` and `sluice start` compare them with the tables'
// real columns (pg/source-setup.ts), so that a misspelt column is reported before every row fails.
import { parseTemplate } from '../core/template.js';
import { parseMeasure } from './aggregate-measures.js';

export interface ColumnUse {
  /** the option naming the column: key, field, member, channel, element, score, longitude, latitude or offset */
  readonly option: string;
  readonly column: string;
  /** the option is a template (a `{column}` placeholder), else a column name (score, …), whose value must be a number */
  readonly template: boolean;
}

/** The options of each sink type that are templates. */
const TEMPLATE_OPTIONS = ['key', 'field', 'member', 'channel', 'element'] as const;

/** The options that name a numeric column, per sink type. */
const NUMBER_COLUMN_OPTIONS: Readonly<Record<string, readonly string[]>> = { zset: ['score'], geo: ['longitude', 'latitude'], bitmap: ['offset'] };

/**
 * Every column a sink's options name, in option order, each (option, column) once. A template that
 * does not parse names nothing here: the config schema reports it.
 */
export function sinkColumnUses(sink: Readonly<Record<string, unknown>>): ColumnUse[] {
  const out: ColumnUse[] = [];
  const seen = new Set<string>();
  const add = (use: ColumnUse): void => {
    const id = `${use.option}\u0000${use.column}`;
    if (seen.has(id)) return;
    seen.add(id);
    out.push(use);
  };
  for (const option of TEMPLATE_OPTIONS) {
    const source = sink[option];
    if (typeof source !== 'string') continue;
    let parts;
    try {
      parts = parseTemplate(source);
    } catch {
      continue;
    }
    for (const p of parts) if (p.kind === 'column') add({ option, column: p.name, template: true });
  }
  for (const option of NUMBER_COLUMN_OPTIONS[String(sink.type)] ?? []) {
    const column = sink[option];
    if (typeof column === 'string') add({ option, column, template: false });
  }
  if (sink.type === 'aggregate') {
    // sum(column) in `measures` (option measures.<field>) or `score`
    const measures = typeof sink.measures === 'object' && sink.measures !== null ? Object.entries(sink.measures) : [];
    const texts: [string, unknown][] = [...measures.map(([f, v]): [string, unknown] => [`measures.${f}`, v]), ['score', sink.score]];
    for (const [option, text] of texts) {
      const m = typeof text === 'string' ? parseMeasure(text) : null;
      if (m !== null && typeof m !== 'string' && m.kind === 'sum') add({ option, column: m.column, template: false });
    }
  }
  return out;
}
