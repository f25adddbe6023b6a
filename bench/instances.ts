// Sluice as a separate process for the scenarios that measure it from outside (latency,
// saturation, two-instances, cost): `node bin/sluice start -c <file>` with the heap capped as
// bin/sluice does, its progress read from its own /metrics, its CPU and peak RSS from /proc.
//
// A separate process keeps the bench's own work (writers, the keyspace subscriber, polling)
// off Sluice's JavaScript thread, and lets two instances run side by side on their own threads.
// Sluice starts streaming before its HTTP server listens: a catch-up is measured from the
// moment its log says "replication stream started" (the bench reads its log at info level and
// samples its CPU then), not from the process start, which includes loading the TypeScript
// sources through tsx. The end is seen by reading /metrics every 50 ms (each read costs Sluice
// about a millisecond of its thread).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnManaged, type ManagedProcess } from '../src/util/process.js';
import { freePort } from '../src/util/free-port.js';
import { startPostgres, type TestPostgres } from '../test/harness/postgres.js';
import { startRedis, type TestRedis } from '../test/harness/redis.js';
import { parseLsn, type Lsn } from '../src/core/lsn.js';
import { lastCommitEnd } from './catch-up.js';
import { pollUntil, processCpuSeconds, progress, round } from './support.js';

/** bin/sluice of this checkout, whatever the working directory. */
const SLUICE_BIN = fileURLToPath(new URL('../bin/sluice', import.meta.url));

/** What the bench reads from Sluice's /metrics. */
export interface Scrape {
  /** performance.now() when the answer was read */
  at: number;
  /** sluice_changes_total over every sink and action */
  changes: number;
  /** sluice_transactions_total */
  transactions: number;
  /** sluice_confirmed_lsn (a number; exact below 2^53) */
  confirmedLsn: bigint;
  /** sluice_lag_bytes */
  lagBytes: number;
  /** the process's CPU seconds at that moment */
  cpuSeconds: number;
}

/** Sums every sample of `name` (all label sets) in a Prometheus text exposition. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    // `name value` or `name{labels} value`, not `name_suffix …`
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(rest.slice(rest.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

export interface SluiceProcess {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** reads /metrics; null while the HTTP server does not answer yet */
  scrape(): Promise<Scrape | null>;
  /** polls until /metrics answers; the first answer */
  ready(timeoutMs?: number): Promise<Scrape>;
  /** when the replication stream started (from Sluice's log), with Sluice's CPU seconds then; null before */
  streamStart(): { at: number; cpuSeconds: number } | null;
  /** the kernel's high-water mark of the process's resident memory (VmHWM), in MiB */
  peakRssMb(): number | null;
  /** SIGTERM, then waits for the exit; removes the config file */
  stop(): Promise<void>;
}

/**
 * Starts `bin/sluice start` on a YAML config (given without its `http:` block: the bench adds one
 * on a free port). With `profileDir`, Node writes a CPU profile of the whole process there when
 * it exits (`--cpu-prof`; read it with bench/profile-summary.ts).
 */
/** extra Node flags for Sluice's process, for a diagnosis (BENCH_SLUICE_NODE_FLAGS="--trace-gc"): its non-log lines are shown */
function nodeFlags(): string[] {
  return (process.env.BENCH_SLUICE_NODE_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
}

export async function spawnSluice(name: string, yaml: string, profileDir: string | null = null): Promise<SluiceProcess> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `bench-sluice-${name}-`));
  const file = join(dir, 'sluice.yaml');
  writeFileSync(file, `${yaml.trimEnd()}\nhttp:\n  port: ${port}\nlog:\n  level: info\n`);
  let started: { at: number; cpuSeconds: number } | null = null;
  let pid: number | undefined;
  const onLine = (line: string): void => {
    let entry: { level?: number; msg?: string } | null = null;
    try {
      entry = JSON.parse(line) as { level?: number; msg?: string };
    } catch {
      // not a log line: shown as it is
    }
    if (started === null && entry?.msg === 'replication stream started') started = { at: performance.now(), cpuSeconds: pid === undefined ? 0 : (processCpuSeconds(pid) ?? 0) };
    // warnings and errors (pino levels 40 and up) and anything else on the console
    if (entry === null || (entry.level ?? 0) >= 40) progress(`sluice-${name}: ${line.slice(0, 300)}`);
  };
  const proc: ManagedProcess = spawnManaged(
    process.execPath,
    ['--max-old-space-size=256', '--max-semi-space-size=32', '--no-node-snapshot', ...nodeFlags(), ...(profileDir !== null ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=sluice-${name}-${Date.now()}.cpuprofile`] : []), SLUICE_BIN, 'start', '-c', file],
    { name: `sluice-${name}`, onLine },
  );
  pid = proc.pid;
  if (pid === undefined) throw new Error(`sluice-${name} did not start:\n${proc.tail()}`);
  let lastHwm: number | null = null;
  const scrape = async (): Promise<Scrape | null> => {
    if (!proc.running) throw new Error(`sluice-${name} exited (${JSON.stringify(proc.exitInfo)}):\n${proc.tail(30)}`);
    let text: string;
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      if (!res.ok) return null;
      text = await res.text();
    } catch {
      return null;
    }
    return {
      at: performance.now(),
      changes: metricSum(text, 'sluice_changes_total'),
      transactions: metricSum(text, 'sluice_transactions_total'),
      confirmedLsn: BigInt(Math.round(metricSum(text, 'sluice_confirmed_lsn'))),
      lagBytes: metricSum(text, 'sluice_lag_bytes'),
      cpuSeconds: processCpuSeconds(pid) ?? 0,
    };
  };
  const peakRssMb = (): number | null => {
    try {
      const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      if (Number.isFinite(kb)) lastHwm = round(kb / 1024, 1);
    } catch {
      // gone: the last value read
    }
    return lastHwm;
  };
  return {
    name,
    pid,
    port,
    scrape,
    async ready(timeoutMs = 120_000) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const s = await scrape();
        if (s !== null) return s;
        if (performance.now() > deadline) throw new Error(`sluice-${name}: /metrics did not answer within ${timeoutMs / 1000} s:\n${proc.tail(30)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    streamStart: () => started,
    peakRssMb,
    async stop() {
      peakRssMb();
      if (proc.running) await proc.stop(15_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The YAML of one instance: source, one Redis connection, string sinks, its own state schema.
 * Instances sharing one Redis may use the same connection name: the batch marker is per instance
 * (`sluice:batch:<instance>:<connection>`, docs/scaling.md). Before it was, two instances under
 * one name took each other's batch ids for lost writes; `redisName` still lets a run name them.
 */
export function instanceYaml(o: {
  pgUrl: string;
  redisUrl: string;
  /** the connection's name (default main) */
  redisName?: string;
  slot: string;
  publication: string;
  stateSchema: string;
  sinks: { name: string; tables: string[]; key?: string }[];
}): string {
  const sinks = o.sinks
    .map((s) => `  - name: ${s.name}\n    type: string\n    tables: [${s.tables.join(', ')}]\n${s.key !== undefined ? `    key: "${s.key}"\n` : ''}`)
    .join('');
  return `source:\n  url: ${o.pgUrl}\n  slot: ${o.slot}\n  publication: ${o.publication}\nredis:\n  ${o.redisName ?? 'main'}:\n    url: ${o.redisUrl}\nsinks:\n${sinks}state:\n  schema: ${o.stateSchema}\n`;
}

/** One catch-up measured from outside: from the start of the replication stream until the confirmed LSN reaches the end. */
export interface CatchUpWindow {
  /** seconds from the start of the replication stream to the end */
  seconds: number;
  /** row changes applied, per sink (sluice_changes_total / sinks) */
  changes: number;
  changes_per_sec: number;
  /** Sluice's CPU seconds in the window */
  cpu_seconds: number;
  /** CPU seconds per 100k row changes */
  cpu_seconds_per_100k: number;
  peak_rss_mb: number | null;
}

/** The opening of a catch-up window: the start of the replication stream, nothing applied yet. */
export function streamOpening(sluice: SluiceProcess, fallback: Scrape): Scrape {
  const s = sluice.streamStart();
  if (s === null) throw new Error(`sluice-${sluice.name}: its log did not say "replication stream started"`);
  return { ...fallback, at: s.at, cpuSeconds: s.cpuSeconds, changes: 0, transactions: 0, confirmedLsn: 0n };
}

/**
 * Waits until `sluice` has confirmed `endLsn` (reading /metrics every 50 ms); the rate from
 * `opening`. `onPoll` runs at every read (e.g. to sample the walsender's CPU).
 */
export async function catchUpWindow(sluice: SluiceProcess, opening: Scrape, endLsn: bigint, sinks = 1, onPoll?: () => Promise<void>, timeoutMs = 30 * 60_000): Promise<CatchUpWindow> {
  const deadline = performance.now() + timeoutMs;
  let last = opening;
  let lastReport = performance.now();
  while (last.confirmedLsn < endLsn) {
    if (performance.now() > deadline) throw new Error(`sluice-${sluice.name} did not confirm the end of the backlog within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
    last = (await sluice.scrape()) ?? last;
    await onPoll?.();
    if (performance.now() - lastReport > 2000) {
      lastReport = performance.now();
      progress(`sluice-${sluice.name}: ${Math.round(last.changes / sinks)} changes applied`);
    }
  }
  return windowOf(opening, last, sinks, sluice.peakRssMb());
}

/** The rate between two scrapes of one process. */
export function windowOf(first: Scrape, last: Scrape, sinks: number, peakRssMb: number | null): CatchUpWindow {
  const seconds = (last.at - first.at) / 1000;
  const changes = (last.changes - first.changes) / sinks;
  const cpu = last.cpuSeconds - first.cpuSeconds;
  return {
    seconds: round(seconds),
    changes: Math.round(changes),
    changes_per_sec: seconds > 0 ? Math.round(changes / seconds) : 0,
    cpu_seconds: round(cpu, 2),
    cpu_seconds_per_100k: changes > 0 ? round((cpu * 100_000) / changes, 2) : 0,
    peak_rss_mb: peakRssMb,
  };
}

/**
 * The end of the last COMMIT written since `startLsn` (what a consumer must confirm), once the
 * WAL writer has flushed it (pg_walinspect reads flushed WAL only; the test servers commit
 * asynchronously).
 */
export async function lastCommitSince(pg: TestPostgres, startLsn: string): Promise<Lsn> {
  const [{ lsn: upTo }] = (await pg.query('select pg_current_wal_lsn()::text lsn')).rows as [{ lsn: string }];
  await pollUntil(async () => ((await pg.query('select pg_current_wal_flush_lsn() >= $1::pg_lsn ok', [upTo])).rows[0] as { ok: boolean }).ok, {
    intervalMs: 5,
    timeoutMs: 30_000,
    what: 'the WAL writer to flush the last commit',
  });
  return lastCommitEnd(pg, parseLsn(startLsn), parseLsn(upTo));
}

/** A fresh Postgres (`settings` over the harness's) with pg_walinspect, and a fresh Redis; neither is left running on a failure. */
export async function startServers(settings?: Record<string, string>): Promise<{ pg: TestPostgres; redis: TestRedis }> {
  const [pg, redis] = await Promise.allSettled([startPostgres(settings ? { settings } : {}), startRedis()]);
  if (pg.status === 'rejected' || redis.status === 'rejected') {
    await Promise.allSettled([pg.status === 'fulfilled' ? pg.value.stop() : null, redis.status === 'fulfilled' ? redis.value.stop() : null]);
    throw pg.status === 'rejected' ? pg.reason : (redis as PromiseRejectedResult).reason;
  }
  progress(`Postgres ${pg.value.version} on ${pg.value.port}, Redis on ${redis.value.port}`);
  await pg.value.query('create extension pg_walinspect');
  return { pg: pg.value, redis: redis.value };
}
