import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Change } from '../../src/core/change.js';
import { changesJson, idempotencyKey, messageJson, metadataJson, recordJson, type MessageMeta } from '../../src/core/render.js';
import { MessageError } from '../../src/core/template.js';
import { toJson } from '../../src/core/values.js';
import { T, anyText, deleteChange, insertChange, table, tuple, updateChange, type ColumnDesc } from './support/tables.js';

/**
 * The raw JSON text of each member of a JSON object, by name (for numbers whose digits
 * JSON.parse would lose). Assumes the text is valid JSON (checked separately).
 */
function rawMembers(json: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 1; // past '{'
  let depth = 0;
  let inString = false;
  let start = 1;
  const flush = (end: number) => {
    const member = json.slice(start, end);
    if (member.length === 0) return;
    // the name is a JSON string followed by ':'
    let j = 1;
    while (member[j] !== '"') j += member[j] === '\\' ? 2 : 1;
    out.set(JSON.parse(member.slice(0, j + 1)) as string, member.slice(j + 2));
  };
  for (; i < json.length - 1; i++) {
    const c = json[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 0) {
      flush(i);
      start = i + 1;
    }
  }
  flush(json.length - 1);
  return out;
}

const META: MessageMeta = { commitLsn: 0x16b3748n, commitTimeMicros: 817_125_063_123_456n, sinkName: 'products-cache' };

const products = table('public', 'products', [
  ['id', T.int8, true],
  ['name', T.text],
  ['price', T.numeric],
  ['active', T.bool],
  ['tags', T.textArray],
  ['meta', T.jsonb],
  ['updated_at', T.timestamptz],
  ['note', T.text],
]);

describe('recordJson', () => {
  test('a row of many types is the §3 JSON object', () => {
    const t = table('public', 'everything', [
      ['id', T.int8, true],
      ['small', T.int2],
      ['n', T.int4],
      ['price', T.numeric],
      ['ratio', T.float8],
      ['ok', T.bool],
      ['name', T.text],
      ['code', T.varchar],
      ['uid', T.uuid],
      ['doc', T.json],
      ['docb', T.jsonb],
      ['day', T.date],
      ['at', T.timestamp],
      ['atz', T.timestamptz],
      ['tags', T.textArray],
      ['nums', T.int4Array],
      ['gone', T.text],
    ]);
    const row = [
      '9007199254740993',
      '-32768',
      '2147483647',
      '123456789012345678901234567890.000100',
      '1e+20',
      't',
      'Lämp "deluxe" \\ 😀\n',
      '',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      '{"a": [1, 2.50, null], "b": "x"}',
      '{"k": {"nested": true}}',
      '2026-11-22',
      '2026-11-22 11:11:03.5',
      '2026-11-22 13:11:03.123456+02',
      '{a,"b c",NULL,"NULL",""}',
      '{{1,2},{3,NULL}}',
      null,
    ];
    const json = recordJson(t, row);
    assert.deepEqual(JSON.parse(json), {
      id: 9007199254740993,
      small: -32768,
      n: 2147483647,
      price: 123456789012345678901234567890.0001,
      ratio: 1e20,
      ok: true,
      name: 'Lämp "deluxe" \\ 😀\n',
      code: '',
      uid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      doc: { a: [1, 2.5, null], b: 'x' },
      docb: { k: { nested: true } },
      day: '2026-11-22',
      at: '2026-11-22T11:11:03.5',
      atz: '2026-11-22T11:11:03.123456Z',
      tags: ['a', 'b c', null, 'NULL', ''],
      nums: [[1, 2], [3, null]],
      gone: null,
    });
    const raw = rawMembers(json);
    assert.equal(raw.get('id'), '9007199254740993');
    assert.equal(raw.get('price'), '123456789012345678901234567890.000100');
    assert.equal(raw.get('ratio'), '1e+20');
  });

  test('NaN and infinities of float and numeric are strings', () => {
    const t = table('public', 'f', [['a', T.float8], ['b', T.numeric], ['c', T.float8]]);
    assert.deepEqual(JSON.parse(recordJson(t, ['NaN', 'Infinity', '-Infinity'])), { a: 'NaN', b: 'Infinity', c: '-Infinity' });
  });

  test('unicode and special column names are JSON-escaped', () => {
    const t = table('public', 'u', [['naïve "col"', T.text], ['emoji 😀', T.int4], ['back\\slash', T.bool]]);
    assert.deepEqual(JSON.parse(recordJson(t, ['x', '1', 'f'])), { 'naïve "col"': 'x', 'emoji 😀': 1, 'back\\slash': false });
  });

  test('an all-NULL row', () => {
    assert.deepEqual(JSON.parse(recordJson(products, products.columns.map(() => null))), Object.fromEntries(products.columns.map((c) => [c.name, null])));
  });

  test('a table without columns is {}', () => {
    assert.equal(recordJson(table('public', 'empty', []), []), '{}');
  });

  test('an unchanged TOASTed value (undefined) is a MessageError, never a placeholder', () => {
    const row = tuple(products, { id: '1', name: 'Lamp', note: undefined });
    assert.throws(
      () => recordJson(products, row),
      (err: unknown) => err instanceof MessageError && /"note"/.test(err.message),
    );
  });
});

describe('changesJson', () => {
  const full = table('public', 'products', products.columns.map((c): ColumnDesc => [c.name, c.typeOid, c.isKey]), { replicaIdentity: 'f' });
  const before = { id: '1', name: 'Lamp', price: '9.50', active: 't', tags: '{a}', meta: null, updated_at: '2026-01-01 00:00:00+00', note: 'n' };

  test("update with the whole old row ('O'): old values of the changed columns only", () => {
    const change = updateChange(full, { ...before, name: 'Desk Lamp', price: '9.5', meta: '{"x": 1}', note: null }, before, 'O');
    assert.deepEqual(JSON.parse(changesJson(change)), { name: 'Lamp', price: 9.5, meta: null, note: 'n' });
    // numeric keeps the old digits
    assert.equal(rawMembers(changesJson(change)).get('price'), '9.50');
  });

  test("update with 'O' and nothing changed is {}", () => {
    assert.equal(changesJson(updateChange(full, before, before, 'O')), '{}');
  });

  test('columns whose new or old value is unchanged TOAST are left out', () => {
    const change: Change = {
      ...updateChange(full, { ...before, name: 'New', note: undefined }, before, 'O'),
    };
    assert.deepEqual(JSON.parse(changesJson(change)), { name: 'Lamp' });
    const oldToast: Change = { ...change, oldRow: tuple(full, { ...before, name: undefined, note: 'old' }) };
    assert.deepEqual(JSON.parse(changesJson(oldToast)), {});
  });

  test("null when the old values are not known: 'K', no old row, insert, delete, read", () => {
    assert.equal(changesJson(updateChange(products, { ...before, id: '2' }, { id: '1' }, 'K')), 'null');
    assert.equal(changesJson(updateChange(products, before)), 'null');
    assert.equal(changesJson(insertChange(products, before)), 'null');
    assert.equal(changesJson(deleteChange(full, before, 'O')), 'null');
    assert.equal(changesJson({ ...insertChange(products, before), action: 'read' }), 'null');
  });
});

describe('messageJson', () => {
  const lamp = { id: '1', name: 'Lamp', price: '9.50', active: 't', tags: '{a,b}', meta: '{"w": 2}', updated_at: '2026-11-22 11:11:03.123456+00', note: null };
  const lampRecord = { id: 1, name: 'Lamp', price: 9.5, active: true, tags: ['a', 'b'], meta: { w: 2 }, updated_at: '2026-11-22T11:11:03.123456Z', note: null };

  test('the envelope has exactly record, changes, action and metadata (SPEC §3)', () => {
    const json = messageJson(insertChange(products, lamp, 3), META);
    const msg = JSON.parse(json) as Record<string, unknown>;
    assert.deepEqual(Object.keys(msg), ['record', 'changes', 'action', 'metadata']);
    assert.deepEqual(msg, {
      record: lampRecord,
      changes: null,
      action: 'insert',
      metadata: {
        table_schema: 'public',
        table_name: 'products',
        commit_timestamp: '2025-11-22T11:11:03.123456Z',
        commit_lsn: '0/16B3748',
        commit_idx: 3,
        idempotency_key: '0/16B3748:3',
        sink: { name: 'products-cache' },
      },
    });
    assert.equal(rawMembers(json).get('metadata'), metadataJson(insertChange(products, lamp, 3), META));
  });

  test('commit_timestamp always has six fractional digits and Z', () => {
    const at = (commitTimeMicros: bigint) =>
      (JSON.parse(messageJson(insertChange(products, lamp), { ...META, commitTimeMicros })) as { metadata: { commit_timestamp: string } }).metadata.commit_timestamp;
    assert.equal(at(0n), '2000-01-01T00:00:00.000000Z');
    assert.equal(at(1n), '2000-01-01T00:00:00.000001Z');
    assert.equal(at(-1n), '1999-12-31T23:59:59.999999Z');
    assert.equal(at(817_125_063_000_000n), '2025-11-22T11:11:03.000000Z');
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 16n), max: 10n ** 16n }), (micros) => {
        const ts = at(micros);
        assert.match(ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
        const unixMicros = micros + 946_684_800_000_000n;
        const floorMs = unixMicros >= 0n ? unixMicros / 1000n : -((-unixMicros + 999n) / 1000n);
        assert.equal(ts.slice(0, 23), new Date(Number(floorMs)).toISOString().slice(0, 23));
      }),
      { numRuns: 200 },
    );
  });

  test('commit_lsn is formatted as Postgres prints LSNs, in commit_lsn and idempotency_key', () => {
    const meta = { ...META, commitLsn: 0x16_b374d848n };
    const m = JSON.parse(messageJson(insertChange(products, lamp, 12), meta)) as { metadata: Record<string, unknown> };
    assert.equal(m.metadata['commit_lsn'], '16/B374D848');
    assert.equal(m.metadata['idempotency_key'], '16/B374D848:12');
    assert.equal(idempotencyKey(0x16_b374d848n, 12), '16/B374D848:12');
    assert.equal(idempotencyKey(0n, 0), '0/0:0');
  });

  test('idempotency keys differ between changes of a transaction and between transactions', () => {
    const keys = new Set<string>();
    for (const lsn of [0x100n, 0x1_00000000n, 0x1_00000100n]) for (let idx = 0; idx < 20; idx++) keys.add(idempotencyKey(lsn, idx));
    assert.equal(keys.size, 60);
  });

  test('update with the whole old row carries changes', () => {
    const full = table('public', 'products', products.columns.map((c): ColumnDesc => [c.name, c.typeOid, c.isKey]), { replicaIdentity: 'f' });
    const m = JSON.parse(messageJson(updateChange(full, { ...lamp, name: 'Desk Lamp' }, lamp, 'O'), META)) as Record<string, unknown>;
    assert.equal(m['action'], 'update');
    assert.deepEqual(m['changes'], { name: 'Lamp' });
    assert.deepEqual(m['record'], { ...lampRecord, name: 'Desk Lamp' });
  });

  test('delete: record is what is known of the old row', () => {
    const m = JSON.parse(messageJson(deleteChange(products, { id: '1' }), META)) as Record<string, unknown>;
    assert.equal(m['action'], 'delete');
    assert.deepEqual(m['record'], { ...Object.fromEntries(products.columns.map((c) => [c.name, null])), id: 1 });
    assert.equal(m['changes'], null);
  });

  test('action can be overridden (route)', () => {
    const m = JSON.parse(messageJson(insertChange(products, lamp), META, 'read')) as Record<string, unknown>;
    assert.equal(m['action'], 'read');
  });

  test('sink name and table names are JSON-escaped', () => {
    const t = table('my "schema"', 'täble\\x', [['id', T.int4, true]]);
    const m = JSON.parse(messageJson(insertChange(t, { id: '1' }), { ...META, sinkName: 'a "b" \\ c' })) as { metadata: Record<string, unknown> };
    assert.equal(m.metadata['table_schema'], 'my "schema"');
    assert.equal(m.metadata['table_name'], 'täble\\x');
    assert.deepEqual(m.metadata['sink'], { name: 'a "b" \\ c' });
  });

  test('unchanged TOAST in the row is a MessageError', () => {
    assert.throws(() => messageJson(insertChange(products, { ...lamp, note: undefined }), META), MessageError);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: random rows in Postgres text format → the §3 JSON value

interface Generated {
  oid: number;
  /** Postgres text output, or null for NULL */
  text: string | null;
  /** the §3 value after JSON.parse */
  expected: unknown;
  /** for int8/numeric: the exact JSON text of the field */
  raw?: string;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Postgres float8out (shortest exact digits, exponent form below 1e-4 and from 1e15) */
function pgFloat8(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (Object.is(x, -0)) return '-0';
  if (x === 0) return '0';
  const [mant, e] = x.toExponential().split('e') as [string, string];
  const exp = Number(e);
  if (exp < -4 || exp >= 15) return `${mant}e${exp < 0 ? '-' : '+'}${pad(Math.abs(exp))}`;
  return String(x); // JS prints fixed notation in this range, with the same shortest digits
}

/** Postgres array_out quoting of one text element */
function quoteElement(s: string | null): string {
  if (s === null) return 'NULL';
  const needsQuotes = s === '' || s.toUpperCase() === 'NULL' || /[{}",\\ \t\n\r\v\f]/.test(s);
  if (!needsQuotes) return s;
  return `"${s.replace(/["\\]/g, (c) => '\\' + c)}"`;
}

const boolArb = fc.boolean().map((b): Generated => ({ oid: T.bool, text: b ? 't' : 'f', expected: b }));
const int2Arb = fc.integer({ min: -32768, max: 32767 }).map((n): Generated => ({ oid: T.int2, text: String(n), expected: n }));
const int4Arb = fc.integer().map((n): Generated => ({ oid: T.int4, text: String(n), expected: n }));
const int8Arb = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((n): Generated => ({ oid: T.int8, text: String(n), expected: Number(n), raw: String(n) }));
const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'), minLength: min, maxLength: max });
const numericArb = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.boolean(), fc.constantFrom('1', '2', '5', '9'), digits(0, 40), digits(0, 30), fc.boolean()).map(([neg, lead, rest, frac, small]): Generated => {
    const int = small ? '0' : lead + rest;
    const text = `${neg ? '-' : ''}${int}${frac ? '.' + frac : ''}`;
    return { oid: T.numeric, text, expected: Number(text), raw: text };
  }) },
  { weight: 1, arbitrary: fc.constantFrom('NaN', 'Infinity', '-Infinity').map((s): Generated => ({ oid: T.numeric, text: s, expected: s, raw: JSON.stringify(s) })) },
);
const float8Arb = fc.double().map((x): Generated => {
  const text = pgFloat8(x);
  const special = Number.isNaN(x) || !Number.isFinite(x);
  return { oid: T.float8, text, expected: special ? text : x };
});
const textArb = anyText(30).map((s): Generated => ({ oid: T.text, text: s, expected: s }));
const jsonbArb = fc.jsonValue({ maxDepth: 3 }).map((v): Generated => {
  const text = JSON.stringify(v);
  return { oid: T.jsonb, text, expected: JSON.parse(text) };
});
const OFFSETS = [0, 7200, -8 * 3600, 5 * 3600 + 1800, -(3 * 3600 + 1800), 5 * 3600 + 53 * 60 + 28, 14 * 3600, -12 * 3600, 45 * 60];
const minSec = new Date('0002-01-01T00:00:00Z').getTime() / 1000;
const maxSec = new Date('9999-12-30T00:00:00Z').getTime() / 1000;
const timestamptzArb = fc
  .tuple(fc.integer({ min: minSec, max: maxSec }), fc.integer({ min: 0, max: 999_999 }), fc.constantFrom(...OFFSETS), fc.boolean())
  .map(([sec, micros, offset, wholeSecond]): Generated => {
    const frac = wholeSecond ? '' : `.${pad(micros, 6)}`.replace(/0+$/, '').replace(/\.$/, '');
    const local = new Date((sec + offset) * 1000).toISOString().slice(0, 19).replace('T', ' ');
    const abs = Math.abs(offset);
    const h = Math.floor(abs / 3600);
    const m = Math.floor((abs % 3600) / 60);
    const s = abs % 60;
    const tz = (offset < 0 ? '-' : '+') + pad(h) + (m || s ? ':' + pad(m) : '') + (s ? ':' + pad(s) : '');
    return { oid: T.timestamptz, text: `${local}${frac}${tz}`, expected: new Date(sec * 1000).toISOString().slice(0, 19) + frac + 'Z' };
  });
const textArrayArb = fc.array(fc.option(anyText(8), { freq: 5 }), { maxLength: 6 }).map((elements): Generated => ({
  oid: T.textArray,
  text: `{${elements.map(quoteElement).join(',')}}`,
  expected: elements,
}));

const valueArb = fc.oneof(boolArb, int2Arb, int4Arb, int8Arb, numericArb, float8Arb, textArb, jsonbArb, timestamptzArb, textArrayArb);
const columnArb = fc.tuple(valueArb, fc.nat(5)).map(([v, r]): Generated => (r === 0 ? { oid: v.oid, text: null, expected: null, raw: 'null' } : v));

describe('recordJson properties', () => {
  test('random rows of many types in Postgres text format give the §3 JSON', () => {
    fc.assert(
      fc.property(fc.array(columnArb, { minLength: 1, maxLength: 12 }), (values) => {
        const t = table('public', 'random', values.map((v, i): ColumnDesc => [`c${i}`, v.oid, i === 0]));
        const json = recordJson(t, values.map((v) => v.text));
        const parsed = JSON.parse(json) as Record<string, unknown>;
        assert.deepEqual(parsed, Object.fromEntries(values.map((v, i) => [`c${i}`, v.expected])));
        const raw = rawMembers(json);
        values.forEach((v, i) => {
          if (v.raw !== undefined) assert.equal(raw.get(`c${i}`), v.raw, `raw JSON of c${i} (${v.text})`);
        });
      }),
      { numRuns: 300 },
    );
  });

  test('joined into one flat string, the JSON is exactly what concatenating it piece by piece gave (property)', () => {
    // the implementation before recordJson joined its pieces: the reference for the exact text
    const concatenated = (t: ReturnType<typeof table>, row: (string | null)[]): string => {
      let s = '{';
      t.columns.forEach((col, i) => {
        s += (i > 0 ? ',' : '') + col.jsonName + toJson(col.codec, row[i] ?? null);
      });
      return s + '}';
    };
    fc.assert(
      fc.property(fc.array(columnArb, { minLength: 0, maxLength: 12 }), (values) => {
        const t = table('public', 'random', values.map((v, i): ColumnDesc => [`c${i}`, v.oid, i === 0]));
        const row = values.map((v) => v.text);
        assert.equal(recordJson(t, row), concatenated(t, row));
      }),
      { numRuns: 300 },
    );
  });

  test('the generators produce what Postgres would print (spot checks)', () => {
    assert.equal(pgFloat8(1e20), '1e+20');
    assert.equal(pgFloat8(0.00001), '1e-05');
    assert.equal(pgFloat8(123.25), '123.25');
    assert.equal(pgFloat8(1e15), '1e+15');
    assert.equal(pgFloat8(123456789012345), '123456789012345');
    assert.equal(quoteElement('a b'), '"a b"');
    assert.equal(quoteElement('say "hi" \\'), '"say \\"hi\\" \\\\"');
    assert.equal(quoteElement('null'), '"null"');
    assert.equal(quoteElement(''), '""');
    assert.equal(quoteElement('plain'), 'plain');
  });

  test('every member of a random record is present once, in column order', () => {
    fc.assert(
      fc.property(fc.array(columnArb, { maxLength: 8 }), (values) => {
        const t = table('public', 'random', values.map((v, i): ColumnDesc => [`c${i}`, v.oid]));
        assert.deepEqual([...rawMembers(recordJson(t, values.map((v) => v.text))).keys()], values.map((_, i) => `c${i}`));
      }),
      { numRuns: 100 },
    );
  });
});
