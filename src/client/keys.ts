import type { ColumnInfo, TableInfo } from '../core/change.js';
import { compileTemplate, MessageError, parseTemplate, type TemplatePart } from '../core/template.js';
import type { Tuple } from '../core/tuple.js';
import { codecFor } from '../core/values.js';
import { SluiceClientError } from './errors.js';

/**
 * keyFor's pure part: a sink's key (or field, member, channel) rendered from a row with the
 * template parser and renderer the sinks use (core/template.ts), from the definition Sluice
 * publishes in `sluice:sink:<sink>`.
 */

/** A sink's definition as Sluice publishes it (`sluice:sink:<sink>`, JSON). */
export interface SinkDefinition {
  readonly name: string;
  readonly type: string;
  /** as configured: `products`, `public.products`, `sales.*` */
  readonly tables: readonly string[];
  /**
   * the sink's templates (defaults filled in): `key`, and per type `field`, `member`, `channel`…;
   * some entries (`score`) are column names, not templates
   */
  readonly templates: Readonly<Record<string, string | number>>;
  /** `schema.table` → the columns `{pk}` joins, in order */
  readonly primary_keys: Readonly<Record<string, readonly string[]>>;
}

/** The templates keyFor renders: `key`, or another template of the sink's type (`field`, `member`, `channel`, …). */
export type TemplateName = 'key' | 'field' | 'member' | 'channel' | (string & {});

/**
 * A column value as an application holds it. Strings are used as they are; numbers, bigints and
 * booleans as JavaScript prints them (`42`, `true`), which is what Sluice writes for int2/int4/
 * int8 and bool columns. Anything else (a Date, a Buffer, an object) is refused: pass the text
 * Sluice writes in the row's JSON instead (a timestamptz as `2026-11-22T11:11:03.123456Z`, a
 * numeric as Postgres prints it, `9.50`).
 */
export type RowValue = string | number | bigint | boolean | null | undefined;

export interface RenderOptions {
  /**
   * The row's table (`products` or `public.products`). Needed when the sink has several tables
   * or a whole schema (`sales.*`).
   * @default the sink's only table
   */
  table?: string;
  /**
   * Which template to render.
   * @default 'key'
   */
  template?: TemplateName;
}

/** Parses and checks a published definition; null when the text is not one. */
export function parseDefinition(text: string): SinkDefinition | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const d = v as Partial<SinkDefinition>;
  if (typeof d.name !== 'string' || typeof d.type !== 'string' || !Array.isArray(d.tables) || typeof d.templates !== 'object' || d.templates === null) return null;
  if (!d.tables.every((t) => typeof t === 'string')) return null;
  if (typeof d.primary_keys !== 'object' || d.primary_keys === null) return null;
  return d as SinkDefinition;
}

const qualify = (t: string): string => (t.includes('.') ? t : `public.${t}`);

/** The table a row belongs to: `opts.table` (checked against the sink's), else the sink's only table. */
export function resolveTable(def: SinkDefinition, table: string | undefined): { schema: string; name: string; qualified: string } {
  const tables = def.tables.map(qualify);
  let q: string;
  if (table !== undefined) {
    q = qualify(table);
    const schema = q.slice(0, q.indexOf('.'));
    if (!tables.includes(q) && !tables.includes(`${schema}.*`)) {
      throw new SluiceClientError('table_not_found', `sink "${def.name}" does not take table ${q} (its tables: ${def.tables.join(', ')})`);
    }
  } else {
    const only = tables.length === 1 ? tables[0]! : null;
    if (only === null || only.endsWith('.*')) {
      throw new SluiceClientError('table_required', `sink "${def.name}" takes ${def.tables.join(', ')}: say which table the row is from ({ table: "…" })`);
    }
    q = only;
  }
  const dot = q.indexOf('.');
  return { schema: q.slice(0, dot), name: q.slice(dot + 1), qualified: q };
}

const TEXT_CODEC = codecFor(25);

function columnText(sink: string, column: string, v: unknown): string {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'bigint':
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    default: {
      const what = v instanceof Date ? 'a Date' : Buffer.isBuffer(v) ? 'a Buffer' : `a${typeof v === 'object' ? 'n object' : ` ${typeof v}`}`;
      throw new SluiceClientError(
        'bad_row',
        `column "${column}" is ${what}: pass it as the text sink "${sink}" writes in the row's JSON (a timestamptz as "2026-11-22T11:11:03.123456Z", a numeric as Postgres prints it)`,
      );
    }
  }
}

const templateCache = new Map<string, TemplatePart[]>();

function parts(def: SinkDefinition, name: TemplateName): { source: string; parts: TemplatePart[] } {
  const source = def.templates[name];
  if (typeof source !== 'string') {
    const has = Object.keys(def.templates).filter((t) => typeof def.templates[t] === 'string');
    throw new SluiceClientError('no_template', `sink "${def.name}" (${def.type}) has no ${name} template (it has: ${has.join(', ') || 'none'})`);
  }
  let p = templateCache.get(source);
  if (!p) {
    try {
      p = parseTemplate(source);
    } catch (err) {
      throw new SluiceClientError('no_template', `sink "${def.name}"'s ${name} template ${JSON.stringify(source)} cannot be parsed: ${(err as Error).message}`);
    }
    if (templateCache.size > 1000) templateCache.clear();
    templateCache.set(source, p);
  }
  return { source, parts: p };
}

/**
 * Renders a sink's template from a row, with the sinks' rules: `{column}` the column's value,
 * `{pk}` the primary key columns joined with `:`, `{schema}` and `{table}` the row's table, `{{`
 * and `}}` literal braces. Throws SluiceClientError (`no_template`, `table_required`,
 * `table_not_found`, `bad_row`).
 */
export function renderFromDefinition(def: SinkDefinition, row: Readonly<Record<string, unknown>>, opts: RenderOptions = {}): string {
  if (typeof row !== 'object' || row === null) throw new SluiceClientError('bad_row', `a row is an object of column values (got ${row === null ? 'null' : typeof row})`);
  const template = opts.template ?? 'key';
  if (typeof template !== 'string') throw new SluiceClientError('bad_option', `template must be the name of a template, like "key" (got ${typeof template})`);
  const { source, parts: p } = parts(def, template);
  const t = resolveTable(def, opts.table);
  const pk = def.primary_keys[t.qualified] ?? [];
  // every column the template reads must be in the row, and not NULL (Sluice writes no key then)
  const needed = new Set<string>();
  for (const part of p) {
    if (part.kind === 'column') needed.add(part.name);
    else if (part.kind === 'pk') {
      if (pk.length === 0) throw new SluiceClientError('bad_row', `sink "${def.name}" knows no primary key of ${t.qualified}, so {pk} in ${JSON.stringify(source)} cannot be rendered`);
      pk.forEach((c) => needed.add(c));
    }
  }
  for (const c of needed) {
    const v = row[c];
    if (v === undefined) throw new SluiceClientError('bad_row', `the row has no "${c}": ${template} template ${JSON.stringify(source)} of sink "${def.name}" needs it`);
    if (v === null) throw new SluiceClientError('bad_row', `column "${c}" is null: sink "${def.name}" writes no ${template} for such a row`);
  }
  const names = [...needed];
  const columns: ColumnInfo[] = names.map((name) => ({ name, typeOid: 25, isKey: pk.includes(name), codec: TEXT_CODEC, jsonName: `${JSON.stringify(name)}:` }));
  const table: TableInfo = {
    relationOid: 0,
    schema: t.schema,
    name: t.name,
    qualifiedName: t.qualified,
    replicaIdentity: 'd',
    columns,
    keyIndexes: pk.map((c) => names.indexOf(c)),
  };
  const tuple: Tuple = names.map((c) => columnText(def.name, c, row[c]));
  try {
    return compileTemplate(p, table)(tuple);
  } catch (err) {
    if (err instanceof MessageError) throw new SluiceClientError('bad_row', err.message);
    throw err;
  }
}
