// A sink's user functions as the pipeline uses them: built from the sink's config, then, per
// transaction, one synchronous call for all of the transaction's messages to that sink.
import type { SinkConfig } from '../config/schema.js';
import type { Change } from '../core/change.js';
import { changesJson, metadataJson, recordJson, type MessageMeta } from '../core/render.js';
import type { RouteOverride, SinkType } from '../sinks/sink.js';
import { errorMessage } from '../util/errors.js';
import { compileFunction, FUNCTION_KINDS, type CompiledFunction } from './compile.js';
import { Sandbox, type FunctionOutcome, type SandboxInput, type SandboxOptions } from './sandbox.js';

export { FunctionError, type FunctionKind } from './compile.js';
export type { FunctionOutcome, SandboxInput, SandboxOptions } from './sandbox.js';

/** What `route` may decide, per sink type (SPEC §4): key, action and TTL everywhere, plus the sink's own. */
export const ROUTE_FIELDS: Readonly<Record<SinkType, readonly (keyof RouteOverride)[]>> = {
  string: ['key', 'action', 'expire_ms'],
  hash: ['key', 'action', 'expire_ms', 'field'],
  list: ['key', 'action', 'expire_ms'],
  set: ['key', 'action', 'expire_ms', 'member'],
  zset: ['key', 'action', 'expire_ms', 'member', 'score'],
  stream: ['key', 'action', 'expire_ms'],
  pubsub: ['channel', 'key', 'action'],
  geo: ['key', 'action', 'expire_ms', 'member'],
  hyperloglog: ['key', 'action', 'expire_ms'],
  bitmap: ['key', 'action', 'expire_ms'],
  // aggregate sinks take no functions (the config refuses them)
  aggregate: [],
};

type FunctionsConfig = Pick<SinkConfig, 'name' | 'type' | 'filter' | 'transform' | 'route'>;

export class SinkFunctions {
  private constructor(
    readonly sink: string,
    readonly compiled: readonly CompiledFunction[],
    private readonly sandbox: Sandbox | null,
  ) {}

  /**
   * Compiles the sink's filter/transform/route (paths relative to `configDir`) and starts its
   * sandbox. Throws FunctionError, naming the sink and the function, when one is unusable.
   */
  static fromConfig(cfg: FunctionsConfig, configDir: string, opts: SandboxOptions = {}): SinkFunctions {
    const compiled: CompiledFunction[] = [];
    for (const kind of FUNCTION_KINDS) {
      const value = cfg[kind];
      if (value !== undefined) compiled.push(compileFunction(kind, value, { sink: cfg.name, configDir }));
    }
    if (compiled.length === 0) return new SinkFunctions(cfg.name, compiled, null);
    const sandbox = new Sandbox(cfg.name, compiled, { routeFields: ROUTE_FIELDS[cfg.type], ...opts });
    return new SinkFunctions(cfg.name, compiled, sandbox);
  }

  get hasAny(): boolean {
    return this.sandbox !== null;
  }

  /** Times the sandbox was started again after a function exhausted its memory. */
  get restarts(): number {
    return this.sandbox?.restarts ?? 0;
  }

  /**
   * Runs the functions over one transaction's (or backfill chunk's) messages to this sink, in one
   * call into the sandbox; per message: skip it (filter), plan it with these extras, or fail it.
   */
  applySync(changes: readonly Change[], meta: MessageMeta): FunctionOutcome[] {
    if (this.sandbox === null) return changes.map(() => ({ extras: {} }));
    const results = new Array<FunctionOutcome>(changes.length);
    const inputs: SandboxInput[] = [];
    const positions: number[] = [];
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i]!;
      try {
        inputs.push(functionInput(change, meta));
        positions.push(i);
      } catch (err) {
        // the row cannot be rendered (e.g. an unchanged TOAST value): it fails without running
        results[i] = { error: errorMessage(err) };
      }
    }
    const outcomes = inputs.length === 0 ? [] : this.sandbox.runBatch(inputs);
    for (let j = 0; j < positions.length; j++) results[positions[j]!] = outcomes[j]!;
    return results;
  }

  /** The same, from inputs already rendered as JSON. */
  applyInputsSync(inputs: readonly SandboxInput[]): FunctionOutcome[] {
    if (this.sandbox === null) return inputs.map(() => ({ extras: {} }));
    return this.sandbox.runBatch(inputs);
  }

  dispose(): void {
    this.sandbox?.dispose();
  }
}

/** The arguments of the functions for one message, as JSON (SPEC §3's record, changes and metadata). */
export function functionInput(change: Change, meta: MessageMeta): SandboxInput {
  return { action: change.action, recordJson: recordJson(change.table, change.row), changesJson: changesJson(change), metadataJson: metadataJson(change, meta) };
}
