import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { codecFor, toJson, toPlain, timestamptzToIso, daysFromCivil, formatIsoYear } from '../../src/core/values.js';
import type { TypeInfo } from '../../src/core/values.js';

/** [oid, Postgres text output, expected toJson, expected toPlain (defaults: toJson's string unquoted)] */
type Case = [number, string | null, string, (string | null)?];

function check([oid, text, json, plain]: Case): void {
  const codec = codecFor(oid);
  assert.equal(toJson(codec, text), json, `toJson(${oid}, ${text})`);
  const expectedPlain = plain !== undefined ? plain : json.startsWith('"') ? (JSON.parse(json) as string) : json === 'null' ? null : json;
  assert.equal(toPlain(codec, text), expectedPlain, `toPlain(${oid}, ${text})`);
  // toJson is always valid JSON
  JSON.parse(toJson(codec, text));
}

function group(name: string, cases: Case[]): void {
  test(name, () => {
    for (const c of cases) check(c);
  });
}

describe('scalars', () => {
  group('NULL of every type is null', [
    [16, null, 'null', null], [23, null, 'null', null], [25, null, 'null', null], [1184, null, 'null', null],
    [1007, null, 'null', null], [3802, null, 'null', null], [701, null, 'null', null],
  ]);

  group('bool', [
    [16, 't', 'true'],
    [16, 'f', 'false'],
  ]);

  group('integers keep every digit', [
    [21, '-32768', '-32768'], [21, '0', '0'], [21, '32767', '32767'],
    [23, '-2147483648', '-2147483648'], [23, '2147483647', '2147483647'],
    [20, '9223372036854775807', '9223372036854775807'], [20, '-9223372036854775808', '-9223372036854775808'],
  ]);

  group('numeric keeps exact digits, NaN/Infinity as strings', [
    [1700, '123456789012345678901234567890.000000001', '123456789012345678901234567890.000000001'],
    [1700, '9.50', '9.50'], [1700, '-0.000001', '-0.000001'], [1700, '0', '0'], [1700, '100', '100'],
    [1700, 'NaN', '"NaN"', 'NaN'], [1700, 'Infinity', '"Infinity"', 'Infinity'], [1700, '-Infinity', '"-Infinity"', '-Infinity'],
  ]);

  group('float4/float8 as printed', [
    [701, '1e+20', '1e+20'], [701, '1.5e-07', '1.5e-07'], [701, '-0', '-0'], [701, '3.141592653589793', '3.141592653589793'],
    [701, '1.7976931348623157e+308', '1.7976931348623157e+308'], [701, '5e-324', '5e-324'],
    [700, '3.4028235e+38', '3.4028235e+38'], [700, '0.1', '0.1'],
    [701, 'NaN', '"NaN"', 'NaN'], [701, 'Infinity', '"Infinity"', 'Infinity'], [701, '-Infinity', '"-Infinity"', '-Infinity'],
    [700, 'NaN', '"NaN"', 'NaN'], [700, '-Infinity', '"-Infinity"', '-Infinity'],
  ]);

  group('money is the string Postgres prints', [
    [790, '$1,234.50', '"$1,234.50"'], [790, '-$0.01', '"-$0.01"'],
  ]);

  group('json/jsonb embedded as JSON', [
    [3802, '{"a": 1, "b": [true, null]}', '{"a": 1, "b": [true, null]}'],
    [3802, '"s"', '"s"', '"s"'], // a JSON string scalar stays JSON in the hash too
    [3802, 'null', 'null', 'null'], // JSON null, not SQL NULL
    [3802, '12.50', '12.50'],
    [114, '{ "a" : [1,\n 2] }', '{ "a" : [1,\n 2] }'],
    [114, '[]', '[]'],
  ]);

  group('strings as printed', [
    [25, 'Lamp', '"Lamp"'], [25, '', '""'], [25, 'with "quote" and \\ and \n', '"with \\"quote\\" and \\\\ and \\n"'],
    [25, 'NULL', '"NULL"'], [25, 'é😀', '"é😀"'],
    [1043, 'v', '"v"'], [1042, 'pad  ', '"pad  "'], [19, 'pg_class', '"pg_class"'],
    [2950, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"'],
    [17, '\\x0102ff', '"\\\\x0102ff"'],
    [26, '16384', '"16384"'], // oid is not one of §3's number types
    [1266, '11:11:03.5+05:30', '"11:11:03.5+05:30"'],
    [1186, '1 year 2 mons -3 days +04:05:06.7', '"1 year 2 mons -3 days +04:05:06.7"'],
    [869, '192.168.0.1/24', '"192.168.0.1/24"'], [650, '10.0.0.0/8', '"10.0.0.0/8"'], [829, '08:00:2b:01:02:03', '"08:00:2b:01:02:03"'],
    [142, '<a>x</a>', '"<a>x</a>"'], [1560, '101', '"101"'], [1562, '10', '"10"'],
    [3614, "'a' 'b':2", "\"'a' 'b':2\""],
    [603, '(1,1),(0,0)', '"(1,1),(0,0)"'],
    [99999, 'whatever', '"whatever"'], // unknown type
  ]);

  group('date and time as ISO 8601 without zone', [
    [1082, '2026-11-22', '"2026-11-22"'], [1082, '2024-02-29', '"2024-02-29"'],
    [1082, 'infinity', '"infinity"'], [1082, '-infinity', '"-infinity"'],
    [1082, '0001-01-01 BC', '"0000-01-01"'], [1082, '0044-03-15 BC', '"-000043-03-15"'], [1082, '4714-11-24 BC', '"-004713-11-24"'],
    [1082, '10000-01-01', '"+010000-01-01"'], [1082, '5874897-12-31', '"+5874897-12-31"'],
    [1083, '11:11:03.123456', '"11:11:03.123456"'], [1083, '00:00:00', '"00:00:00"'], [1083, '24:00:00', '"24:00:00"'],
  ]);

  group('timestamp without zone', [
    [1114, '2026-11-22 11:11:03.5', '"2026-11-22T11:11:03.5"'],
    [1114, '2026-11-22 11:11:03', '"2026-11-22T11:11:03"'],
    [1114, '2026-11-22 11:11:03.123456', '"2026-11-22T11:11:03.123456"'],
    [1114, 'infinity', '"infinity"'], [1114, '-infinity', '"-infinity"'],
    [1114, '0044-03-15 10:00:00 BC', '"-000043-03-15T10:00:00"'],
    [1114, '294276-12-31 23:59:59.999999', '"+294276-12-31T23:59:59.999999"'],
  ]);

  group('timestamptz as ISO 8601 UTC with every printed digit', [
    [1184, '2026-11-22 11:11:03.123456+00', '"2026-11-22T11:11:03.123456Z"'],
    [1184, '2026-11-22 11:11:03.1+00', '"2026-11-22T11:11:03.1Z"'],
    [1184, '2026-11-22 11:11:03+00', '"2026-11-22T11:11:03Z"'],
    [1184, '2026-11-22 11:11:03.000001+05:30', '"2026-11-22T05:41:03.000001Z"'],
    [1184, '2026-11-23 01:38:26.824728-08', '"2026-11-23T09:38:26.824728Z"'],
    [1184, '2026-12-31 23:30:00-01', '"2027-01-01T00:30:00Z"'], // year rollover forward
    [1184, '2027-01-01 00:30:00+01', '"2026-12-31T23:30:00Z"'], // and backward
    [1184, '2024-03-01 03:00:00+05', '"2024-02-29T22:00:00Z"'], // leap day
    [1184, '2023-03-01 03:00:00+05', '"2023-02-28T22:00:00Z"'],
    [1184, '2000-02-28 23:00:00-02', '"2000-02-29T01:00:00Z"'], // 2000 is a leap year
    [1184, '1900-02-28 23:00:00-02', '"1900-03-01T01:00:00Z"'], // 1900 is not
    [1184, '1800-01-01 00:00:00+05:53:28', '"1799-12-31T18:06:32Z"'], // LMT offset with seconds
    [1184, '2026-06-01 12:00:00-00:30', '"2026-06-01T12:30:00Z"'],
    [1184, '2026-06-01 12:00:00+15:59:59', '"2026-05-31T20:00:01Z"'],
    [1184, 'infinity', '"infinity"'], [1184, '-infinity', '"-infinity"'],
    [1184, '4713-01-01 00:00:00+00 BC', '"-004712-01-01T00:00:00Z"'],
    [1184, '0044-03-15 10:00:00.5+05:53:28 BC', '"-000043-03-15T04:06:32.5Z"'],
    [1184, '0002-12-31 16:07:02-07:52:58 BC', '"0000-01-01T00:00:00Z"'], // 1 BC is year 0000
    [1184, '0001-12-31 23:00:00-02 BC', '"0001-01-01T01:00:00Z"'], // from BC into AD
    [1184, '10000-01-01 06:32:03.000001+05:30', '"+010000-01-01T01:02:03.000001Z"'],
    [1184, '294276-12-31 23:59:59.999999+00', '"+294276-12-31T23:59:59.999999Z"'],
  ]);

  test('timestamptz output is what Date.parse reads back (to the millisecond)', () => {
    for (const [text, ms] of [
      ['2026-11-22 11:11:03.123456+00', Date.UTC(2026, 10, 22, 11, 11, 3, 123)],
      ['0044-03-15 10:00:00.5+05:53:28 BC', Date.parse('-000043-03-15T04:06:32.500Z')],
      ['10000-01-01 00:00:00+00', Date.parse('+010000-01-01T00:00:00.000Z')],
    ] as const) {
      assert.equal(Math.floor(Date.parse(timestamptzToIso(text))), ms);
    }
  });

  test('text that does not look like Postgres output passes through unchanged', () => {
    for (const t of ['garbage', '2026-11-22', '2026-11-22 11:11:03', '2026-11-22 11:11:03+0', '2026-11-22T11:11:03+05:30']) {
      assert.equal(timestamptzToIso(t), t);
    }
  });
});

describe('arrays', () => {
  group('built-in arrays convert their elements', [
    [1000, '{t,f,NULL}', '[true,false,null]'],
    [1005, '{1,-2}', '[1,-2]'],
    [1007, '{1,2,NULL}', '[1,2,null]'],
    [1007, '{{1,2},{3,4}}', '[[1,2],[3,4]]'],
    [1007, '[0:1]={1,2}', '[1,2]'],
    [1007, '{}', '[]'],
    [1016, '{9223372036854775807,-9223372036854775808}', '[9223372036854775807,-9223372036854775808]'],
    [1009, '{"a b","with \\"quote\\"",NULL,"NULL"}', '["a b","with \\"quote\\"",null,"NULL"]'],
    [1009, '{a,"",b}', '["a","","b"]'],
    [1015, '{x,y}', '["x","y"]'], [1014, '{"a  "}', '["a  "]'], [1003, '{pg_class}', '["pg_class"]'],
    [1021, '{1.5,NaN}', '[1.5,"NaN"]'],
    [1022, '{1e+20,-Infinity,Infinity}', '[1e+20,"-Infinity","Infinity"]'],
    [1231, '{123456789012345678901234567890.000000001,NaN}', '[123456789012345678901234567890.000000001,"NaN"]'],
    [199, '{"{\\"a\\":1}",NULL,"[]"}', '[{"a":1},null,[]]'],
    [3807, '{"{\\"a\\": 1}","null","\\"s\\""}', '[{"a": 1},null,"s"]'],
    [2951, '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]'],
    [1182, '{2026-11-22,infinity,"0044-03-15 BC"}', '["2026-11-22","infinity","-000043-03-15"]'],
    [1183, '{11:11:03.5}', '["11:11:03.5"]'],
    [1115, '{"2026-11-22 11:11:03.5"}', '["2026-11-22T11:11:03.5"]'],
    [1185, '{"2026-11-22 11:11:03.123456+00","2026-11-22 12:00:00+05:30",NULL,-infinity}', '["2026-11-22T11:11:03.123456Z","2026-11-22T06:30:00Z",null,"-infinity"]'],
    [1187, '{"1 day","-00:00:01"}', '["1 day","-00:00:01"]'],
    [1001, '{"\\\\x01ff"}', '["\\\\x01ff"]'],
    [1028, '{1,2}', '["1","2"]'],
    [1041, '{192.168.0.1,::1/128}', '["192.168.0.1","::1/128"]'],
    [651, '{10.0.0.0/8}', '["10.0.0.0/8"]'],
    [1040, '{08:00:2b:01:02:03}', '["08:00:2b:01:02:03"]'],
    [791, '{"$1,234.50",$0.00}', '["$1,234.50","$0.00"]'],
    [1270, '{11:11:03+05:30}', '["11:11:03+05:30"]'],
    [1561, '{101,0}', '["101","0"]'], [1563, '{1}', '["1"]'],
    [143, '{<a/>}', '["<a/>"]'],
    [1020, '{(1,1),(0,0);(2,2),(1,1)}', '["(1,1),(0,0)","(2,2),(1,1)"]'],
    [1017, '{"(1,2)"}', '["(1,2)"]'], // _point
    [3905, '{"[1,3)",empty}', '["[1,3)","empty"]'], // _int4range
  ]);

  test('toPlain of an array is its JSON', () => {
    assert.equal(toPlain(codecFor(1009), '{a,b}'), '["a","b"]');
    assert.equal(toPlain(codecFor(1022), '{NaN}'), '["NaN"]');
  });

  test('int2vector/oidvector are strings (space separated, not array literals)', () => {
    assert.equal(toJson(codecFor(22), '1 2 3'), '"1 2 3"');
    assert.equal(toJson(codecFor(30), '16384 16385'), '"16384 16385"');
  });

  test('a malformed array literal becomes the string of its text rather than throwing', () => {
    assert.equal(toJson(codecFor(1007), '{1,2'), '"{1,2"');
    assert.equal(toPlain(codecFor(1007), '{1,2'), '{1,2');
  });
});

describe('codecFor', () => {
  test('built-ins need no info and are shared', () => {
    assert.equal(codecFor(23), codecFor(23));
    assert.equal(codecFor(1007), codecFor(1007, { name: 'whatever' }));
    assert.equal(codecFor(1184).stringy, true);
    assert.equal(codecFor(16).stringy, false);
    assert.equal(codecFor(1009).stringy, false);
  });

  test('a domain resolves through its base type (domains over domains and arrays too)', () => {
    const types: Record<number, TypeInfo> = {
      70001: { name: 'price', category: 'N', baseOid: 1700 },
      70002: { name: 'positive_price', category: 'N', baseOid: 70001 },
      70003: { name: 'tags', category: 'A', baseOid: 1009 },
    };
    const lookup = (oid: number): TypeInfo | undefined => types[oid];
    assert.equal(toJson(codecFor(70001, types[70001], lookup), '9.50'), '9.50');
    assert.equal(toJson(codecFor(70002, types[70002], lookup), 'NaN'), '"NaN"');
    assert.equal(toJson(codecFor(70003, types[70003], lookup), '{a,NULL}'), '["a",null]');
    // cached from now on
    assert.equal(toJson(codecFor(70002), '1'), '1');
  });

  test('arrays of custom types resolve their element type', () => {
    const types: Record<number, TypeInfo> = {
      70010: { name: 'mood', category: 'E' },
      70011: { name: '_mood', category: 'A', elementOid: 70010 },
      70012: { name: 'ts_utc', category: 'D', baseOid: 1184 },
      70013: { name: '_ts_utc', elementOid: 70012 }, // no category: the name tells
      70014: { name: 'box_d', category: 'G', baseOid: 603 },
      70015: { name: '_box_d', category: 'A', elementOid: 70014 },
    };
    const lookup = (oid: number): TypeInfo | undefined => types[oid];
    assert.equal(toJson(codecFor(70010, types[70010], lookup), 'happy'), '"happy"');
    assert.equal(toJson(codecFor(70011, types[70011], lookup), '{happy,NULL,sad}'), '["happy",null,"sad"]');
    assert.equal(toJson(codecFor(70013, types[70013], lookup), '{"2026-01-01 01:00:00+01"}'), '["2026-01-01T00:00:00Z"]');
    assert.equal(toJson(codecFor(70015, types[70015], lookup), '{(1,1),(0,0);(2,2),(1,1)}'), '["(1,1),(0,0)","(2,2),(1,1)"]');
  });

  test('enums and unknown types are strings', () => {
    assert.equal(toJson(codecFor(70020, { name: 'color', category: 'E' }), 'red'), '"red"');
    assert.equal(toJson(codecFor(70021), '(1,x)'), '"(1,x)"');
    assert.equal(toPlain(codecFor(70021), '(1,x)'), '(1,x)');
  });

  test('a codec resolved without full information is not cached', () => {
    // element type unknown at first: array of strings
    assert.equal(toJson(codecFor(70031, { name: '_thing', category: 'A', elementOid: 70030 }), '{1}'), '["1"]');
    const lookup = (oid: number): TypeInfo | undefined => (oid === 70030 ? { name: 'thing', baseOid: 20 } : undefined);
    assert.equal(toJson(codecFor(70031, { name: '_thing', category: 'A', elementOid: 70030 }, lookup), '{1}'), '[1]');
    // no info at all: string, and not cached either
    assert.equal(toJson(codecFor(70040), '1'), '"1"');
    assert.equal(toJson(codecFor(70040, { name: 'n', baseOid: 23 }), '1'), '1');
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const MICROS_PER_DAY = 86_400_000_000n;

/** epoch microseconds of an astronomical-year date (BigInt arithmetic via JS Date for the calendar) */
function epochMicros(year: number, month: number, day: number, h: number, mi: number, s: number, micros: number): bigint {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  const days = BigInt(Math.round(d.getTime() / 86_400_000));
  return days * MICROS_PER_DAY + BigInt(((h * 60 + mi) * 60 + s) * 1_000_000 + micros);
}

/** ISO UTC text of epoch microseconds with `fracDigits` fractional digits, computed independently */
function isoOfMicros(total: bigint, fracDigits: number): string {
  const micros = ((total % 1_000_000n) + 1_000_000n) % 1_000_000n;
  const seconds = (total - micros) / 1_000_000n;
  const iso = new Date(Number(seconds) * 1000).toISOString(); // yyyy-mm-ddThh:mm:ss.000Z, ±yyyyyy outside 0..9999
  const frac = fracDigits === 0 ? '' : '.' + micros.toString().padStart(6, '0').slice(0, fracDigits);
  return iso.slice(0, iso.length - 5) + frac + 'Z';
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

describe('properties', () => {
  test('timestamptz with any offset shifts to UTC exactly (checked with BigInt microseconds)', () => {
    const maxOffset = 15 * 3600 + 59 * 60 + 59;
    const arb = fc.record({
      year: fc.oneof(fc.integer({ min: -4712, max: 275000 }), fc.integer({ min: 1890, max: 2100 }), fc.integer({ min: -3, max: 3 })),
      month: fc.integer({ min: 1, max: 12 }),
      day: fc.integer({ min: 1, max: 31 }),
      h: fc.integer({ min: 0, max: 23 }),
      mi: fc.integer({ min: 0, max: 59 }),
      s: fc.integer({ min: 0, max: 59 }),
      micros: fc.integer({ min: 0, max: 999_999 }),
      fracDigits: fc.integer({ min: 0, max: 6 }),
      offset: fc.oneof(
        fc.integer({ min: -maxOffset, max: maxOffset }),
        fc.constantFrom(0, 3600, -3600, 19800, -28800, 21208, -28378, 50400),
      ),
    });
    fc.assert(
      fc.property(arb, (r) => {
        const dim = new Date(Date.UTC(2000, r.month, 0)).getUTCDate(); // days in month, leap-agnostic
        const day = Math.min(r.day, r.month === 2 ? (isLeap(r.year) ? 29 : 28) : dim);
        // Postgres prints only the significant fractional digits: truncate micros to fracDigits
        const unit = 10 ** (6 - r.fracDigits);
        const micros = Math.floor(r.micros / unit) * unit;
        // the text Postgres prints for this local time at this offset
        const yearText = r.year > 0 ? pad(r.year, 4) : pad(1 - r.year, 4);
        const frac = r.fracDigits === 0 ? '' : '.' + pad(micros, 6).slice(0, r.fracDigits);
        const abs = Math.abs(r.offset);
        const oh = Math.floor(abs / 3600);
        const om = Math.floor(abs / 60) % 60;
        const os = abs % 60;
        const off =
          (r.offset < 0 ? '-' : '+') + pad(oh, 2) + (om !== 0 || os !== 0 ? ':' + pad(om, 2) : '') + (os !== 0 ? ':' + pad(os, 2) : '');
        const text =
          `${yearText}-${pad(r.month, 2)}-${pad(day, 2)} ${pad(r.h, 2)}:${pad(r.mi, 2)}:${pad(r.s, 2)}${frac}${off}` +
          (r.year <= 0 ? ' BC' : '');
        const utc = epochMicros(r.year, r.month, day, r.h, r.mi, r.s, micros) - BigInt(r.offset) * 1_000_000n;
        assert.equal(toPlain(codecFor(1184), text), isoOfMicros(utc, r.fracDigits), text);
      }),
      { numRuns: 5000 },
    );
  });

  test('daysFromCivil agrees with Date over the whole Postgres range', () => {
    fc.assert(
      fc.property(fc.integer({ min: -4712, max: 275000 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 28 }), (y, m, d) => {
        const date = new Date(0);
        date.setUTCFullYear(y, m - 1, d);
        assert.equal(daysFromCivil(y, m, d), date.getTime() / 86_400_000);
      }),
      { numRuns: 2000 },
    );
  });

  test('formatIsoYear matches Date.toISOString', () => {
    fc.assert(
      fc.property(fc.integer({ min: -271820, max: 275759 }), (y) => {
        const date = new Date(0);
        date.setUTCFullYear(y, 5, 15);
        assert.equal(formatIsoYear(y), date.toISOString().slice(0, date.toISOString().indexOf('-', 1)));
      }),
      { numRuns: 2000 },
    );
  });

  const digits = (min: number, max: number) =>
    fc.string({ unit: fc.constantFrom('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'), minLength: min, maxLength: max });
  /** numeric text as Postgres prints it: optional sign, no leading zeros, optional fraction */
  const numericText = fc
    .tuple(fc.boolean(), fc.integer({ min: 1, max: 9 }), digits(0, 140), fc.option(digits(1, 60), { nil: undefined }), fc.boolean())
    .map(([neg, lead, rest, frac, zero]) => (neg ? '-' : '') + (zero ? '0' : String(lead) + rest) + (frac !== undefined ? '.' + frac : ''));

  test('integers and numerics of any length round-trip as text', () => {
    fc.assert(
      fc.property(numericText, fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (num, big) => {
        assert.equal(toJson(codecFor(1700), num), num);
        assert.equal(toPlain(codecFor(1700), num), num);
        assert.equal(toJson(codecFor(20), String(big)), String(big));
        JSON.parse(num); // a valid JSON number
      }),
      { numRuns: 2000 },
    );
  });

  test('numeric and int8 arrays keep every digit', () => {
    fc.assert(
      fc.property(fc.array(fc.option(numericText, { nil: null }), { maxLength: 10 }), (nums) => {
        const literal = '{' + nums.map((n) => n ?? 'NULL').join(',') + '}';
        assert.equal(toJson(codecFor(1231), literal), '[' + nums.map((n) => n ?? 'null').join(',') + ']');
      }),
      { numRuns: 1000 },
    );
  });

  test('text arrays: toJson is JSON.stringify of the strings', () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.string({ unit: 'binary' }), { nil: null }), { maxLength: 8 }), (arr) => {
        const literal =
          '{' + arr.map((v) => (v === null ? 'NULL' : '"' + v.replace(/["\\]/g, (c) => '\\' + c) + '"')).join(',') + '}';
        assert.equal(toJson(codecFor(1009), literal), JSON.stringify(arr));
        assert.deepEqual(JSON.parse(toPlain(codecFor(1009), literal) ?? 'null'), arr);
      }),
      { numRuns: 1000 },
    );
  });
});

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}
