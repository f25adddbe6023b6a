// One V8 isolate per sink (isolated-vm): the sink's functions are compiled into it once, and
// each batch of messages is one synchronous call into it. Only the JavaScript language is
// there: no process, require, import, fetch, timers, Buffer, filesystem or network. Data goes
// in and comes out as JSON text only, so no host object is ever reachable from user code.
import ivm from 'isolated-vm';
import { ACTIONS, type Action } from '../core/change.js';
import type { PlanExtras, RouteOverride } from '../sinks/sink.js';
import { FunctionError, type CompiledFunction, type FunctionKind } from './compile.js';
import { RUNTIME_SOURCE } from './runtime.js';

export const DEFAULT_MEMORY_LIMIT_MB = 64;
export const DEFAULT_PER_MESSAGE_MS = 50;

export interface SandboxOptions {
  /** heap limit of the isolate, in MB (default 64; isolated-vm's minimum is 8) */
  memoryLimitMb?: number;
  /** CPU time a message may take through all the sink's functions (default 50 ms) */
  perMessageMs?: number;
  /** a batch call never gets more than this, whatever its size (default 2000 ms) */
  batchTimeoutCapMs?: number;
  /** messages per call into the isolate (default 1000) */
  maxBatchMessages?: number;
  /** JSON text per call into the isolate, roughly (default 1 MiB; one message always fits) */
  maxBatchBytes?: number;
  /** the fields `route` may return for this sink type */
  routeFields?: readonly (keyof RouteOverride)[];
  /** time the functions' top-level code may take when the isolate starts (default 1000 ms) */
  bootTimeoutMs?: number;
}

/** One message, as the JSON the functions receive. */
export interface SandboxInput {
  readonly action: Action;
  readonly recordJson: string;
  readonly changesJson: string;
  readonly metadataJson: string;
}

export type FunctionOutcome = { readonly skip: true } | { readonly extras: PlanExtras } | { readonly error: string };

export const ALL_ROUTE_FIELDS: readonly (keyof RouteOverride)[] = ['key', 'action', 'expire_ms', 'channel', 'member', 'score', 'field'];
const STRING_ROUTE_FIELDS = new Set(['key', 'channel', 'member', 'field']);

const SKIP: FunctionOutcome = Object.freeze({ skip: true });

export class Sandbox {
  private isolate: ivm.Isolate | null = null;
  private runRef: ivm.Reference<(batch: string, budget: number) => string> | null = null;
  private stageRef: ivm.Reference<() => string> | null = null;
  /** why the isolate could not be started again (every message fails with it until it can) */
  private bootError: string | null = null;
  private readonly memoryLimitMb: number;
  private readonly perMessageMs: number;
  private readonly capMs: number;
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  private readonly routeFields: readonly string[];
  private readonly bootTimeoutMs: number;
  /** "filter", "transform" or "route" when the sink has only one: names it in memory failures */
  private readonly onlyKind: FunctionKind | null;
  /** times the isolate was thrown away and started again (memory exhausted) */
  restarts = 0;

  constructor(
    readonly sink: string,
    private readonly functions: readonly CompiledFunction[],
    opts: SandboxOptions = {},
  ) {
    this.memoryLimitMb = Math.max(8, opts.memoryLimitMb ?? DEFAULT_MEMORY_LIMIT_MB);
    this.perMessageMs = Math.max(1, opts.perMessageMs ?? DEFAULT_PER_MESSAGE_MS);
    this.capMs = Math.max(this.perMessageMs, opts.batchTimeoutCapMs ?? 2000);
    this.maxMessages = Math.max(1, opts.maxBatchMessages ?? 1000);
    this.maxBytes = Math.max(1, opts.maxBatchBytes ?? 1024 * 1024);
    this.routeFields = opts.routeFields ?? ALL_ROUTE_FIELDS;
    this.bootTimeoutMs = opts.bootTimeoutMs ?? 1000;
    this.onlyKind = functions.length === 1 ? functions[0]!.kind : null;
    this.boot(); // compile errors surface here, as FunctionError
  }

  get limits(): { memoryLimitMb: number; perMessageMs: number } {
    return { memoryLimitMb: this.memoryLimitMb, perMessageMs: this.perMessageMs };
  }

  /** Runs the functions over the messages: one call into the isolate per batch of messages. */
  runBatch(inputs: readonly SandboxInput[]): FunctionOutcome[] {
    const results = new Array<FunctionOutcome>(inputs.length);
    let start = 0;
    while (start < inputs.length) {
      let end = start;
      let bytes = 0;
      while (end < inputs.length && end - start < this.maxMessages && (end === start || bytes < this.maxBytes)) {
        const m = inputs[end]!;
        bytes += m.recordJson.length + m.changesJson.length + m.metadataJson.length;
        end++;
      }
      this.runChunk(inputs, start, end, results);
      start = end;
    }
    return results;
  }

  dispose(): void {
    this.release();
  }

  // ---- internals -----------------------------------------------------------------------------

  private runChunk(inputs: readonly SandboxInput[], start: number, end: number, results: FunctionOutcome[]): void {
    const count = end - start;
    if (this.isolate === null && !this.tryReboot()) {
      for (let i = start; i < end; i++) results[i] = { error: this.bootError! };
      return;
    }
    let text = '[';
    for (let i = start; i < end; i++) {
      const m = inputs[i]!;
      text += `${i > start ? ',' : ''}[${JSON.stringify(m.action)},${m.recordJson},${m.changesJson},${m.metadataJson}]`;
    }
    text += ']';
    let out: string;
    try {
      out = this.runRef!.applySync(undefined, [text, this.perMessageMs], { timeout: Math.min(this.perMessageMs * count, this.capMs) });
    } catch (err) {
      if (count === 1) {
        results[start] = { error: this.failure(err) };
        return;
      }
      // some message took too long or used up the memory: find it by running them one by one
      if (this.isolate === null || this.isolate.isDisposed) this.tryReboot();
      for (let i = start; i < end; i++) this.runChunk(inputs, i, i + 1, results);
      return;
    }
    this.decode(out, start, count, results);
  }

  /** The reason a single message's call failed (and recovery: a new isolate after an OOM). */
  private failure(err: unknown): string {
    const message = err instanceof Error ? err.message : String(err);
    const who = this.onlyKind ?? "the sink's functions";
    if (this.isolate === null || this.isolate.isDisposed) {
      this.tryReboot();
      return `${who} exhausted the sandbox memory (limit ${this.memoryLimitMb} MB)`;
    }
    let stage = '';
    try {
      stage = this.stageRef!.applySync(undefined, [], { timeout: 100 });
    } catch {
      // the stage is only a better name for the culprit
    }
    if (/timed out/i.test(message)) return `${stage || who} timed out after ${this.perMessageMs} ms`;
    // e.g. a promise the function created and left rejected
    return `${stage || who} failed: ${describeHostError(err)}`;
  }

  private decode(out: string, start: number, count: number, results: FunctionOutcome[]): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(out);
    } catch {
      parsed = null;
    }
    if (!Array.isArray(parsed) || parsed.length !== count) {
      // only possible if user code tampered with the built-ins the runtime serializes with
      for (let i = 0; i < count; i++) results[start + i] = { error: "the sink's functions produced results that cannot be read (do they change JSON or Object.prototype?)" };
      return;
    }
    for (let i = 0; i < count; i++) results[start + i] = this.outcome(parsed[i]);
  }

  private outcome(r: unknown): FunctionOutcome {
    if (r === 0) return SKIP;
    if (typeof r === 'string') return { error: r };
    const unreadable = { error: "the sink's functions produced a result that cannot be read" };
    if (!Array.isArray(r) || r.length !== 2) return unreadable;
    const [value, route] = r as [unknown, unknown];
    if (value !== null && typeof value !== 'string') return unreadable;
    let override: RouteOverride | undefined;
    if (route !== null) {
      if (typeof route !== 'object' || Array.isArray(route)) return unreadable;
      const o: Record<string, string | number> = {};
      for (const [k, v] of Object.entries(route as Record<string, unknown>)) {
        if (!this.routeFields.includes(k)) return unreadable;
        if (STRING_ROUTE_FIELDS.has(k) ? typeof v !== 'string' || v === '' : false) return unreadable;
        if (k === 'action' && !(ACTIONS as readonly unknown[]).includes(v)) return unreadable;
        if (k === 'expire_ms' && !(Number.isInteger(v) && (v as number) > 0)) return unreadable;
        if (k === 'score' && !(typeof v === 'number' && Number.isFinite(v))) return unreadable;
        o[k] = v as string | number;
      }
      override = o as RouteOverride;
    }
    if (value === null) return { extras: override === undefined ? {} : { route: override } };
    return { extras: override === undefined ? { value } : { value, route: override } };
  }

  private tryReboot(): boolean {
    try {
      this.boot();
      this.restarts++;
      this.bootError = null;
      return true;
    } catch (err) {
      this.bootError = `the sandbox could not be started again: ${err instanceof Error ? err.message : String(err)}`;
      return false;
    }
  }

  private boot(): void {
    this.release();
    const isolate = new ivm.Isolate({ memoryLimit: this.memoryLimitMb });
    try {
      const context = isolate.createContextSync();
      context.evalSync(RUNTIME_SOURCE, { filename: 'sluice:runtime' });
      for (const f of this.functions) {
        const script = `globalThis.__sluice.define(${JSON.stringify(f.kind)}, ${JSON.stringify(f.missing)}, ${f.factory}, ${JSON.stringify(this.routeFields)});`;
        try {
          context.evalSync(script, { filename: f.origin === 'inline' ? `${f.kind}.js` : f.origin, timeout: this.bootTimeoutMs });
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          const detail = isolate.isDisposed
            ? `its top-level code exhausted the sandbox memory (limit ${this.memoryLimitMb} MB)`
            : /timed out/i.test(message)
              ? `its top-level code ran for more than ${this.bootTimeoutMs} ms`
              : describeHostError(err);
          throw new FunctionError(this.sink, f.kind, f.origin === 'inline' ? detail : `${f.origin}: ${detail}`);
        }
      }
      const api = context.global.getSync('__sluice', { reference: true }) as ivm.Reference<Record<string, unknown>>;
      this.runRef = api.getSync('run', { reference: true }) as ivm.Reference<(batch: string, budget: number) => string>;
      this.stageRef = api.getSync('stage', { reference: true }) as ivm.Reference<() => string>;
      api.release();
      context.evalSync('delete globalThis.__sluice;');
      this.isolate = isolate;
    } catch (err) {
      if (!isolate.isDisposed) isolate.dispose();
      throw err;
    }
  }

  private release(): void {
    const isolate = this.isolate;
    this.isolate = null;
    this.runRef = null;
    this.stageRef = null;
    if (isolate !== null && !isolate.isDisposed) isolate.dispose();
  }
}

/** An error thrown out of the isolate: "RangeError: …", or just the message for plain Errors. */
function describeHostError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.name && err.name !== 'Error' ? `${err.name}: ${err.message}` : err.message;
}
