// docs/configuration.md against the config schema: every option of sluice.yaml is documented,
// and the page documents no option that does not exist. Its YAML examples must be valid too.
//
// The convention the page follows (and this test reads):
//  - A section is a heading whose text starts with the option's name in backticks: "## `redis`",
//    "### `tls`" under it. Headings without a leading backticked name ("### Postgres TLS",
//    "### Options of every sink") do not change the section. Levels of maps and lists are not
//    written: the options of each connection (`redis.<name>.url`) are in the `redis` section,
//    those of each sink (`sinks[].key`) in the `sinks` section.
//  - Under `sinks`, a section named after a sink type ("### `list`") holds the options only some
//    types have; the options every type has are in the `sinks` section itself.
//  - An option is a row of a table whose header starts with "Key"; the row's first cell is the
//    option's name in backticks. Other tables (of values, placeholders, …) are not read.
//  - A section heading documents the option it names, too (the top-level sections).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { validate } from '../../src/config/issues.js';
import { sluiceConfigSchema } from '../../src/config/schema.js';
import { parseSinkBlock } from '../../src/config/sink-block.js';

const DOC_PATH = new URL('../../docs/configuration.md', import.meta.url);
const DOC = readFileSync(DOC_PATH, 'utf8');

// ---------------------------------------------------------------------------------------------
// The options of the schema

interface SchemaOption {
  /** the names of the sections it is documented under, e.g. ['redis', 'tls'] or ['sinks', 'list'] */
  section: string[];
  key: string;
  /** for messages: redis.<name>.tls.ca, sinks[].max_length (list, stream) */
  display: string;
}

type AnySchema = z.core.$ZodType;

/** Past optional, default, prefault, nullable and pipes (a pipe's input is what users write). */
function unwrap(s: AnySchema): AnySchema {
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodNullable) s = s.unwrap();
    else if (s instanceof z.ZodPipe) s = s.in;
    else return s;
  }
}

function schemaOptions(root: AnySchema): { options: SchemaOption[]; variants: Set<string> } {
  const options: SchemaOption[] = [];
  const variants = new Set<string>(); // "sinks.list"
  const seen = new Set<string>();
  const emit = (section: string[], key: string, display: string, variant?: string): void => {
    const id = [...section, key].join('.');
    if (seen.has(id)) return; // an option every variant has, met again
    seen.add(id);
    options.push({ section, key, display: variant === undefined ? display : `${display} (${variant})` });
  };

  /** the options of a value at `section` (maps and lists add nothing to the section) */
  const walkValue = (schema: AnySchema, section: string[], display: string): void => {
    const s = unwrap(schema);
    if (s instanceof z.ZodRecord) walkValue(s.valueType as AnySchema, section, `${display}.<name>`);
    else if (s instanceof z.ZodArray) walkValue(s.element as AnySchema, section, `${display}[]`);
    else if (s instanceof z.ZodObject) walkObject(s, section, display);
    else if (s instanceof z.ZodDiscriminatedUnion) walkVariants(s, section, display);
  };

  const walkObject = (s: z.ZodObject, section: string[], display: string, variant?: string): void => {
    for (const [key, child] of Object.entries(s.shape)) {
      const path = display === '' ? key : `${display}.${key}`;
      emit(section, key, path, variant);
      walkValue(child as AnySchema, [...section, key], path);
    }
  };

  /** Options every variant has belong to the section; the others to the variant's own section. */
  const walkVariants = (u: z.ZodDiscriminatedUnion, section: string[], display: string): void => {
    const discriminator = (u._zod.def as { discriminator: string }).discriminator;
    const objects = u.options.map((o) => unwrap(o as AnySchema));
    assert.ok(objects.every((o) => o instanceof z.ZodObject), `${display}: a union of objects`);
    const shapes = (objects as z.ZodObject[]).map((o) => o.shape);
    const common = Object.keys(shapes[0] ?? {}).filter((k) => shapes.every((sh) => k in sh));
    for (const shape of shapes) {
      const tag = unwrap(shape[discriminator] as AnySchema);
      assert.ok(tag instanceof z.ZodLiteral, `${display}.${discriminator} is a literal`);
      const variant = String(tag.value);
      variants.add([...section, variant].join('.'));
      for (const [key, child] of Object.entries(shape)) {
        const path = `${display}.${key}`;
        if (common.includes(key)) {
          emit(section, key, path);
          walkValue(child as AnySchema, [...section, key], path);
        } else {
          emit([...section, variant], key, path, `${discriminator}: ${variant}`);
          walkValue(child as AnySchema, [...section, variant, key], path);
        }
      }
    }
  };

  walkValue(root, [], '');
  return { options, variants };
}

// ---------------------------------------------------------------------------------------------
// The options of the page

interface DocOption {
  section: string[];
  key: string;
  line: number;
  kind: 'heading' | 'row';
}

function docOptions(text: string): { options: DocOption[]; violations: string[] } {
  const options: DocOption[] = [];
  const violations: string[] = [];
  const stack: Array<{ level: number; name: string | undefined }> = [];
  const section = (): string[] => stack.flatMap((h) => (h.name === undefined ? [] : [h.name]));
  const lines = text.split('\n');
  let inFence = false;
  let table: 'options' | 'other' | undefined;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const lineNo = i + 1;
    if (line.startsWith('```')) {
      inFence = !inFence;
      return;
    }
    if (inFence) return;
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading !== null) {
      // both groups always take part in a match
      const level = heading[1]!.length;
      while (stack.length > 0 && stack[stack.length - 1]!.level >= level) stack.pop();
      const name = /^`([^`]+)`/.exec(heading[2]!)?.[1];
      if (name !== undefined) options.push({ section: section(), key: name, line: lineNo, kind: 'heading' });
      stack.push({ level, name });
      return;
    }
    if (!line.startsWith('|')) {
      table = undefined;
      return;
    }
    const cells = line.slice(1, line.endsWith('|') ? -1 : undefined).split('|').map((c) => c.trim());
    const first = cells[0] ?? '';
    if (table === undefined) {
      table = first === 'Key' ? 'options' : 'other';
      if (table === 'options' && section().length === 0) violations.push(`line ${lineNo}: an option table outside any \`option\` section`);
      return;
    }
    if (table === 'other' || /^:?-+:?$/.test(first)) return;
    const key = /^`([A-Za-z_][A-Za-z0-9_]*)`$/.exec(first)?.[1];
    if (key === undefined) violations.push(`line ${lineNo}: the first cell of an option table must be an option name in backticks (got ${first})`);
    else options.push({ section: section(), key, line: lineNo, kind: 'row' });
  });
  return { options, violations };
}

// ---------------------------------------------------------------------------------------------

const schema = schemaOptions(sluiceConfigSchema);
const doc = docOptions(DOC);
const id = (section: readonly string[], key: string): string => [...section, key].join('.');

test('the schema walk finds the options (a check of the walk itself)', () => {
  const displays = schema.options.map((o) => o.display);
  for (const expected of [
    'source.url',
    'redis.<name>.url',
    'redis.<name>.tls.ca',
    'redis.<name>.sentinel.nodes',
    'sinks[].expire_ms',
    'sinks[].tables',
    'sinks[].max_length (type: list)',
    'sinks[].max_length (type: stream)',
    'sinks[].score (type: zset)',
    'http.token',
    'log.level',
    'apply.batch_max_commands',
    'state.url',
    'state.schema',
  ]) {
    assert.ok(displays.includes(expected), `${expected} in ${displays.join(', ')}`);
  }
  assert.ok(schema.variants.has('sinks.list'));
  assert.ok(schema.options.length > 50, `${schema.options.length} options`);
});

test('docs/configuration.md follows its convention', () => {
  assert.deepEqual(doc.violations, []);
});

test('every option of sluice.yaml is documented in docs/configuration.md, in its section', () => {
  const documented = new Set(doc.options.map((o) => id(o.section, o.key)));
  const missing = schema.options
    .filter((o) => !documented.has(id(o.section, o.key)))
    .map((o) => `${o.display}: expected a row \`${o.key}\` in a "Key" table under the section ${o.section.map((s) => `\`${s}\``).join(' › ') || '(top level heading)'}`);
  assert.deepEqual(missing, []);
});

test('docs/configuration.md documents no option that does not exist', () => {
  const known = new Set(schema.options.map((o) => id(o.section, o.key)));
  const unknown = doc.options
    .filter((o) => {
      if (known.has(id(o.section, o.key))) return false;
      // a heading naming a variant: "### `list`" under `sinks`
      if (o.kind === 'heading' && schema.variants.has(id(o.section, o.key))) return false;
      // a variant's section may describe an option all variants have (list: `actions`)
      if (o.kind === 'row' && schema.variants.has(o.section.join('.')) && known.has(id(o.section.slice(0, -1), o.key))) return false;
      return true;
    })
    .map((o) => `line ${o.line}: ${o.kind} \`${o.key}\` under ${o.section.map((s) => `\`${s}\``).join(' › ') || 'the top level'} is not an option of sluice.yaml`);
  assert.deepEqual(unknown, []);
});

// ---------------------------------------------------------------------------------------------
// Examples

const yamlBlocks = [...DOC.matchAll(/^```yaml\n([\s\S]*?)^```/gm)].map((m) => ({ text: m[1]!, line: DOC.slice(0, m.index).split('\n').length }));

/** ${NAME:-default} → default, ${NAME} → "secret" (unquoted values are read as YAML, as in the loader). */
const substitute = (text: string): string => text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_, _name: string, dflt?: string) => dflt ?? 'secret');

const BASE = {
  source: { url: 'postgres://app@localhost/app' },
  redis: { cache: { url: 'redis://localhost:6379' } },
  sinks: [{ name: 'base', type: 'string', tables: ['base'] }],
};

test('every YAML example of docs/configuration.md is valid', () => {
  assert.ok(yamlBlocks.length >= 10, `${yamlBlocks.length} examples`);
  const failures: string[] = [];
  for (const block of yamlBlocks) {
    const data: unknown = parseYaml(substitute(block.text));
    if (Array.isArray(data)) {
      // sinks, as under `sinks:`
      for (const sink of data) {
        const redis = (sink as { redis?: unknown }).redis;
        const r = parseSinkBlock(sink, { redisNames: [typeof redis === 'string' ? redis : 'cache'] });
        if (!r.ok) failures.push(`line ${block.line}: ${r.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
      }
      continue;
    }
    // a whole file, or some of its sections: completed with the sections it lacks
    const sections = data as Record<string, unknown>;
    const merged: Record<string, unknown> = { ...BASE, ...sections };
    if ('redis' in sections && !('sinks' in sections)) {
      merged.sinks = [{ ...BASE.sinks[0], redis: Object.keys(sections.redis as object)[0] }];
    }
    const r = validate(sluiceConfigSchema, merged);
    if (!r.success) failures.push(`line ${block.line}: ${r.problems.map((p) => `${p.path.join('.')}: ${p.message}`).join('; ')}`);
  }
  assert.deepEqual(failures, []);
});

test('the JSON examples (sink blocks for the API) are valid', () => {
  const blocks = [...DOC.matchAll(/^```json\n([\s\S]*?)^```/gm)];
  assert.ok(blocks.length >= 1);
  for (const m of blocks) {
    const r = parseSinkBlock(JSON.parse(m[1]!), { redisNames: ['cache'] }); // the group always takes part
    assert.ok(r.ok, r.ok ? '' : r.problems.map((p) => `${p.path}: ${p.message}`).join('; '));
  }
});
