// Scenario "two-instances": past one walsender. Two Sluice instances, each with its own slot and
// publication, on disjoint tables of one database, share a backlog; one instance reads the whole
// backlog from a slot of its own in the same run. Combined rate beside one instance's rate.
//
//   1. fresh Postgres (the catch-up settings) + one Redis; the catch-up schema, then tables
//      a.items and b.items (like items); publications pub_all (both), pub_a, pub_b; slots
//      one (pub_all), inst_a, inst_b, all created before any write
//   2. the catch-up backlog (bench/catch-up.ts: same mix and transaction sizes), --changes split
//      in halves: the first half into a.items, then the second into b.items (the writer's
//      procedure names `items`; the session's search_path points it at a or b)
//   3. one instance, slot one, one sink on both tables; then FLUSHALL; then two instances side
//      by side, each as its own process (own slot, publication, state schema, one sink on its
//      table, its own Redis connection name). Each rate is measured from outside (bench/instances.ts): from the start of its replication stream
//      answer until the confirmed LSN reaches the end of that instance's part of the backlog;
//      the combined rate is both instances' changes over the union of their windows
//   4. verification after each: Redis holds one key per row of each table

import { loadavg } from 'node:os';
import pgLib from 'pg';
import type { TestPostgres } from '../test/harness/postgres.js';
import type { TestRedis } from '../test/harness/redis.js';
import { formatLsn } from '../src/core/lsn.js';
import { PG_SETTINGS, SCHEMA_SQL, redisCpuSeconds, sourceRevision, walsenderCpu, writeBacklog, type Backlog } from './catch-up.js';
import { catchUpWindow, instanceYaml, spawnSluice, startServers, streamOpening, type CatchUpWindow, type Scrape, type SluiceProcess } from './instances.js';
import { machineCpu, machineInfo, progress, round, waitForQuietMachine, type BenchOptions } from './support.js';

const KEY = 's:{schema}:{pk}';

/** The TestPostgres of `pg` whose queries resolve unqualified names in `schema` first (then public). */
function inSchema(pg: TestPostgres, schema: string): { pg: TestPostgres; end(): Promise<void> } {
  const pool = new pgLib.Pool({ connectionString: pg.url, options: `-c search_path=${schema},public`, max: 4 });
  return { pg: { ...pg, query: (sql: string, params?: unknown[]) => pool.query(sql, params) }, end: () => pool.end() };
}

async function countKeys(redis: TestRedis, pattern: string): Promise<number> {
  const c = redis.client();
  try {
    let n = 0;
    let cursor = '0';
    do {
      const [next, batch] = await c.scan(cursor, 'MATCH', pattern, 'COUNT', 10_000);
      cursor = next;
      n += batch.length;
    } while (cursor !== '0');
    return n;
  } finally {
    c.disconnect();
  }
}

async function verify(redis: TestRedis, parts: { schema: string; backlog: Backlog }[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { schema, backlog } of parts) {
    const keys = await countKeys(redis, `s:${schema}:*`);
    if (keys !== backlog.rows) throw new Error(`verification failed: Redis holds ${keys} s:${schema}:* keys, ${schema}.items ${backlog.rows} rows`);
    out[`${schema}.items`] = keys;
  }
  return out;
}

export async function runTwoInstances(opts: BenchOptions): Promise<Record<string, unknown>> {
  const half = Math.floor(opts.changes / 2);
  const loadAtStart = loadavg()[0]!;
  progress(`two-instances: ${2 * half} changes, half on a.items, half on b.items; starting Postgres and Redis`);
  let pg: TestPostgres | null = null;
  let redis: TestRedis | null = null;
  const procs: SluiceProcess[] = [];
  try {
    ({ pg, redis } = await startServers(PG_SETTINGS));
    await pg.query(SCHEMA_SQL);
    await pg.query(`create schema a; create schema b;
      create table a.items (like public.items including all);
      create table b.items (like public.items including all);
      create publication pub_all for table a.items, b.items;
      create publication pub_a for table a.items;
      create publication pub_b for table b.items;`);
    for (const slot of ['one', 'inst_a', 'inst_b']) await pg.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    const parts: { schema: string; backlog: Backlog }[] = [];
    for (const schema of ['a', 'b']) {
      const scoped = inSchema(pg, schema);
      try {
        parts.push({ schema, backlog: await writeBacklog(scoped.pg, half) });
      } finally {
        await scoped.end();
      }
      progress(`backlog ${schema}.items: ${parts.at(-1)!.backlog.transactions} transactions, ends at ${formatLsn(parts.at(-1)!.backlog.endLsn)}`);
    }
    const [a, b] = parts as [{ schema: string; backlog: Backlog }, { schema: string; backlog: Backlog }];
    await pg.query('checkpoint');
    const admin = redis.client();

    // one instance, the whole backlog
    if (opts.waitQuiet) await waitForQuietMachine();
    let redisBefore = await redisCpuSeconds(admin);
    let machineBefore = machineCpu();
    const one = await spawnSluice('one', instanceYaml({ pgUrl: pg.url, redisUrl: redis.url, slot: 'one', publication: 'pub_all', stateSchema: 'st_one', sinks: [{ name: 'items', tables: ['a.items', 'b.items'], key: KEY }] }), opts.profileDir);
    procs.push(one);
    // each slot's walsender: it decodes all of the WAL, whichever tables its publication has
    const oneWalsender = walsenderCpu(pg, 'one');
    const single = await catchUpWindow(one, streamOpening(one, await one.ready()), b.backlog.endLsn, 1, () => oneWalsender.sample());
    const singleRedisCpu = (await redisCpuSeconds(admin)) - redisBefore;
    const singleBusy = machineCpu().busy - machineBefore.busy;
    await one.stop();
    const verifiedSingle = await verify(redis, parts);
    progress(`one instance: ${single.changes_per_sec} changes/s; verified ${JSON.stringify(verifiedSingle)}`);
    await admin.flushall();

    // two instances side by side, each on its half
    if (opts.waitQuiet) await waitForQuietMachine();
    redisBefore = await redisCpuSeconds(admin);
    machineBefore = machineCpu();
    const pair = await Promise.all(
      parts.map(({ schema }) =>
        spawnSluice(`inst_${schema}`, instanceYaml({ pgUrl: pg!.url, redisUrl: redis!.url, redisName: `redis_${schema}`, slot: `inst_${schema}`, publication: `pub_${schema}`, stateSchema: `st_${schema}`, sinks: [{ name: `items_${schema}`, tables: [`${schema}.items`], key: KEY }] }), opts.profileDir),
      ),
    );
    procs.push(...pair);
    // each window opens when that instance's replication stream started
    const firsts: Scrape[] = await Promise.all(pair.map(async (p) => streamOpening(p, await p.ready())));
    const pairWalsenders = parts.map(({ schema }) => walsenderCpu(pg!, `inst_${schema}`));
    const windows: CatchUpWindow[] = await Promise.all(pair.map((p, i) => catchUpWindow(p, firsts[i]!, parts[i]!.backlog.endLsn, 1, () => pairWalsenders[i]!.sample())));
    const pairRedisCpu = (await redisCpuSeconds(admin)) - redisBefore;
    const pairBusy = machineCpu().busy - machineBefore.busy;
    // the union of the windows: from the first opening to the last end
    const opened = Math.min(...firsts.map((f) => f.at));
    const ended = Math.max(...windows.map((w, i) => firsts[i]!.at + w.seconds * 1000));
    const combinedChanges = windows.reduce((n, w) => n + w.changes, 0);
    const combinedSeconds = (ended - opened) / 1000;
    await Promise.all(pair.map((p) => p.stop()));
    const verifiedPair = await verify(redis, parts);
    admin.disconnect();
    const combinedRate = Math.round(combinedChanges / combinedSeconds);
    progress(`two instances: ${combinedRate} changes/s combined; verified ${JSON.stringify(verifiedPair)}`);
    return {
      scenario: 'two-instances',
      changes: a.backlog.changes + b.backlog.changes,
      transactions: a.backlog.transactions + b.backlog.transactions,
      one_instance: { ...single, walsender_cpu_seconds: oneWalsender.seconds(), redis_cpu_seconds: round(singleRedisCpu, 2), machine_busy_cpu_seconds: round(singleBusy, 2) },
      two_instances: {
        combined: { seconds: round(combinedSeconds), changes: combinedChanges, changes_per_sec: combinedRate },
        a: { ...windows[0]!, walsender_cpu_seconds: pairWalsenders[0]!.seconds() },
        b: { ...windows[1]!, walsender_cpu_seconds: pairWalsenders[1]!.seconds() },
        redis_cpu_seconds: round(pairRedisCpu, 2),
        machine_busy_cpu_seconds: round(pairBusy, 2),
      },
      ratio: round(combinedRate / single.changes_per_sec),
      backlog: { wal_mb: round((a.backlog.walBytes + b.backlog.walBytes) / 1048576, 1), rows_after: a.backlog.rows + b.backlog.rows },
      verified: verifiedPair,
      machine: machineInfo(pg.version, loadAtStart),
      source: sourceRevision(),
    };
  } finally {
    progress('two-instances: stopping Sluice, Postgres and Redis');
    for (const p of procs) await p.stop().catch(() => undefined);
    await Promise.allSettled([pg?.stop(), redis?.stop()]);
  }
}
