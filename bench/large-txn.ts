// Scenario "large-txn": one transaction inserts N rows (default 1,000,000) while Sluice streams.
// How long until Redis holds the last row, and how much memory does Sluice take? Sluice applies
// a transaction larger than max_transaction_rows (default 20,000) in chunks, so its memory
// should not grow with the transaction.
//
//   1. fresh Postgres 15 + Redis; table `big(id bigint primary key, v text)`
//   2. Sluice (startSluice in-process, one string sink on big, default max_transaction_rows),
//      started and streaming before the transaction
//   3. `insert into big select g, md5(g::text) from generate_series(1, N) g` (one statement,
//      one transaction); wall clock from sending it until `sluice:big:<N>` exists (EXISTS every
//      50 ms), RSS sampled every 100 ms
//   4. DBSIZE minus Sluice's own keys must be N; 500 keys spread over the ids must equal the rows
//
// Postgres decodes a transaction only once it has committed (Sluice uses pgoutput protocol 1,
// without streaming of in-progress transactions), so the figure is the INSERT's own time plus
// Sluice's time after the commit; both are reported.

import { loadavg } from 'node:os';
import { join } from 'node:path';
import pgLib from 'pg';
import { pino } from 'pino';
import { startPostgres, type TestPostgres } from '../test/harness/postgres.js';
import { startRedis, type TestRedis } from '../test/harness/redis.js';
import { startSluice, type RunningSluice } from '../src/app.js';
import { isOwnKey, SLUICE_KEY_PATTERN } from '../src/core/keyspace.js';
import { PG_SETTINGS, redisCpuSeconds, sourceRevision, walsenderCpu } from './catch-up.js';
import {
  machineCpu,
  ownCpuSeconds,
  pollUntil,
  processCpuSeconds,
  progress,
  round,
  sampleRss,
  sleep,
  startCpuProfile,
  waitForQuietMachine,
  type BenchOptions,
  machineInfo,
  benchConfig,
} from './support.js';

export const DEFAULT_LARGE_TXN_ROWS = 1_000_000;

const SLOT = 'sluice';

export async function runLargeTxn(opts: BenchOptions): Promise<Record<string, unknown>> {
  const n = opts.rows ?? DEFAULT_LARGE_TXN_ROWS;
  const loadAtStart = loadavg()[0]!;
  progress(`large-txn: one transaction of ${n} rows; starting Postgres and Redis`);
  let pgs: TestPostgres | null = null;
  let redis: TestRedis | null = null;
  let sluice: RunningSluice | null = null;
  try {
    [pgs, redis] = await Promise.all([startPostgres({ settings: PG_SETTINGS }), startRedis()]);
    const pg = pgs;
    progress(`Postgres ${pg.version} on ${pg.port}, Redis on ${redis.port}`);
    await pg.query('create table big (id bigint primary key, v text)');

    const config = benchConfig({ pgUrl: pg.url, redisUrl: redis.url, slot: SLOT, sink: 'big', table: 'big' });
    const maxTransactionRows = config.sinks[0]!.max_transaction_rows;
    const log = pino({ level: 'warn', base: { svc: 'sluice' } }, pino.destination(2));
    sluice = await startSluice(config, log);
    const s = sluice;
    await pollUntil(() => s.pipeline.sourceState === 'streaming', { intervalMs: 20, timeoutMs: 30_000, what: 'Sluice to stream' });
    progress(`sluice: streaming (max_transaction_rows ${maxTransactionRows})`);
    // let the start-up garbage settle before the RSS baseline
    await sleep(1000);
    if (opts.waitQuiet) await waitForQuietMachine();

    // the transaction's own session, to sample its backend's CPU
    const writer = new pgLib.Client({ connectionString: pgs.url, application_name: 'bench-large-txn' });
    await writer.connect();
    const [{ pid: writerPid }] = (await writer.query('select pg_backend_pid() as pid')).rows as [{ pid: number }];
    let writerCpu: number | null = null;
    const admin = redis.client();
    const lastKey = `sluice:big:${n}`;
    const redisCpuBefore = await redisCpuSeconds(admin);
    const walsender = walsenderCpu(pg, SLOT);
    const profile = opts.profileDir !== null ? await startCpuProfile() : null;
    const rss = sampleRss(100);
    const machineBefore = machineCpu();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    let committed = 0;
    const insert = writer.query(`insert into big select g, md5(g::text) from generate_series(1, $1::bigint) g`, [n]).then(() => {
      committed = performance.now();
      progress(`insert: committed ${n} rows in ${((committed - started) / 1000).toFixed(2)} s`);
    });
    let insertError: unknown = null;
    insert.catch((err: unknown) => (insertError = err));
    let lastReport = performance.now();
    let done = 0;
    let memory: { peakMb: number; startMb: number };
    let profileFile: string | null = null;
    try {
      await pollUntil(
        async () => {
          if (insertError !== null) throw insertError;
          await walsender.sample();
          writerCpu = processCpuSeconds(writerPid) ?? writerCpu;
          if (s.pipeline.state === 'stopped') throw new Error(`sluice stopped: ${s.pipeline.lastError}`);
          if (performance.now() - lastReport > 5000) {
            lastReport = performance.now();
            progress(`waiting: ${committed === 0 ? 'insert running' : `committed, ${await admin.dbsize()} keys in Redis`}; RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MB`);
          }
          return (await admin.exists(lastKey)) === 1;
        },
        { intervalMs: 50, timeoutMs: 30 * 60_000, what: `${lastKey} to exist` },
      );
      done = performance.now();
    } finally {
      memory = rss.stop();
    }
    const cpuSeconds = ownCpuSeconds(cpuBefore);
    const machineBusy = machineCpu().busy - machineBefore.busy;
    const redisCpu = (await redisCpuSeconds(admin)) - redisCpuBefore;
    if (profile !== null) {
      profileFile = await profile.stop(join(opts.profileDir!, `sluice-large-txn-${n}-${Date.now()}.cpuprofile`));
      progress(`sluice: CPU profile written to ${profileFile}`);
    }
    await insert;
    writerCpu = processCpuSeconds(writerPid) ?? writerCpu;
    await writer.end();
    const seconds = (done - started) / 1000;
    const commitSeconds = (committed - started) / 1000;
    progress(`sluice: ${lastKey} exists after ${seconds.toFixed(2)} s (${(seconds - commitSeconds).toFixed(2)} s after the commit), peak RSS ${memory.peakMb.toFixed(0)} MB`);
    const transactions = (await s.metrics.transactions.get()).values.reduce((a, v) => a + v.value, 0);
    const batches = (await s.metrics.batches.get()).values.reduce((a, v) => a + v.value, 0);
    await s.stop();
    sluice = null;

    // verification: every row, and a sample field by field
    const dbsize = await admin.dbsize();
    let own = 0;
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', SLUICE_KEY_PATTERN, 'COUNT', 20_000);
      cursor = next;
      own += keys.filter((k) => !k.startsWith('sluice:big:') && isOwnKey(k)).length;
    } while (cursor !== '0');
    if (dbsize - own !== n) throw new Error(`verification failed: DBSIZE ${dbsize} minus ${own} own keys is ${dbsize - own}, the transaction inserted ${n} rows`);
    const ids = Array.from({ length: 500 }, (_, i) => 1 + Math.floor(((i + 0.5) * n) / 500));
    const values = await admin.mget(ids.map((id) => `sluice:big:${id}`));
    const { rows } = await pg.query('select id::text, v from big where id = any($1::bigint[])', [ids]);
    const byId = new Map((rows as { id: string; v: string }[]).map((r) => [r.id, r.v]));
    ids.forEach((id, i) => {
      const value = values[i] ?? null;
      if (value === null) throw new Error(`verification failed: row ${id} is missing from Redis`);
      const parsed = JSON.parse(value) as { id: number; v: string };
      if (String(parsed.id) !== String(id) || parsed.v !== byId.get(String(id))) throw new Error(`verification failed: row ${id}: Redis ${value}, Postgres ${byId.get(String(id))}`);
    });
    admin.disconnect();
    progress(`verified: DBSIZE ${dbsize} - ${own} own keys = ${n} rows; ${ids.length} sampled ids match`);

    return {
      scenario: 'large-txn',
      rows: n,
      seconds: round(seconds),
      rows_per_sec: Math.round(n / seconds),
      peak_rss_mb: round(memory.peakMb, 1),
      start_rss_mb: round(memory.startMb, 1),
      insert_commit_seconds: round(commitSeconds),
      after_commit_seconds: round(seconds - commitSeconds),
      after_commit_rows_per_sec: Math.round(n / (seconds - commitSeconds)),
      max_transaction_rows: maxTransactionRows,
      cpu_seconds: round(cpuSeconds, 2),
      insert_backend_cpu_seconds: writerCpu === null ? null : round(writerCpu, 2),
      walsender_cpu_seconds: walsender.seconds(),
      redis_cpu_seconds: round(redisCpu, 2),
      /** busy CPU of the machine not accounted to Sluice, the two Postgres backends or Redis (includes Postgres's background writers) */
      other_cpu_seconds: round(Math.max(0, machineBusy - cpuSeconds - (writerCpu ?? 0) - (walsender.seconds() ?? 0) - redisCpu), 2),
      transactions_applied: transactions,
      batches,
      profile: profileFile,
      verified: { dbsize, own_keys: own, data_keys: dbsize - own, sampled: ids.length },
      machine: machineInfo(pg.version, loadAtStart),
      source: sourceRevision(),
    };
  } finally {
    progress('large-txn: stopping Sluice, Postgres and Redis');
    await sluice?.stop().catch(() => undefined);
    await Promise.allSettled([pgs?.stop(), redis?.stop()]);
  }
}
