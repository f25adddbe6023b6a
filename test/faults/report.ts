// The run's table: fault kinds and counts, recovery times, what was made and what was checked.

import type { CheckResult, Discrepancy } from './checker.js';

export interface FaultRecord {
  index: number;
  kind: string;
  target: string;
  detail: string;
  /** when it began (ISO) */
  at: string;
  /** from the damage to things put back, ms */
  faultMs: number;
  /** from things put back to every Redis showing a change committed after, ms */
  recoveryMs: number | null;
  /** the fault itself could not be done (a harness problem, not a finding) */
  error?: string;
}

/** something wrong that is not a difference in the data: reported, kept, but not a discrepancy */
export interface Finding {
  fault: number;
  kind: string;
  finding: string;
  at: string;
}

export interface RunSummary {
  seed: number;
  size: string;
  replay: string;
  dir: string;
  startedAt: string;
  durationS: number;
  faults: FaultRecord[];
  transactionsCommitted: number;
  bigTransactions: number;
  writerRetries: number;
  writerRolledBack: number;
  check: CheckResult | null;
  monitorSamples: number;
  pubsubReceived: number;
  notable: Record<string, number>;
  sluiceStarts: number;
  /** recovery probes committed again because the first did not show up within 15 s */
  probeRebumps: number;
  /** listed discrepancies (capped per sink) */
  discrepancies: Discrepancy[];
  /** every discrepancy, listed or not */
  discrepancyCount: number;
  findings: Finding[];
  notCovered: string[];
  skippedSinkTypes: string[];
}

const fmtS = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(2)} s`);
const num = (n: number): string => n.toLocaleString('en-US');

export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function table(rows: string[][], align: ('l' | 'r')[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (align[c] === 'r' ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

/** discrepancies on sinks whose backfill failed or never finished (all of them, listed or not) */
function explainedCount(s: RunSummary): number {
  const sinks = new Set(s.discrepancies.filter((d) => d.explainedBy).map((d) => d.sink));
  return (s.check?.sinks ?? []).filter((x) => sinks.has(x.sink)).reduce((n, x) => n + x.discrepancies, 0);
}

export function formatReport(s: RunSummary): string {
  const out: string[] = [];
  out.push(`Sluice fault-injection run: seed ${s.seed}, size ${s.size}, ${Math.round(s.durationS)} s`);
  out.push(`replay: ${s.replay}`);
  out.push('');
  const kinds = [...new Set(s.faults.map((f) => f.kind))];
  const rows: string[][] = [['fault', 'target', 'count', 'not done', 'fault length max', 'recovery max', 'recovery p99']];
  const maxOf = (xs: number[]): number | null => (xs.length > 0 ? Math.max(...xs) : null);
  for (const k of kinds) {
    const fs = s.faults.filter((f) => f.kind === k);
    const rec = fs.map((f) => f.recoveryMs).filter((x): x is number => x !== null);
    rows.push([k, fs[0]!.target, String(fs.length), String(fs.filter((f) => f.error).length), fmtS(maxOf(fs.map((f) => f.faultMs))), fmtS(maxOf(rec)), fmtS(percentile(rec, 99))]);
  }
  const all = s.faults.map((f) => f.recoveryMs).filter((x): x is number => x !== null);
  rows.push(['all faults', '', String(s.faults.length), String(s.faults.filter((f) => f.error).length), fmtS(maxOf(s.faults.map((f) => f.faultMs))), fmtS(maxOf(all)), fmtS(percentile(all, 99))]);
  out.push(table(rows, ['l', 'l', 'r', 'r', 'r', 'r', 'r']));
  out.push('(fault length: from the damage until things are put back; recovery: from then until every Redis shows a change committed after it)');
  out.push('');
  const c = s.check;
  const lines: [string, string][] = [
    ['transactions committed', `${num(c?.transactions ?? s.transactionsCommitted)} (${s.bigTransactions} of 20,000 rows; writer retries after a lost connection ${num(s.writerRetries)}, rolled back ${s.writerRolledBack})`],
    ['changes committed', c ? num(c.changes) : '—'],
    ['keys compared (keyed sinks)', c ? num(c.keysChecked) : '—'],
    ['history entries compared', c ? num(c.entriesChecked) : '—'],
    ['pub/sub messages checked', c ? `${num(c.messagesChecked)} received (at most once each, in commit order)` : '—'],
    ['monitor samples', `${num(s.monitorSamples)} (no key may go back to an older version)`],
    ['Sluice starts', String(s.sluiceStarts)],
    ['recovery probes sent again', `${s.probeRebumps} (a probe not shown within 15 s)`],
    ...Object.entries(s.notable).map(([k, v]) => [`Sluice log: ${k}`, num(v)] as [string, string]),
    ['discrepancies', `${s.discrepancyCount}${explainedCount(s) > 0 ? ` (${explainedCount(s)} of them on sinks whose backfill failed: see FINDINGS)` : ''}`],
    ['findings (not data)', String(s.findings.length)],
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) out.push(`${k.padEnd(w)}  ${v}`);
  if (c) {
    out.push('');
    const sinkRows: string[][] = [['sink', 'type', 'redis', 'checked', 'expected', 'discrepancies']];
    for (const x of c.sinks) sinkRows.push([x.sink, x.type, x.conn, num(x.checked), num(x.expected), String(x.discrepancies)]);
    out.push(table(sinkRows, ['l', 'l', 'l', 'r', 'r', 'r']));
  }
  if (s.skippedSinkTypes.length > 0) out.push('', `sink types left out (not documented in docs/sinks.md yet): ${s.skippedSinkTypes.join(', ')}`);
  if (s.notCovered.length > 0) out.push('', ...s.notCovered.map((n) => `not covered: ${n}`));
  if (s.findings.length > 0) {
    out.push('', 'FINDINGS (not differences in the data)');
    for (const f of s.findings) out.push(`  fault #${f.fault} ${f.kind} at ${f.at}: ${f.finding}`);
  }
  if (s.discrepancies.length > 0) {
    out.push('', 'DISCREPANCIES');
    for (const d of s.discrepancies.slice(0, 60)) out.push(`  [${d.sink} on ${d.conn}] ${d.kind}${d.key ? ` at ${d.key}` : ''}: ${d.detail}`);
    if (s.discrepancies.length > 60) out.push(`  … ${s.discrepancies.length - 60} more in summary.json`);
  }
  if (s.discrepancies.length > 0 || s.findings.length > 0) out.push('', `kept: ${s.dir} (summary.json, faults.jsonl, sluice.log, run.log, postgres.log, postgres-standby.log, postgres-primary-N.log of the primaries takeovers replaced)`);
  return out.join('\n');
}
