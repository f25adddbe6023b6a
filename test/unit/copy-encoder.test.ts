// A backfill chunk planned three ways must give the same commands, origins, counts and failures:
// rows encoded straight from their COPY text (sinks/copy-encoder.ts, into a pre-encoded part),
// the same rows planned as changes into a pre-encoded part, and planned as changes into arrays
// (the way before either existed).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CopyRows } from '../../src/backfill/copy-text.js';
import { Batcher, partCommand, partLength, partOrigin, type Batch } from '../../src/plan/batcher.js';
import { Planner } from '../../src/plan/planner.js';
import { Windows } from '../../src/plan/windows.js';
import type { SinkRuntime } from '../../src/plan/route.js';
import type { TableInfo } from '../../src/core/change.js';
import type { RedisCommand } from '../../src/core/command.js';
import { RespWriter } from '../../src/core/resp-writer.js';
import { copySetEncoder } from '../../src/sinks/copy-encoder.js';
import { parseTemplate } from '../../src/core/template.js';
import { fromSink, runtime, watermark } from './support/plan-fixtures.js';
import { T, table, textChar, type ColumnDesc } from './support/tables.js';

/** Postgres's COPY text escaping (as in copy-text.test.ts). */
function escapeField(v: string | null): string {
  if (v === null) return '\\N';
  return v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\x08/g, '\\b').replace(/\f/g, '\\f').replace(/\v/g, '\\v');
}

const digits = fc.stringMatching(/^-?[1-9][0-9]{0,18}$/);
const time = fc.tuple(fc.integer({ min: 1, max: 9999 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 28 }), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), fc.option(fc.integer({ min: 0, max: 999999 })));
const pad = (n: number, w: number) => String(n).padStart(w, '0');

/** Values as Postgres prints them, per type: the common forms and the odd ones. */
const VALUES: Record<string, fc.Arbitrary<string>> = {
  int4: digits,
  int8: digits,
  text: fc.string({ unit: textChar, maxLength: 12 }),
  numeric: fc.oneof(fc.stringMatching(/^-?[0-9]{1,6}\.[0-9]{2}$/), fc.constantFrom('NaN', 'Infinity', '-Infinity', '0')),
  float8: fc.oneof(fc.constantFrom('1.5e-07', '1e+20', '-0', 'NaN', 'Infinity', '-Infinity'), fc.double({ noNaN: true, noDefaultInfinity: true }).map(String)),
  bool: fc.constantFrom('t', 'f'),
  timestamptz: fc.oneof(
    time.map(([y, mo, d, h, mi, us]) => `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)} ${pad(h, 2)}:${pad(mi, 2)}:07${us === null ? '' : `.${pad(us, 6).replace(/0+$/, '') || '0'}`}+00`),
    fc.constantFrom('2024-01-01 10:00:00+05:30', 'infinity', '-infinity', '0044-03-15 12:00:00+00 BC', '2024-01-01 00:00:00-08'),
  ),
  jsonb: fc.constantFrom('{"a": 1}', '[1, "x", null]', '"s"', '3', '{"t": "a\\tb"}'),
  date: fc.constantFrom('2024-02-29', 'infinity', '0001-01-01 BC'),
  uuid: fc.uuid(),
  textArray: fc.constantFrom('{a,b}', '{"x y",NULL}', '{}'),
};
const TYPES: Record<string, number> = { int4: T.int4, int8: T.int8, text: T.text, numeric: T.numeric, float8: T.float8, bool: T.bool, timestamptz: T.timestamptz, jsonb: T.jsonb, date: T.date, uuid: T.uuid, textArray: T.textArray };

interface Case {
  readonly table: TableInfo;
  readonly types: string[];
  readonly rows: (string | null)[][];
  readonly key: string;
  readonly maxValueBytes: number;
  readonly expireMs: number | null;
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    keyTypes: fc.array(fc.constantFrom('int4', 'int8', 'text', 'uuid', 'numeric'), { minLength: 1, maxLength: 2 }),
    otherTypes: fc.array(fc.constantFrom(...Object.keys(VALUES)), { maxLength: 6 }),
    keyKind: fc.constantFrom('default', 'pk', 'column', 'schema', 'fixed', 'braces'),
    maxValueBytes: fc.constantFrom(60, 200, 10_000),
    expireMs: fc.option(fc.integer({ min: 1, max: 10_000_000 })),
    seed: fc.nat(),
  })
  .chain(({ keyTypes, otherTypes, keyKind, maxValueBytes, expireMs }) => {
    const cols: ColumnDesc[] = [...keyTypes.map((t, i): ColumnDesc => [`k${i}`, TYPES[t]!, true]), ...otherTypes.map((t, i): ColumnDesc => [`c ${i}"`, TYPES[t]!])];
    const types = [...keyTypes, ...otherTypes];
    const t = table('public', 'things', cols);
    const key = { default: 'sluice:{table}:{pk}', pk: '{pk}', column: `c:{k0}:x`, schema: '{schema}.{table}/{k0}', fixed: 'one', braces: 'o:{{{k0}}}:{pk}' }[keyKind]!;
    // NULLs are rare, long text sometimes (over max_value_bytes)
    const value = (type: string) => fc.oneof({ weight: 12, arbitrary: VALUES[type]! }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: type === 'text' ? fc.string({ unit: textChar, minLength: 100, maxLength: 300 }) : VALUES[type]! });
    const row = fc.tuple(...types.map((ty) => value(ty)));
    return fc.record({ rows: fc.array(row, { maxLength: 12 }) }).map(({ rows }) => ({ table: t, types, rows: rows as (string | null)[][], key, maxValueBytes, expireMs }));
  });

let encodedRows = 0;

interface Planned {
  commands: RedisCommand[];
  origins: unknown[];
  counts: [string, number][];
  failed: string[];
}

function plan(c: Case, text: Buffer, splits: number[], mode: 'encoded' | 'changes' | 'arrays'): Planned {
  let n = 0;
  const batcher = new Batcher({ maxCommands: 1_000_000, maxBytes: 1 << 30 }, () => `b${++n}`, () => mode !== 'arrays');
  const windows = new Windows();
  const failed: string[] = [];
  const configured = runtime('s', { type: 'string', tables: ['public.things'], key: c.key, max_value_bytes: c.maxValueBytes, ...(c.expireMs === null ? {} : { expire_ms: c.expireMs }) }).sink;
  const own = configured.copyEncoder!.bind(configured);
  const sink: SinkRuntime = fromSink({
    ...configured,
    // counted: the property must see rows take the encoded way
    copyEncoder:
      mode === 'encoded'
        ? (t) => {
            const e = own(t);
            return e && ((...a) => (e(...a) ? (encodedRows++, true) : false));
          }
        : undefined,
  }, ['public.things']);
  const planner = new Planner(batcher, windows, { failed: (s, ch, _m, reason) => failed.push(`${s} ${ch.idx} ${reason}`), truncate: () => undefined, chunk: () => undefined }, () => [sink], () => 7n);
  void windows.register('w', 'rows', 's', c.table);
  planner.message(watermark('lw:w', 0x10n), 0);
  const rows = new CopyRows();
  let prev = 0;
  for (const s of [...splits.filter((x) => x > 0 && x < text.length).sort((a, b) => a - b), text.length]) {
    rows.push(text.subarray(prev, s));
    prev = s;
  }
  rows.end();
  windows.fillRows('w', rows, [['HSET', 'sluice:backfill:s', 'public.things', '{}']]);
  planner.message(watermark('hw:w', 0x20n), 0);
  const batch: Batch = batcher.next()!;
  const part = batch.parts.get('main')!;
  assert.equal(part.encoded === null, mode === 'arrays');
  const commands: RedisCommand[] = [];
  const origins: unknown[] = [];
  for (let i = 0; i < partLength(part); i++) {
    commands.push(partCommand(part, i));
    const o = partOrigin(part, i);
    origins.push(o && [o.sink, o.change.action, o.change.idx, o.change.row, o.change.oldRow, o.meta.commitLsn, o.meta.commitTimeMicros]);
  }
  return { commands, origins, counts: [...batch.counts], failed };
}

describe('backfill rows encoded from their COPY text', () => {
  test('property: the same commands, origins, counts and failures as planning each row as a change', () => {
    fc.assert(
      fc.property(caseArb, fc.array(fc.nat(), { maxLength: 4 }), (c, splitsAt) => {
        const text = Buffer.from(c.rows.map((r) => `${r.map(escapeField).join('\t')}\n`).join(''));
        const splits = splitsAt.map((s) => (text.length === 0 ? 0 : s % text.length));
        const encoded = plan(c, text, splits, 'encoded');
        const changes = plan(c, text, splits, 'changes');
        const arrays = plan(c, text, splits, 'arrays');
        assert.deepEqual(encoded, changes);
        assert.deepEqual(encoded, arrays);
        assert.equal(encoded.counts.length > 0, c.rows.length > 0);
      }),
      { numRuns: 400 },
    );
    assert.ok(encodedRows > 200, `${encodedRows} rows took the encoded way`);
  });

  test('common rows take the encoded way; NULLs, escapes, non-ASCII and odd values do not', () => {
    const t = table('public', 'items', [
      ['id', T.int8, true],
      ['name', T.text],
      ['price', T.numeric],
      ['at', T.timestamptz],
    ]);
    const enc = copySetEncoder(t, parseTemplate('sluice:items:{id}'), 1000, undefined)!;
    const encode = (line: string): string | null => {
      const w = new RespWriter(64);
      const b = Buffer.from(line);
      return enc(b, 0, b.length, w) ? w.finish().toString() : null;
    };
    assert.equal(encode('1\titem "1"\t9.50\t2024-01-01 00:00:01+00'), '*3\r\n$3\r\nSET\r\n$14\r\nsluice:items:1\r\n$69\r\n{"id":1,"name":"item \\"1\\"","price":9.50,"at":"2024-01-01T00:00:01Z"}\r\n');
    assert.equal(encode('1\t\\N\t9.50\t2024-01-01 00:00:01+00'), null, 'NULL');
    assert.equal(encode('1\ta\\tb\t9.50\t2024-01-01 00:00:01+00'), null, 'an escape');
    assert.equal(encode('1\té\t9.50\t2024-01-01 00:00:01+00'), null, 'non-ASCII');
    assert.equal(encode('1\ta\tNaN\t2024-01-01 00:00:01+00'), null, 'NaN');
    assert.equal(encode('1\ta\t1\t2024-01-01 00:00:01+05:30'), null, 'another offset');
    assert.equal(encode('1\ta\t1'), null, 'a column short');
    assert.equal(encode('1\ta\t1\t2024-01-01 00:00:01+00\tx'), null, 'a column more');
    assert.equal(copySetEncoder(t, parseTemplate('p:{price}'), 1000, undefined), null, 'a key column whose text is not its key');
  });
});
