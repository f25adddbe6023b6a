// Scenario "latency": a steady stream of single-row transactions (2,000 a second by default);
// how long from a commit until Redis shows the change, measured from outside Sluice?
//
//   1. fresh Postgres + Redis (notify-keyspace-events on for string commands); tables ticks
//      (in a sink: key t:{id}) and ticks_base (in no sink); Sluice as its own process
//   2. phase "sluice": writers on 4 connections (synchronous_commit=on) insert one row per
//      transaction into ticks, paced by a schedule (row n is due at n / rate seconds); each
//      records when its COMMIT's reply arrived. A separate Redis connection subscribed to
//      __keyevent@0__:set records when each key's event arrived. latency = event − commit
//      reply, the same clock (this process), ms. The first 2 s are a warm-up and not counted.
//   3. phase "baseline": the same writers insert into ticks_base and, right after each commit's
//      reply, SET b:{id} themselves: what commit → visible costs without Sluice (the round
//      trips, Redis, the notification, this process's event loop)
//
// Environment: BENCH_LATENCY_RATE (2000 transactions/s), BENCH_LATENCY_SECONDS (30; the
// baseline runs a third of it, at least 10 s).

import { loadavg } from 'node:os';
import pgLib from 'pg';
import type { Redis } from 'ioredis';
import type { TestPostgres } from '../test/harness/postgres.js';
import type { TestRedis } from '../test/harness/redis.js';
import { sourceRevision } from './catch-up.js';
import { instanceYaml, spawnSluice, startServers, type SluiceProcess } from './instances.js';
import { summarize, tailEpisodes, type Latencies, type TailEpisodes } from './stats.js';
import { machineCpu, machineInfo, positiveEnv, progress, round, sleep, waitForQuietMachine, type BenchOptions } from './support.js';

const CONNECTIONS = 4;
const WARMUP_SECONDS = 2;
const GOAL = { p50_ms: 2, p99_ms: 5 };

interface PhaseResult {
  table: string;
  writer: { commits: number; per_sec: number; commit_round_trip: Latencies };
  /** commit → key event, for the rows after the warm-up */
  visible: Latencies & { missing: number };
  /** the rounds over the goal's p99, grouped into stalls (bench/stats.ts tailEpisodes) */
  tail: TailEpisodes;
  /** busy CPU of the whole machine during the phase (writers, Postgres, Redis, Sluice and any other work) */
  machine_busy_cpu_seconds: number;
}

/**
 * Writes rows 0.. into `table` at `rate` per second on CONNECTIONS connections for `seconds`;
 * `after(id)` runs right after each commit's reply (the baseline's own SET). Commit reply times
 * go to `commits` (performance.now(), by id).
 */
async function pacedWriters(url: string, table: string, rate: number, seconds: number, commits: Map<number, number>, roundTrips: number[], after?: (id: number) => Promise<unknown>): Promise<number> {
  const total = Math.round(rate * seconds);
  const started = performance.now();
  let next = 0;
  const clients = Array.from({ length: CONNECTIONS }, () => new pgLib.Client({ connectionString: url, options: '-c synchronous_commit=on', application_name: 'bench-latency' }));
  await Promise.all(clients.map((c) => c.connect()));
  try {
    await Promise.all(
      clients.map(async (c) => {
        for (;;) {
          const id = next++;
          if (id >= total) return;
          const due = started + (id * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 1) await sleep(wait);
          const sent = performance.now();
          await c.query(`insert into ${table} (id, v) values ($1, 'x')`, [id]);
          const done = performance.now();
          commits.set(id, done);
          roundTrips.push(done - sent);
          if (after) await after(id);
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  return (performance.now() - started) / 1000;
}

async function phase(pg: TestPostgres, sub: Redis, direct: Redis | null, table: string, prefix: string, rate: number, seconds: number): Promise<PhaseResult> {
  const commits = new Map<number, number>();
  const events = new Map<number, number>();
  const roundTrips: number[] = [];
  const onMessage = (_channel: string, key: string): void => {
    if (key.startsWith(prefix)) events.set(Number(key.slice(prefix.length)), performance.now());
  };
  sub.on('message', onMessage);
  const machineBefore = machineCpu();
  try {
    const after = direct ? (id: number) => direct.set(`${prefix}${id}`, 'x') : undefined;
    const took = await pacedWriters(pg.url, table, rate, seconds, commits, roundTrips, after);
    // the last events: until every committed row showed up, or 5 s without progress
    let seen = -1;
    let lastProgress = performance.now();
    while (events.size < commits.size && performance.now() - lastProgress < 5000) {
      if (events.size !== seen) {
        seen = events.size;
        lastProgress = performance.now();
      }
      await sleep(20);
    }
    const warm = Math.round(rate * WARMUP_SECONDS);
    const ms: number[] = [];
    const timeline: { at: number; ms: number }[] = [];
    let missing = 0;
    for (const [id, at] of commits) {
      if (id < warm) continue;
      const ev = events.get(id);
      if (ev === undefined) missing++;
      else {
        ms.push(ev - at);
        timeline.push({ at, ms: ev - at });
      }
    }
    const busy = machineCpu().busy - machineBefore.busy;
    return {
      table,
      writer: { commits: commits.size, per_sec: Math.round(commits.size / took), commit_round_trip: summarize(roundTrips) },
      visible: { ...summarize(ms), missing },
      tail: tailEpisodes(timeline, GOAL.p99_ms),
      machine_busy_cpu_seconds: round(busy, 2),
    };
  } finally {
    sub.off('message', onMessage);
  }
}

export async function runLatency(opts: BenchOptions): Promise<Record<string, unknown>> {
  const rate = positiveEnv('BENCH_LATENCY_RATE', 2000);
  const seconds = positiveEnv('BENCH_LATENCY_SECONDS', 30);
  const baselineSeconds = Math.max(10, Math.round(seconds / 3));
  const loadAtStart = loadavg()[0]!;
  progress(`latency: ${rate} single-row transactions/s for ${seconds} s; starting Postgres and Redis`);
  let pg: TestPostgres | null = null;
  let redis: TestRedis | null = null;
  let sluice: SluiceProcess | null = null;
  try {
    ({ pg, redis } = await startServers());
    await pg.query(`create table ticks (id bigint primary key, v text);
      create table ticks_base (id bigint primary key, v text);
      create publication sluice for table ticks;`);
    const admin = redis.client();
    await admin.config('SET', 'notify-keyspace-events', 'E$');
    sluice = await spawnSluice('latency', instanceYaml({ pgUrl: pg.url, redisUrl: redis.url, slot: 'sluice', publication: 'sluice', stateSchema: 'sluice', sinks: [{ name: 'ticks', tables: ['ticks'], key: 't:{id}' }] }), opts.profileDir);
    const first = await sluice.ready();
    const sub = redis.client();
    await sub.subscribe('__keyevent@0__:set');
    const direct = redis.client();
    if (opts.waitQuiet) await waitForQuietMachine();

    progress(`latency: phase sluice (${seconds} s)`);
    const withSluice = await phase(pg, sub, null, 'ticks', 't:', rate, seconds);
    const afterSluice = (await sluice.scrape()) ?? first;
    progress(`latency: sluice p50 ${withSluice.visible.p50_ms} ms, p99 ${withSluice.visible.p99_ms} ms; phase baseline (${baselineSeconds} s)`);
    const baseline = await phase(pg, sub, direct, 'ticks_base', 'b:', rate, baselineSeconds);
    const sluiceCpu = afterSluice.cpuSeconds - first.cpuSeconds;
    const peak = sluice.peakRssMb();
    sub.disconnect();
    direct.disconnect();
    admin.disconnect();
    return {
      scenario: 'latency',
      rate_target: rate,
      seconds,
      warmup_seconds: WARMUP_SECONDS,
      sluice: { ...withSluice, cpu_seconds: round(sluiceCpu, 2), peak_rss_mb: peak },
      baseline,
      over_baseline_ms: {
        p50: round(withSluice.visible.p50_ms - baseline.visible.p50_ms, 2),
        p99: round(withSluice.visible.p99_ms - baseline.visible.p99_ms, 2),
      },
      goal: { ...GOAL, peak_rss_mb: 300 },
      machine: machineInfo(pg.version, loadAtStart),
      source: sourceRevision(),
    };
  } finally {
    progress('latency: stopping Sluice, Postgres and Redis');
    await sluice?.stop().catch(() => undefined);
    await Promise.allSettled([pg?.stop(), redis?.stop()]);
  }
}
