// The checker: from Postgres alone (the tables' final rows, and `audit`, the log of every
// committed change in commit order) it computes what each sink must hold, reads Redis, and
// lists every difference. It knows the sink types from docs/sinks.md (sinks.ts), never from
// Sluice's code: nothing here imports src/.
//
//   keyed sinks (string, hash, set, zset, …)  every key equal to what the rows give; no key
//                                              missing, none left over
//   history sinks (list, stream)               per key, one entry per committed change, in
//                                              commit order; on a Redis that lost writes, entries
//                                              may be missing only for changes committed before
//                                              the loss ended, never one twice, never reordered
//   pub/sub                                    per channel, each change at most once, in commit
//                                              order, never one that was not committed
//   the monitor's findings                     (monitor.ts) a key that went back to an older value

import type pg from 'pg';
import type { MonitorViolation } from './monitor.js';
import { TABLES } from './schema.js';
import {
  ACTION_OF_OP,
  LOSSY_CONNS,
  actionsOf,
  canon,
  handlerOf,
  recordOf,
  render,
  scanPattern,
  templateOf,
  type Change,
  type Conn,
  type HistoryEntry,
  type RedisView,
  type Row,
  type SinkSpec,
} from './sinks.js';
import type { Received } from './subscriber.js';

export interface Discrepancy {
  sink: string;
  conn: Conn | '-';
  kind: string;
  key?: string;
  detail: string;
  /** a finding of the run that accounts for it (a backfill that failed and was not retried) */
  explainedBy?: string;
}

export interface SinkCheck {
  sink: string;
  type: string;
  conn: Conn;
  /** keys compared (keyed sinks), entries compared (history), messages received (pub/sub) */
  checked: number;
  /** changes that sink had to carry (history and pub/sub: entries expected) */
  expected: number;
  discrepancies: number;
}

export interface CheckResult {
  /** listed (at most 20 per sink, then a line saying how many more) */
  discrepancies: Discrepancy[];
  /** all of them, listed or not */
  total: number;
  /** transactions with changes missing from history sinks (strict ones, or after a loss) */
  lostTransactions: { tx: number; lsn: string; changes: number; sinks: string[] }[];
  sinks: SinkCheck[];
  keysChecked: number;
  entriesChecked: number;
  messagesChecked: number;
  /** changes committed since the workload started (audit rows) */
  changes: number;
  transactions: number;
}

export interface CheckInput {
  /** a query on Postgres (direct, not through the proxy) */
  query: (sql: string, params?: unknown[]) => Promise<pg.QueryResult>;
  views: Record<Conn, RedisView>;
  specs: readonly SinkSpec[];
  /** audit.seq before the workload: history sinks start after it */
  sinceSeq: number;
  /** per connection, the last audit.seq a lossy fault there may have lost (0: none) */
  lossBoundary: Partial<Record<Conn, number>>;
  received: readonly Received[];
  monitor: readonly MonitorViolation[];
}

interface AuditRow {
  seq: number;
  tx: number;
  lsn: string;
  op: string;
  old: Row | null;
  new: Row | null;
}

/** at most this many discrepancies are listed per sink (all are counted) */
const LIST_PER_SINK = 20;

async function inChunks<T, R>(items: readonly T[], size: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(f))));
  return out;
}

export async function check(input: CheckInput): Promise<CheckResult> {
  const discrepancies: Discrepancy[] = [];
  const sinks: SinkCheck[] = [];
  const rowsCache = new Map<string, Row[]>();
  const auditCache = new Map<string, AuditRow[]>();
  const rowsOf = async (table: string): Promise<Row[]> => {
    if (!rowsCache.has(table)) rowsCache.set(table, (await input.query(`select to_jsonb(t) as r from ${table} t`)).rows.map((x: { r: Row }) => x.r));
    return rowsCache.get(table)!;
  };
  const auditOf = async (table: string): Promise<AuditRow[]> => {
    if (!auditCache.has(table)) {
      const r = await input.query('select seq, tx, lsn::text as lsn, op, old, new from audit where tbl = $1 and seq > $2 order by seq', [table, input.sinceSeq]);
      auditCache.set(table, r.rows.map((x: { seq: string; tx: string; lsn: string; op: string; old: Row | null; new: Row | null }) => ({ seq: Number(x.seq), tx: Number(x.tx), lsn: x.lsn, op: x.op, old: x.old, new: x.new })));
    }
    return auditCache.get(table)!;
  };
  const lost = new Map<number, { tx: number; lsn: string; changes: Set<number>; sinks: Set<string> }>();
  let total = 0;
  const allChanges = new Map<string, Change[]>();
  const allChangesOf = async (table: string): Promise<Change[]> => {
    if (!allChanges.has(table)) {
      const r = await input.query('select seq, op, old, new from audit where tbl = $1 order by seq', [table]);
      allChanges.set(table, r.rows.map((x: { seq: string; op: string; old: Row | null; new: Row | null }) => ({ seq: Number(x.seq), op: x.op, old: x.old, new: x.new })));
    }
    return allChanges.get(table)!;
  };
  let keysChecked = 0;
  let entriesChecked = 0;
  let messagesChecked = 0;

  for (const spec of input.specs) {
    const h = handlerOf(spec);
    const view = input.views[spec.conn];
    const table = TABLES[spec.table]!;
    const found: Discrepancy[] = [];
    const add = (kind: string, key: string | undefined, detail: string): void => {
      found.push({ sink: spec.name, conn: spec.conn, kind, ...(key === undefined ? {} : { key }), detail });
    };
    let checked = 0;
    let expectedCount = 0;

    if (h.kind === 'state') {
      const expected = await h.expected(spec, { rows: await rowsOf(spec.table), changes: () => allChangesOf(spec.table) });
      const actualKeys = await view.scan(scanPattern(templateOf(spec), table));
      const keys = [...new Set([...expected.keys(), ...actualKeys])];
      const values = await inChunks(keys, 200, (k) => h.read(spec, view, k, expected.get(k)));
      const same = h.same ?? ((a: string, b: string) => a === b);
      // for a key no row gives: the last committed change of a row that gave it (was it a delete
      // Redis may have lost?)
      const orphans = keys.filter((k, i) => !expected.has(k) && values[i] !== undefined);
      const lastChange = new Map<string, Change & { tx?: number }>();
      if (orphans.length > 0) {
        const wanted = new Set(orphans);
        for (const c of await allChangesOf(spec.table)) {
          for (const row of [c.old, c.new]) {
            const k = row ? render(templateOf(spec), table, row) : undefined;
            if (k !== undefined && wanted.has(k)) lastChange.set(k, c);
          }
        }
      }
      const boundary = input.lossBoundary[spec.conn] ?? 0;
      keys.forEach((k, i) => {
        const want = expected.get(k);
        const got = values[i];
        if (want === undefined && got !== undefined) {
          const c = lastChange.get(k);
          const why = c
            ? `; the last change of a row with this key: ${ACTION_OF_OP[c.op]} at audit seq ${c.seq}${LOSSY_CONNS.has(spec.conn) && boundary > 0 ? (c.seq <= boundary ? ` (before the end of the last lossy fault on ${spec.conn}, seq ${boundary}: Redis may have lost it, and a backfill does not remove keys)` : ` (after the last lossy fault on ${spec.conn}, seq ${boundary})`) : ''}`
            : '';
          add('orphan key', k, `holds ${got.slice(0, 300)}; no row gives this key${why}`);
        }
        else if (want !== undefined && got === undefined) add('missing key', k, `expected ${want.slice(0, 300)}`);
        else if (want !== undefined && got !== undefined && !same(want, got)) add('wrong value', k, `expected ${want.slice(0, 300)}\n      found    ${got.slice(0, 300)}`);
      });
      checked = keys.length;
      expectedCount = expected.size;
      keysChecked += checked;
    } else {
      // what each key (channel) must carry, in commit order
      const actions = new Set(actionsOf(spec, h));
      const expected = new Map<string, Want[]>();
      for (const a of await auditOf(spec.table)) {
        const action = ACTION_OF_OP[a.op]!;
        if (!actions.has(action)) continue;
        const row = a.op === 'D' ? a.old : a.new;
        const key = render(templateOf(spec), table, row ?? {});
        if (key === undefined) continue;
        const list = expected.get(key) ?? [];
        list.push({ seq: a.seq, tx: a.tx, lsn: a.lsn, text: canon({ action, record: recordOf(table, a.op, a.old, a.new) }) });
        expected.set(key, list);
      }
      for (const l of expected.values()) expectedCount += l.length;

      if (h.kind === 'history') {
        const lossy = LOSSY_CONNS.has(spec.conn) ? (input.lossBoundary[spec.conn] ?? 0) : 0;
        const actualKeys = await view.scan(scanPattern(templateOf(spec), table));
        const keys = [...new Set([...expected.keys(), ...actualKeys])];
        const histories = await inChunks(keys, 50, (k) => h.read(view, k).catch((err: Error) => err));
        keys.forEach((key, i) => {
          const got = histories[i]!;
          if (got instanceof Error) {
            add('unreadable', key, got.message);
            return;
          }
          // backfilled rows (`read`) are not changes: a re-backfill after a data loss adds them
          const entries = got.filter((e) => e.action !== 'read').map((e: HistoryEntry) => canon(e));
          const want = expected.get(key) ?? [];
          checked += entries.length;
          for (const m of compareHistory(key, want, entries, lossy, add)) {
            const t = lost.get(m.tx) ?? { tx: m.tx, lsn: m.lsn, changes: new Set<number>(), sinks: new Set<string>() };
            t.changes.add(m.seq);
            t.sinks.add(spec.name);
            lost.set(m.tx, t);
          }
        });
        entriesChecked += checked;
      } else {
        // pub/sub: the subscriber's messages on this sink's channels
        const byChannel = new Map<string, string[]>();
        for (const m of input.received) {
          if (!expected.has(m.channel) && !m.channel.startsWith(String(spec.options.channel).replace(/\{(?!\{).*$/, ''))) continue;
          const e = JSON.parse(m.message) as { action?: string; record?: unknown };
          if (e.action === 'read') continue;
          const list = byChannel.get(m.channel) ?? [];
          list.push(canon({ action: e.action, record: e.record ?? null }));
          byChannel.set(m.channel, list);
        }
        for (const [channel, msgs] of byChannel) {
          const want = expected.get(channel) ?? [];
          const index = new Map(want.map((w, i) => [w.text, i]));
          let last = -1;
          const seen = new Set<number>();
          for (const m of msgs) {
            checked++;
            const at = index.get(m);
            if (at === undefined) add('message never committed', channel, m.slice(0, 300));
            else if (seen.has(at)) add('message twice', channel, m.slice(0, 300));
            else if (at < last) add('message out of commit order', channel, `${m.slice(0, 200)} after change #${last} of the channel`);
            if (at !== undefined) {
              seen.add(at);
              last = Math.max(last, at);
            }
          }
        }
        messagesChecked += checked;
      }
    }
    sinks.push({ sink: spec.name, type: spec.type === 'hash' ? `hash (${String(spec.options.mode ?? 'row')})` : spec.type, conn: spec.conn, checked, expected: expectedCount, discrepancies: found.length });
    total += found.length;
    discrepancies.push(...found.slice(0, LIST_PER_SINK));
    if (found.length > LIST_PER_SINK) discrepancies.push({ sink: spec.name, conn: spec.conn, kind: 'more', detail: `${found.length - LIST_PER_SINK} more like these` });
  }

  // changes missing from history sinks, by transaction: one line each, before the details
  const lostTransactions = [...lost.values()].sort((a, b) => a.tx - b.tx).map((t) => ({ tx: t.tx, lsn: t.lsn, changes: t.changes.size, sinks: [...t.sinks].sort() }));
  discrepancies.unshift(
    ...lostTransactions.map((t) => ({ sink: t.sinks.join(', '), conn: '-' as const, kind: 'transaction missing from history sinks', detail: `txid ${t.tx} (its first change at WAL insert position ${t.lsn}): ${t.changes} changes missing from ${t.sinks.length} sinks` })),
  );

  total += input.monitor.length;
  for (const v of input.monitor) {
    discrepancies.push({ sink: v.sink, conn: v.conn, kind: `monitor: ${v.what}`, key: v.field ? `${v.key} field ${v.field}` : v.key, detail: `showed version ${v.seen}, then ${v.now} (${v.at})` });
  }

  const totals = (await input.query('select count(*) as changes, count(distinct tx) as transactions from audit where seq > $1', [input.sinceSeq])).rows[0] as { changes: string; transactions: string };
  return {
    discrepancies,
    total,
    lostTransactions,
    sinks,
    keysChecked,
    entriesChecked,
    messagesChecked,
    changes: Number(totals.changes),
    transactions: Number(totals.transactions),
  };
}

interface Want {
  seq: number;
  tx: number;
  lsn: string;
  text: string;
}

/**
 * One key's history against the changes it must carry. `lossyUpTo` > 0: changes with a seq up to
 * it may be missing (Redis lost them), nothing else may differ. Returns the changes missing
 * that may not be.
 */
function compareHistory(key: string, want: readonly Want[], got: readonly string[], lossyUpTo: number, add: (kind: string, key: string, detail: string) => void): Want[] {
  const missingOut: Want[] = [];
  if (lossyUpTo === 0) {
    if (want.length === got.length && want.every((w, i) => w.text === got[i])) return [];
    const i = want.findIndex((w, j) => w.text !== got[j]);
    const at = i < 0 ? want.length : i;
    const gotCount = new Map<string, number>();
    for (const g of got) gotCount.set(g, (gotCount.get(g) ?? 0) + 1);
    const wantCount = new Map<string, number>();
    for (const w of want) {
      wantCount.set(w.text, (wantCount.get(w.text) ?? 0) + 1);
      const left = gotCount.get(w.text) ?? 0;
      if (left > 0) gotCount.set(w.text, left - 1);
      else missingOut.push(w);
    }
    let extra = 0;
    const seenGot = new Map<string, number>();
    for (const g of got) {
      seenGot.set(g, (seenGot.get(g) ?? 0) + 1);
      if (seenGot.get(g)! > (wantCount.get(g) ?? 0)) extra++;
    }
    const firstMissing = missingOut[0];
    add(
      'history differs',
      key,
      `${got.length} entries, ${want.length} changes committed: ${missingOut.length} missing${firstMissing ? ` (first: audit seq ${firstMissing.seq}, txid ${firstMissing.tx}, WAL ~${firstMissing.lsn})` : ''}, ${extra} extra (duplicates or never committed)${missingOut.length === 0 && extra === 0 ? ', order differs' : ''}; first difference at #${at}:\n      expected ${want[at]?.text.slice(0, 250) ?? '(end)'}\n      found    ${got[at]?.slice(0, 250) ?? '(end)'}`,
    );
    return missingOut;
  }
  // lossy: `got` must be `want` with some changes up to the boundary left out
  const lostAfter = (w: Want): void => {
    if (w.seq <= lossyUpTo) return;
    missingOut.push(w);
    add('history entry lost after the loss', key, `change seq ${w.seq} (txid ${w.tx}, WAL ~${w.lsn}; the last lossy fault ended at seq ${lossyUpTo}): ${w.text.slice(0, 250)}`);
  };
  let j = 0;
  for (let g = 0; g < got.length; g++) {
    const start = j;
    while (j < want.length && want[j]!.text !== got[g]) j++;
    if (j === want.length) {
      const earlier = want.slice(0, start).some((w) => w.text === got[g]);
      add(earlier ? 'history entry twice or out of order' : 'history entry never committed', key, `entry #${g}: ${got[g]!.slice(0, 250)}`);
      j = start;
      continue;
    }
    for (let k = start; k < j; k++) lostAfter(want[k]!);
    j++;
  }
  for (let k = j; k < want.length; k++) lostAfter(want[k]!);
  return missingOut;
}
