import pg from 'pg';
import type { SluiceConfig } from './config/schema.js';
import { prepareSource } from './pg/source-setup.js';
import { SourceMonitor } from './pg/source-monitor.js';
import { createRedisClient, type RedisClient } from './redis/connect.js';
import { createSink } from './sinks/index.js';
import { SinkFunctions } from './functions/index.js';
import { Pipeline, type SinkSpec } from './pipeline/pipeline.js';
import { Metrics } from './metrics.js';
import type { Logger } from './util/log.js';
import { startHttpServer, type HttpServer } from './http/server.js';
import { formatLsn, parseLsn, type Lsn } from './core/lsn.js';
import { BackfillManager } from './backfill/backfill-manager.js';
import { errorMessage, SluiceError } from './util/errors.js';
import { explainPgConnectError, pgClientConfig, pgTlsWarning } from './pg/connection-config.js';
import { describePgUrl } from './pg/url.js';

export interface RunningSluice {
  readonly config: SluiceConfig;
  readonly pipeline: Pipeline;
  readonly metrics: Metrics;
  readonly monitor: SourceMonitor;
  readonly http: HttpServer | null;
  readonly redis: ReadonlyMap<string, RedisClient>;
  readonly backfills: BackfillManager;
  stop(): Promise<void>;
}

/** The `sluice start` process: prepares Postgres, connects Redis, runs the pipeline and HTTP. */
export async function startSluice(config: SluiceConfig, log: Logger, opts: { configDir?: string } = {}): Promise<RunningSluice> {
  // function files are relative to the config file's directory
  const configDir = opts.configDir ?? process.cwd();
  const sinks: SinkSpec[] = config.sinks.map((s) => {
    const functions = SinkFunctions.fromConfig(s, configDir);
    return { sink: createSink(s), redis: s.redis!, tables: s.tables, actions: s.actions, functions: functions.hasAny ? functions : undefined };
  });
  const tlsWarning = pgTlsWarning(config.source.url);
  if (tlsWarning !== undefined) log.warn(tlsWarning);
  const admin = new pg.Client(pgClientConfig(config.source.url, { application_name: 'sluice-setup' }));
  await admin.connect().catch((err: unknown) => {
    throw new SluiceError('pg_connect', `cannot connect to Postgres at ${describePgUrl(config.source.url)}: ${explainPgConnectError(err, config.source.url)}`, { cause: err });
  });
  let slotConfirmed: Lsn | null = null;
  try {
    const source = await prepareSource(
      admin,
      { slot: config.source.slot, publication: config.source.publication, sinks: config.sinks.map((s, i) => ({ name: s.name, path: `sinks[${i}]`, tables: s.tables })) },
      (msg) => log.info(msg),
    );
    if (!source.slotCreated && source.slot.confirmedFlush) slotConfirmed = parseLsn(source.slot.confirmedFlush);
  } finally {
    await admin.end();
  }
  const redis = new Map<string, RedisClient>();
  for (const [name, spec] of Object.entries(config.redis)) {
    const client = createRedisClient(spec, `sluice:${name}`, log);
    client.on('error', (err: Error) => log.debug({ redis: name, err: err.message }, 'redis connection error'));
    redis.set(name, client);
  }
  const metrics = new Metrics();
  // set once the backfill manager exists (it needs the running pipeline)
  let rebackfill: (sinks: string[], why: string) => void = () => undefined;
  const pipeline = new Pipeline({
    source: { url: config.source.url, slot: config.source.slot, publication: config.source.publication },
    sinks,
    redis,
    log,
    metrics,
    batchMaxCommands: config.apply.batch_max_commands,
    maxTransactionRows: Math.min(...config.sinks.map((s) => s.max_transaction_rows)),
    onDataLoss: (sinks, redis) => rebackfill(sinks, `Redis "${redis}" lost writes`),
  });
  const monitor = new SourceMonitor(config.source.url, config.source.slot, log, (snap) => {
    metrics.slotRetainedBytes.set(snap.retainedBytes);
    metrics.lagBytes.set(snap.lagBytes);
    metrics.lagSeconds.set(pipeline.lagMs() / 1000);
  }, 5000, config.source.retained_wal_warn_bytes);
  let found: { behind: string[]; unknown: string[] };
  try {
    found = await pipeline.start(slotConfirmed);
  } catch (err) {
    await Promise.all([...redis.values()].map((c) => c.quit().catch(() => c.disconnect())));
    throw err;
  }
  monitor.start();
  const backfills = new BackfillManager(pipeline, config.source.url, log);
  rebackfill = (sinks, why) => {
    for (const sink of sinks) {
      log.warn({ sink, reason: why }, 'backfilling the sink again: Redis no longer holds what was applied');
      backfills.start(sink, {}).catch((err: unknown) => log.error({ sink, err: errorMessage(err) }, 'could not start the re-backfill'));
    }
  };
  const initial = config.sinks.filter((s) => s.backfill).map((s) => s.name);
  for (const sink of found.unknown) {
    if (!initial.includes(sink)) log.warn({ sink }, 'Redis holds no position for this sink although the slot has history: a new sink starts from now; if Redis lost its data, run sluice backfill');
  }
  await backfills.resume(initial);
  rebackfill(found.behind, 'Redis is behind the replication slot');
  const http = config.http.port > 0 ? await startHttpServer({ config, pipeline, metrics, monitor, backfills, log }) : null;
  log.info({ sinks: config.sinks.map((s) => s.name), http: http?.url ?? null }, 'sluice started');
  let stopping: Promise<void> | null = null;
  return {
    config,
    pipeline,
    metrics,
    monitor,
    http,
    redis,
    backfills,
    stop(): Promise<void> {
      stopping ??= (async () => {
        await backfills.stop();
        await pipeline.stop();
        for (const s of sinks) s.functions?.dispose();
        await monitor.stop();
        await http?.close();
        await Promise.all([...redis.values()].map((c) => c.quit().catch(() => c.disconnect())));
        log.info({ confirmed: formatLsn(pipeline.confirmedLsn) }, 'sluice stopped');
      })();
      return stopping;
    },
  };
}
