// Scenario "backfill": a table of N rows already exists; how fast does Sluice's initial backfill
// copy it into Redis, compared with redis-benchmark's pipelined SET rate on the same Redis (the
// ceiling of a client writing values of the same size), and how much memory does it take?
//
//   1. fresh Postgres 15 + Redis; table `items` filled server-side with generate_series (primary
//      key added afterwards), then VACUUM ANALYZE
//   2. redis-benchmark -P 64 SET with the rows' value size on the same Redis, then FLUSHALL
//   3. Sluice (startSluice in-process, one string sink on items with `backfill: true`), wall clock
//      from the call until `sluice:backfill:items` says done (polled every 200 ms), RSS sampled
//      every 100 ms
//   4. DBSIZE minus Sluice's own keys must be N; 500 keys spread over the ids must equal the rows
//
// With --runs R, steps 2 and 3 repeat R times on the same table (FLUSHALL before each Sluice run:
// Redis then holds no position for the sink, so Sluice backfills it again).

import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import { startPostgres, type TestPostgres } from '../test/harness/postgres.js';
import { startRedis, type TestRedis } from '../test/harness/redis.js';
import { startSluice, type RunningSluice } from '../src/app.js';
import type { BackfillRecord } from '../src/backfill/backfill-worker.js';
import { backfillKey, isOwnKey, OWN_KEY_PREFIXES } from '../src/core/keyspace.js';
import { PG_SETTINGS, redisCpuSeconds, sourceRevision, walsenderCpu } from './catch-up.js';
import {
  machineCpu,
  medianRun,
  ownCpuSeconds,
  pollUntil,
  processCpuSeconds,
  progress,
  round,
  sampleRss,
  startCpuProfile,
  waitForQuietMachine,
  type BenchOptions,
  machineInfo,
  benchConfig,
} from './support.js';

export const DEFAULT_BACKFILL_ROWS = 5_000_000;

const SINK = 'items';
const SLOT = 'sluice';

/** The catch-up settings, plus memory for building the primary key index quickly. */
const BACKFILL_PG_SETTINGS: Record<string, string> = {
  ...PG_SETTINGS,
  maintenance_work_mem: '1GB',
  timezone: 'UTC',
};

/** Sluice's own key prefixes (src/core/keyspace.ts): DBSIZE minus these is the data. */
const OWN_PATTERNS = OWN_KEY_PREFIXES.map((p) => `${p}*`);

// ---------------------------------------------------------------------------------------------
// The table

interface Table {
  rows: number;
  seconds: number;
  tableMb: number;
  /** average length of the row's JSON as Sluice writes it, estimated in Postgres */
  estimatedValueBytes: number;
}

async function fillTable(pg: TestPostgres, rows: number): Promise<Table> {
  const started = performance.now();
  await pg.query('create table items (id bigint not null, name text, price numeric(10,2), qty int, updated_at timestamptz)');
  // two sessions, each on half of the ids (pg.query runs on a pool of 4 connections)
  const half = Math.floor(rows / 2);
  await Promise.all(
    [
      [1, half],
      [half + 1, rows],
    ].map(([lo, hi]) =>
      pg.query(
        `insert into items (id, name, price, qty, updated_at)
           select g, 'item ' || g, (g % 100000) / 100.0, (g % 1000)::int,
                  timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
             from generate_series($1::bigint, $2::bigint) g`,
        [lo, hi],
      ),
    ),
  );
  progress(`table: ${rows} rows inserted in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  await pg.query('alter table items add primary key (id)');
  await pg.query('vacuum analyze items');
  await pg.query('checkpoint');
  const seconds = (performance.now() - started) / 1000;
  const [{ mb }] = (await pg.query(`select pg_total_relation_size('items') / 1048576.0 as mb`)).rows as [{ mb: string }];
  // Sluice renders the row as compact JSON like row_to_json, except that timestamptz ends in "Z"
  // where row_to_json prints "+00:00" (the session is UTC): 5 bytes shorter. Checked against
  // STRLEN after the backfill.
  const [{ avg }] = (
    await pg.query(`select avg(octet_length(row_to_json(i)::text) - 5)::float8 as avg from items i tablesample system (1) repeatable (42)`)
  ).rows as [{ avg: number | null }];
  const estimated = avg ?? (await pg.query(`select avg(octet_length(row_to_json(i)::text) - 5)::float8 as avg from items i`)).rows[0].avg;
  return { rows, seconds, tableMb: Number(mb), estimatedValueBytes: Math.round(Number(estimated)) };
}

// ---------------------------------------------------------------------------------------------
// redis-benchmark: the pipelined SET rate of this Redis on this machine

interface RedisBenchmarkResult {
  sets_per_sec: number;
  value_bytes: number;
  seconds: number;
  redis_cpu_seconds: number;
  client_cpu_seconds: number | null;
  other_cpu_seconds: number;
  command: string;
}

const REDIS_BENCHMARK_REQUESTS = 2_000_000;

async function runRedisBenchmark(redis: TestRedis, valueBytes: number): Promise<RedisBenchmarkResult> {
  const args = ['-h', '127.0.0.1', '-p', String(redis.port), '-P', '64', '-t', 'set', '-n', String(REDIS_BENCHMARK_REQUESTS), '-d', String(valueBytes), '-r', '1000000', '-q', '--csv'];
  const command = `redis-benchmark ${args.join(' ')}`;
  progress(`redis-benchmark: ${command}`);
  const admin = redis.client();
  const redisCpuBefore = await redisCpuSeconds(admin);
  const machineBefore = machineCpu();
  const started = performance.now();
  let clientCpu: number | null = null;
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    const child = execFile('redis-benchmark', args, { maxBuffer: 1 << 20 }, (err, out, errOut) => {
      clearInterval(timer);
      if (err) reject(new Error(`redis-benchmark failed: ${err.message}\n${errOut}`));
      else resolve({ stdout: out });
    });
    // redis-benchmark's own CPU, sampled while it runs (its /proc entry goes with it)
    const timer = setInterval(() => {
      if (child.pid !== undefined) clientCpu = processCpuSeconds(child.pid) ?? clientCpu;
    }, 100);
  });
  const seconds = (performance.now() - started) / 1000;
  const busy = machineCpu().busy - machineBefore.busy;
  const redisCpu = (await redisCpuSeconds(admin)) - redisCpuBefore;
  admin.disconnect();
  // "test","rps",...\n"SET","495049.50",...
  const line = stdout.split('\n').find((l) => l.startsWith('"SET"'));
  const rps = line === undefined ? NaN : Number(line.split(',')[1]!.replace(/"/g, ''));
  if (!Number.isFinite(rps)) throw new Error(`could not read the SET rate from redis-benchmark's output:\n${stdout}`);
  progress(`redis-benchmark: ${Math.round(rps)} SET/s (${valueBytes}-byte values) in ${seconds.toFixed(2)} s`);
  return {
    sets_per_sec: Math.round(rps),
    value_bytes: valueBytes,
    seconds: round(seconds),
    redis_cpu_seconds: round(redisCpu, 2),
    client_cpu_seconds: clientCpu === null ? null : round(clientCpu, 2),
    other_cpu_seconds: round(Math.max(0, busy - redisCpu - (clientCpu ?? 0)), 2),
    command,
  };
}

// ---------------------------------------------------------------------------------------------
// Sluice's backfill

interface SluiceBackfill {
  seconds: number;
  rows_per_sec: number;
  peak_rss_mb: number;
  start_rss_mb: number;
  cpu_seconds: number;
  /** the Postgres backend serving the backfill's COPY chunks and watermarks */
  backfill_backend_cpu_seconds: number | null;
  walsender_cpu_seconds: number | null;
  redis_cpu_seconds: number;
  other_cpu_seconds: number;
  backfill_rows: number;
  batches: number;
  profile: string | null;
}

/** CPU seconds of the backends of the connections named `application` (summed), sampled while they live. */
function backendCpu(pg: TestPostgres, application: string): { sample(): Promise<void>; seconds(): number | null } {
  const last = new Map<number, number>();
  return {
    async sample() {
      const { rows } = await pg.query('select pid from pg_stat_activity where application_name = $1', [application]);
      for (const { pid } of rows as { pid: number }[]) {
        const cpu = processCpuSeconds(pid);
        if (cpu !== null) last.set(pid, cpu);
      }
    },
    seconds: () => (last.size === 0 ? null : round([...last.values()].reduce((a, b) => a + b, 0), 2)),
  };
}

async function backfillRecords(client: Redis): Promise<BackfillRecord[]> {
  const all = await client.hgetall(backfillKey(SINK));
  return Object.values(all).map((v) => JSON.parse(v) as BackfillRecord);
}

async function measureBackfill(pg: TestPostgres, redis: TestRedis, rows: number, opts: BenchOptions, run: number): Promise<SluiceBackfill> {
  const config = benchConfig({ pgUrl: pg.url, redisUrl: redis.url, slot: SLOT, sink: SINK, table: 'items', backfill: true });
  const log = pino({ level: 'warn', base: { svc: 'sluice' } }, pino.destination(2));
  const admin = redis.client();
  const redisCpuBefore = await redisCpuSeconds(admin);
  const walsender = walsenderCpu(pg, SLOT);
  const backend = backendCpu(pg, 'sluice-backfill');
  const profile = opts.profileDir !== null ? await startCpuProfile() : null;
  const rss = sampleRss(100);
  const machineBefore = machineCpu();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  let sluice: RunningSluice | null = null;
  let done = 0;
  let memory: { peakMb: number; startMb: number } | null = null;
  let cpuSeconds = 0;
  let machineBusy = 0;
  let redisCpu = 0;
  let profileFile: string | null = null;
  let copied = 0;
  try {
    sluice = await startSluice(config, log);
    const s = sluice;
    let lastReport = performance.now();
    await pollUntil(
      async () => {
        await Promise.all([walsender.sample(), backend.sample()]);
        if (s.pipeline.state === 'stopped') throw new Error(`sluice stopped: ${s.pipeline.lastError}`);
        const records = await backfillRecords(admin);
        const failed = records.find((r) => r.state === 'failed' || r.state === 'cancelled');
        if (failed) throw new Error(`the backfill of ${failed.table} is ${failed.state}: ${failed.error ?? ''}`);
        copied = records.reduce((n, r) => n + r.rows, 0);
        if (performance.now() - lastReport > 5000) {
          lastReport = performance.now();
          progress(`sluice: backfilled ${copied} of ${rows} rows (${((100 * copied) / rows).toFixed(0)}%), RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MB`);
        }
        return records.length > 0 && records.every((r) => r.state === 'done');
      },
      { intervalMs: 200, timeoutMs: 60 * 60_000, what: 'the backfill to be done' },
    );
    done = performance.now();
    cpuSeconds = ownCpuSeconds(cpuBefore);
    machineBusy = machineCpu().busy - machineBefore.busy;
    redisCpu = (await redisCpuSeconds(admin)) - redisCpuBefore;
    memory = rss.stop();
    if (profile !== null) {
      profileFile = await profile.stop(join(opts.profileDir!, `sluice-backfill-${rows}-${run}-${Date.now()}.cpuprofile`));
      progress(`sluice: CPU profile written to ${profileFile}`);
    }
    progress(`sluice: backfilled ${copied} rows in ${((done - started) / 1000).toFixed(2)} s, peak RSS ${memory.peakMb.toFixed(0)} MB`);
  } finally {
    memory ??= rss.stop();
    await sluice?.stop();
    admin.disconnect();
  }
  const metrics = sluice!.metrics;
  const batches = (await metrics.batches.get()).values.reduce((n, v) => n + v.value, 0);
  const seconds = (done - started) / 1000;
  const others = cpuSeconds + (walsender.seconds() ?? 0) + (backend.seconds() ?? 0) + redisCpu;
  return {
    seconds: round(seconds),
    rows_per_sec: Math.round(rows / seconds),
    peak_rss_mb: round(memory.peakMb, 1),
    start_rss_mb: round(memory.startMb, 1),
    cpu_seconds: round(cpuSeconds, 2),
    backfill_backend_cpu_seconds: backend.seconds(),
    walsender_cpu_seconds: walsender.seconds(),
    redis_cpu_seconds: round(redisCpu, 2),
    other_cpu_seconds: round(Math.max(0, machineBusy - others), 2),
    backfill_rows: copied,
    batches,
    profile: profileFile,
  };
}

// ---------------------------------------------------------------------------------------------
// Verification

async function countKeys(client: Redis, pattern: string): Promise<number> {
  let n = 0;
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 20_000);
    cursor = next;
    n += batch.filter((k) => isOwnKey(k)).length;
  } while (cursor !== '0');
  return n;
}

/**
 * The first and the last id and pseudo-random ones in between (fixed seed), without repeats.
 * Random rather than evenly spaced: ids on a regular grid share their last digits, and so the
 * length of their price and qty (evenly spaced ids average 92.7 bytes, the table 94.6).
 */
function sampleIds(rows: number, count: number): number[] {
  const ids = new Set<number>([1, rows]);
  let seed = 0x5eed;
  const random = (): number => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  while (ids.size < Math.min(count, rows)) ids.add(1 + Math.floor(random() * rows));
  return [...ids];
}

interface Verified {
  dbsize: number;
  own_keys: number;
  data_keys: number;
  sampled: number;
  /** average length of the sampled values (STRLEN) */
  value_bytes: number;
}

async function verify(pg: TestPostgres, redis: TestRedis, rows: number): Promise<Verified> {
  const client = redis.client();
  try {
    const dbsize = await client.dbsize();
    let own = 0;
    for (const p of OWN_PATTERNS) own += await countKeys(client, p);
    if (dbsize - own !== rows) throw new Error(`verification failed: DBSIZE ${dbsize} minus ${own} own keys is ${dbsize - own}, the table has ${rows} rows`);
    const ids = sampleIds(rows, 500);
    const { rows: pgRows } = await pg.query(
      `select id::text, name, price::text, qty, extract(epoch from updated_at)::float8 as at from items where id = any($1::bigint[])`,
      [ids],
    );
    const byId = new Map((pgRows as { id: string; name: string; price: string; qty: number; at: number }[]).map((r) => [r.id, r]));
    const values = await client.mget(ids.map((id) => `sluice:items:${id}`));
    let bytes = 0;
    ids.forEach((id, i) => {
      const row = byId.get(String(id));
      const value = values[i] ?? null;
      if (row === undefined) throw new Error(`verification failed: row ${id} is not in Postgres`);
      if (value === null) throw new Error(`verification failed: row ${id} is missing from Redis`);
      bytes += Buffer.byteLength(value);
      const v = JSON.parse(value) as { id: number; name: string; price: number; qty: number; updated_at: string };
      if (String(v.id) !== row.id || v.name !== row.name || v.qty !== row.qty || v.price !== Number(row.price) || Date.parse(v.updated_at) !== row.at * 1000) {
        throw new Error(`verification failed: row ${id}: Redis ${value}, Postgres ${JSON.stringify(row)}`);
      }
    });
    return { dbsize, own_keys: own, data_keys: dbsize - own, sampled: ids.length, value_bytes: round(bytes / ids.length, 1) };
  } finally {
    client.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------

export async function runBackfill(opts: BenchOptions): Promise<Record<string, unknown>> {
  const n = opts.rows ?? DEFAULT_BACKFILL_ROWS;
  const loadAtStart = loadavg()[0]!;
  progress(`backfill: ${n} rows; starting Postgres and Redis`);
  let pg: TestPostgres | null = null;
  let redis: TestRedis | null = null;
  try {
    [pg, redis] = await Promise.all([startPostgres({ settings: BACKFILL_PG_SETTINGS }), startRedis()]);
    progress(`Postgres ${pg.version} on ${pg.port}, Redis on ${redis.port}`);
    const table = await fillTable(pg, n);
    progress(`table: ${n} rows, ${table.tableMb.toFixed(0)} MB with its index, ready in ${table.seconds.toFixed(1)} s; estimated value size ${table.estimatedValueBytes} bytes`);

    const benchRuns: RedisBenchmarkResult[] = [];
    const sluiceRuns: SluiceBackfill[] = [];
    let check: Verified | null = null;
    for (let run = 1; run <= opts.runs; run++) {
      if (opts.runs > 1) progress(`run ${run} of ${opts.runs}`);
      const admin = redis.client();
      await admin.flushall();
      if (opts.waitQuiet) await waitForQuietMachine();
      benchRuns.push(await runRedisBenchmark(redis, table.estimatedValueBytes));
      await admin.flushall();
      admin.disconnect();
      if (opts.waitQuiet) await waitForQuietMachine();
      sluiceRuns.push(await measureBackfill(pg, redis, n, opts, run));
      check = await verify(pg, redis, n);
      progress(`verified: DBSIZE ${check.dbsize} - ${check.own_keys} own keys = ${check.data_keys} rows; ${check.sampled} sampled ids match; values ${check.value_bytes} bytes on average`);
    }
    // redis-benchmark: the run with the median rate; Sluice: the run with the median time
    const bench = [...benchRuns].sort((a, b) => a.sets_per_sec - b.sets_per_sec)[(benchRuns.length - 1) >> 1]!;
    const redisBenchmark = {
      ...bench,
      ...(benchRuns.length > 1 ? { runs: benchRuns.map((r) => ({ sets_per_sec: r.sets_per_sec, other_cpu_seconds: r.other_cpu_seconds })) } : {}),
    };
    const sluice = medianRun(sluiceRuns);
    return {
      scenario: 'backfill',
      rows: n,
      value_bytes: check!.value_bytes,
      redis_benchmark: redisBenchmark,
      sluice,
      ratio: round(sluice.rows_per_sec / redisBenchmark.sets_per_sec),
      goal: { ratio: 0.4, peak_rss_mb: 300 },
      table: { fill_seconds: round(table.seconds, 1), size_mb: round(table.tableMb, 1), estimated_value_bytes: table.estimatedValueBytes },
      runs: opts.runs,
      verified: check,
      machine: machineInfo(pg.version, loadAtStart),
      source: sourceRevision(),
    };
  } finally {
    progress('backfill: stopping Postgres and Redis');
    await Promise.allSettled([pg?.stop(), redis?.stop()]);
  }
}
