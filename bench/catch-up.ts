// Scenario "catch-up": a backlog of N row changes sits in the WAL; how fast does Sluice work
// through it, compared with pg_recvlogical reading the same backlog (the floor: Postgres's
// own decoding plus a client that throws the data away)?
//
//   1. fresh Postgres 15 + Redis; table `items`, publication `sluice`, two pgoutput slots
//      created before any write: `sluice` (for Sluice) and `twin` (for pg_recvlogical)
//   2. the backlog, written server-side (a PL/pgSQL procedure with COMMIT, two sessions):
//      60% inserts, then 30% updates, then 10% deletes, in transactions of mixed sizes
//   3. pg_recvlogical --endpos <end of the last commit> on `twin`, wall clock
//   4. Sluice (startSluice in-process, one string sink) on `sluice`, wall clock until it has
//      applied and confirmed the last commit; then the Redis contents are checked
//
// The two measurements run one after the other, each on the fully written backlog.

import { pino } from 'pino';
import type { Redis } from 'ioredis';
import { startPostgres, type TestPostgres } from '../test/harness/postgres.js';
import { startRedis, type TestRedis } from '../test/harness/redis.js';
import { spawnManaged, type ManagedProcess } from '../src/util/process.js';
import { startSluice, type RunningSluice } from '../src/app.js';
import { formatLsn, parseLsn, type Lsn } from '../src/core/lsn.js';
import {
  findPgRecvlogical,
  machineCpu,
  waitForQuietMachine,
  medianRun,
  ownCpuSeconds,
  pollUntil,
  processCpuSeconds,
  progress,
  round,
  sampleRss,
  startCpuProfile,
  type BenchOptions,
  machineInfo,
  benchConfig,
} from './support.js';
import { loadavg } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { SluiceConfig } from '../src/config/schema.js';

// ---------------------------------------------------------------------------------------------
// The backlog

/** Server settings for a bulk backlog: no checkpoint or autovacuum in the middle of a measurement. */
export const PG_SETTINGS: Record<string, string> = {
  max_wal_size: '8GB',
  min_wal_size: '1GB',
  checkpoint_timeout: '60min',
  autovacuum: 'off',
  shared_buffers: '512MB',
};

/** Sessions writing the backlog in parallel, each on its own id range. */
const WRITERS = 2;

/**
 * One cycle of transaction sizes (rows per transaction), repeated: per 2,000 changes 400
 * one-row transactions, 30 of 10 rows, 3 of 100 rows and one of 1,000 rows, interleaved.
 */
export function sizeCycle(): number[] {
  const cycle: number[] = [];
  for (let block = 0; block < 10; block++) {
    for (let i = 0; i < 40; i++) cycle.push(1);
    for (let i = 0; i < 3; i++) cycle.push(10);
    if (block === 2 || block === 5 || block === 8) cycle.push(100);
    if (block === 9) cycle.push(1000);
  }
  return cycle;
}

/** How many transactions bench_write makes for `total` changes (the same walk as the procedure). */
export function transactionsFor(total: number, cycle: readonly number[]): number {
  let done = 0;
  let i = 0;
  while (done < total) {
    done += Math.min(cycle[i % cycle.length]!, total - done);
    i++;
  }
  return i;
}

export const SCHEMA_SQL = `
create table items (id bigint primary key, name text, price numeric(10,2), qty int, updated_at timestamptz);
create publication sluice for table items;

-- kind: insert | update | delete; one transaction per entry of the size cycle
create procedure bench_write(kind text, id_lo bigint, id_hi bigint, total bigint, sizes int[])
language plpgsql as $$
declare
  done bigint := 0;
  n bigint;
  i int := 0;
  len int := array_length(sizes, 1);
  span bigint := id_hi - id_lo + 1;
  a bigint;
begin
  while done < total loop
    n := least(sizes[1 + i % len], total - done);
    if kind = 'insert' then
      insert into items (id, name, price, qty, updated_at)
        select g, 'item ' || g, (g % 100000) / 100.0, (g % 1000)::int, now()
          from generate_series(id_lo + done, id_lo + done + n - 1) g;
    elsif kind = 'update' then
      a := id_lo + done % span;
      update items set price = price + 0.01, qty = qty + 1, name = name || '+', updated_at = now()
        where id between a and a + n - 1;
    else
      delete from items where id between id_hi - done - n + 1 and id_hi - done;
    end if;
    commit;
    done := done + n;
    i := i + 1;
  end loop;
end $$;
`;

export interface Backlog {
  changes: number;
  transactions: number;
  /** rows in items once the backlog is written */
  rows: number;
  /** ids 1..maxId were inserted */
  maxId: number;
  /** end LSN of the last transaction of the backlog (what a consumer must reach) */
  endLsn: Lsn;
  seconds: number;
  walBytes: number;
}

export async function writeBacklog(pg: TestPostgres, changes: number): Promise<Backlog> {
  const cycle = sizeCycle();
  const inserts = Math.round(changes * 0.6);
  const updates = Math.round(changes * 0.3);
  const deletes = changes - inserts - updates;
  // each writer gets an equal share of every phase, on its own id range
  const share = (total: number, w: number): number => Math.floor(total / WRITERS) + (w < total % WRITERS ? 1 : 0);
  const writers = Array.from({ length: WRITERS }, (_, w) => ({ inserts: share(inserts, w), updates: share(updates, w), deletes: share(deletes, w), idLo: 0, idHi: 0 }));
  let next = 1;
  for (const w of writers) {
    w.idLo = next;
    w.idHi = next + w.inserts - 1;
    next += w.inserts;
    if (w.updates > w.inserts || w.deletes > w.inserts) throw new Error('more updates or deletes than rows');
  }
  const transactions = writers.reduce(
    (t, w) => t + transactionsFor(w.inserts, cycle) + transactionsFor(w.updates, cycle) + transactionsFor(w.deletes, cycle),
    0,
  );
  const [{ lsn: startLsn }] = (await pg.query('select pg_current_wal_lsn()::text lsn')).rows as [{ lsn: string }];
  const started = performance.now();
  for (const kind of ['insert', 'update', 'delete'] as const) {
    const phaseStart = performance.now();
    // pg.query runs on a pool of 4 connections: the writers get their own sessions
    const phase = writers.map((w) => ({ w, total: kind === 'insert' ? w.inserts : kind === 'update' ? w.updates : w.deletes }));
    await Promise.all(
      phase
        .filter(({ total }) => total > 0)
        .map(({ w, total }) => pg.query('call bench_write($1, $2, $3, $4, $5)', [kind, w.idLo, w.idHi, total, cycle])),
    );
    progress(`backlog: ${kind}s written in ${((performance.now() - phaseStart) / 1000).toFixed(1)} s`);
  }
  const seconds = (performance.now() - started) / 1000;
  const [{ lsn: currentLsn }] = (await pg.query('select pg_current_wal_lsn()::text lsn')).rows as [{ lsn: string }];
  // pg_walinspect reads flushed WAL only (commits are asynchronous here: the WAL writer flushes them)
  await pollUntil(
    async () => {
      const { rows } = await pg.query('select pg_current_wal_flush_lsn() >= $1::pg_lsn ok', [currentLsn]);
      return (rows[0] as { ok: boolean }).ok;
    },
    { intervalMs: 20, timeoutMs: 30_000, what: 'the WAL writer to flush the backlog' },
  );
  const endLsn = await lastCommitEnd(pg, parseLsn(startLsn), parseLsn(currentLsn));
  const [{ n: rows }] = (await pg.query('select count(*)::int n from items')).rows as [{ n: number }];
  if (rows !== inserts - deletes) throw new Error(`backlog: items holds ${rows} rows, expected ${inserts - deletes}`);
  return { changes, transactions, rows, maxId: inserts, endLsn, seconds, walBytes: Number(parseLsn(currentLsn) - parseLsn(startLsn)) };
}

/**
 * The end LSN of the last COMMIT record before `upTo` (pg_walinspect): exactly what pgoutput
 * reports as the last transaction's end, so that neither consumer waits for a keepalive that
 * covers WAL written after the backlog (running-xacts records and the like).
 */
export async function lastCommitEnd(pg: TestPostgres, from: Lsn, upTo: Lsn): Promise<Lsn> {
  for (let window = 1n << 20n; ; window *= 8n) {
    const start = upTo - window > from ? upTo - window : from;
    const { rows } = await pg.query(
      `select max(end_lsn)::text lsn from pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
        where resource_manager = 'Transaction' and record_type = 'COMMIT'`,
      [formatLsn(start), formatLsn(upTo)],
    );
    const lsn = (rows[0] as { lsn: string | null }).lsn;
    if (lsn !== null) return parseLsn(lsn);
    if (start === from) throw new Error('no COMMIT record found in the backlog');
  }
}

// ---------------------------------------------------------------------------------------------
// Measurements

interface Phase {
  seconds: number;
  changes_per_sec: number;
  transactions_per_sec: number;
}

function phase(seconds: number, backlog: Backlog): Phase {
  return {
    seconds: round(seconds),
    changes_per_sec: Math.round(backlog.changes / seconds),
    transactions_per_sec: Math.round(backlog.transactions / seconds),
  };
}

/** CPU seconds of the walsender serving `slot`, sampled while it runs (it exits with its client). */
export function walsenderCpu(pg: TestPostgres, slot: string): { sample(): Promise<void>; seconds(): number | null } {
  let pid: number | null = null;
  let last: number | null = null;
  return {
    async sample() {
      if (pid === null) {
        const { rows } = await pg.query('select active_pid from pg_replication_slots where slot_name = $1', [slot]);
        pid = (rows[0] as { active_pid: number | null } | undefined)?.active_pid ?? null;
      }
      if (pid !== null) last = processCpuSeconds(pid) ?? last;
    },
    seconds: () => (last === null ? null : round(last, 2)),
  };
}

interface RecvPhase extends Phase {
  walsender_cpu_seconds: number | null;
  client_cpu_seconds: number | null;
  /** busy CPU of the machine during the measurement not accounted to the processes above (other work competing for the cores) */
  other_cpu_seconds: number;
}

async function measurePgRecvlogical(pg: TestPostgres, backlog: Backlog, slot: string): Promise<RecvPhase> {
  const bin = findPgRecvlogical();
  const args = [
    '-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-d', 'postgres',
    '--slot', slot, '--start', '--no-loop',
    '-o', 'proto_version=1', '-o', 'publication_names=sluice',
    '-E', formatLsn(backlog.endLsn), '-f', '/dev/null',
  ];
  progress(`pg_recvlogical: ${bin} ${args.join(' ')}`);
  const walsender = walsenderCpu(pg, slot);
  let clientCpu: number | null = null;
  const machineBefore = machineCpu();
  const started = performance.now();
  const proc: ManagedProcess = spawnManaged(bin, args, { name: 'pg_recvlogical' });
  let ended = 0;
  proc.child.once('exit', () => (ended = performance.now()));
  try {
    while (proc.running) {
      await walsender.sample();
      if (proc.pid !== undefined) clientCpu = processCpuSeconds(proc.pid) ?? clientCpu;
      await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 100))]);
    }
    const info = await proc.exited;
    if (info.code !== 0) throw new Error(`pg_recvlogical exited with code ${info.code} (signal ${info.signal}):\n${proc.tail()}`);
  } finally {
    if (proc.running) await proc.stop(2000);
  }
  const seconds = ((ended || performance.now()) - started) / 1000;
  const busy = machineCpu().busy - machineBefore.busy;
  const [{ lsn }] = (await pg.query(`select confirmed_flush_lsn::text lsn from pg_replication_slots where slot_name = $1`, [slot])).rows as [{ lsn: string }];
  progress(`pg_recvlogical: done in ${seconds.toFixed(2)} s (${slot} slot confirmed ${lsn}, end ${formatLsn(backlog.endLsn)})`);
  const other = busy - (walsender.seconds() ?? 0) - (clientCpu ?? 0);
  return {
    ...phase(seconds, backlog),
    walsender_cpu_seconds: walsender.seconds(),
    client_cpu_seconds: clientCpu === null ? null : round(clientCpu, 2),
    other_cpu_seconds: round(Math.max(0, other), 2),
  };
}

export interface SluicePhase extends Phase {
  /** until pg_replication_slots.confirmed_flush_lsn showed the end (status updates every 5 s) */
  slot_confirmed_seconds: number | null;
  peak_rss_mb: number;
  start_rss_mb: number;
  cpu_seconds: number;
  /** of which in the kernel (socket writes and reads) */
  cpu_system_seconds: number;
  walsender_cpu_seconds: number | null;
  redis_cpu_seconds: number;
  /** busy CPU of the machine during the measurement not accounted to Sluice, the walsender or Redis */
  other_cpu_seconds: number;
  transactions_applied: number;
  batches: number;
  profile: string | null;
}

export async function redisCpuSeconds(client: Redis): Promise<number> {
  const info = await client.info('cpu');
  const get = (k: string): number => Number(new RegExp(`^${k}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return get('used_cpu_user') + get('used_cpu_sys');
}

/** Where Sluice writes in a measurement: its config, and the CPU seconds the Redis server(s) used so far. */
export interface SluiceTarget {
  readonly config: SluiceConfig;
  redisCpuSeconds(): Promise<number>;
}

/** A standalone Redis as a measurement's target. */
export function standaloneTarget(pg: TestPostgres, redis: TestRedis, slot: string): SluiceTarget {
  return {
    config: benchConfig({ pgUrl: pg.url, redisUrl: redis.url, slot, sink: 'items', table: 'items' }),
    async redisCpuSeconds() {
      const admin = redis.client();
      try {
        return await redisCpuSeconds(admin);
      } finally {
        admin.disconnect();
      }
    },
  };
}

export async function measureSluice(pg: TestPostgres, target: SluiceTarget, backlog: Backlog, opts: BenchOptions, slot: string): Promise<SluicePhase> {
  const config = target.config;
  // pino's default destination is stdout, which carries the results: log to stderr
  const log = pino({ level: 'warn', base: { svc: 'sluice' } }, pino.destination(2));
  const redisCpuBefore = await target.redisCpuSeconds();
  const walsender = walsenderCpu(pg, slot);
  const profile = opts.profileDir !== null ? await startCpuProfile() : null;
  const rss = sampleRss(100);
  const machineBefore = machineCpu();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  let sluice: RunningSluice | null = null;
  let applied = 0;
  let slotConfirmed: number | null = null;
  let memory: { peakMb: number; startMb: number } | null = null;
  let cpuSeconds = 0;
  let cpuSystem = 0;
  let machineBusy = 0;
  let redisCpuApplied = 0;
  let profileFile: string | null = null;
  try {
    sluice = await startSluice(config, log);
    const s = sluice;
    let lastReport = performance.now();
    await pollUntil(
      async () => {
        await walsender.sample();
        const lastError = s.pipeline.lastError;
        if (s.pipeline.state === 'stopped' || (lastError !== null && s.pipeline.sourceState !== 'streaming')) throw new Error(`sluice failed: ${lastError}`);
        if (performance.now() - lastReport > 1000) {
          lastReport = performance.now();
          const done = Number(s.pipeline.confirmedLsn - (backlog.endLsn - BigInt(backlog.walBytes)));
          progress(`sluice: confirmed ${formatLsn(s.pipeline.confirmedLsn)} (${Math.max(0, Math.min(100, (100 * done) / backlog.walBytes)).toFixed(0)}% of the backlog's WAL)`);
        }
        return s.pipeline.confirmedLsn >= backlog.endLsn;
      },
      { intervalMs: 50, timeoutMs: 30 * 60_000, what: 'Sluice to confirm the end of the backlog' },
    );
    applied = performance.now();
    cpuSeconds = ownCpuSeconds(cpuBefore);
    cpuSystem = process.cpuUsage(cpuBefore).system / 1e6;
    machineBusy = machineCpu().busy - machineBefore.busy;
    redisCpuApplied = await target.redisCpuSeconds();
    memory = rss.stop();
    if (profile !== null) {
      profileFile = await profile.stop(join(opts.profileDir!, `sluice-catch-up-${backlog.changes}-${slot}-${Date.now()}.cpuprofile`));
      progress(`sluice: CPU profile written to ${profileFile}`);
    }
    progress(`sluice: applied and confirmed the backlog in ${((applied - started) / 1000).toFixed(2)} s; waiting for the slot to show it`);
    // the slot's confirmed_flush_lsn moves when Sluice sends a status update (every 5 s)
    await pollUntil(
      async () => {
        const { rows } = await pg.query(`select confirmed_flush_lsn::text lsn from pg_replication_slots where slot_name = $1`, [slot]);
        const lsn = (rows[0] as { lsn: string | null } | undefined)?.lsn ?? null;
        if (lsn === null || parseLsn(lsn) < backlog.endLsn) return false;
        slotConfirmed = performance.now();
        return true;
      },
      { intervalMs: 100, timeoutMs: 30_000, what: `the ${slot} slot's confirmed_flush_lsn to reach the end of the backlog` },
    ).catch((err: unknown) => progress(`sluice: ${(err as Error).message}`));
  } finally {
    memory ??= rss.stop();
    await sluice?.stop();
  }
  const metrics = sluice!.metrics;
  const transactionsApplied = (await metrics.transactions.get()).values.reduce((n, v) => n + v.value, 0);
  const batches = (await metrics.batches.get()).values.reduce((n, v) => n + v.value, 0);
  const redisCpu = redisCpuApplied - redisCpuBefore;
  const seconds = (applied - started) / 1000;
  return {
    ...phase(seconds, backlog),
    slot_confirmed_seconds: slotConfirmed === null ? null : round((slotConfirmed - started) / 1000),
    peak_rss_mb: round(memory.peakMb, 1),
    start_rss_mb: round(memory.startMb, 1),
    cpu_seconds: round(cpuSeconds, 2),
    cpu_system_seconds: round(cpuSystem, 2),
    walsender_cpu_seconds: walsender.seconds(),
    redis_cpu_seconds: round(redisCpu, 2),
    other_cpu_seconds: round(Math.max(0, machineBusy - cpuSeconds - (walsender.seconds() ?? 0) - redisCpu), 2),
    transactions_applied: transactionsApplied,
    batches,
    profile: profileFile,
  };
}

// ---------------------------------------------------------------------------------------------
// Verification: Redis holds exactly the rows of items (count, plus a sample compared field by field)

/** Reads what Sluice wrote: standalone Redis or every master of a Cluster. */
export interface KeyReader {
  /** how many keys match `pattern` */
  count(pattern: string): Promise<number>;
  mget(keys: string[]): Promise<(string | null)[]>;
}

export async function countKeys(client: Redis, pattern: string): Promise<number> {
  let keys = 0;
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 10_000);
    cursor = next;
    keys += batch.length;
  } while (cursor !== '0');
  return keys;
}

async function verify(pg: TestPostgres, redis: TestRedis, backlog: Backlog): Promise<{ keys: number; rows: number; sampled: number }> {
  const client = redis.client();
  try {
    return await verifyKeys(pg, { count: (p) => countKeys(client, p), mget: (k) => client.mget(k) }, backlog);
  } finally {
    client.disconnect();
  }
}

/** Redis holds exactly the rows of items: the count of keys, and 500 ids compared field by field. */
export async function verifyKeys(pg: TestPostgres, client: KeyReader, backlog: Backlog): Promise<{ keys: number; rows: number; sampled: number }> {
  const keys = await client.count('sluice:items:*');
  if (keys !== backlog.rows) throw new Error(`verification failed: Redis holds ${keys} sluice:items:* keys, Postgres ${backlog.rows} rows`);
  // a sample spread over the whole id range: inserted only, updated, deleted
  const ids = Array.from({ length: 500 }, (_, i) => 1 + Math.floor(((i + 0.5) * backlog.maxId) / 500));
  const { rows } = await pg.query('select id::text, name, price::text, qty from items where id = any($1::bigint[])', [ids]);
  const byId = new Map((rows as { id: string; name: string; price: string; qty: number }[]).map((r) => [r.id, r]));
  const values = await client.mget(ids.map((id) => `sluice:items:${id}`));
  ids.forEach((id, i) => {
    const row = byId.get(String(id));
    const value = values[i] ?? null;
    if (row === undefined) {
      if (value !== null) throw new Error(`verification failed: row ${id} was deleted, Redis still holds it`);
      return;
    }
    if (value === null) throw new Error(`verification failed: row ${id} is missing from Redis`);
    const v = JSON.parse(value) as { id: number; name: string; price: number; qty: number };
    if (String(v.id) !== row.id || v.name !== row.name || v.qty !== row.qty || v.price !== Number(row.price)) {
      throw new Error(`verification failed: row ${id}: Redis ${value}, Postgres ${JSON.stringify(row)}`);
    }
  });
  return { keys, rows: backlog.rows, sampled: ids.length };
}

/** The git revision measured ("+dirty" with uncommitted changes under src/). */
export function sourceRevision(): string | null {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${rev}+dirty` : rev;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------

export async function runCatchUp(opts: BenchOptions): Promise<Record<string, unknown>> {
  const n = opts.changes;
  const loadAtStart = loadavg()[0]!;
  progress(`catch-up: ${n} changes; starting Postgres and Redis`);
  let pg: TestPostgres | null = null;
  let redis: TestRedis | null = null;
  try {
    [pg, redis] = await Promise.all([startPostgres({ settings: PG_SETTINGS }), startRedis()]);
    progress(`Postgres ${pg.version} on ${pg.port}, Redis on ${redis.port}`);
    await pg.query('create extension pg_walinspect');
    await pg.query(SCHEMA_SQL);
    // one slot per measurement, all created before the backlog: every run reads the same WAL
    const runs = Array.from({ length: opts.runs }, (_, i) => ({ sluice: i === 0 ? 'sluice' : `sluice_${i + 1}`, twin: i === 0 ? 'twin' : `twin_${i + 1}` }));
    for (const r of runs) {
      await pg.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [r.sluice]);
      await pg.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [r.twin]);
    }

    const backlog = await writeBacklog(pg, n);
    progress(
      `backlog: ${backlog.changes} changes in ${backlog.transactions} transactions, ${(backlog.walBytes / 1048576).toFixed(0)} MiB of WAL, ` +
        `written in ${backlog.seconds.toFixed(1)} s; last commit ends at ${formatLsn(backlog.endLsn)}`,
    );
    await pg.query('checkpoint');

    const recvRuns: Awaited<ReturnType<typeof measurePgRecvlogical>>[] = [];
    const sluiceRuns: SluicePhase[] = [];
    let check: Awaited<ReturnType<typeof verify>> | null = null;
    for (const [i, r] of runs.entries()) {
      if (runs.length > 1) progress(`run ${i + 1} of ${runs.length}`);
      if (opts.waitQuiet) await waitForQuietMachine();
      recvRuns.push(await measurePgRecvlogical(pg, backlog, r.twin));
      const admin = redis.client();
      await admin.flushall();
      admin.disconnect();
      if (opts.waitQuiet) await waitForQuietMachine();
      const s = await measureSluice(pg, standaloneTarget(pg, redis, r.sluice), backlog, opts, r.sluice);
      if (s.transactions_applied !== backlog.transactions) {
        throw new Error(`Sluice applied ${s.transactions_applied} transactions, the backlog has ${backlog.transactions}`);
      }
      sluiceRuns.push(s);
      check = await verify(pg, redis, backlog);
      progress(`verified: ${check.keys} keys = ${check.rows} rows; ${check.sampled} sampled ids match`);
    }
    const recv = medianRun(recvRuns);
    const sluice = medianRun(sluiceRuns);

    return {
      scenario: 'catch-up',
      changes: backlog.changes,
      transactions: backlog.transactions,
      pg_recvlogical: recv,
      sluice,
      ratio: round(sluice.changes_per_sec / recv.changes_per_sec),
      backlog: {
        wal_mb: round(backlog.walBytes / 1048576, 1),
        write_seconds: round(backlog.seconds, 1),
        rows_after: backlog.rows,
        mix: { inserts: Math.round(n * 0.6), updates: Math.round(n * 0.3), deletes: n - Math.round(n * 0.6) - Math.round(n * 0.3) },
      },
      runs: runs.length,
      verified: check,
      machine: machineInfo(pg.version, loadAtStart),
      source: sourceRevision(),
    };
  } finally {
    progress('catch-up: stopping Postgres and Redis');
    await Promise.allSettled([pg?.stop(), redis?.stop()]);
  }
}
