// Scenario "catch-up-cluster": the catch-up backlog (catch-up.ts) applied once into a 3-master
// Redis Cluster and once into a standalone Redis, in the same run, from the same WAL (one slot
// each, both created before the backlog). Prints both figures, the ratio cluster/standalone and
// the peak RSS of each phase.
//
// The Cluster phase runs first: peak RSS is this process's, and a phase after another one
// starts with whatever heap the first left; the Cluster's RSS is the figure with a goal.

import { loadavg } from 'node:os';
import { startPostgres, type TestPostgres } from '../test/harness/postgres.js';
import { startRedis, type TestRedis } from '../test/harness/redis.js';
import { startRedisCluster, type TestRedisCluster } from '../test/harness/redis-cluster.js';
import { parseConfig } from '../src/config/load.js';
import {
  countKeys,
  measureSluice,
  PG_SETTINGS,
  redisCpuSeconds,
  SCHEMA_SQL,
  sourceRevision,
  standaloneTarget,
  verifyKeys,
  writeBacklog,
  type SluicePhase,
  type SluiceTarget,
} from './catch-up.js';
import { machineInfo, medianRun, progress, round, waitForQuietMachine, type BenchOptions } from './support.js';
import { formatLsn } from '../src/core/lsn.js';

function clusterTarget(pg: TestPostgres, cluster: TestRedisCluster, slot: string): SluiceTarget {
  const yaml = `
source:
  url: ${pg.url}
  slot: ${slot}
  publication: sluice
redis:
  main:
    cluster: [${cluster.seedUrls.join(', ')}]
sinks:
  - name: items
    type: string
    tables: [items]
http:
  port: 0
log:
  level: warn
${process.env.BENCH_BATCH_MAX_COMMANDS ? `apply:\n  batch_max_commands: ${process.env.BENCH_BATCH_MAX_COMMANDS}\n` : ''}`;
  return {
    config: parseConfig(yaml, { file: 'bench-cluster.yaml', env: {} }),
    async redisCpuSeconds() {
      const client = cluster.client();
      try {
        await waitReady(client);
        let sum = 0;
        for (const node of client.nodes('master')) sum += await redisCpuSeconds(node);
        return sum;
      } finally {
        client.disconnect();
      }
    },
  };
}

async function waitReady(client: ReturnType<TestRedisCluster['client']>): Promise<void> {
  if (client.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve);
    client.once('end', () => reject(new Error('Redis Cluster client ended before it was ready')));
  });
}

async function withCluster<T>(cluster: TestRedisCluster, f: (client: ReturnType<TestRedisCluster['client']>) => Promise<T>): Promise<T> {
  const client = cluster.client();
  try {
    await waitReady(client);
    return await f(client);
  } finally {
    client.disconnect();
  }
}

export async function runCatchUpCluster(opts: BenchOptions): Promise<Record<string, unknown>> {
  const n = opts.changes;
  const loadAtStart = loadavg()[0]!;
  progress(`catch-up-cluster: ${n} changes; starting Postgres, Redis and a 3-master Redis Cluster`);
  let pg: TestPostgres | null = null;
  let redis: TestRedis | null = null;
  let cluster: TestRedisCluster | null = null;
  try {
    [pg, redis, cluster] = await Promise.all([startPostgres({ settings: PG_SETTINGS }), startRedis(), startRedisCluster({ masters: 3 })]);
    progress(`Postgres ${pg.version} on ${pg.port}, Redis on ${redis.port}, Cluster on ${cluster.nodes.map((x) => x.port).join(',')}`);
    await pg.query('create extension pg_walinspect');
    await pg.query(SCHEMA_SQL);
    const runs = Array.from({ length: opts.runs }, (_, i) => ({ cluster: `cluster_${i + 1}`, standalone: `standalone_${i + 1}` }));
    for (const r of runs) {
      await pg.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [r.cluster]);
      await pg.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [r.standalone]);
    }
    const backlog = await writeBacklog(pg, n);
    progress(`backlog: ${backlog.changes} changes in ${backlog.transactions} transactions; last commit ends at ${formatLsn(backlog.endLsn)}`);
    await pg.query('checkpoint');

    const c = cluster;
    const clusterRuns: SluicePhase[] = [];
    const standaloneRuns: SluicePhase[] = [];
    const verified: Record<string, unknown> = {};
    for (const [i, r] of runs.entries()) {
      if (runs.length > 1) progress(`run ${i + 1} of ${runs.length}`);
      await withCluster(c, async (client) => {
        for (const node of client.nodes('master')) await node.flushall();
      });
      if (opts.waitQuiet) await waitForQuietMachine();
      progress('cluster: applying the backlog');
      const cs = await measureSluice(pg, clusterTarget(pg, c, r.cluster), backlog, opts, r.cluster);
      if (cs.transactions_applied !== backlog.transactions) throw new Error(`Sluice applied ${cs.transactions_applied} transactions into the Cluster, the backlog has ${backlog.transactions}`);
      clusterRuns.push(cs);
      verified.cluster = await withCluster(c, (client) =>
        verifyKeys(
          pg!,
          {
            count: async (p) => {
              let sum = 0;
              for (const node of client.nodes('master')) sum += await countKeys(node, p);
              return sum;
            },
            mget: (keys) => Promise.all(keys.map((k) => client.get(k))),
          },
          backlog,
        ),
      );
      progress(`cluster: verified ${JSON.stringify(verified.cluster)}`);

      const admin = redis.client();
      await admin.flushall();
      admin.disconnect();
      if (opts.waitQuiet) await waitForQuietMachine();
      progress('standalone: applying the backlog');
      const ss = await measureSluice(pg, standaloneTarget(pg, redis, r.standalone), backlog, opts, r.standalone);
      if (ss.transactions_applied !== backlog.transactions) throw new Error(`Sluice applied ${ss.transactions_applied} transactions into Redis, the backlog has ${backlog.transactions}`);
      standaloneRuns.push(ss);
      const client = redis.client();
      try {
        verified.standalone = await verifyKeys(pg, { count: (p) => countKeys(client, p), mget: (k) => client.mget(k) }, backlog);
      } finally {
        client.disconnect();
      }
      progress(`standalone: verified ${JSON.stringify(verified.standalone)}`);
    }
    const clusterPhase = medianRun(clusterRuns);
    const standalonePhase = medianRun(standaloneRuns);
    return {
      scenario: 'catch-up-cluster',
      changes: backlog.changes,
      transactions: backlog.transactions,
      cluster: { masters: 3, ...clusterPhase },
      standalone: standalonePhase,
      ratio: round(clusterPhase.changes_per_sec / standalonePhase.changes_per_sec),
      peak_rss_mb: { cluster: clusterPhase.peak_rss_mb, standalone: standalonePhase.peak_rss_mb },
      // each run's own figures (the phases alternate: cluster, standalone, cluster, …)
      each_run: clusterRuns.map((c, i) => ({
        cluster: { changes_per_sec: c.changes_per_sec, cpu_seconds: c.cpu_seconds, peak_rss_mb: c.peak_rss_mb, other_cpu_seconds: c.other_cpu_seconds },
        standalone: { changes_per_sec: standaloneRuns[i]!.changes_per_sec, cpu_seconds: standaloneRuns[i]!.cpu_seconds, peak_rss_mb: standaloneRuns[i]!.peak_rss_mb, other_cpu_seconds: standaloneRuns[i]!.other_cpu_seconds },
        ratio: round(c.changes_per_sec / standaloneRuns[i]!.changes_per_sec),
      })),
      runs: runs.length,
      verified,
      machine: machineInfo(pg.version, loadAtStart),
      source: sourceRevision(),
    };
  } finally {
    progress('catch-up-cluster: stopping Postgres, Redis and the Cluster');
    await Promise.allSettled([pg?.stop(), redis?.stop(), cluster?.stop()]);
  }
}
