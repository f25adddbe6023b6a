// Everything a fault run needs: Postgres (a primary and a synchronous standby that can take over,
// postgres-pair.ts) and a proxy in front of the primary, a standalone Redis with AOF
// behind a proxy ("main"), a standalone Redis without persistence ("volatile"), a Redis Cluster
// with a replica per master, a Sentinel setup, and Sluice as a child process (bin/sluice start),
// its output appended to a log file across restarts.

import { appendFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Cluster, RedisOptions } from 'ioredis';
import type { TestPostgres } from '../harness/postgres.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis-cluster.js';
import { startRedisSentinel, type TestRedisSentinel } from '../harness/redis-sentinel.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { FaultPostgres } from './postgres-pair.js';
import { SCHEMA_SQL } from './schema.js';
import type { Conn, RedisView, SinkSpec } from './sinks.js';

/** a port free on 127.0.0.1 now (the fault suite imports nothing from src/) */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const a = server.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface SluiceRunner {
  readonly proc: ManagedProcess | undefined;
  readonly running: boolean;
  readonly starts: number;
  /** lines of every run so far matching each pattern of NOTABLE */
  readonly notable: Record<string, number>;
  /**
   * per sink, the backfills Sluice logged as started, done and failed (all runs); `open`: the last
   * one logged started has not ended (one cut short by a restart is resumed with a new "started")
   */
  readonly backfills: Map<string, { started: number; done: number; failed: number; open: boolean; lastError?: string }>;
  start(): Promise<void>;
  /** SIGKILL, waits until it is gone */
  kill(): Promise<void>;
  /** SIGTERM (drain), then SIGKILL after the grace time */
  stop(): Promise<void>;
  /** the last lines of the current process */
  tail(n?: number): string;
}

export interface FaultEnv {
  dir: string;
  /** the primary now: the writer, the probe and the checker follow it across takeovers */
  readonly pg: TestPostgres;
  /** the primary and its standby */
  postgres: FaultPostgres;
  pgProxy: TcpProxy;
  main: TestRedis;
  mainProxy: TcpProxy;
  volatile: TestRedis;
  cluster: TestRedisCluster;
  sentinel: TestRedisSentinel;
  views: Record<Conn, RedisView>;
  sluice: SluiceRunner;
  configPath: string;
  httpPort: number;
  /** a line in run.log (and the console with --verbose) */
  log(line: string): void;
  stop(): Promise<void>;
}

/** lines worth counting in Sluice's output */
export const NOTABLE: Record<string, RegExp> = {
  'data loss noticed': /"msg":"Redis (lost writes|is behind the replication slot)/,
  're-backfills started': /backfilling the sink again/,
  'backfill attempts retried': /backfill attempt failed: trying again/,
  'orphan sweeps done': /"msg":"orphan sweep done"/,
  'Redis write retries': /Redis write failed; will retry/,
  'applied positions not published': /could not publish applied positions/,
  'error lines': /"level":(50|60)\b/,
};

const VIEW_OPTS: RedisOptions = {
  lazyConnect: false,
  maxRetriesPerRequest: 0,
  // commands wait (up to commandTimeout) while the connection is being made again
  enableOfflineQueue: true,
  connectTimeout: 2000,
  commandTimeout: 10_000,
  retryStrategy: () => 200,
};

function standaloneView(conn: Conn, port: () => number): RedisView {
  let client: Redis | undefined;
  let clientPort = 0;
  const current = (): Redis => {
    const p = port();
    if (!client || clientPort !== p) {
      client?.disconnect();
      client = new Redis({ host: '127.0.0.1', port: p, ...VIEW_OPTS });
      client.on('error', () => {});
      clientPort = p;
    }
    return client;
  };
  return {
    conn,
    get client() {
      return current();
    },
    async scan(match) {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await current().scan(cursor, 'MATCH', match, 'COUNT', 2000);
        cursor = next;
        keys.push(...found);
      } while (cursor !== '0');
      return keys;
    },
    close: () => client?.disconnect(),
  } as RedisView & { close(): void };
}

function clusterView(cluster: TestRedisCluster): RedisView {
  const client: Cluster = cluster.client({ enableAutoPipelining: true, scaleReads: 'master', redisOptions: { ...VIEW_OPTS } });
  return {
    conn: 'cluster',
    client,
    async scan(match) {
      const keys = new Set<string>();
      // the masters as the cluster reports them now (the client's idea may lag a failover)
      const masters = (await cluster.topology()).filter((n) => n.role === 'master' && !n.failed);
      for (const m of masters) {
        const node = new Redis({ host: '127.0.0.1', port: m.port, ...VIEW_OPTS, lazyConnect: true, retryStrategy: () => null });
        node.on('error', () => {});
        try {
          await node.connect();
          let cursor = '0';
          do {
            const [next, found] = await node.scan(cursor, 'MATCH', match, 'COUNT', 2000);
            cursor = next;
            for (const k of found) keys.add(k);
          } while (cursor !== '0');
        } finally {
          node.disconnect();
        }
      }
      return [...keys];
    },
  };
}

function yamlConfig(env: { pgUrl: string; failoverSlot: boolean; mainUrl: string; volatileUrl: string; clusterUrls: string[]; sentinelName: string; sentinelUrls: string[]; httpPort: number }, sinks: readonly SinkSpec[]): string {
  const sinkLines = sinks.map((s) => `  - ${JSON.stringify({ name: s.name, type: s.type, redis: s.conn, tables: [s.table], ...s.options })}`);
  return [
    'source:',
    `  url: ${env.pgUrl}`,
    ...(env.failoverSlot ? ['  failover_slot: true'] : []),
    'redis:',
    '  main:',
    `    url: ${env.mainUrl}`,
    '  volatile:',
    `    url: ${env.volatileUrl}`,
    '  cluster:',
    `    cluster: ${JSON.stringify(env.clusterUrls)}`,
    '  sentinel:',
    `    sentinel: ${JSON.stringify({ name: env.sentinelName, nodes: env.sentinelUrls })}`,
    'sinks:',
    ...sinkLines,
    'http:',
    `  port: ${env.httpPort}`,
    'log:',
    '  level: info',
    '',
  ].join('\n');
}

export async function startFaultEnv(dir: string, verbose: boolean, pgVersion: 15 | 18 = 18): Promise<FaultEnv> {
  const runLog = join(dir, 'run.log');
  const log = (line: string): void => {
    const text = `${new Date().toISOString()} ${line}`;
    appendFileSync(runLog, `${text}\n`);
    if (verbose) console.log(text);
  };
  const [postgres, main, volatile, cluster, sentinel] = await Promise.all([
    FaultPostgres.start(pgVersion, dir),
    // nothing acknowledged may be lost across a kill -9: fsync before every reply
    startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] }),
    startRedis(),
    startRedisCluster({ replicasPerMaster: 1 }),
    startRedisSentinel(),
  ]);
  const [pgProxy, mainProxy] = await Promise.all([startTcpProxy({ targetPort: postgres.primary.port }), startTcpProxy({ targetPort: main.port })]);
  await postgres.primary.query(SCHEMA_SQL);
  const httpPort = await freePort();

  const views: Record<Conn, RedisView> = {
    main: standaloneView('main', () => main.port),
    volatile: standaloneView('volatile', () => volatile.port),
    sentinel: standaloneView('sentinel', () => sentinel.master.port),
    cluster: clusterView(cluster),
  };

  const sluiceLog = join(dir, 'sluice.log');
  let proc: ManagedProcess | undefined;
  let starts = 0;
  const notable: Record<string, number> = Object.fromEntries(Object.keys(NOTABLE).map((k) => [k, 0]));
  const backfills = new Map<string, { started: number; done: number; failed: number; open: boolean; lastError?: string }>();
  const trackBackfill = (line: string): void => {
    const m = /"msg":"backfill (started|done|failed)"/.exec(line);
    if (!m) return;
    let e: { sink?: string; err?: string };
    try {
      e = JSON.parse(line) as { sink?: string; err?: string };
    } catch {
      return;
    }
    if (!e.sink) return;
    const b = backfills.get(e.sink) ?? { started: 0, done: 0, failed: 0, open: false };
    b.open = m[1] === 'started';
    if (m[1] === 'started') b.started++;
    else if (m[1] === 'done') b.done++;
    else {
      b.failed++;
      if (e.err) b.lastError = e.err;
    }
    backfills.set(e.sink, b);
  };
  const configPath = join(dir, 'sluice.yaml');
  const sluice: SluiceRunner = {
    get proc() {
      return proc;
    },
    get running() {
      return proc?.running ?? false;
    },
    get starts() {
      return starts;
    },
    notable,
    backfills,
    async start() {
      starts++;
      appendFileSync(sluiceLog, `----- ${new Date().toISOString()} start #${starts}\n`);
      const p = spawnSluice(['start', '-c', configPath], {
        onLine: (line, stream) => {
          appendFileSync(sluiceLog, stream === 'stderr' ? `[err] ${line}\n` : `${line}\n`);
          for (const [k, re] of Object.entries(NOTABLE)) if (re.test(line)) notable[k]!++;
          trackBackfill(line);
        },
      });
      proc = p;
      await p.waitForLine(/sluice started/, 120_000);
    },
    async kill() {
      if (proc?.running) await proc.kill('SIGKILL');
    },
    async stop() {
      if (proc?.running) await proc.stop(20_000);
    },
    tail: (n = 30) => proc?.tail(n) ?? '',
  };

  const stop = async (): Promise<void> => {
    await sluice.stop().catch(() => undefined);
    for (const v of Object.values(views)) (v as RedisView & { close?: () => void }).close?.();
    await Promise.all([pgProxy.stop(), mainProxy.stop()]);
    await Promise.all([postgres.stop(), main.stop(), volatile.stop(), cluster.stop(), sentinel.stop()].map((p) => p.catch(() => undefined)));
  };

  return {
    dir,
    get pg() {
      return postgres.primary;
    },
    postgres,
    pgProxy,
    main,
    mainProxy,
    volatile,
    cluster,
    sentinel,
    views,
    sluice,
    configPath,
    httpPort,
    log,
    stop,
  };
}

/** writes sluice.yaml: Sluice reaches Postgres and the main Redis through the proxies */
export function writeSluiceConfig(env: FaultEnv, sinks: readonly SinkSpec[]): void {
  writeFileSync(
    env.configPath,
    yamlConfig(
      {
        pgUrl: `postgres://postgres@127.0.0.1:${env.pgProxy.port}/postgres`,
        failoverSlot: env.postgres.failoverSlot,
        mainUrl: `redis://127.0.0.1:${env.mainProxy.port}`,
        volatileUrl: env.volatile.url,
        clusterUrls: env.cluster.nodes.map((n) => n.url),
        sentinelName: env.sentinel.masterName,
        sentinelUrls: env.sentinel.sentinelUrls,
        httpPort: env.httpPort,
      },
      sinks,
    ),
  );
}
