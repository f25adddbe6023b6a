// Scenario "saturation": pgbench updates a synced table as fast as it can for 30 s. Does Sluice
// keep up, and how long after the load stops does Redis show the last commit?
//
//   1. fresh Postgres (the test harness's settings: synchronous_commit off, WAL writer every
//      10 ms) + Redis; table accounts (100,000 rows, written before Sluice starts: only the
//      updates stream), publication sluice; Sluice as its own process, one string sink
//   2. pgbench -n -c 4 -j 2 -T 30 with a custom script: one UPDATE of a random account per
//      transaction, no rate limit. /metrics is read every 500 ms meanwhile (the largest
//      sluice_lag_bytes seen)
//   3. when pgbench exits: the end of its last COMMIT record (pg_walinspect), then /metrics every
//      20 ms until sluice_confirmed_lsn reaches it. Sluice confirms a transaction once Redis has
//      acknowledged its MULTI/EXEC, so that moment is when Redis shows the last commit.
//
// Environment: BENCH_SATURATION_SECONDS (30), BENCH_SATURATION_CLIENTS (4).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestPostgres } from '../test/harness/postgres.js';
import type { TestRedis } from '../test/harness/redis.js';
import { spawnManaged } from '../src/util/process.js';
import { formatLsn } from '../src/core/lsn.js';
import { sourceRevision } from './catch-up.js';
import { instanceYaml, lastCommitSince, spawnSluice, startServers, windowOf, type Scrape, type SluiceProcess } from './instances.js';
import { findPgBinary, machineCpu, machineInfo, positiveEnv, progress, round, sleep, waitForQuietMachine, type BenchOptions } from './support.js';

const ACCOUNTS = 100_000;
const GOAL_LAST_COMMIT_SECONDS = 2;

const PGBENCH_SCRIPT = `\\set id random(1, ${ACCOUNTS})
update accounts set balance = balance + 1, updated_at = now() where id = :id;
`;

/** pgbench's summary: transactions processed and tps (the line format of pgbench 13 to 17). */
export function parsePgbench(out: string): { transactions: number; tps: number } {
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  const tps = Number(/^tps = ([0-9.]+)/m.exec(out)?.[1]);
  if (!Number.isFinite(transactions) || !Number.isFinite(tps)) throw new Error(`pgbench: no summary in its output:\n${out.slice(-2000)}`);
  return { transactions, tps };
}

export async function runSaturation(opts: BenchOptions): Promise<Record<string, unknown>> {
  const seconds = positiveEnv('BENCH_SATURATION_SECONDS', 30);
  const clients = positiveEnv('BENCH_SATURATION_CLIENTS', 4);
  const loadAtStart = loadavg()[0]!;
  progress(`saturation: pgbench with ${clients} clients for ${seconds} s; starting Postgres and Redis`);
  let pg: TestPostgres | null = null;
  let redis: TestRedis | null = null;
  let sluice: SluiceProcess | null = null;
  const dir = mkdtempSync(join(tmpdir(), 'bench-saturation-'));
  try {
    ({ pg, redis } = await startServers());
    await pg.query(`create table accounts (id int primary key, balance bigint not null, updated_at timestamptz);
      insert into accounts select g, 0, now() from generate_series(1, ${ACCOUNTS}) g;
      create publication sluice for table accounts;`);
    await pg.query('vacuum analyze accounts');
    sluice = await spawnSluice('saturation', instanceYaml({ pgUrl: pg.url, redisUrl: redis.url, slot: 'sluice', publication: 'sluice', stateSchema: 'sluice', sinks: [{ name: 'accounts', tables: ['accounts'] }] }), opts.profileDir);
    await sluice.ready();
    if (opts.waitQuiet) await waitForQuietMachine();

    const script = join(dir, 'update.sql');
    writeFileSync(script, PGBENCH_SCRIPT);
    const args = ['-n', '-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), '-f', script, 'postgres'];
    const bin = findPgBinary('pgbench');
    progress(`pgbench: ${bin} ${args.join(' ')}`);
    const [{ lsn: startLsn }] = (await pg.query('select pg_current_wal_lsn()::text lsn')).rows as [{ lsn: string }];
    const first = (await sluice.scrape())!;
    const machineBefore = machineCpu();
    const started = performance.now();
    const bench = spawnManaged(bin, args, { name: 'pgbench' });
    let maxLagBytes = 0;
    let last: Scrape = first;
    while (bench.running) {
      await Promise.race([bench.exited, sleep(500)]);
      const s = await sluice.scrape();
      if (s !== null) {
        last = s;
        maxLagBytes = Math.max(maxLagBytes, s.lagBytes);
      }
    }
    const stopped = performance.now();
    const info = await bench.exited;
    if (info.code !== 0) throw new Error(`pgbench exited with code ${info.code}:\n${bench.tail(30)}`);
    const duringLoad = last;
    const pgbench = parsePgbench(bench.stdout.join('\n'));
    // the end of pgbench's last commit: what Sluice must confirm
    const endLsn = await lastCommitSince(pg, startLsn);
    while (last.confirmedLsn < endLsn) {
      if (performance.now() - stopped > 10 * 60_000) throw new Error(`Sluice did not confirm ${formatLsn(endLsn)} within 10 minutes of the load's end`);
      await sleep(20);
      last = (await sluice.scrape()) ?? last;
    }
    const visible = last.at;
    const busy = machineCpu().busy - machineBefore.busy;
    const whole = windowOf(first, last, 1, sluice.peakRssMb());
    const loadSeconds = (stopped - started) / 1000;
    const appliedDuringLoad = duringLoad.changes - first.changes;
    return {
      scenario: 'saturation',
      seconds,
      clients,
      pgbench: { ...pgbench, tps: Math.round(pgbench.tps), command: `pgbench ${args.join(' ')}`, script: PGBENCH_SCRIPT },
      sluice: {
        applied_changes: whole.changes,
        // one row change per pgbench transaction: Sluice applied every one of them
        applied_all: whole.changes === pgbench.transactions,
        /** every update pgbench committed, applied: from the load's start until Redis showed the last one */
        applied_per_sec: Math.round(whole.changes / ((visible - started) / 1000)),
        applied_per_sec_during_load: Math.round(appliedDuringLoad / loadSeconds),
        max_lag_bytes_seen: maxLagBytes,
        cpu_seconds: whole.cpu_seconds,
        cpu_seconds_per_100k: whole.cpu_seconds_per_100k,
        peak_rss_mb: whole.peak_rss_mb,
      },
      last_commit_visible_after_seconds: round((visible - stopped) / 1000),
      ratio: round(whole.changes / ((visible - started) / 1000) / pgbench.tps),
      goal: { last_commit_visible_after_seconds: GOAL_LAST_COMMIT_SECONDS, peak_rss_mb: 300 },
      machine_busy_cpu_seconds: round(busy, 2),
      machine: machineInfo(pg.version, loadAtStart),
      source: sourceRevision(),
    };
  } finally {
    progress('saturation: stopping Sluice, Postgres and Redis');
    await sluice?.stop().catch(() => undefined);
    await Promise.allSettled([pg?.stop(), redis?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}
