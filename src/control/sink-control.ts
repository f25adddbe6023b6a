import pg from 'pg';
import type { SinkConfig, SluiceConfig } from '../config/schema.js';
import type { ConfigProblem } from '../config/errors.js';
import { parseSinkBlock } from '../config/sink-block.js';
import { createSink } from '../sinks/index.js';
import { SinkFunctions } from '../functions/index.js';
import type { SinkSpec } from '../plan/route.js';
import type { Pipeline } from '../runtime/pipeline.js';
import type { StateStore, StoredSink } from '../state/state-store.js';
import type { BackfillManager } from '../backfill/backfill-manager.js';
import { aggregateProblems, columnProblems, prepareSource, readSourceState, sinkWantsOf } from '../pg/source-setup.js';
import { pgClientConfig } from '../pg/connection-config.js';
import { appliedKey, failedKey, backfillKey, reverseIndexKey, sinkDefinitionKey } from '../core/keyspace.js';
import { publishDefinitions } from '../runtime/definitions.js';
import type { SinkOwners } from '../runtime/sink-owners.js';
import { errorMessage, SluiceError } from '../util/errors.js';
import type { Logger } from '../util/log.js';

/** An API mistake: answered with its status, code, one sentence and, for bodies, each problem with its path. */
export class ControlError extends SluiceError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly problems: readonly ConfigProblem[] = [],
  ) {
    super(code, message);
  }
}

export type SinkOrigin = 'config' | 'api';

/** Builds what the pipeline runs from a sink's validated block. */
export function specFromConfig(s: SinkConfig, configDir: string): SinkSpec {
  const functions = SinkFunctions.fromConfig(s, configDir);
  return { sink: createSink(s), redis: s.redis!, tables: s.tables, actions: s.actions, functions: functions.hasAny ? functions : undefined };
}

/**
 * Sinks at runtime: create, patch, pause, resume and delete, each taking effect at once and kept
 * in the state store so that it survives a restart (and a Redis loss).
 *
 * Which wins: a sink named in sluice.yaml belongs to the file. The API may pause and resume it
 * (kept in the state store), but not patch or delete it (409: edit the file). A sink created
 * through the API belongs to the state store; if the file later names a sink of the same name,
 * the file's wins and the stored one is ignored with a warning.
 *
 * `config.sinks` is the live list of sinks (file and API), shared with the HTTP routes, verify
 * and repair: it is changed here, in place.
 */
export class SinkControl {
  private readonly origins = new Map<string, SinkOrigin>();

  constructor(
    private readonly config: SluiceConfig,
    private readonly pipeline: Pipeline,
    private readonly state: StateStore,
    private readonly backfills: BackfillManager,
    private readonly log: Logger,
    private readonly configDir: string,
    private readonly owners?: SinkOwners,
  ) {
    for (const s of config.sinks) this.origins.set(s.name, this.origins.get(s.name) ?? 'config');
  }

  /**
   * The sinks the state store adds to the file's (call before the pipeline starts): API sinks,
   * and pauses of file sinks. Stored sinks that no longer validate are skipped with an error.
   */
  static async load(config: SluiceConfig, state: StateStore, log: Logger): Promise<{ apiSinks: SinkConfig[]; paused: Set<string>; origins: Map<string, SinkOrigin> }> {
    const stored = await state.listSinks();
    const paused = new Set(stored.filter((r) => r.paused).map((r) => r.name));
    const origins = new Map<string, SinkOrigin>(config.sinks.map((s) => [s.name, 'config']));
    const apiSinks: SinkConfig[] = [];
    for (const row of stored) {
      if (row.origin !== 'api' || row.spec === null) continue;
      if (origins.has(row.name)) {
        log.warn({ sink: row.name }, 'sluice.yaml and the API both define this sink: the file wins; the API one is ignored');
        continue;
      }
      const parsed = parseSinkBlock(row.spec, { redisNames: Object.keys(config.redis) });
      if (!parsed.ok) {
        log.error({ sink: row.name, problems: parsed.problems.map((p) => `${p.path}: ${p.message}`) }, 'a sink created through the API no longer validates: it is not started (fix it with PATCH or DELETE it)');
        continue;
      }
      apiSinks.push(parsed.sink);
      origins.set(row.name, 'api');
    }
    return { apiSinks, paused, origins };
  }

  setOrigins(origins: ReadonlyMap<string, SinkOrigin>): void {
    for (const [k, v] of origins) this.origins.set(k, v);
  }

  origin(name: string): SinkOrigin | null {
    return this.origins.get(name) ?? null;
  }

  async create(body: unknown): Promise<SinkConfig> {
    const sink = this.validate(body);
    if (this.pipeline.sinkRuntime(sink.name) || this.origins.has(sink.name)) throw new ControlError(400, 'sink_exists', `a sink named "${sink.name}" exists already`, [{ path: 'name', message: `"${sink.name}" is taken` }]);
    const claim = { name: sink.name, redis: sink.redis! };
    // another instance's sink of this name on the same Redis: its keys would be shared
    await this.owners?.claim([claim]).catch((err: unknown) => {
      if (err instanceof SluiceError && err.code === 'sink_owned_elsewhere') throw new ControlError(409, err.code, err.message, [{ path: 'name', message: `"${sink.name}" is owned by another Sluice instance on this Redis` }]);
      throw new ControlError(503, 'sink_not_started', `could not claim the sink's name on Redis "${claim.redis}": ${errorMessage(err)}`);
    });
    const spec = specFromConfig(sink, this.configDir);
    try {
      await this.publish(sink);
    } catch (err) {
      await this.owners?.release(claim).catch(() => undefined);
      throw err;
    }
    await this.state.createSink(sink.name, body as Record<string, unknown>);
    try {
      await this.pipeline.addSink(spec);
    } catch (err) {
      await this.owners?.release(claim).catch(() => undefined);
      await this.state.deleteSink(sink.name).catch(() => false);
      spec.functions?.dispose();
      throw new ControlError(503, 'sink_not_started', `the sink could not be started: ${errorMessage(err)}`);
    }
    this.config.sinks.push(sink);
    await publishDefinitions((t) => this.pipeline.primaryKey(t), [{ sink, redis: this.pipeline.redisFor(sink.name) }], this.log);
    this.origins.set(sink.name, 'api');
    this.log.info({ sink: sink.name, type: sink.type }, 'sink created through the API');
    if (sink.backfill) await this.backfills.start(sink.name, {});
    return sink;
  }

  /** A JSON merge patch of the stored block (null removes an option), validated whole. */
  async patch(name: string, patch: unknown): Promise<SinkConfig> {
    const origin = this.requireOrigin(name);
    if (origin === 'config') throw new ControlError(409, 'sink_in_config_file', `sink "${name}" is defined in sluice.yaml: change it there and restart`);
    if (!isObject(patch)) throw new ControlError(400, 'bad_request', 'the body must be a JSON object with the options to change');
    if ('name' in patch && patch.name !== name) throw new ControlError(400, 'bad_request', 'a sink cannot be renamed: create a new one and delete this one', [{ path: 'name', message: 'cannot change' }]);
    const stored = await this.state.getSink(name);
    const merged = mergePatch(stored?.spec ?? {}, patch) as Record<string, unknown>;
    const sink = this.validate(merged);
    const current = this.config.sinks.find((s) => s.name === name);
    if (current && current.redis !== sink.redis) throw new ControlError(400, 'bad_request', 'a sink cannot move to another Redis connection: create a new sink there and delete this one', [{ path: 'redis', message: 'cannot change' }]);
    const spec = specFromConfig(sink, this.configDir);
    await this.publish(sink);
    await this.state.updateSink(name, merged);
    const old = this.pipeline.sinkRuntime(name);
    this.pipeline.replaceSink(spec);
    old?.functions?.dispose();
    const i = this.config.sinks.findIndex((s) => s.name === name);
    if (i >= 0) this.config.sinks[i] = sink;
    await publishDefinitions((t) => this.pipeline.primaryKey(t), [{ sink, redis: this.pipeline.redisFor(name) }], this.log);
    this.log.info({ sink: name }, 'sink changed through the API');
    return sink;
  }

  async pause(name: string): Promise<void> {
    const origin = this.requireOrigin(name);
    await this.state.setPaused(name, true, origin);
    this.pipeline.pauseSink(name);
    this.log.info({ sink: name }, 'sink paused');
  }

  async resume(name: string): Promise<void> {
    const origin = this.requireOrigin(name);
    await this.state.setPaused(name, false, origin);
    this.pipeline.resumeSink(name);
    this.log.info({ sink: name }, 'sink resumed');
  }

  /** Stops the sink at once; what it wrote stays in Redis; its positions, failed messages and backfill records go. */
  async remove(name: string): Promise<void> {
    const origin = this.requireOrigin(name);
    if (origin === 'config') throw new ControlError(409, 'sink_in_config_file', `sink "${name}" is defined in sluice.yaml: remove it there and restart`);
    const redis = this.pipeline.redisFor(name);
    await this.state.deleteSink(name);
    await this.backfills.forget(name);
    const runtime = this.pipeline.sinkRuntime(name);
    await this.pipeline.removeSink(name);
    runtime?.functions?.dispose();
    await redis.del(failedKey(name), backfillKey(name), reverseIndexKey(name), appliedKey(name), sinkDefinitionKey(name)).catch((err: unknown) => {
      this.log.warn({ sink: name, err: errorMessage(err) }, 'could not remove the deleted sink\'s failed messages and backfill records from Redis');
    });
    // last: the name is free for any instance once nothing of the sink is left
    const connection = this.config.sinks.find((s) => s.name === name)?.redis;
    if (connection !== undefined) {
      await this.owners?.release({ name, redis: connection }).catch((err: unknown) => {
        this.log.warn({ sink: name, err: errorMessage(err) }, 'could not give the deleted sink\'s name back on Redis (sluice:owner:<sink> stays)');
      });
    }
    this.config.sinks.splice(this.config.sinks.findIndex((s) => s.name === name) >>> 0, 1);
    this.origins.delete(name);
    this.log.info({ sink: name }, 'sink deleted (what it wrote stays in Redis)');
  }

  private requireOrigin(name: string): SinkOrigin {
    const origin = this.origins.get(name);
    if (!origin || !this.pipeline.sinkRuntime(name)) throw new ControlError(404, 'sink_not_found', `no sink named "${name}"`);
    return origin;
  }

  private validate(body: unknown): SinkConfig {
    const parsed = parseSinkBlock(body, { redisNames: Object.keys(this.config.redis) });
    if (!parsed.ok) {
      const first = parsed.problems[0]!;
      const where = first.path === '' ? '' : `${first.path}: `;
      const more = parsed.problems.length > 1 ? ` (and ${parsed.problems.length - 1} more)` : '';
      throw new ControlError(400, 'invalid_sink', `${where}${first.message}${more}`, parsed.problems);
    }
    return parsed.sink;
  }

  /** The sink's tables are added to the publication before it starts (changes before that are not streamed). */
  private async publish(sink: SinkConfig): Promise<void> {
    const admin = new pg.Client(pgClientConfig(this.config.source.url, { application_name: 'sluice-setup' }));
    try {
      await admin.connect();
      // the columns its templates and options name must be in its tables (as sluice check says)
      const wanted = { ...sinkWantsOf([sink])[0]!, path: '' };
      const found = await readSourceState(admin, { slot: this.config.source.slot, publication: this.config.source.publication, sinks: [wanted] });
      const problems = [...columnProblems(found, wanted), ...aggregateProblems(found, wanted, true)].filter((p) => p.severity === 'error');
      if (problems.length > 0) {
        const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
        throw new ControlError(400, 'invalid_sink', `${problems[0]!.option}: ${problems[0]!.message}${more}`, problems.map((p) => ({ path: p.option, message: p.message })));
      }
      const prepared = await prepareSource(admin, { slot: this.config.source.slot, publication: this.config.source.publication, sinks: [{ name: sink.name, path: 'tables', tables: sink.tables }] }, (msg) => this.log.info(msg));
      if (prepared.publicationCreated) await this.state.recordCreated('publication', prepared.database, this.config.source.publication);
    } catch (err) {
      if (err instanceof ControlError) throw err;
      throw new ControlError(503, 'publication_failed', `could not add the sink's tables to publication "${this.config.source.publication}": ${errorMessage(err)}`);
    } finally {
      await admin.end().catch(() => undefined);
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export type { StoredSink };
