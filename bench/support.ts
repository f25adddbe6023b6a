// Shared helpers for the benchmarks: options, progress on stderr, timing, process CPU and RSS
// sampling, external tools, and an optional CPU profile of a phase.

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { parseConfig } from '../src/config/load.js';
import type { SluiceConfig } from '../src/config/schema.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Progress lines: stderr only (stdout carries the JSON results). */
export function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

export interface BenchOptions {
  /** number of row changes in the backlog */
  changes: number;
  /** rows of the backfill table / of the large transaction; null: each scenario's default */
  rows: number | null;
  /** scenarios to run, in order */
  scenarios: string[];
  /** measurements per scenario (medians are reported, every run is listed) */
  runs: number;
  /** when set, a .cpuprofile of the measured Sluice phase is written to this directory */
  profileDir: string | null;
  /** wait for the machine to be quiet before each measurement */
  waitQuiet: boolean;
  /** wait: rounds of update → LSN → wait per phase; null: the scenario's default */
  rounds: number | null;
}

const USAGE = `usage: npm run bench -- [--changes N] [--rows N] [--runs R] [--scenario NAME[,NAME...]] [--profile DIR]
  --changes N     catch-up, two-instances: row changes in the backlog (default: $BENCH_CHANGES or 1000000)
  --rows N        backfill: rows in the table (default 5000000); large-txn: rows the transaction
                  inserts (default 1000000) ($BENCH_ROWS)
  --runs R        measure each side R times on the same data, report medians (default: $BENCH_RUNS or 1;
                  catch-up and backfill)
  --rounds N      wait: rounds of update → LSN → wait per phase (default 500) ($BENCH_ROUNDS)
  --scenario S    scenarios to run (default: all; known: catch-up, backfill, large-txn, wait, latency,
                  saturation, two-instances, cost)
  --profile DIR   write a CPU profile of each measured Sluice phase to DIR (slows Sluice a little)
  --no-wait-quiet do not wait (up to 1 minute) for other processes to leave the cores idle before each measurement`;

export function parseBenchArgs(argv: readonly string[], env: NodeJS.ProcessEnv, known: readonly string[]): BenchOptions {
  let changes = env.BENCH_CHANGES !== undefined && env.BENCH_CHANGES !== '' ? parseCount(env.BENCH_CHANGES, 'BENCH_CHANGES') : 1_000_000;
  let rows = env.BENCH_ROWS !== undefined && env.BENCH_ROWS !== '' ? parseCount(env.BENCH_ROWS, 'BENCH_ROWS') : null;
  let runs = env.BENCH_RUNS !== undefined && env.BENCH_RUNS !== '' ? parseRuns(env.BENCH_RUNS, 'BENCH_RUNS') : 1;
  let rounds = env.BENCH_ROUNDS !== undefined && env.BENCH_ROUNDS !== '' ? parseCount(env.BENCH_ROUNDS, 'BENCH_ROUNDS') : null;
  let scenarios = [...known];
  let waitQuiet = true;
  let profileDir: string | null = env.BENCH_PROFILE_DIR !== undefined && env.BENCH_PROFILE_DIR !== '' ? env.BENCH_PROFILE_DIR : null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--changes':
        changes = parseCount(value(), '--changes');
        break;
      case '--rows':
        rows = parseCount(value(), '--rows');
        break;
      case '--runs':
        runs = parseRuns(value(), '--runs');
        break;
      case '--rounds':
        rounds = parseCount(value(), '--rounds');
        break;
      case '--scenario':
      case '--scenarios':
        scenarios = value().split(',').filter((s) => s !== '');
        for (const s of scenarios) if (!known.includes(s)) throw new Error(`unknown scenario "${s}" (known: ${known.join(', ')})`);
        break;
      case '--no-wait-quiet':
        waitQuiet = false;
        break;
      case '--profile':
        profileDir = value();
        break;
      case '-h':
      case '--help':
        process.stderr.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument "${arg}"\n${USAGE}`);
    }
  }
  return { changes, rows, runs, scenarios, profileDir, waitQuiet, rounds };
}

/** A positive integer from the environment variable `name`, else `fallback`. */
export function positiveEnv(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer (got ${JSON.stringify(v)})`);
  return n;
}

function parseRuns(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new Error(`${what} must be an integer from 1 to 9 (got ${JSON.stringify(s)})`);
  return n;
}

/** The run with the median `seconds` (the lower middle one for an even count), with every run's seconds and other CPU. */
export function medianRun<T extends { seconds: number; other_cpu_seconds: number }>(runs: readonly T[]): T & { runs?: { seconds: number; other_cpu_seconds: number }[] } {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  const mid = sorted[(sorted.length - 1) >> 1]!;
  return runs.length === 1 ? mid : { ...mid, runs: runs.map((r) => ({ seconds: r.seconds, other_cpu_seconds: r.other_cpu_seconds })) };
}

function parseCount(s: string, what: string): number {
  const n = Number(s.replace(/[_,]/g, ''));
  if (!Number.isInteger(n) || n < 100) throw new Error(`${what} must be an integer ≥ 100 (got ${JSON.stringify(s)})`);
  return n;
}

export const round = (x: number, digits = 3): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** The pg_recvlogical binary of the highest installed PostgreSQL, else the one on PATH. */
export function findPgRecvlogical(): string {
  return findPgBinary('pg_recvlogical');
}

/** A client binary (pg_recvlogical, pgbench) of the highest installed PostgreSQL, else the one on PATH. */
export function findPgBinary(name: string): string {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .map(Number)
      .filter((v) => Number.isInteger(v))
      .sort((a, b) => b - a);
    for (const v of versions) {
      const bin = join(base, String(v), 'bin', name);
      if (existsSync(bin)) return bin;
    }
  }
  return name;
}

/** CPU seconds (user + system) a process has used so far, from /proc; null when it is gone. */
export function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (2nd field) may hold spaces: fields after the closing parenthesis
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** USER_HZ: 100 on every Linux platform Node runs on. */
const CLOCK_TICKS = 100;

/** Samples this process's RSS every `intervalMs` until stopped; reports the peak in MiB. */
export function sampleRss(intervalMs = 100): { stop(): { peakMb: number; startMb: number } } {
  const startMb = process.memoryUsage().rss / 1048576;
  let peak = startMb;
  const timer = setInterval(() => {
    const rss = process.memoryUsage().rss / 1048576;
    if (rss > peak) peak = rss;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const rss = process.memoryUsage().rss / 1048576;
      if (rss > peak) peak = rss;
      return { peakMb: peak, startMb };
    },
  };
}

/** CPU time of this process (user + system) since `since`, in seconds. */
export function ownCpuSeconds(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

/** An in-process CPU profile (V8 sampling profiler through the inspector), like --cpu-prof but of one phase. */
export async function startCpuProfile(): Promise<{ stop(file: string): Promise<string> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 1000 });
  await session.post('Profiler.start');
  return {
    async stop(file: string): Promise<string> {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, JSON.stringify(profile));
      return file;
    },
  };
}

/** Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function pollUntil(check: () => Promise<boolean> | boolean, opts: { intervalMs: number; timeoutMs: number; what: string }): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    await sleep(opts.intervalMs);
  }
}

/** Busy and stolen CPU time of the whole machine so far (all cores), from /proc/stat, in seconds. */
export function machineCpu(): { busy: number; total: number; steal: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [, ...nums] = line.trim().split(/\s+/);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = nums.map(Number) as number[];
    const total = user! + nice! + system! + idle! + iowait! + irq! + softirq! + (steal ?? 0);
    return { busy: (total - idle! - iowait!) / CLOCK_TICKS, total: total / CLOCK_TICKS, steal: (steal ?? 0) / CLOCK_TICKS };
  } catch {
    return { busy: 0, total: 0, steal: 0 };
  }
}

/**
 * Waits until the machine is quiet (other work would compete with the measurement for the
 * cores): busy below `maxBusyCores` cores over two consecutive one-second windows, for at most
 * `maxWaitMs`. Returns the seconds waited (and whether it became quiet).
 */
export async function waitForQuietMachine(maxBusyCores = 0.3, maxWaitMs = 60_000): Promise<{ waited: number; quiet: boolean }> {
  const started = performance.now();
  let quietWindows = 0;
  let warned = false;
  while (performance.now() - started < maxWaitMs) {
    const a = machineCpu();
    await sleep(1000);
    const b = machineCpu();
    const cores = (b.busy - a.busy) / Math.max(0.001, (b.total - a.total) / Math.max(1, cpuCount()));
    quietWindows = cores < maxBusyCores ? quietWindows + 1 : 0;
    if (quietWindows >= 2) return { waited: round((performance.now() - started) / 1000, 1), quiet: true };
    if (!warned && performance.now() - started > 3000) {
      warned = true;
      progress(`waiting for the machine to be quiet (other processes use ${cores.toFixed(1)} cores)`);
    }
  }
  progress(`the machine did not become quiet within ${maxWaitMs / 1000} s: measuring anyway`);
  return { waited: round((performance.now() - started) / 1000, 1), quiet: false };
}

function cpuCount(): number {
  return availableParallelism();
}

/** The machine block of every scenario's JSON; the load average says whether other work skewed it. */
export function machineInfo(postgresVersion: number, loadAtStart: number): Record<string, unknown> {
  return {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? null,
    node: process.version,
    postgres: postgresVersion,
    // other work on the machine skews the figures: the 1-minute load average when the scenario started and ended
    loadavg_1m: [Math.round(loadAtStart * 100) / 100, Math.round(loadavg()[0]! * 100) / 100],
  };
}

/**
 * The Sluice config every scenario runs: one string sink on one table, no HTTP, warnings only.
 * BENCH_BATCH_MAX_COMMANDS overrides apply.batch_max_commands for experiments.
 */
export function benchConfig(o: { pgUrl: string; redisUrl: string; slot: string; sink: string; table: string; backfill?: boolean }): SluiceConfig {
  const batch = process.env.BENCH_BATCH_MAX_COMMANDS;
  const yaml = `
source:
  url: ${o.pgUrl}
  slot: ${o.slot}
  publication: sluice
redis:
  main:
    url: ${o.redisUrl}
sinks:
  - name: ${o.sink}
    type: string
    tables: [${o.table}]
${o.backfill ? '    backfill: true\n' : ''}http:
  port: 0
log:
  level: warn
${batch ? `apply:\n  batch_max_commands: ${batch}\n` : ''}`;
  return parseConfig(yaml, { file: 'bench.yaml', env: {} });
}
