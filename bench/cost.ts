// Scenario "cost": how Sluice's catch-up cost grows with row size, transaction size and the
// number of sinks. One point varies one of the three from a base of 100-byte rows, 10-row
// transactions and one sink:
//
//   row size      100 B, 1 KB, 10 KB     (10-row transactions, 1 sink)
//   transaction   1, 10, 100, 1000 rows  (100-byte rows, 1 sink)
//   sinks         1, 2, 4                (100-byte rows, 10-row transactions)
//
// Each point: a table of its own (id bigint primary key, v text; v stored uncompressed so that
// 10 KB means 10 KB of WAL and TOAST), its publication and slot, a backlog of inserts written
// server-side (N rows, a COMMIT every `txn` rows), then Sluice as its own process with `sinks`
// string sinks on the table (bench/instances.ts), measured until it confirms the last commit:
// changes/s (row changes, not Redis commands) and Sluice's CPU seconds per 100k changes over the
// window. Then the slot is dropped and Redis flushed. The figures are printed as JSON and drawn
// into an SVG chart (bench/svg-chart.ts; docs/perf-cost.svg unless BENCH_COST_SVG says where).
//
// Environment: BENCH_COST_CHANGES (changes per point, default 100,000; at most 150 MB of row
// data per point, so 15,000 at 10 KB).

import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { TestPostgres } from '../test/harness/postgres.js';
import type { TestRedis } from '../test/harness/redis.js';
import { PG_SETTINGS, sourceRevision } from './catch-up.js';
import { catchUpWindow, instanceYaml, lastCommitSince, spawnSluice, startServers, streamOpening, type CatchUpWindow } from './instances.js';
import { renderChart, type Bar } from './svg-chart.js';
import { positiveEnv, progress, round, waitForQuietMachine, machineInfo, type BenchOptions } from './support.js';

export interface CostPoint {
  row_bytes: number;
  txn_rows: number;
  sinks: number;
}

const BASE: CostPoint = { row_bytes: 100, txn_rows: 10, sinks: 1 };
const ROW_BYTES = [100, 1000, 10_000];
const TXN_ROWS = [1, 10, 100, 1000];
const SINKS = [1, 2, 4];
const MAX_BYTES_PER_POINT = 150_000_000;

/** The points to measure: each axis from the base, the base itself once. */
export function costPoints(): CostPoint[] {
  const points: CostPoint[] = [];
  const add = (p: CostPoint): void => {
    if (!points.some((q) => q.row_bytes === p.row_bytes && q.txn_rows === p.txn_rows && q.sinks === p.sinks)) points.push(p);
  };
  for (const row_bytes of ROW_BYTES) add({ ...BASE, row_bytes });
  for (const txn_rows of TXN_ROWS) add({ ...BASE, txn_rows });
  for (const sinks of SINKS) add({ ...BASE, sinks });
  return points;
}

const WRITER_SQL = `
create procedure cost_write(tbl text, total int, per_txn int, bytes int)
language plpgsql as $$
declare
  done int := 0;
  n int;
begin
  while done < total loop
    n := least(per_txn, total - done);
    execute format('insert into %I (id, v) select g, substr(repeat(md5(g::text), ($3 + 31) / 32), 1, $3) from generate_series($1, $2) g', tbl)
      using done + 1, done + n, bytes;
    commit;
    done := done + n;
  end loop;
end $$;
`;

interface Measured extends CostPoint, CatchUpWindow {
  backlog_changes: number;
  write_seconds: number;
  wal_mb: number;
}

async function measurePoint(pg: TestPostgres, redis: TestRedis, p: CostPoint, i: number, perPoint: number, opts: BenchOptions): Promise<Measured> {
  const { waitQuiet, profileDir } = opts;
  const changes = Math.min(perPoint, Math.floor(MAX_BYTES_PER_POINT / p.row_bytes));
  const table = `c${i}`;
  await pg.query(`create table ${table} (id bigint primary key, v text);
    alter table ${table} alter column v set storage external;
    create publication p${i} for table ${table};`);
  await pg.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [`s${i}`]);
  const [{ lsn: startLsn }] = (await pg.query('select pg_current_wal_lsn()::text lsn')).rows as [{ lsn: string }];
  const started = performance.now();
  await pg.query('call cost_write($1, $2, $3, $4)', [table, changes, p.txn_rows, p.row_bytes]);
  const writeSeconds = (performance.now() - started) / 1000;
  const endLsn = await lastCommitSince(pg, startLsn);
  const [{ lsn: now }] = (await pg.query('select pg_current_wal_lsn()::text lsn')).rows as [{ lsn: string }];
  const [{ mb }] = (await pg.query('select ($1::pg_lsn - $2::pg_lsn) / 1048576.0 mb', [now, startLsn])).rows as [{ mb: string }];
  progress(`cost ${JSON.stringify(p)}: ${changes} inserts written in ${writeSeconds.toFixed(1)} s`);
  if (waitQuiet) await waitForQuietMachine();
  const sinks = Array.from({ length: p.sinks }, (_, j) => ({ name: `k${j}`, tables: [table], key: `k${j}:{id}` }));
  const sluice = await spawnSluice(`cost${i}`, instanceYaml({ pgUrl: pg.url, redisUrl: redis.url, slot: `s${i}`, publication: `p${i}`, stateSchema: `st${i}`, sinks }), profileDir);
  let w: CatchUpWindow;
  try {
    w = await catchUpWindow(sluice, streamOpening(sluice, await sluice.ready()), endLsn, p.sinks);
  } finally {
    await sluice.stop();
  }
  const admin = redis.client();
  const keys = await admin.dbsize();
  await admin.flushall();
  admin.disconnect();
  // Sluice's own keys (positions, batch marker, sink definitions) besides one key per row and sink
  if (keys < changes * p.sinks) throw new Error(`cost ${JSON.stringify(p)}: Redis held ${keys} keys, expected at least ${changes * p.sinks}`);
  await pg.query(`select pg_drop_replication_slot($1)`, [`s${i}`]);
  await pg.query(`drop table ${table}`);
  progress(`cost ${JSON.stringify(p)}: ${w.changes_per_sec} changes/s, ${w.cpu_seconds_per_100k} CPU-s per 100k changes`);
  return { ...p, ...w, backlog_changes: changes, write_seconds: round(writeSeconds, 1), wal_mb: round(Number(mb), 1) };
}

/** The chart of the measured points: changes/s and CPU-s per 100k changes along each axis. */
export function costChart(points: readonly Measured[], subtitle: string): string {
  const along = (axis: keyof CostPoint, label: (p: CostPoint) => string, metric: (m: Measured) => number): Bar[] =>
    points
      .filter((m) => (Object.keys(BASE) as (keyof CostPoint)[]).every((k) => k === axis || m[k] === BASE[k]))
      .sort((x, y) => x[axis] - y[axis])
      .map((m) => ({ label: label(m), value: metric(m) }));
  const bytes = (p: CostPoint): string => (p.row_bytes >= 1000 ? `${p.row_bytes / 1000} KB` : `${p.row_bytes} B`);
  const axes = [
    { axis: 'row_bytes' as const, title: 'row size', label: bytes },
    { axis: 'txn_rows' as const, title: 'rows per transaction', label: (p: CostPoint) => String(p.txn_rows) },
    { axis: 'sinks' as const, title: 'sinks on the table', label: (p: CostPoint) => String(p.sinks) },
  ];
  return renderChart({
    title: 'Sluice catch-up cost (base: 100 B rows, 10-row transactions, 1 sink)',
    subtitle,
    rows: [
      axes.map((a) => ({ title: `by ${a.title}`, unit: 'row changes / s', bars: along(a.axis, a.label, (m) => m.changes_per_sec) })),
      axes.map((a) => ({ title: `by ${a.title}`, unit: 'Sluice CPU-s per 100k changes', bars: along(a.axis, a.label, (m) => m.cpu_seconds_per_100k) })),
    ],
  });
}

export async function runCost(opts: BenchOptions): Promise<Record<string, unknown>> {
  const perPoint = positiveEnv('BENCH_COST_CHANGES', 100_000);
  const svgFile = process.env.BENCH_COST_SVG !== undefined && process.env.BENCH_COST_SVG !== '' ? process.env.BENCH_COST_SVG : 'docs/perf-cost.svg';
  const loadAtStart = loadavg()[0]!;
  const points = costPoints();
  progress(`cost: ${points.length} points of up to ${perPoint} changes; starting Postgres and Redis`);
  let pg: TestPostgres | null = null;
  let redis: TestRedis | null = null;
  try {
    ({ pg, redis } = await startServers(PG_SETTINGS));
    await pg.query(WRITER_SQL);
    const measured: Measured[] = [];
    for (const [i, p] of points.entries()) measured.push(await measurePoint(pg, redis, p, i, perPoint, opts));
    const machine = machineInfo(pg.version, loadAtStart);
    const source = sourceRevision();
    const load = (machine.loadavg_1m as number[]).join('–');
    writeFileSync(svgFile, costChart(measured, `${new Date().toISOString().slice(0, 10)}, ${String(machine.cpus)} vCPU, load average ${load}, source ${source ?? '?'}; npm run bench -- --scenario cost`));
    progress(`cost: chart written to ${svgFile}`);
    return { scenario: 'cost', changes_per_point: perPoint, points: measured, chart: svgFile, machine, source };
  } finally {
    progress('cost: stopping Postgres and Redis');
    await Promise.allSettled([pg?.stop(), redis?.stop()]);
  }
}
