import type { TableInfo } from './change.js';
import type { Tuple } from './tuple.js';
import { toPlain } from './values.js';

/**
 * Key, member, field and channel templates: `sluice:{table}:{pk}`, `user:{user_id}:orders`.
 * Placeholders: {schema}, {table}, {pk} (primary key values joined with ':'), {column}.
 * A template is compiled once per table shape into a list of parts, so rendering a row is a
 * handful of string concatenations.
 */
export type TemplatePart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'schema' | 'table' | 'pk' }
  | { readonly kind: 'column'; readonly name: string };

/**
 * A message-level failure: the message goes to the failed list, the pipeline goes on.
 * `withoutValues` is the message without the row values it quotes, for logs (the default: the
 * message quotes none).
 */
export class MessageError extends Error {
  readonly withoutValues: string;

  constructor(message: string, withoutValues: string = message) {
    super(message);
    this.name = 'MessageError';
    this.withoutValues = withoutValues;
  }
}

const PLACEHOLDER = /^[A-Za-z_][A-Za-z0-9_$]*$/;

export function parseTemplate(source: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let text = '';
  let i = 0;
  // `{{` and `}}` are literal braces, so Redis Cluster hash tags can be written:
  // "order:{{{user_id}}}:{id}" renders "order:{42}:7"
  while (i < source.length) {
    const c = source[i]!;
    if (c === '{' && source[i + 1] === '{') {
      text += '{';
      i += 2;
    } else if (c === '}' && source[i + 1] === '}') {
      text += '}';
      i += 2;
    } else if (c === '}') {
      throw new Error(`unmatched "}" at position ${i + 1} (write "}}" for a literal brace)`);
    } else if (c === '{') {
      const end = source.indexOf('}', i);
      if (end === -1) throw new Error(`unclosed "{" at position ${i + 1} (write "{{" for a literal brace)`);
      const name = source.slice(i + 1, end);
      if (!PLACEHOLDER.test(name)) throw new Error(`"{${name}}" is not a placeholder: use {schema}, {table}, {pk} or {column_name}`);
      if (text) parts.push({ kind: 'text', text });
      text = '';
      parts.push(name === 'schema' || name === 'table' || name === 'pk' ? { kind: name } : { kind: 'column', name });
      i = end + 1;
    } else {
      text += c;
      i++;
    }
  }
  if (text) parts.push({ kind: 'text', text });
  return parts;
}

/** Columns a template reads (for deciding whether an old row is complete enough). */
export function templateColumns(parts: readonly TemplatePart[], table: TableInfo): number[] {
  const out = new Set<number>();
  for (const p of parts) {
    if (p.kind === 'pk') table.keyIndexes.forEach((k) => out.add(k));
    else if (p.kind === 'column') {
      const idx = table.columns.findIndex((c) => c.name === p.name);
      if (idx >= 0) out.add(idx);
    }
  }
  return [...out];
}

export type RenderFn = (row: Tuple) => string;

/** Compiles a template for one table shape. Throws MessageError if a column is missing. */
export function compileTemplate(parts: readonly TemplatePart[], table: TableInfo): RenderFn {
  const pieces: (string | ((row: Tuple) => string))[] = parts.map((p): string | ((row: Tuple) => string) => {
    switch (p.kind) {
      case 'text':
        return p.text;
      case 'schema':
        return table.schema;
      case 'table':
        return table.name;
      case 'pk': {
        if (table.keyIndexes.length === 0) {
          return () => {
            throw new MessageError(`table ${table.qualifiedName} has no primary key or replica identity columns for {pk}`);
          };
        }
        const readers = table.keyIndexes.map((i) => columnReader(table, i));
        return readers.length === 1 ? readers[0]! : (row) => readers.map((r) => r(row)).join(':');
      }
      case 'column': {
        const idx = table.columns.findIndex((c) => c.name === p.name);
        if (idx < 0) {
          return () => {
            throw new MessageError(`column "${p.name}" is not in table ${table.qualifiedName}`);
          };
        }
        return columnReader(table, idx);
      }
    }
  });
  // adjacent fixed pieces are joined once: `sluice:{table}:{pk}` renders as "sluice:items:" + pk
  const folded: (string | ((row: Tuple) => string))[] = [];
  for (const p of pieces) {
    const prev = folded[folded.length - 1];
    if (typeof p === 'string' && typeof prev === 'string') folded[folded.length - 1] = prev + p;
    else if (p !== '') folded.push(p);
  }
  if (folded.every((x) => typeof x === 'string')) {
    const s = (folded as string[]).join('');
    return () => s;
  }
  // joined, not `+=`: a flat string, not a rope kept alive with its batch (see recordJson)
  const n = folded.length;
  return (row) => {
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const piece = folded[i]!;
      out[i] = typeof piece === 'string' ? piece : piece(row);
    }
    return n === 1 ? out[0]! : out.join('');
  };
}

function columnReader(table: TableInfo, idx: number): (row: Tuple) => string {
  const col = table.columns[idx]!;
  return (row) => {
    const v = row[idx];
    if (v === null) throw new MessageError(`column "${col.name}" is NULL, so the template cannot be rendered`);
    if (v === undefined) throw new MessageError(`column "${col.name}" is not in the row Postgres sent (unchanged TOAST or not in the replica identity)`);
    return toPlain(col.codec, v) ?? '';
  };
}

/**
 * Caches compiled templates per table shape. A new Relation message makes a new TableInfo
 * object, so a WeakMap keyed by it is invalidated by schema changes for free.
 */
export class TemplateCache {
  private readonly cache = new WeakMap<TableInfo, RenderFn>();
  readonly parts: readonly TemplatePart[];

  constructor(readonly source: string) {
    this.parts = parseTemplate(source);
  }

  render(table: TableInfo, row: Tuple): string {
    let fn = this.cache.get(table);
    if (!fn) {
      fn = compileTemplate(this.parts, table);
      this.cache.set(table, fn);
    }
    return fn(row);
  }
}

/**
 * The fixed text a template's keys start with for one table, with {schema} and {table}
 * filled in: `sluice:{table}:{pk}` gives `sluice:products:`. Null when the template starts with a
 * row-dependent placeholder (no safe prefix to SCAN for).
 */
export function templatePrefix(parts: readonly TemplatePart[], table: TableInfo): string | null {
  let prefix = '';
  for (const p of parts) {
    if (p.kind === 'text') prefix += p.text;
    else if (p.kind === 'schema') prefix += table.schema;
    else if (p.kind === 'table') prefix += table.name;
    else break;
  }
  return prefix.length > 0 ? prefix : null;
}
