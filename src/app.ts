import pg from 'pg';
import { DEFAULT_MAX_TRANSACTION_ROWS, type SluiceConfig } from './config/schema.js';
import { prepareSource, sinkWantsOf } from './pg/source-setup.js';
import { NO_SYSTEM_IDENTIFIER, readSystemIdentifier } from './pg/instance.js';
import { SourceMonitor } from './pg/source-monitor.js';
import { closeRedisClient, createRedisClient, type RedisClient } from './redis/connect.js';
import { Pipeline } from './runtime/pipeline.js';
import type { FailedLimits } from './plan/failed-messages.js';
import { Deliveries } from './runtime/deliveries.js';
import { Fences } from './runtime/fences.js';
import { listenForFenceRequests } from './runtime/fence-requests.js';
import { ProgressPublisher } from './runtime/progress.js';
import { publishDefinitions, readPrimaryKeys } from './runtime/definitions.js';
import { readPrimaryKey } from './pg/row-fetcher.js';
import { FenceEmitter } from './pg/fence-emitter.js';
import { Metrics } from './metrics.js';
import type { Logger } from './util/log.js';
import { startHttpServer, type HttpServer } from './http/server.js';
import { formatLsn, parseLsn, type Lsn } from './core/lsn.js';
import { sweepOrphans } from './verify/orphan-sweep.js';
import { BackfillManager } from './backfill/backfill-manager.js';
import { errorMessage, SluiceError } from './util/errors.js';
import { explainPgConnectError, pgClientConfig, pgTlsWarning } from './pg/connection-config.js';
import { describePgUrl } from './pg/url.js';
import { StateStore } from './state/state-store.js';
import { SinkControl, specFromConfig } from './control/sink-control.js';
import { SinkOwners } from './runtime/sink-owners.js';
import { instanceIdentity } from './core/keyspace.js';
import { SchemaWatch } from './control/schema-watch.js';

export interface RunningSluice {
  readonly config: SluiceConfig;
  readonly pipeline: Pipeline;
  readonly metrics: Metrics;
  readonly monitor: SourceMonitor;
  readonly http: HttpServer | null;
  readonly redis: ReadonlyMap<string, RedisClient>;
  readonly backfills: BackfillManager;
  readonly control: SinkControl;
  stop(): Promise<void>;
}

/** How long `stop()` waits for what was received to be applied (Redis down: it gives up then). */
export const DRAIN_TIMEOUT_MS = 15_000;

/**
 * The `sluice start` process: reads its own state (state store), prepares Postgres, connects
 * Redis, runs the pipeline, backfills and HTTP. Any start-up failure stops what was started and
 * throws one sentence.
 */
export async function startSluice(config: SluiceConfig, log: Logger, opts: { configDir?: string } = {}): Promise<RunningSluice> {
  // function files are relative to the config file's directory
  const configDir = opts.configDir ?? process.cwd();
  const tlsWarning = pgTlsWarning(config.source.url);
  if (tlsWarning !== undefined) log.warn(tlsWarning);
  const state = await StateStore.open({ url: config.state.url, schema: config.state.schema, log, label: config.state.url === config.source.url ? 'Postgres' : 'the state database' });
  const cleanups: (() => Promise<void>)[] = [() => state.close()];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    const stored = await SinkControl.load(config, state, log);
    config.sinks.push(...stored.apiSinks);
    const apiNames = new Set(stored.apiSinks.map((s) => s.name));
    const metrics = new Metrics();
    const redis = new Map<string, RedisClient>();
    for (const [name, spec] of Object.entries(config.redis)) {
      const client = createRedisClient(spec, `sluice:${name}`, log);
      client.on('error', (err: Error) => log.debug({ redis: name, err: err.message }, 'redis connection error'));
      metrics.watchRedis(name, client);
      redis.set(name, client);
    }
    cleanups.push(() => closeRedis(redis));
    const claims = config.sinks.map((s) => ({ name: s.name, redis: s.redis! }));
    const { slotConfirmed, primaryKeys, owners } = await prepare(config, log, (name) => apiNames.has(name), state, async (systemIdentifier) => {
      // before anything is created: a sink name another instance runs on the same Redis is
      // refused (a refused start leaves no slot behind); claimed once Postgres is set up
      const o = new SinkOwners(config.instance ?? instanceIdentity(config.source.slot, systemIdentifier), redis);
      await o.check(claims);
      return o;
    });
    await owners.claim(claims);
    const instance = owners.instance;
    let backfills: BackfillManager | null = null;
    const lostEarly: { sink: string; why: string }[] = [];
    const schemas = await SchemaWatch.load(config, state, metrics, log);
    const pipeline = new Pipeline({
      onRelation: (table) => schemas.onRelation(table),
      source: { url: config.source.url, slot: config.source.slot, publication: config.source.publication },
      instance,
      sinks: config.sinks.map((s) => ({ ...specFromConfig(s, configDir), paused: stored.paused.has(s.name) })),
      redis,
      log,
      metrics,
      batchMaxCommands: config.apply.batch_max_commands,
      failedLimits: (name) => failedLimitsOf(config, name),
      maxTransactionRows: config.sinks.length > 0 ? Math.min(...config.sinks.map((s) => s.max_transaction_rows)) : DEFAULT_MAX_TRANSACTION_ROWS,
      onDataLoss: (sinks, name) => rebackfill(backfills, sinks, `Redis "${name}" lost writes`, log, lostEarly),
    });
    const monitor = new SourceMonitor(config.source.url, config.source.slot, log, (snap) => {
      metrics.slotRetainedBytes.set(snap.retainedBytes);
      metrics.lagBytes.set(snap.lagBytes);
      metrics.lagSeconds.set(pipeline.lagMs() / 1000);
      metrics.heldWalBytes.reset();
      const current = parseLsn(snap.currentLsn);
      for (const h of pipeline.heldPositions()) if (h.position !== null) metrics.heldWalBytes.set({ sink: h.sink }, Math.max(0, Number(current - parseLsn(h.position.split(':')[0]!))));
    }, 5000, config.source.retained_wal_warn_bytes, () => pipeline.heldPositions().filter((h) => h.reason === 'paused').map((h) => h.sink));
    metrics.trackSinks(() => pipeline.sinks.map((s) => ({ name: s.name, paused: s.hold === 'paused' })));
    metrics.trackFailedStores(() => pipeline.sinks.map((s) => ({ sink: s.name, ...pipeline.failedStore.view(s.name) })));
    const deliveries = new Deliveries();
    pipeline.onBatchApplied((applied) => deliveries.record(applied));
    const fenceEmitter = new FenceEmitter(config.source.url);
    const fences = new Fences({
      applied: (sink) => pipeline.appliedPosition(sink),
      emit: () => fenceEmitter.emit(),
      log,
      observe: (outcome, seconds) => {
        metrics.waits.inc({ outcome });
        metrics.waitSeconds.observe(seconds);
      },
      fenceWritten: () => metrics.fences.inc(),
    });
    pipeline.onBatchApplied(() => fences.check());
    const stopFenceRequests = listenForFenceRequests(redis, fences, () => pipeline.sinks.map((s) => s.name), log);
    cleanups.push(stopFenceRequests);
    // positions and sink definitions for sluice/client (read your writes, keyFor)
    const progress = new ProgressPublisher((sink) => {
      const s = pipeline.sinkRuntime(sink);
      const client = s ? redis.get(s.redis) : undefined;
      return s && client ? { name: s.redis, client } : null;
    }, log);
    pipeline.onBatchApplied((applied) => progress.onApplied(applied));
    cleanups.push(async () => {
      fences.stop();
      await fenceEmitter.close();
    });
    const found = await pipeline.start(slotConfirmed);
    cleanups.push(() => pipeline.stop(DRAIN_TIMEOUT_MS));
    monitor.start();
    cleanups.push(() => monitor.stop());
    backfills = new BackfillManager(pipeline, config.source.url, log, metrics);
    backfills.setOrphanSweeper((sink) => sweepOrphans(config, pipeline, sink, { automatic: true }));
    schemas.attach(backfills);
    const bf = backfills;
    cleanups.push(() => bf.stop());
    const control = new SinkControl(config, pipeline, state, bf, log, configDir, owners);
    control.setOrigins(stored.origins);
    const initial = config.sinks.filter((s) => s.backfill).map((s) => s.name);
    for (const sink of found.unknown) {
      if (!initial.includes(sink)) log.warn({ sink }, 'Redis holds no position for this sink although the slot has history: a new sink starts from now; if Redis lost its data, run sluice backfill');
    }
    // the keys read at set-up; another table's (none, unless one could not be read) on the lookups' connection
    const primaryKey = (t: string): Promise<readonly string[] | null> => (primaryKeys.has(t) ? Promise.resolve(primaryKeys.get(t) ?? null) : pipeline.primaryKey(t));
    await publishDefinitions(primaryKey, config.sinks.flatMap((s) => (redis.has(s.redis!) ? [{ sink: s, redis: redis.get(s.redis!)! }] : [])), log);
    await bf.resume(initial);
    rebackfill(bf, found.behind, 'Redis is behind the replication slot', log);
    for (const { sink, why } of lostEarly.splice(0)) bf.startAfterDataLoss(sink, why).catch((err: unknown) => log.error({ sink, err: errorMessage(err) }, 'could not start the re-backfill'));
    let http: HttpServer | null = null;
    if (config.http.port > 0) {
      http = await startHttpServer({ config, pipeline, metrics, monitor, backfills: bf, control, deliveries, fences, log }).catch((err: unknown) => {
        const code = (err as { code?: string }).code;
        const socket = config.http.socket;
        if (socket !== undefined && (code === 'EADDRINUSE' || code === 'EACCES' || code === 'ENOENT')) {
          const why = code === 'EADDRINUSE' ? 'is in use by another process (or is not a socket): stop it, or set http.socket to another path' : code === 'EACCES' ? 'cannot be created here: permission denied' : 'cannot be created: its directory does not exist';
          throw new SluiceError('http_socket', `the HTTP API's Unix socket ${socket} ${why}`);
        }
        if (code === 'EADDRINUSE') throw new SluiceError('http_port_in_use', `HTTP port ${config.http.port} on ${config.http.host} is already in use: stop the other process or set http.port to another port (0 turns the API off)`);
        if (code === 'EACCES') throw new SluiceError('http_port_denied', `not allowed to listen on HTTP port ${config.http.port} on ${config.http.host}: use a port above 1023`);
        throw err;
      });
    }
    log.info({ instance, sinks: config.sinks.map((s) => s.name), http: http?.url ?? null }, 'sluice started');
    let stopping: Promise<void> | null = null;
    return {
      config,
      pipeline,
      metrics,
      monitor,
      http,
      redis,
      backfills: bf,
      control,
      stop(): Promise<void> {
        stopping ??= (async () => {
          // backfills stop taking chunks; the pipeline drains within the timeout, then rejects
          // what still waits (a chunk waiting for Redis), so every step below ends
          const backfillsDone = bf.stop();
          fences.stop();
          await pipeline.stop(DRAIN_TIMEOUT_MS);
          await backfillsDone;
          for (const s of pipeline.sinks) s.functions?.dispose();
          await monitor.stop();
          await http?.close();
          await stopFenceRequests();
          await closeRedis(redis);
          await fenceEmitter.close();
          await state.close();
          log.info({ confirmed: formatLsn(pipeline.confirmedLsn) }, 'sluice stopped');
        })();
        return stopping;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** A sink's failed-message bounds: its own options, else those under `apply:` (the live list: API sinks too). */
function failedLimitsOf(config: SluiceConfig, sink: string): FailedLimits {
  const s = config.sinks.find((x) => x.name === sink);
  return {
    maxMessages: s?.failed_max_messages ?? config.apply.failed_max_messages,
    maxBytes: s?.failed_max_bytes ?? config.apply.failed_max_bytes,
    envelopeMaxBytes: s?.failed_envelope_max_bytes ?? config.apply.failed_envelope_max_bytes,
  };
}

/**
 * Names the instance from the Postgres cluster's system identifier and checks its sink names
 * (`named`), before anything else; then creates the slot and publication (or extends it);
 * returns the slot's confirmed position (null: new slot), the owners, and the key columns of the
 * sinks' tables for their definitions (read on the same connection, so that start-up opens no
 * other one for them).
 */
async function prepare(config: SluiceConfig, log: Logger, isApi: (sink: string) => boolean, state: StateStore, named: (systemIdentifier: string) => Promise<SinkOwners>): Promise<{ slotConfirmed: Lsn | null; primaryKeys: Map<string, readonly string[] | null>; owners: SinkOwners }> {
  const admin = new pg.Client(pgClientConfig(config.source.url, { application_name: 'sluice-setup' }));
  await admin.connect().catch((err: unknown) => {
    throw new SluiceError('pg_connect', `cannot connect to Postgres at ${describePgUrl(config.source.url)}: ${explainPgConnectError(err, config.source.url)}`, { cause: err });
  });
  try {
    const owners = await named(await readSystemIdentifier(admin, (err) => log.warn({ err }, NO_SYSTEM_IDENTIFIER)));
    const source = await prepareSource(
      admin,
      { slot: config.source.slot, publication: config.source.publication, sinks: sinkWantsOf(config.sinks, isApi), failover: config.source.failover_slot, url: config.source.url },
      (msg) => log.info(msg),
      (msg) => log.warn(msg),
    );
    // sluice teardown drops the publication only if Sluice created it
    if (source.publicationCreated) await state.recordCreated('publication', source.database, config.source.publication);
    const primaryKeys = await readPrimaryKeys((t) => readPrimaryKey(admin, t), config.sinks);
    return { slotConfirmed: !source.slotCreated && source.slot.confirmedFlush ? parseLsn(source.slot.confirmedFlush) : null, primaryKeys, owners };
  } finally {
    await admin.end();
  }
}

/**
 * Redis lost writes: each sink is backfilled again and then swept of orphans (backfills.md). Found
 * before the BackfillManager exists (while the pipeline starts): kept in `early` until it does.
 */
function rebackfill(backfills: BackfillManager | null, sinks: readonly string[], why: string, log: Logger, early?: { sink: string; why: string }[]): void {
  for (const sink of sinks) {
    log.warn({ sink, reason: why }, 'backfilling the sink again: Redis no longer holds what was applied');
    if (backfills === null) early?.push({ sink, why });
    else backfills.startAfterDataLoss(sink, why).catch((err: unknown) => log.error({ sink, err: errorMessage(err) }, 'could not start the re-backfill'));
  }
}

/** QUIT when Redis answers, else drop the connection: never waits for a Redis that is down. */
async function closeRedis(redis: ReadonlyMap<string, RedisClient>): Promise<void> {
  await Promise.all([...redis.values()].map((c) => closeRedisClient(c)));
}
