// Scenario "wait": how long does an application wait to read its own write, with a steady writer
// on another table? The recipe: commit (synchronous_commit=on), SELECT pg_current_wal_lsn(),
// wait, read Redis. Measured both ways an application waits:
//
//   api_wait   GET /api/wait?lsn=…&sinks=prices (Sluice writes a fence when the stream has not
//              brought the LSN yet, so the wait never depends on a keepalive)
//   wait_for   SluiceClient.waitFor(lsn) from sluice/client (Redis only: subscribed to the sink's
//              progress; it cannot write a fence)
//
//   1. fresh Postgres + Redis; tables products (2 rows), noise_pub (in a sink), noise_unpub (in
//      no sink, so not in the publication); Sluice in-process with sinks prices (products) and
//      noise (noise_pub), HTTP on
//   2. phase "published": a writer commits into noise_pub at a steady rate (BENCH_WRITER_RATE,
//      default 200/s) while N rounds (--rounds, default 500) each update a product, read the LSN,
//      wait (rounds alternate api_wait and wait_for) and GET the product's key: it must hold the
//      update (a stale read fails the scenario)
//   3. phase "unpublished": the same with the writer on noise_unpub. Postgres sends nothing for
//      those commits, so only a fence or a keepalive moves the sinks: api_wait gets N/2 rounds,
//      wait_for only --rounds-unpublished (default 20), since each waits for a keepalive
//
// Wait times are wall clock from the call until it resolved (HTTP: the answer read), in ms.

import { loadavg } from 'node:os';
import pgLib from 'pg';
import { pino } from 'pino';
import { startPostgres, type TestPostgres } from '../test/harness/postgres.js';
import { startRedis, type TestRedis } from '../test/harness/redis.js';
import { startSluice, type RunningSluice } from '../src/app.js';
import { parseConfig } from '../src/config/load.js';
import { freePort } from '../src/util/free-port.js';
import { SluiceClient } from '../src/client/index.js';
import { sourceRevision } from './catch-up.js';
import { summarize } from './stats.js';
import { machineInfo, pollUntil, positiveEnv, progress, sleep, waitForQuietMachine, type BenchOptions } from './support.js';

export const DEFAULT_WAIT_ROUNDS = 500;
const DEFAULT_UNPUBLISHED_CLIENT_ROUNDS = 20;
const DEFAULT_WRITER_RATE = 200;
/** the goal for the wait's p99 with a steady writer on another table */
const GOAL_P99_MS = 50;

/** Commits one row after another into `table` at `rate` per second (catching up when late). */
function steadyWriter(url: string, table: string, rate: number): { stop(): Promise<{ commits: number; per_sec: number }> } {
  let running = true;
  let n = 0;
  const c = new pgLib.Client({ connectionString: url, options: '-c synchronous_commit=on', application_name: 'bench-writer' });
  const started = performance.now();
  const done = (async () => {
    await c.connect();
    while (running) {
      const due = Math.floor(((performance.now() - started) * rate) / 1000);
      if (n < due) {
        await c.query(`insert into ${table} (v) values ('x')`);
        n++;
      } else {
        await sleep(Math.max(1, ((n + 1) * 1000) / rate - (performance.now() - started)));
      }
    }
    await c.end();
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { commits: n, per_sec: Math.round(n / ((performance.now() - started) / 1000)) };
    },
  };
}

export async function runWait(opts: BenchOptions): Promise<Record<string, unknown>> {
  const rounds = opts.rounds ?? DEFAULT_WAIT_ROUNDS;
  const unpublishedClientRounds = positiveEnv('BENCH_WAIT_UNPUBLISHED_ROUNDS', DEFAULT_UNPUBLISHED_CLIENT_ROUNDS);
  const rate = positiveEnv('BENCH_WRITER_RATE', DEFAULT_WRITER_RATE);
  const loadAtStart = loadavg()[0]!;
  progress(`wait: ${rounds} rounds per phase, writer at ${rate} commits/s; starting Postgres and Redis`);
  let pgs: TestPostgres | null = null;
  let redis: TestRedis | null = null;
  let sluice: RunningSluice | null = null;
  let client: SluiceClient | null = null;
  let app: pgLib.Client | null = null;
  try {
    [pgs, redis] = await Promise.all([startPostgres(), startRedis()]);
    const pg = pgs;
    progress(`Postgres ${pg.version} on ${pg.port}, Redis on ${redis.port}`);
    await pg.query(`create table products (id int primary key, price int);
      create table noise_pub (id bigserial primary key, v text);
      create table noise_unpub (id bigserial primary key, v text);
      insert into products values (1, 0), (2, 0);`);
    const port = await freePort();
    const config = parseConfig(
      `source:
  url: ${pg.url}
redis:
  main:
    url: ${redis.url}
sinks:
  - name: prices
    type: string
    tables: [products]
    key: "price:{id}"
  - name: noise
    type: string
    tables: [noise_pub]
http:
  port: ${port}
log:
  level: warn
`,
      { file: 'bench.yaml', env: {} },
    );
    const log = pino({ level: 'warn', base: { svc: 'sluice' } }, pino.destination(2));
    sluice = await startSluice(config, log);
    const s = sluice;
    await pollUntil(() => s.pipeline.sourceState === 'streaming', { intervalMs: 20, timeoutMs: 30_000, what: 'Sluice to stream' });
    const base = `http://127.0.0.1:${port}`;
    client = new SluiceClient({ redis: redis.url, sinks: ['prices'] });
    const c = client;
    const admin = redis.client();
    app = new pgLib.Client({ connectionString: pg.url, options: '-c synchronous_commit=on', application_name: 'bench-app' });
    await app.connect();
    const a = app;
    let price = 0;
    // warm up both paths (connections, subscriptions, JIT)
    for (let i = 0; i < 20; i++) {
      await a.query(`update products set price = $1 where id = 1`, [++price]);
      const lsn = (await a.query<{ l: string }>(`select pg_current_wal_lsn()::text as l`)).rows[0]!.l;
      await (await fetch(`${base}/api/wait?lsn=${lsn}&sinks=prices`)).json();
      await c.waitFor(lsn, { timeoutMs: 60_000 });
    }

    const phase = async (table: string, httpRounds: number, clientRounds: number): Promise<Record<string, unknown>> => {
      if (opts.waitQuiet) await waitForQuietMachine();
      const fencesBefore = (await s.metrics.fences.get()).values.reduce((x, v) => x + v.value, 0);
      const writer = steadyWriter(pg.url, table, rate);
      await sleep(500); // the writer at its pace before the first round
      const http: number[] = [];
      const viaClient: number[] = [];
      let stale = 0;
      let writerResult: { commits: number; per_sec: number };
      try {
        for (let i = 0; http.length < httpRounds || viaClient.length < clientRounds; i++) {
          const useClient = viaClient.length < clientRounds && (i % 2 === 1 || http.length >= httpRounds);
          const id = 1 + (i % 2);
          await a.query(`update products set price = $1 where id = $2`, [++price, id]);
          const lsn = (await a.query<{ l: string }>(`select pg_current_wal_lsn()::text as l`)).rows[0]!.l;
          const started = performance.now();
          if (useClient) {
            await c.waitFor(lsn, { timeoutMs: 60_000 });
            viaClient.push(performance.now() - started);
          } else {
            const res = await fetch(`${base}/api/wait?lsn=${lsn}&sinks=prices&timeout_ms=60000`);
            await res.json();
            if (res.status !== 200) throw new Error(`/api/wait answered ${res.status}`);
            http.push(performance.now() - started);
          }
          if ((await admin.get(`price:${id}`)) !== `{"id":${id},"price":${price}}`) stale++;
          if ((i + 1) % 100 === 0) progress(`${table}: ${i + 1} rounds`);
        }
      } finally {
        writerResult = await writer.stop();
      }
      if (stale > 0) throw new Error(`${stale} stale reads after a wait`);
      const fences = (await s.metrics.fences.get()).values.reduce((x, v) => x + v.value, 0) - fencesBefore;
      const out = { writer_table: table, writer: writerResult, api_wait: summarize(http), wait_for: summarize(viaClient), fences_written: fences, stale_reads: stale };
      progress(`${table}: api_wait p50 ${out.api_wait.p50_ms} ms p99 ${out.api_wait.p99_ms} ms; wait_for p50 ${out.wait_for.p50_ms} ms p99 ${out.wait_for.p99_ms} ms`);
      return out;
    };

    const published = await phase('noise_pub', Math.ceil(rounds / 2), Math.floor(rounds / 2));
    const unpublished = await phase('noise_unpub', Math.ceil(rounds / 2), Math.min(unpublishedClientRounds, Math.floor(rounds / 2)));
    admin.disconnect();
    return {
      scenario: 'wait',
      rounds_per_phase: rounds,
      writer_rate_target: rate,
      goal_p99_ms: GOAL_P99_MS,
      published,
      unpublished,
      machine: machineInfo(pg.version, loadAtStart),
      source: sourceRevision(),
    };
  } finally {
    progress('wait: stopping Sluice, Postgres and Redis');
    await client?.close();
    await app?.end().catch(() => undefined);
    await sluice?.stop().catch(() => undefined);
    await Promise.allSettled([pgs?.stop(), redis?.stop()]);
  }
}
