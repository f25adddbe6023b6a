/**
 * What `sluice status` prints, from the API's answers: pure functions, no I/O (unit-tested in
 * test/unit/status-format.test.ts). Every field is read defensively: the CLI may talk to an
 * instance of another version, and it must print what it can rather than crash.
 */

/** One problem of `GET /health` (src/runtime/health.ts). */
export interface ProblemView {
  component: string;
  redis?: string;
  sinks?: string[];
  reason: string;
}

/** `GET /health`: 200 `ok` or 503 `unhealthy`, each problem named. */
export interface HealthView {
  status: string;
  state?: string;
  source?: string;
  problems?: ProblemView[];
  paused_sinks?: string[];
}

/** `GET /api/source`. */
export interface SourceView {
  slot: string;
  publication?: string;
  state: string;
  confirmed_lsn?: string;
  current_lsn?: string | null;
  lag_bytes: number | null;
  lag_ms: number | null;
  retained_wal_bytes: number | null;
  last_error: string | null;
  redis?: { name: string; state: string; lastError: string | null }[];
  held_by_paused_sinks?: { sink: string; position: string | null; held_wal_bytes: number | null }[];
}

/** A sink's failed-message store and its bounds (`failed_store` of GET /api/sinks). */
export interface FailedStoreLine {
  messages: number;
  bytes: number;
  max_messages: number;
  max_bytes: number;
  full: boolean;
  dropped: number;
}

export interface BackfillLine {
  table: string;
  state: string;
  rows: number;
  estimated_total: number | null;
  percent: number | null;
  rate: number;
  eta_seconds: number | null;
  error?: string;
  /** why Sluice started it by itself ("schema change", …) */
  reason?: string;
  /** attempts that failed and were tried again; while waiting, when the next one starts */
  attempts?: number;
  next_retry_at?: string;
}

/** One sink of `GET /api/sinks`. */
export interface SinkView {
  name: string;
  type: string;
  origin?: string;
  redis?: string;
  state: string;
  paused?: boolean;
  position?: string | null;
  changes_applied: number;
  /** failed messages waiting now (in Redis) */
  failed_messages: number;
  /** failures since the instance started (sluice_failed_messages_total) */
  failed_total?: number;
  failed_store?: FailedStoreLine;
  lag_ms: number | null;
  lag_bytes: number | null;
  held_wal_bytes?: number | null;
  redis_error?: string | null;
  backfills?: BackfillLine[] | null;
  backfills_error?: string;
}

/** One endpoint's answer: its body, or why it could not be read. */
export type Part<T> = { ok: true; value: T } | { ok: false; error: string };

export interface StatusInput {
  health: Part<HealthView>;
  source: Part<SourceView>;
  sinks: Part<SinkView[]>;
  /** changes per second by sink (null: not measured, e.g. --no-rate) */
  rates: ReadonlyMap<string, number | null> | null;
}

const isNum = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n);

/** Bytes in SI units (1 kB = 1000 B), e.g. `0 B`, `999 B`, `1.5 kB`, `12 MB`, `3.4 GB`; `-` when unknown. */
export function formatBytes(n: number | null | undefined): string {
  if (!isNum(n)) return '-';
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  if (v < 1000) return `${sign}${Math.round(v)} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  // three significant digits at most (1.23 MB, 12.3 MB, 123 MB); 999.97 kB is 1 MB
  let text = threeDigits(v);
  if (Number(text) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
    text = threeDigits(v);
  }
  return `${sign}${text} ${units[i] ?? 'PB'}`;
}

function threeDigits(v: number): string {
  const fixed = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

/** A lag or an age: `35 ms`, `1.2 s`, `4 min 05 s`, `2 h 03 min`; `-` when unknown. */
export function formatDuration(ms: number | null | undefined): string {
  if (!isNum(ms)) return '-';
  if (ms < 999.5) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 59.5) return `${s < 10 ? s.toFixed(1).replace(/\.0$/, '') : Math.round(s)} s`;
  const totalS = Math.round(s);
  if (totalS < 3600) return `${Math.floor(totalS / 60)} min ${String(totalS % 60).padStart(2, '0')} s`;
  const totalMin = Math.floor(totalS / 60);
  return `${Math.floor(totalMin / 60)} h ${String(totalMin % 60).padStart(2, '0')} min`;
}

/** Changes per second: `0/s`, `4.5/s`, `1234/s`; `-` when not measured. */
export function formatRate(perSecond: number | null | undefined): string {
  if (!isNum(perSecond)) return '-';
  if (perSecond === 0) return '0/s';
  return `${perSecond < 10 ? perSecond.toFixed(1) : Math.round(perSecond)}/s`;
}

/**
 * Each sink's rate between two reads of `GET /api/sinks` taken `elapsedMs` apart, from its
 * `changes_applied` counter. null for a sink missing from either read, or whose counter went
 * down (the instance restarted in between).
 */
export function ratesBetween(before: readonly SinkView[], after: readonly SinkView[], elapsedMs: number): Map<string, number | null> {
  const out = new Map<string, number | null>();
  const first = new Map(before.map((s) => [s.name, s.changes_applied]));
  for (const s of after) {
    const a = first.get(s.name);
    const b = s.changes_applied;
    out.set(s.name, isNum(a) && isNum(b) && b >= a && elapsedMs > 0 ? ((b - a) * 1000) / elapsedMs : null);
  }
  return out;
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => header.map((_, i) => (i === header.length - 1 ? (r[i] ?? '') : (r[i] ?? '').padEnd(widths[i] ?? 0))).join('  ').trimEnd());
}

/** One problem of /health as a sentence: `Redis "main" (sinks a, b): connection end: …`. */
export function formatProblem(p: ProblemView): string {
  const sinks = p.sinks && p.sinks.length > 0 ? ` (sink${p.sinks.length > 1 ? 's' : ''} ${p.sinks.join(', ')})` : '';
  if (p.component === 'redis') return `Redis${p.redis ? ` "${p.redis}"` : ''}${sinks}: ${p.reason}`;
  return `${p.component}${sinks}: ${p.reason}`;
}

function formatBackfill(sink: string, b: BackfillLine): string {
  const total = isNum(b.estimated_total) ? String(b.estimated_total) : '?';
  const pct = isNum(b.percent) ? ` (${b.percent}%)` : '';
  const eta = isNum(b.eta_seconds) ? `, ETA ${formatDuration(b.eta_seconds * 1000)}` : '';
  // a backfill being tried again: how often, the last error, and when the next attempt starts
  const retry = isNum(b.attempts) && b.attempts > 0 && b.state === 'running' ? `, ${b.attempts} failed attempt${b.attempts === 1 ? '' : 's'}${b.next_retry_at ? `, next at ${b.next_retry_at}` : ''}` : '';
  return `  ${sink}: backfill of ${b.table}${b.reason ? ` (${b.reason})` : ''} ${b.state}, ${b.rows}/${total} rows${pct}, ${b.rate} rows/s${eta}${retry}${b.error ? `: ${b.error}` : ''}`;
}

/**
 * A byte count measured against the source monitor's last snapshot (taken every few seconds):
 * negative when the snapshot is older than the position it is compared with, so not known yet.
 */
const measured = (n: number | null | undefined): number | null => (isNum(n) && n >= 0 ? n : null);

/** Names of the paused sinks, from the sinks' list or /health (null: neither could be read). */
function pausedSinks(input: StatusInput): Set<string> | null {
  if (input.sinks.ok) return new Set(input.sinks.value.filter((s) => s.paused === true).map((s) => s.name));
  if (input.health.ok && Array.isArray(input.health.value.paused_sinks)) return new Set(input.health.value.paused_sinks);
  return null;
}

const LABEL = 9;
const labelled = (label: string, text: string): string => `${label.padEnd(LABEL)}${text}`;

/** The whole human-readable status: health, source, warnings, then the sinks' table. */
export function renderStatus(input: StatusInput): string {
  const out: string[] = [];

  // health: ok, or each problem on its own line
  if (!input.health.ok) {
    out.push(labelled('health', `unknown: ${input.health.error}`));
  } else {
    const h = input.health.value;
    const problems = Array.isArray(h.problems) ? h.problems : [];
    const paused = Array.isArray(h.paused_sinks) && h.paused_sinks.length > 0 ? ` (paused: ${h.paused_sinks.join(', ')})` : '';
    if (problems.length === 0) out.push(labelled('health', `${h.status}${paused}`));
    else {
      out.push(labelled('health', `${h.status}, ${problems.length} problem${problems.length > 1 ? 's' : ''}${paused}:`));
      for (const p of problems) out.push(labelled('', `- ${formatProblem(p)}`));
    }
  }

  // source: the slot, how far behind, how much WAL it keeps
  if (!input.source.ok) {
    out.push(labelled('source', `unknown: ${input.source.error}`));
  } else {
    const s = input.source.value;
    const confirmed = s.confirmed_lsn ? `, confirmed ${s.confirmed_lsn}` : '';
    out.push(labelled('source', `slot "${s.slot}" ${s.state}, lag ${formatBytes(s.lag_bytes)} / ${formatDuration(s.lag_ms)}, WAL retained ${formatBytes(s.retained_wal_bytes)}${confirmed}`));
    if (s.last_error) out.push(labelled('', `last error: ${s.last_error}`));
    // writes to a Redis that are being retried (a Redis that is down but idle shows under health)
    const lanes = (Array.isArray(s.redis) ? s.redis : []).filter((l) => l.state !== 'ready');
    if (lanes.length > 0) out.push(labelled('redis', lanes.map((l) => `"${l.name}" writes ${l.state}${l.lastError ? `: ${l.lastError}` : ''}`).join('; ')));
    // the API lists every held sink there (a sink still starting holds the slot too): warn of paused ones
    const paused = pausedSinks(input);
    for (const h of (Array.isArray(s.held_by_paused_sinks) ? s.held_by_paused_sinks : []).filter((x) => paused === null || paused.has(x.sink))) {
      const bytes = measured(h.held_wal_bytes);
      const held = bytes !== null ? `holds ${formatBytes(bytes)} of WAL` : 'holds WAL (how much is not measured yet)';
      out.push(labelled('warning', `paused sink "${h.sink}" ${held} in slot "${s.slot}": Postgres keeps it until the sink is resumed or deleted`));
    }
  }

  out.push('');
  if (!input.sinks.ok) {
    out.push(labelled('sinks', `unknown: ${input.sinks.error}`));
  } else if (input.sinks.value.length === 0) {
    out.push('no sinks');
  } else {
    const sinks = input.sinks.value;
    const rows = sinks.map((s) => [
      s.name,
      s.type,
      s.origin ?? '-',
      s.state,
      formatDuration(s.lag_ms),
      formatBytes(measured(s.lag_bytes)),
      s.paused ? formatBytes(measured(s.held_wal_bytes)) : '-',
      formatRate(input.rates?.get(s.name) ?? null),
      isNum(s.failed_messages) ? `${s.failed_messages}${s.failed_store?.full === true ? ' (full)' : ''}` : '-',
      isNum(s.failed_total) ? String(s.failed_total) : '-',
    ]);
    out.push(...renderTable(['SINK', 'TYPE', 'ORIGIN', 'STATE', 'LAG', 'LAG BYTES', 'HELD WAL', 'RATE', 'FAILED NOW', 'FAILED TOTAL'], rows));
    for (const s of sinks) {
      const f = s.failed_store;
      if (f && (f.full || f.dropped > 0)) {
        const dropped = f.dropped > 0 ? `; ${f.dropped} failure(s) since start were not stored, only logged` : '';
        out.push(labelled('warning', `failed messages of sink "${s.name}" are ${f.full ? 'full' : 'near full'} (${f.messages} of ${f.max_messages} messages, ${formatBytes(f.bytes)} of ${formatBytes(f.max_bytes)})${dropped}: retry or discard them (sluice messages), or raise failed_max_messages / failed_max_bytes`));
      }
    }
    for (const s of sinks) {
      for (const b of Array.isArray(s.backfills) ? s.backfills : []) out.push(formatBackfill(s.name, b));
      if (s.backfills_error) out.push(`  ${s.name}: backfills unknown: ${s.backfills_error}`);
    }
  }
  return `${out.join('\n')}\n`;
}
