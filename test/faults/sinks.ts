// The sinks the fault suite runs, and what each type must hold: the checker's own model of the
// sink types, written from docs/sinks.md and independent of Sluice's code (nothing here imports
// src/). A new sink type plugs in with a handler in HANDLERS and a few entries in sinkSpecs().

import type { Cluster, Redis } from 'ioredis';
import { TABLES, type TableDef } from './schema.js';

/** the Redis connections of the suite */
export type Conn = 'main' | 'volatile' | 'cluster' | 'sentinel';
export const CONNS: readonly Conn[] = ['main', 'volatile', 'cluster', 'sentinel'];

/**
 * Connections whose Redis may lose acknowledged writes by design of the fault (restart without
 * persistence, Sentinel failover to a replica that lacked them): keyed sinks there must be
 * rebuilt (re-backfill), and history sinks may miss changes committed before the fault ended.
 * On the others (AOF with fsync always, coordinated Cluster failover, resharding) nothing may
 * be lost.
 */
export const LOSSY_CONNS: ReadonlySet<Conn> = new Set(['volatile', 'sentinel']);

export interface SinkSpec {
  name: string;
  /** Sluice's sink type */
  type: string;
  conn: Conn;
  table: string;
  /** the rest of the sink's configuration (key, field, member, score, channel, actions, …) */
  options: Record<string, unknown>;
}

/** A Redis as the checker and the monitor read it (never through the fault proxies). */
export interface RedisView {
  conn: Conn;
  client: Redis | Cluster;
  /** every key matching a glob pattern (SCAN on every master) */
  scan(match: string): Promise<string[]>;
}

export type Row = Record<string, unknown>;

/** one entry of a history (list, stream) or one pub/sub message */
export interface HistoryEntry {
  action: string;
  record: Row | null;
}

/** a committed change, from the audit log */
export interface Change {
  seq: number;
  op: string;
  old: Row | null;
  new: Row | null;
}

/** what a keyed sink's expected content is computed from */
export interface StateSource {
  /** the table's rows now */
  rows: readonly Row[];
  /** every change ever committed to the table, in commit order (for sinks that never forget) */
  changes(): Promise<readonly Change[]>;
}

interface StateHandler {
  kind: 'state';
  /** key → canonical value */
  expected(spec: SinkSpec, source: StateSource): Map<string, string> | Promise<Map<string, string>>;
  /** canonical value of one key (given what is expected there); undefined when it does not exist */
  read(spec: SinkSpec, view: RedisView, key: string, want: string | undefined): Promise<string | undefined>;
  /** expected and found agree (default: the same text) */
  same?(want: string, got: string): boolean;
  /** versions at a key for the monitor: (identity within the key, ver) pairs; absent: [] */
  versions?(spec: SinkSpec, view: RedisView, key: string): Promise<[string, number][]>;
}
interface HistoryHandler {
  kind: 'history';
  /** actions a sink of this type records when `actions` is not set */
  defaultActions: string[];
  read(view: RedisView, key: string): Promise<HistoryEntry[]>;
  /** its length, for the monitor (a history never shrinks) */
  length(view: RedisView, key: string): Promise<number>;
}
interface PubsubHandler {
  kind: 'pubsub';
  defaultActions: string[];
}
export type TypeHandler = StateHandler | HistoryHandler | PubsubHandler;

// ---------------------------------------------------------------------------------------------
// Templates (docs/sinks.md › Templates), rendered the way the docs say

/** a column's value as templates print it: the record's JSON without quotes */
export function valueText(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export function render(template: string, table: TableDef, row: Row): string | undefined {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if (ch === '{' && template[i + 1] === '{') {
      out += '{';
      i++;
    } else if (ch === '}' && template[i + 1] === '}') {
      out += '}';
      i++;
    } else if (ch === '{') {
      const end = template.indexOf('}', i);
      const name = template.slice(i + 1, end);
      i = end;
      let v: string | undefined;
      if (name === 'table') v = table.name;
      else if (name === 'schema') v = 'public';
      else if (name === 'pk') {
        const parts = table.pk.map((c) => valueText(row[c]));
        v = parts.every((p) => p !== undefined) ? parts.join(':') : undefined;
      } else v = valueText(row[name]);
      if (v === undefined) return undefined;
      out += v;
    } else out += ch;
  }
  return out;
}

/** the fixed start of a template (up to its first row placeholder), as a SCAN pattern */
export function scanPattern(template: string, table: TableDef): string {
  let fixed = '';
  let open = false;
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if ((ch === '{' || ch === '}') && template[i + 1] === ch) {
      fixed += ch;
      i++;
    } else if (ch === '{') {
      const end = template.indexOf('}', i);
      const name = template.slice(i + 1, end);
      i = end;
      if (name === 'table') fixed += table.name;
      else if (name === 'schema') fixed += 'public';
      else {
        open = true;
        break;
      }
    } else fixed += ch;
  }
  const escaped = fixed.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
  return open ? `${escaped}*` : escaped;
}

// ---------------------------------------------------------------------------------------------
// Canonical values: JSON with sorted keys, so that two equal values have one text

export function canon(v: unknown): string {
  return JSON.stringify(sortDeep(v));
}
function sortDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortDeep);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortDeep((v as Row)[k])]));
  }
  return v;
}
function parseOr(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return `<not JSON: ${text.slice(0, 80)}>`;
  }
}

const keyOf = (spec: SinkSpec, row: Row): string | undefined => render(String(spec.options.key), TABLES[spec.table]!, row);

function groupBy(spec: SinkSpec, rows: readonly Row[], inner: (row: Row) => [string, unknown] | undefined): Map<string, string> {
  const groups = new Map<string, Row>();
  for (const row of rows) {
    const key = keyOf(spec, row);
    const e = inner(row);
    if (key === undefined || e === undefined) continue;
    const g = groups.get(key) ?? {};
    g[e[0]] = e[1];
    groups.set(key, g);
  }
  return new Map([...groups].map(([k, g]) => [k, canon(g)]));
}

/** a hash row's fields: every non-NULL column, strings unquoted, the rest as JSON */
function hashFields(row: Row): Row {
  const out: Row = {};
  for (const [c, v] of Object.entries(row)) {
    const t = valueText(v);
    if (t !== undefined) out[c] = t;
  }
  return out;
}

async function guard<T>(p: Promise<T>): Promise<T | string> {
  try {
    return await p;
  } catch (err) {
    return `<error: ${(err as Error).message}>`;
  }
}

const numberOr = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

// ---------------------------------------------------------------------------------------------
// The sink types

const stringHandler: StateHandler = {
  kind: 'state',
  expected: (spec, { rows }) => new Map(rows.flatMap((r) => {
    const k = keyOf(spec, r);
    return k === undefined ? [] : [[k, canon(r)] as [string, string]];
  })),
  async read(_spec, view, key) {
    const v = await guard(view.client.get(key));
    if (v === null) return undefined;
    return v.startsWith('<error') ? v : canon(parseOr(v));
  },
  async versions(_spec, view, key) {
    const v = await view.client.get(key);
    if (v === null) return [];
    return [['', numberOr((parseOr(v) as Row).ver)]];
  },
};

const hashRowHandler: StateHandler = {
  kind: 'state',
  expected: (spec, { rows }) => new Map(rows.flatMap((r) => {
    const k = keyOf(spec, r);
    return k === undefined ? [] : [[k, canon(hashFields(r))] as [string, string]];
  })),
  async read(_spec, view, key) {
    const h = await guard(view.client.hgetall(key));
    if (typeof h === 'string') return h;
    return Object.keys(h).length === 0 ? undefined : canon(h);
  },
  async versions(_spec, view, key) {
    const v = await view.client.hget(key, 'ver');
    return v === null ? [] : [['', Number(v)]];
  },
};

const hashFieldHandler: StateHandler = {
  kind: 'state',
  expected: (spec, { rows }) => groupBy(spec, rows, (r) => {
    const f = render(String(spec.options.field), TABLES[spec.table]!, r);
    return f === undefined ? undefined : [f, sortDeep(r)];
  }),
  async read(_spec, view, key) {
    const h = await guard(view.client.hgetall(key));
    if (typeof h === 'string') return h;
    if (Object.keys(h).length === 0) return undefined;
    return canon(Object.fromEntries(Object.entries(h).map(([f, v]) => [f, parseOr(v)])));
  },
  async versions(_spec, view, key) {
    const h = await view.client.hgetall(key);
    return Object.entries(h).map(([f, v]) => [f, numberOr((parseOr(v) as Row).ver)]);
  },
};

const setHandler: StateHandler = {
  kind: 'state',
  expected: (spec, { rows }) => groupBy(spec, rows, (r) => {
    const m = render(String(spec.options.member), TABLES[spec.table]!, r);
    return m === undefined ? undefined : [m, true];
  }),
  async read(_spec, view, key) {
    const m = await guard(view.client.smembers(key));
    if (typeof m === 'string') return m;
    return m.length === 0 ? undefined : canon(Object.fromEntries(m.map((x) => [x, true])));
  },
};

const zsetHandler: StateHandler = {
  kind: 'state',
  expected: (spec, { rows }) => groupBy(spec, rows, (r) => {
    const m = render(String(spec.options.member), TABLES[spec.table]!, r);
    return m === undefined ? undefined : [m, numberOr(r[String(spec.options.score)])];
  }),
  async read(_spec, view, key) {
    const flat = await guard(view.client.zrange(key, 0, -1, 'WITHSCORES'));
    if (typeof flat === 'string') return flat;
    if (flat.length === 0) return undefined;
    const out: Row = {};
    for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = Number(flat[i + 1]);
    return canon(out);
  },
};

/** Redis stores geo coordinates as a 52-bit geohash: they come back within about 1e-5 degrees */
const GEO_TOLERANCE = 1e-4;

const geoHandler: StateHandler = {
  kind: 'state',
  expected: (spec, { rows }) => groupBy(spec, rows, (r) => {
    const m = render(String(spec.options.member), TABLES[spec.table]!, r);
    return m === undefined ? undefined : [m, [numberOr(r[String(spec.options.longitude)]), numberOr(r[String(spec.options.latitude)])]];
  }),
  async read(_spec, view, key) {
    const members = await guard(view.client.zrange(key, 0, -1));
    if (typeof members === 'string') return members;
    if (members.length === 0) return undefined;
    const pos = await view.client.geopos(key, ...members);
    return canon(Object.fromEntries(members.map((m, i) => {
      const p = pos[i] as [string, string] | null | undefined;
      return [m, p ? [Number(p[0]), Number(p[1])] : null];
    })));
  },
  same(want, got) {
    const w = parseOr(want) as Record<string, [number, number]>;
    const g = parseOr(got) as Record<string, [number, number] | null>;
    if (typeof w !== 'object' || typeof g !== 'object' || g === null) return false;
    const wk = Object.keys(w).sort();
    const gk = Object.keys(g).sort();
    if (wk.join('\u0000') !== gk.join('\u0000')) return false;
    return wk.every((k) => {
      const p = g[k];
      return p !== null && p !== undefined && Math.abs(p[0] - w[k]![0]) < GEO_TOLERANCE && Math.abs(p[1] - w[k]![1]) < GEO_TOLERANCE;
    });
  },
};

const bitmapHandler: StateHandler = {
  kind: 'state',
  expected: (spec, { rows }) => groupBy(spec, rows, (r) => {
    const o = valueText(r[String(spec.options.offset)]);
    return o === undefined ? undefined : [o, true];
  }),
  async read(_spec, view, key) {
    const buf = await guard(view.client.getBuffer(key));
    if (typeof buf === 'string') return buf;
    if (buf === null) return undefined;
    const bits: Row = {};
    // bit 0 is the most significant bit of the first byte
    for (let i = 0; i < buf.length; i++) for (let k = 0; k < 8; k++) if ((buf[i]! >> (7 - k)) & 1) bits[String(i * 8 + k)] = true;
    // a bitmap whose bits were all cleared holds nothing
    return Object.keys(bits).length === 0 ? undefined : canon(bits);
  },
};

/**
 * A HyperLogLog cannot be compared with rows exactly. Each element it must have counted (every
 * insert and update ever committed, deletes forget nothing) is PFADDed to a copy of the key: a
 * PFADD that changes the copy proves that element was never added; and PFCOUNT must be within
 * 3% (about 4 standard errors) of the number of elements.
 */
const hyperloglogHandler: StateHandler = {
  kind: 'state',
  async expected(spec, source) {
    const table = TABLES[spec.table]!;
    const actions = new Set((spec.options.actions as string[] | undefined) ?? ['insert', 'update']);
    const byKey = new Map<string, Set<string>>();
    const add = (row: Row): void => {
      const k = keyOf(spec, row);
      const e = render(String(spec.options.element), table, row);
      if (k === undefined || e === undefined) return;
      const set = byKey.get(k) ?? new Set<string>();
      set.add(e);
      byKey.set(k, set);
    };
    for (const c of await source.changes()) if (c.new && actions.has(ACTION_OF_OP[c.op]!)) add(c.new);
    return new Map([...byKey].map(([k, set]) => [k, canon({ elements: [...set].sort() })]));
  },
  async read(_spec, view, key, want) {
    const count = await guard(view.client.pfcount(key));
    if (typeof count === 'string') return count;
    if (count === 0 && (await view.client.exists(key)) === 0) return undefined;
    const elements = want ? (parseOr(want) as { elements: string[] }).elements : [];
    const copy = `faultcheck:${key}`;
    const missing: string[] = [];
    await view.client.call('COPY', key, copy, 'REPLACE');
    try {
      for (let i = 0; i < elements.length; i += 1000) {
        const part = elements.slice(i, i + 1000);
        const added = await Promise.all(part.map((e) => view.client.pfadd(copy, e)));
        part.forEach((e, j) => {
          if (added[j] === 1) missing.push(e);
        });
      }
    } finally {
      await view.client.del(copy);
    }
    return canon({ count, missing: missing.slice(0, 10), missingCount: missing.length });
  },
  same(want, got) {
    const n = (parseOr(want) as { elements: string[] }).elements.length;
    const g = parseOr(got) as { count?: number; missingCount?: number };
    return g.missingCount === 0 && typeof g.count === 'number' && Math.abs(g.count - n) <= Math.max(2, Math.ceil(0.03 * n));
  },
};

/** a decimal as text, normalized (no leading zeros, no trailing fraction zeros, no -0) */
function decimal(v: unknown): string {
  const t = typeof v === 'number' ? String(v) : String(v ?? '');
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(t.trim());
  if (!m) return `<not a decimal: ${t}>`;
  const int = (m[2] ?? '').replace(/^0+(?=\d)/, '') || '0';
  const frac = (m[3] ?? '').replace(/0+$/, '');
  const body = frac ? `${int}.${frac}` : int;
  return m[1] && /[1-9]/.test(body) ? `-${body}` : body;
}

/** adds two decimals given as text, exactly */
function addDecimal(a: string, b: string): string {
  const scale = Math.max((a.split('.')[1] ?? '').length, (b.split('.')[1] ?? '').length);
  const toInt = (x: string): bigint => {
    const neg = x.startsWith('-');
    const [i, f = ''] = x.replace('-', '').split('.');
    const n = BigInt(`${i}${f.padEnd(scale, '0')}`);
    return neg ? -n : n;
  };
  const sum = toInt(a) + toInt(b);
  const neg = sum < 0n;
  const digits = (neg ? -sum : sum).toString().padStart(scale + 1, '0');
  const text = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return decimal(neg ? `-${text}` : text);
}

/** a measure of an aggregate sink over a group's rows: `count` or `sum(column)` */
function measureOf(measure: string, rows: readonly Row[]): string {
  const t = measure.trim();
  if (t === 'count' || t === 'count(*)') return String(rows.length);
  const m = /^sum\s*\(\s*(\w+)\s*\)$/i.exec(t);
  if (!m) return `<measure ${t} not modelled>`;
  return rows.reduce((acc, r) => (r[m[1]!] === null || r[m[1]!] === undefined ? acc : addDecimal(acc, decimal(r[m[1]!]))), '0');
}

/**
 * Aggregate sinks must equal GROUP BY over the rows: into a hash, one key per group with a field
 * per measure; into a sorted set, one member per group scored by the measure. A group with no
 * rows does not exist (GROUP BY has no empty groups).
 */
const aggregateHandler: StateHandler = {
  kind: 'state',
  expected(spec, { rows }) {
    const table = TABLES[spec.table]!;
    const into = String(spec.options.into ?? 'hash');
    const groups = new Map<string, { key: string; member: string; rows: Row[] }>();
    for (const r of rows) {
      const key = keyOf(spec, r);
      const member = into === 'zset' ? render(String(spec.options.member), table, r) : '';
      if (key === undefined || member === undefined) continue;
      const id = `${key}\u0000${member}`;
      const g = groups.get(id) ?? { key, member, rows: [] };
      g.rows.push(r);
      groups.set(id, g);
    }
    const byKey = new Map<string, Row>();
    for (const g of groups.values()) {
      const v = byKey.get(g.key) ?? {};
      if (into === 'zset') v[g.member] = measureOf(String(spec.options.score), g.rows);
      else for (const [field, m] of Object.entries((spec.options.measures as Record<string, string> | undefined) ?? { count: 'count' })) v[field] = measureOf(m, g.rows);
      byKey.set(g.key, v);
    }
    return new Map([...byKey].map(([k, v]) => [k, canon(v)]));
  },
  async read(spec, view, key) {
    if (String(spec.options.into ?? 'hash') === 'zset') {
      const flat = await guard(view.client.zrange(key, 0, -1, 'WITHSCORES'));
      if (typeof flat === 'string') return flat;
      if (flat.length === 0) return undefined;
      const out: Row = {};
      for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = decimal(flat[i + 1]);
      return canon(out);
    }
    const h = await guard(view.client.hgetall(key));
    if (typeof h === 'string') return h;
    if (Object.keys(h).length === 0) return undefined;
    return canon(Object.fromEntries(Object.entries(h).map(([f, v]) => [f, decimal(v)])));
  },
};

function entryOf(text: string): HistoryEntry {
  const m = parseOr(text) as { action?: unknown; record?: unknown };
  if (typeof m !== 'object' || m === null) return { action: `<not a message: ${text.slice(0, 80)}>`, record: null };
  return { action: String(m.action), record: (m.record ?? null) as Row | null };
}

const listHandler: HistoryHandler = {
  kind: 'history',
  defaultActions: ['insert'],
  async read(view, key) {
    const out: HistoryEntry[] = [];
    for (let start = 0; ; start += 5000) {
      const part = await view.client.lrange(key, start, start + 4999);
      for (const v of part) out.push(entryOf(v));
      if (part.length < 5000) return out;
    }
  },
  length: (view, key) => view.client.llen(key),
};

const streamHandler: HistoryHandler = {
  kind: 'history',
  defaultActions: ['insert', 'update', 'delete'],
  async read(view, key) {
    const out: HistoryEntry[] = [];
    let from = '-';
    for (;;) {
      const part = await view.client.xrange(key, from, '+', 'COUNT', 5000);
      for (const [, fields] of part) {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
        out.push({ action: String(f.action), record: (f.record === undefined ? null : parseOr(f.record)) as Row | null });
      }
      if (part.length < 5000) return out;
      from = `(${part[part.length - 1]![0]}`;
    }
  },
  length: (view, key) => view.client.xlen(key),
};

const pubsubHandler: PubsubHandler = { kind: 'pubsub', defaultActions: ['insert', 'update', 'delete'] };

/** by `type`, or `type:mode` for the hash sink's modes */
export const HANDLERS: Record<string, TypeHandler> = {
  string: stringHandler,
  'hash:row': hashRowHandler,
  'hash:field': hashFieldHandler,
  set: setHandler,
  zset: zsetHandler,
  list: listHandler,
  stream: streamHandler,
  pubsub: pubsubHandler,
  geo: geoHandler,
  bitmap: bitmapHandler,
  hyperloglog: hyperloglogHandler,
  aggregate: aggregateHandler,
};

export function handlerOf(spec: SinkSpec): TypeHandler {
  const key = spec.type === 'hash' ? `hash:${String(spec.options.mode ?? 'row')}` : spec.type;
  const h = HANDLERS[key];
  if (!h) throw new Error(`the fault suite has no checker for sink type ${key} (sink ${spec.name})`);
  return h;
}

/** the actions a history or pub/sub sink records */
export function actionsOf(spec: SinkSpec, h: HistoryHandler | PubsubHandler): string[] {
  return (spec.options.actions as string[] | undefined) ?? h.defaultActions;
}

/** the key (or channel) template of a sink */
export function templateOf(spec: SinkSpec): string {
  return String(spec.type === 'pubsub' ? spec.options.channel : spec.options.key);
}

/**
 * What a history entry or message holds for a change (docs/messages.md › The record): the new
 * row; for a delete, the old row's identity (the whole old row with REPLICA IDENTITY FULL).
 */
export function recordOf(table: TableDef, op: string, oldRow: Row | null, newRow: Row | null): Row {
  if (op !== 'D') return newRow!;
  if (table.identityFull) return oldRow!;
  return Object.fromEntries(table.columns.map((c) => [c, table.pk.includes(c) ? oldRow![c] : null]));
}

export const ACTION_OF_OP: Record<string, string> = { I: 'insert', U: 'update', D: 'delete' };

// ---------------------------------------------------------------------------------------------
// The suite's sinks

const ALL = ['insert', 'update', 'delete'];
const state = (name: string, type: string, conn: Conn, table: string, options: Record<string, unknown>): SinkSpec => ({ name, type, conn, table, options: { ...options, backfill: true } });
const history = (name: string, type: string, conn: Conn, table: string, options: Record<string, unknown>): SinkSpec => ({ name, type, conn, table, options });

/** every sink of the suite, of every type the checker knows */
export function sinkSpecs(): SinkSpec[] {
  return [
    // main: standalone, AOF with fsync always, behind the Redis proxy
    state('acct-str', 'string', 'main', 'acct', { key: 's:{id}' }),
    state('acct-hash', 'hash', 'main', 'acct', { key: 'h:{id}' }),
    state('acct-hf', 'hash', 'main', 'acct', { mode: 'field', key: 'hf:{grp}', field: '{id}' }),
    state('acct-set', 'set', 'main', 'acct', { key: 'set:{grp}', member: '{id}' }),
    state('acct-zset', 'zset', 'main', 'acct', { key: 'z:{grp}', member: '{id}', score: 'score' }),
    history('acct-list', 'list', 'main', 'acct', { key: 'l:acct', actions: ALL }),
    history('acct-stream', 'stream', 'main', 'acct', { key: 'x:acct:{id}' }),
    history('mv-list', 'list', 'main', 'mv', { key: 'ml:{grp}', actions: ALL }),
    history('mv-pub', 'pubsub', 'main', 'mv', { channel: 'mp:{grp}' }),
    state('mv-zset', 'zset', 'main', 'mv', { key: 'mz:{grp}', member: '{id}', score: 'score' }),
    state('acct-geo', 'geo', 'main', 'acct', { key: 'g:{grp}', member: '{id}', longitude: 'lon', latitude: 'lat' }),
    state('mv-geo', 'geo', 'main', 'mv', { key: 'mg:{grp}', member: '{id}', longitude: 'lon', latitude: 'lat' }),
    state('acct-bitmap', 'bitmap', 'main', 'acct', { key: 'bm:{grp}', offset: 'id' }),
    // a HyperLogLog forgets nothing: on a Redis that never loses writes only
    state('acct-hll', 'hyperloglog', 'main', 'acct', { key: 'hll:{grp}', element: '{id}' }),
    // GROUP BY: a count and a sum per group, moved between groups by updates (the table must be
    // REPLICA IDENTITY FULL: mv)
    state('mv-agg', 'aggregate', 'main', 'mv', { key: 'agg:{grp}', into: 'hash', measures: { n: 'count', total: 'sum(score)' } }),
    state('mv-aggz', 'aggregate', 'main', 'mv', { key: 'aggz:mv', into: 'zset', member: '{grp}', score: 'sum(score)' }),
    state('doc-str', 'string', 'main', 'doc', { key: 'd:{id}' }),
    state('doc-hash', 'hash', 'main', 'doc', { key: 'dh:{id}' }),
    state('ck-str', 'string', 'main', 'ck', { key: 'sluice:{table}:{pk}' }),
    history('ck-stream', 'stream', 'main', 'ck', { key: 'sluice:{schema}.{table}' }),
    state('part-str', 'string', 'main', 'part', { key: 'p:{pk}' }),
    history('part-list', 'list', 'main', 'part', { key: 'pl:{region}', actions: ALL }),
    state('bulk-str', 'string', 'main', 'bulk', { key: 'b:{id}' }),
    state('bulk-zset', 'zset', 'main', 'bulk', { key: 'bz:{grp}', member: '{id}', score: 'ver' }),
    // smaller than a large transaction: those are applied in chunks
    history('bulk-stream', 'stream', 'main', 'bulk', { key: 'bx', max_transaction_rows: 7500 }),
    // volatile: standalone without persistence, restarted empty
    state('v-acct-str', 'string', 'volatile', 'acct', { key: 'vs:{id}' }),
    state('v-acct-zset', 'zset', 'volatile', 'acct', { key: 'vz:{grp}', member: '{id}', score: 'score' }),
    history('v-mv-stream', 'stream', 'volatile', 'mv', { key: 'vx:{grp}' }),
    state('v-bulk-str', 'string', 'volatile', 'bulk', { key: 'vb:{id}' }),
    state('v-mv-geo', 'geo', 'volatile', 'mv', { key: 'vg:{grp}', member: '{id}', longitude: 'lon', latitude: 'lat' }),
    state('v-mv-agg', 'aggregate', 'volatile', 'mv', { key: 'vagg:mv', into: 'zset', member: '{grp}', score: 'count' }),
    // sentinel: a master, a replica, three sentinels
    state('s-acct-hash', 'hash', 'sentinel', 'acct', { key: 'sh:{id}' }),
    state('s-acct-set', 'set', 'sentinel', 'acct', { key: 'ss:{grp}', member: '{id}' }),
    state('s-ck-str', 'string', 'sentinel', 'ck', { key: 'sck:{pk}' }),
    state('s-acct-bitmap', 'bitmap', 'sentinel', 'acct', { key: 'sbm:{grp}', offset: 'id' }),
    history('s-mv-stream', 'stream', 'sentinel', 'mv', { key: 'sx:{grp}' }),
    // cluster: three masters with a replica each (moves need REPLICA IDENTITY FULL there: mv)
    state('c-acct-str', 'string', 'cluster', 'acct', { key: 'cs:{id}' }),
    history('c-acct-stream', 'stream', 'cluster', 'acct', { key: 'cx:{id}' }),
    state('c-mv-zset', 'zset', 'cluster', 'mv', { key: 'cz:{grp}', member: '{id}', score: 'score' }),
    state('c-mv-hf', 'hash', 'cluster', 'mv', { mode: 'field', key: 'chf:{grp}', field: '{id}' }),
    history('c-mv-list', 'list', 'cluster', 'mv', { key: 'cl:{grp}', actions: ALL }),
    state('c-doc-hash', 'hash', 'cluster', 'doc', { key: 'cdh:{id}' }),
    state('c-mv-geo', 'geo', 'cluster', 'mv', { key: 'cg:{grp}', member: '{id}', longitude: 'lon', latitude: 'lat' }),
    state('c-mv-bitmap', 'bitmap', 'cluster', 'mv', { key: 'cbm:{grp}', offset: 'id' }),
    state('c-mv-agg', 'aggregate', 'cluster', 'mv', { key: 'cagg:{grp}', into: 'hash', measures: { n: 'count', total: 'sum(score)' } }),
    state('c-part-hash', 'hash', 'cluster', 'part', { key: 'cp:{pk}' }),
  ];
}

/**
 * The sink types docs/sinks.md documents (its "## type" headings): the checker models a type
 * from its documentation, so a type is covered once it is documented, and left out (said in the
 * report) before.
 */
export function documentedTypes(sinksDoc: string): Set<string> {
  return new Set([...sinksDoc.matchAll(/^## ([a-z]+)\s*$/gm)].map((m) => m[1]!));
}

/** the heartbeat sinks (one per connection, key beat:{id}): how the runner sees progress */
export function beatSpecs(): SinkSpec[] {
  return CONNS.map((conn) => ({ name: `beat-${conn}`, type: 'string', conn, table: 'beat', options: { key: 'beat:{id}' } }));
}
