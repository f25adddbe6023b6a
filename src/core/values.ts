// SPEC §3 value conversion: Postgres text output (pgoutput, TEXT format) → the JSON encoding of
// the product contract. Pure functions, no I/O.
//
// Decisions beyond the letter of §3:
// - float4/float8/numeric NaN, Infinity, -Infinity are the JSON strings "NaN", "Infinity",
//   "-Infinity". Those codecs are not `stringy`, so their convert() returns the quoted JSON
//   literal for these values (convert() of a non-stringy codec is always valid JSON) and sets
//   `mixed`, which tells toPlain to unquote such values (Redis hash field: NaN).
// - oid and the other integer-like system types (xid, cid, regclass...) are not in §3's number
//   list, so they are strings, as printed.
// - Years: timestamptz/timestamp/date use ISO 8601 astronomical year numbering, the way
//   JavaScript's Date does: Postgres `0044-03-15 BC` is year -43 (1 BC is year 0000), and a year
//   outside 0000–9999 is written with a sign and at least six digits (`-000043-03-15`,
//   `+010000-01-01T00:00:00Z`, `+5874897-12-31`), which Date.parse reads back. The calendar is
//   the proleptic Gregorian one, as in Postgres.
// - infinity / -infinity of timestamptz/timestamp/date stay the strings "infinity"/"-infinity".
// - timestamptz keeps exactly the fractional digits Postgres printed (none, or 1 to 6) and is
//   shifted to UTC with integer arithmetic on the whole-second part (offsets are whole seconds,
//   so the fraction never changes).
// - json/jsonb are embedded as Postgres printed them; toPlain stores them as that JSON text too
//   (a jsonb scalar string keeps its quotes: it is JSON, not a §3 string).
// - A value of an array type that is not a well-formed array literal (cannot happen with
//   Postgres's own output) becomes the JSON string of its text instead of throwing.
// - A box array uses ';' between elements (box's typdelim); every other built-in type ','.

import { arrayLiteralToJson } from './array-literal.js';

/**
 * How one column's values are converted. Codecs are immutable and shared (cached per type oid).
 *
 * Optional extension: `mixed` (readonly boolean) — present and true on a non-stringy codec whose
 * convert() returns a JSON string literal for some values (float/numeric NaN and ±Infinity,
 * malformed array literals). toPlain() unquotes those; toJson() needs nothing special.
 */
export interface ColumnCodec {
  /** true when the §3 JSON encoding of this column is a JSON string */
  readonly stringy: boolean;
  /**
   * Converts one value from Postgres text output: returns the string itself when `stringy`
   * (to be JSON-quoted by the caller when JSON is wanted), otherwise a ready JSON literal.
   */
  convert(text: string): string;
}

/** What is known of a type beyond its oid (from pg_type), for types that are not built in. */
export interface TypeInfo {
  name: string;
  /** pg_type.typcategory, e.g. 'A' array, 'N' numeric, 'E' enum */
  category?: string;
  /** for arrays: element type oid */
  elementOid?: number;
  /** for domains: base type oid */
  baseOid?: number;
}

interface MixedCodec extends ColumnCodec {
  /** see ColumnCodec: convert() may return a JSON string literal, which toPlain unquotes */
  readonly mixed: true;
}

// ---------------------------------------------------------------------------------------------
// Scalar codecs

const identity = (text: string): string => text;

/** text, varchar, uuid, money, interval, time, timetz, enums, unknown types... */
const STRING_CODEC: ColumnCodec = { stringy: true, convert: identity };
/** box: a string, but its arrays use ';' as delimiter (told apart by identity) */
const BOX_CODEC: ColumnCodec = { stringy: true, convert: identity };

const BOOL_CODEC: ColumnCodec = {
  stringy: false,
  convert: (text) => (text.charCodeAt(0) === 116 /* t */ ? 'true' : 'false'),
};

/** int2/int4/int8: Postgres's output is already a JSON number, with every digit */
const INT_CODEC: ColumnCodec = { stringy: false, convert: identity };

/** float4/float8/numeric: JSON numbers as printed (1e+20, 1.5e-07, 123.450), NaN/±Infinity as strings */
const NUMBER_CODEC: MixedCodec = {
  stringy: false,
  mixed: true,
  convert(text) {
    const c = text.charCodeAt(0);
    if (c === 78 /* N */) return '"NaN"';
    if (c === 73 /* I */) return '"Infinity"';
    if (c === 45 /* - */ && text.charCodeAt(1) === 73) return '"-Infinity"';
    return text;
  },
};

/** json/jsonb: embedded as is */
const JSON_CODEC: ColumnCodec = { stringy: false, convert: identity };

const TIMESTAMPTZ_CODEC: ColumnCodec = { stringy: true, convert: timestamptzToIso };
const TIMESTAMP_CODEC: ColumnCodec = { stringy: true, convert: timestampToIso };
const DATE_CODEC: ColumnCodec = { stringy: true, convert: dateToIso };

// ---------------------------------------------------------------------------------------------
// Dates and times

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** two digits at i as a number, or -1 */
function twoDigits(t: string, i: number): number {
  const a = t.charCodeAt(i) - 48;
  const b = t.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

function pad2(n: number): string {
  return n < 10 ? '0' + n : '' + n;
}

/** ISO 8601 year: 0000–9999 as four digits, otherwise signed and at least six (as JS Date does) */
export function formatIsoYear(year: number): string {
  if (year >= 0 && year <= 9999) return ('' + year).padStart(4, '0');
  return (year < 0 ? '-' : '+') + ('' + Math.abs(year)).padStart(6, '0');
}

/** Days since 1970-01-01 of a proleptic Gregorian date (astronomical year). H. Hinnant's algorithm. */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

// civilFromDays writes here (no allocation per call)
let civilYear = 0;
let civilMonth = 0;
let civilDay = 0;

function civilFromDays(days: number): void {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  civilDay = doy - Math.floor((153 * mp + 2) / 5) + 1;
  civilMonth = mp < 10 ? mp + 3 : mp - 9;
  civilYear = yoe + era * 400 + (civilMonth <= 2 ? 1 : 0);
}

/** index just past the year digits at the start of t (0 when t does not start with a digit) */
function yearEnd(t: string): number {
  let i = 0;
  while (i < t.length && isDigit(t.charCodeAt(i))) i++;
  return i;
}

function endsWithBC(t: string): boolean {
  const n = t.length;
  return n > 3 && t.charCodeAt(n - 1) === 67 /* C */ && t.charCodeAt(n - 2) === 66 /* B */ && t.charCodeAt(n - 3) === 32;
}

/** the astronomical year of t's leading year digits (BC when `bc`) */
function astronomicalYear(t: string, end: number, bc: boolean): number {
  const y = Number(t.slice(0, end));
  return bc ? 1 - y : y;
}

/**
 * timestamptz `2026-11-22 11:11:03.123456+00` → `2026-11-22T11:11:03.123456Z`. Handles offsets
 * `+05:30`, `-08`, `+05:53:28`, any number of fractional digits (kept as printed), years of 5+
 * digits, ` BC`, and infinity/-infinity (returned as is). Input that does not parse is returned
 * as is.
 */
export function timestamptzToIso(t: string): string {
  const n = t.length;
  // common case: 4-digit year, UTC (+00)
  if (
    n >= 22 &&
    t.charCodeAt(4) === 45 &&
    t.charCodeAt(n - 3) === 43 /* + */ &&
    t.charCodeAt(n - 2) === 48 &&
    t.charCodeAt(n - 1) === 48
  ) {
    return t.slice(0, 10) + 'T' + t.slice(11, n - 3) + 'Z';
  }
  return timestamptzSlow(t);
}

function timestamptzSlow(t: string): string {
  const ye = yearEnd(t);
  if (ye === 0) return t; // infinity, -infinity
  let n = t.length;
  const bc = endsWithBC(t);
  if (bc) n -= 3;
  // -MM-DD HH:MM:SS
  if (n < ye + 15 + 3) return t;
  const month = twoDigits(t, ye + 1);
  const day = twoDigits(t, ye + 4);
  const hour = twoDigits(t, ye + 7);
  const minute = twoDigits(t, ye + 10);
  const second = twoDigits(t, ye + 13);
  if (
    t.charCodeAt(ye) !== 45 ||
    t.charCodeAt(ye + 3) !== 45 ||
    t.charCodeAt(ye + 6) !== 32 ||
    t.charCodeAt(ye + 9) !== 58 ||
    t.charCodeAt(ye + 12) !== 58 ||
    (month | day | hour | minute | second) < 0
  ) {
    return t;
  }
  let i = ye + 15;
  const fracStart = i;
  if (t.charCodeAt(i) === 46 /* . */) {
    i++;
    while (i < n && isDigit(t.charCodeAt(i))) i++;
  }
  const fracEnd = i;
  // offset: ±HH[:MM[:SS]]
  const sign = t.charCodeAt(i);
  if (sign !== 43 && sign !== 45) return t;
  let offset = twoDigits(t, i + 1) * 3600;
  if (offset < 0) return t;
  i += 3;
  if (i < n && t.charCodeAt(i) === 58) {
    const m = twoDigits(t, i + 1);
    if (m < 0) return t;
    offset += m * 60;
    i += 3;
    if (i < n && t.charCodeAt(i) === 58) {
      const s = twoDigits(t, i + 1);
      if (s < 0) return t;
      offset += s;
      i += 3;
    }
  }
  if (i !== n) return t;
  if (sign === 45) offset = -offset;

  let year = astronomicalYear(t, ye, bc);
  let mon = month;
  let dd = day;
  let sod = hour * 3600 + minute * 60 + second - offset;
  if (sod < 0 || sod >= 86400) {
    // offsets are under 16 hours: at most one day either way
    const shift = sod < 0 ? -1 : 1;
    sod -= shift * 86400;
    civilFromDays(daysFromCivil(year, month, day) + shift);
    year = civilYear;
    mon = civilMonth;
    dd = civilDay;
  }
  const hh = Math.floor(sod / 3600);
  const rem = sod - hh * 3600;
  const mi = Math.floor(rem / 60);
  const ss = rem - mi * 60;
  return (
    formatIsoYear(year) + '-' + pad2(mon) + '-' + pad2(dd) + 'T' +
    pad2(hh) + ':' + pad2(mi) + ':' + pad2(ss) + t.slice(fracStart, fracEnd) + 'Z'
  );
}

/** timestamp `2026-11-22 11:11:03.5` → `2026-11-22T11:11:03.5` (years and BC as in timestamptz) */
export function timestampToIso(t: string): string {
  const n = t.length;
  if (n >= 19 && t.charCodeAt(4) === 45 && t.charCodeAt(10) === 32 && t.charCodeAt(n - 1) !== 67 /* C */) {
    return t.slice(0, 10) + 'T' + t.slice(11);
  }
  const ye = yearEnd(t);
  if (ye === 0) return t; // infinity, -infinity
  const bc = endsWithBC(t);
  const end = bc ? n - 3 : n;
  if (end < ye + 15 || t.charCodeAt(ye) !== 45 || t.charCodeAt(ye + 6) !== 32) return t;
  return formatIsoYear(astronomicalYear(t, ye, bc)) + t.slice(ye, ye + 6) + 'T' + t.slice(ye + 7, end);
}

/** date: `2026-11-22` as is; `0044-03-15 BC` → `-000043-03-15`; `10000-01-01` → `+010000-01-01` */
export function dateToIso(t: string): string {
  const n = t.length;
  if (n === 10 && t.charCodeAt(4) === 45) return t;
  const ye = yearEnd(t);
  if (ye === 0) return t; // infinity, -infinity
  const bc = endsWithBC(t);
  const end = bc ? n - 3 : n;
  if (end !== ye + 6 || t.charCodeAt(ye) !== 45) return t;
  return formatIsoYear(astronomicalYear(t, ye, bc)) + t.slice(ye, end);
}

// ---------------------------------------------------------------------------------------------
// Arrays

function quoteJson(s: string): string {
  return JSON.stringify(s);
}

function arrayCodec(element: ColumnCodec): MixedCodec {
  const delimiter = element === BOX_CODEC ? ';' : ',';
  let toJsonElement: (raw: string) => string;
  if (!element.stringy) {
    toJsonElement = (raw) => element.convert(raw);
  } else if (element.convert === identity) {
    toJsonElement = quoteJson;
  } else {
    toJsonElement = (raw) => JSON.stringify(element.convert(raw));
  }
  return {
    stringy: false,
    mixed: true,
    convert: (text) => arrayLiteralToJson(text, toJsonElement, delimiter) ?? JSON.stringify(text),
  };
}

// ---------------------------------------------------------------------------------------------
// Type table

const BUILTIN = new Map<number, ColumnCodec>([
  [16, BOOL_CODEC], // bool
  [20, INT_CODEC], // int8
  [21, INT_CODEC], // int2
  [23, INT_CODEC], // int4
  [700, NUMBER_CODEC], // float4
  [701, NUMBER_CODEC], // float8
  [1700, NUMBER_CODEC], // numeric
  [114, JSON_CODEC], // json
  [3802, JSON_CODEC], // jsonb
  [1082, DATE_CODEC], // date
  [1114, TIMESTAMP_CODEC], // timestamp
  [1184, TIMESTAMPTZ_CODEC], // timestamptz
  [603, BOX_CODEC], // box
  // strings as printed, listed so that they are cached from the start:
  [17, STRING_CODEC], // bytea
  [18, STRING_CODEC], // char
  [19, STRING_CODEC], // name
  [22, STRING_CODEC], // int2vector (`1 2 3`, not a brace literal)
  [25, STRING_CODEC], // text
  [26, STRING_CODEC], // oid
  [30, STRING_CODEC], // oidvector
  [142, STRING_CODEC], // xml
  [650, STRING_CODEC], // cidr
  [790, STRING_CODEC], // money
  [829, STRING_CODEC], // macaddr
  [869, STRING_CODEC], // inet
  [1042, STRING_CODEC], // bpchar
  [1043, STRING_CODEC], // varchar
  [1083, STRING_CODEC], // time
  [1186, STRING_CODEC], // interval
  [1266, STRING_CODEC], // timetz
  [1560, STRING_CODEC], // bit
  [1562, STRING_CODEC], // varbit
  [2950, STRING_CODEC], // uuid
  [3614, STRING_CODEC], // tsvector
]);

/** built-in array types (pg_type.dat, typcategory 'A'): [array oid, element oid] */
const BUILTIN_ARRAYS: readonly (readonly [number, number])[] = [
  [1000, 16], [1001, 17], [1002, 18], [1003, 19], [1016, 20], [1005, 21], [1006, 22], [1007, 23],
  [1008, 24], [1009, 25], [1028, 26], [1010, 27], [1011, 28], [1012, 29], [1013, 30], [210, 71],
  [270, 75], [272, 81], [273, 83], [199, 114], [143, 142], [1017, 600], [1018, 601], [1019, 602],
  [1020, 603], [1027, 604], [629, 628], [651, 650], [1021, 700], [1022, 701], [719, 718],
  [775, 774], [791, 790], [1040, 829], [1041, 869], [1034, 1033], [1014, 1042], [1015, 1043],
  [1182, 1082], [1183, 1083], [1115, 1114], [1185, 1184], [1187, 1186], [1270, 1266],
  [1561, 1560], [1563, 1562], [1231, 1700], [2201, 1790], [2207, 2202], [2208, 2203],
  [2209, 2204], [2210, 2205], [2211, 2206], [1263, 2275], [2951, 2950], [2949, 2970],
  [3221, 3220], [3643, 3614], [3645, 3615], [3644, 3642], [3735, 3734], [3770, 3769],
  [3807, 3802], [3905, 3904], [3907, 3906], [3909, 3908], [3911, 3910], [3913, 3912],
  [3927, 3926], [4073, 4072], [4090, 4089], [4097, 4096], [4192, 4191], [6150, 4451],
  [6151, 4532], [6152, 4533], [6153, 4534], [6155, 4535], [6157, 4536], [5039, 5038], [271, 5069],
];
for (const [arrayOid, elementOid] of BUILTIN_ARRAYS) {
  BUILTIN.set(arrayOid, arrayCodec(BUILTIN.get(elementOid) ?? STRING_CODEC));
}

/** codecs of non-built-in types, resolved from complete information */
const cache = new Map<number, ColumnCodec>();

interface Resolved {
  codec: ColumnCodec;
  /** false when some type in the chain was unknown: not cached, so later info can fix it */
  complete: boolean;
}

function resolve(
  oid: number,
  info: TypeInfo | undefined,
  lookup: ((oid: number) => TypeInfo | undefined) | undefined,
  depth: number,
): Resolved {
  const known = BUILTIN.get(oid) ?? cache.get(oid);
  if (known !== undefined) return { codec: known, complete: true };
  const ti = info ?? lookup?.(oid);
  if (ti === undefined || depth > 32) return { codec: STRING_CODEC, complete: false };
  let r: Resolved;
  if (ti.baseOid !== undefined && ti.baseOid !== 0) {
    r = resolve(ti.baseOid, undefined, lookup, depth + 1); // domain
  } else if (ti.category === 'A' || ti.name.charCodeAt(0) === 95 /* _ */) {
    if (ti.elementOid !== undefined && ti.elementOid !== 0) {
      const element = resolve(ti.elementOid, undefined, lookup, depth + 1);
      r = { codec: arrayCodec(element.codec), complete: element.complete };
    } else {
      r = { codec: arrayCodec(STRING_CODEC), complete: true };
    }
  } else {
    r = { codec: STRING_CODEC, complete: true }; // enum, composite, range, extension type...
  }
  if (r.complete) cache.set(oid, r.codec);
  return r;
}

/**
 * The codec of a column type. Built-in types need no `info`; a domain resolves through
 * info.baseOid, an array of a custom type through info.elementOid, both via `lookup`; enums
 * and unknown types are strings. Codecs are cached per oid (unless some type of the chain was
 * unknown, so that a later call with more information can do better).
 */
export function codecFor(
  typeOid: number,
  info?: TypeInfo,
  lookup?: (oid: number) => TypeInfo | undefined,
): ColumnCodec {
  const known = BUILTIN.get(typeOid) ?? cache.get(typeOid);
  if (known !== undefined) return known;
  return resolve(typeOid, info, lookup, 0).codec;
}

/**
 * What a codec does, for encoders that work on the bytes of Postgres's text output (a backfill's
 * COPY rows, sinks/copy-encoder.ts): `int` and `json` keep the text as it is, `number` too except
 * NaN and ±Infinity, `string` quotes it, `bool` maps t/f, `timestamptz` reformats it; `other`: only
 * through `convert`.
 */
export type CodecKind = 'int' | 'number' | 'json' | 'string' | 'bool' | 'timestamptz' | 'other';

export function codecKind(codec: ColumnCodec): CodecKind {
  if (codec === INT_CODEC) return 'int';
  if (codec === NUMBER_CODEC) return 'number';
  if (codec === JSON_CODEC) return 'json';
  if (codec === STRING_CODEC || codec === BOX_CODEC) return 'string';
  if (codec === BOOL_CODEC) return 'bool';
  if (codec === TIMESTAMPTZ_CODEC) return 'timestamptz';
  return 'other';
}

/** The JSON text of one value: null → `null`, stringy values JSON-quoted. */
export function toJson(codec: ColumnCodec, text: string | null): string {
  if (text === null) return 'null';
  return codec.stringy ? JSON.stringify(codec.convert(text)) : codec.convert(text);
}

/**
 * The value as stored in a Redis hash field: like toJson but strings are not quoted
 * (`Lamp`, `9.50`, `["a","b"]`, `true`, `2026-11-22T11:11:03.123456Z`, `NaN`); null → null.
 */
export function toPlain(codec: ColumnCodec, text: string | null): string | null {
  if (text === null) return null;
  const converted = codec.convert(text);
  if (codec.stringy) return converted;
  if ((codec as Partial<MixedCodec>).mixed === true && converted.charCodeAt(0) === 34 /* " */) {
    return JSON.parse(converted) as string;
  }
  return converted;
}

/**
 * Built-in type names (pg_type.typname) to oids. pgoutput describes a domain with a Type message
 * that carries the domain's oid but its base type's name and schema (logicalrep_write_typ), so a
 * domain over a built-in type is recognised by name.
 */
const BUILTIN_NAMES = new Map<string, number>([
  ['bool', 16], ['bytea', 17], ['name', 19], ['int8', 20], ['int2', 21], ['int4', 23], ['text', 25], ['oid', 26],
  ['json', 114], ['xml', 142], ['float4', 700], ['float8', 701], ['money', 790], ['macaddr', 829], ['inet', 869],
  ['cidr', 650], ['bpchar', 1042], ['varchar', 1043], ['date', 1082], ['time', 1083], ['timestamp', 1114],
  ['timestamptz', 1184], ['interval', 1186], ['timetz', 1266], ['bit', 1560], ['varbit', 1562], ['numeric', 1700],
  ['uuid', 2950], ['tsvector', 3614], ['jsonb', 3802],
  ['_bool', 1000], ['_bytea', 1001], ['_name', 1003], ['_int2', 1005], ['_int4', 1007], ['_text', 1009],
  ['_bpchar', 1014], ['_varchar', 1015], ['_int8', 1016], ['_float4', 1021], ['_float8', 1022], ['_oid', 1028],
  ['_inet', 1041], ['_macaddr', 1040], ['_cidr', 651], ['_money', 791], ['_json', 199], ['_xml', 143],
  ['_date', 1182], ['_time', 1183], ['_timestamp', 1115], ['_timestamptz', 1185], ['_interval', 1187],
  ['_timetz', 1270], ['_bit', 1561], ['_varbit', 1563], ['_numeric', 1231], ['_uuid', 2951], ['_jsonb', 3807],
]);

export function builtinTypeOid(name: string): number | undefined {
  return BUILTIN_NAMES.get(name);
}
