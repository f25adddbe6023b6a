import type { Lsn } from '../core/lsn.js';
import type { Position } from '../core/position.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';

/**
 * Read-your-writes fences: `wait(lsn, sinks)` resolves once every named sink has applied every
 * transaction that committed at or before `lsn`, i.e. once each sink's applied position (the end
 * of the last transaction applied for it, or an idle keepalive's position) has reached `lsn`.
 *
 * The stream only moves when Postgres has something to send: a waiter not served at once gets a
 * fence written (one for every waiter behind it), whose transaction brings every sink's position
 * past it, and so past `lsn`, without waiting for a keepalive. `check()` runs after every batch.
 */
export interface FenceDeps {
  /** where a sink is in Redis for sure (null: nowhere yet) */
  applied(sink: string): Position | null;
  /** writes a fence in Postgres; resolves with its LSN */
  emit(): Promise<Lsn>;
  log: Logger;
  /** a wait ended: how, and how long it took */
  observe?(outcome: 'applied' | 'timeout', seconds: number): void;
  fenceWritten?(): void;
  /** a client asked for a fence (through Redis) */
  fenceRequested?(): void;
}

interface Waiter {
  readonly lsn: Lsn;
  readonly sinks: readonly string[];
  readonly started: number;
  readonly resolve: (applied: boolean) => void;
  timer: NodeJS.Timeout | null;
}

export class Fences {
  private readonly waiters = new Set<Waiter>();
  private emitting = false;
  private again = false;
  private stopped = false;

  constructor(private readonly deps: FenceDeps) {}

  get waiting(): number {
    return this.waiters.size;
  }

  /** Has `sink` applied every transaction committed at or before `lsn`? */
  reached(sink: string, lsn: Lsn): boolean {
    const p = this.deps.applied(sink);
    if (p === null) return false;
    // inside a large transaction: only what committed before it is applied
    return (p.idx === null ? p.lsn : p.lsn - 1n) >= lsn;
  }

  /** Resolves true once every sink has applied `lsn`, false when `timeoutMs` passes first. */
  wait(lsn: Lsn, sinks: readonly string[], timeoutMs: number): Promise<boolean> {
    const started = performance.now();
    if (sinks.every((s) => this.reached(s, lsn))) {
      this.deps.observe?.('applied', (performance.now() - started) / 1000);
      return Promise.resolve(true);
    }
    if (this.stopped) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const w: Waiter = { lsn, sinks, started, resolve, timer: null };
      w.timer = setTimeout(() => this.finish(w, false), timeoutMs);
      this.waiters.add(w);
      this.requestFence();
    });
  }

  /**
   * A client (sluice/client, through Redis) waits for `lsn` elsewhere: if a sink has not reached
   * it, write a fence so the stream brings the sinks past it.
   */
  nudge(lsn: Lsn, sinks: readonly string[]): void {
    if (this.stopped || sinks.every((s) => this.reached(s, lsn))) return;
    this.deps.fenceRequested?.();
    this.requestFence();
  }

  /** After each applied batch: wakes the waiters it served. */
  check(): void {
    for (const w of this.waiters) if (w.sinks.every((s) => this.reached(s, w.lsn))) this.finish(w, true);
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.waiters) this.finish(w, false);
  }

  private finish(w: Waiter, applied: boolean): void {
    if (!this.waiters.delete(w)) return;
    if (w.timer) clearTimeout(w.timer);
    this.deps.observe?.(applied ? 'applied' : 'timeout', (performance.now() - w.started) / 1000);
    w.resolve(applied);
  }

  /** One fence at a time; waiters that came while it was being written get the next one. */
  private requestFence(): void {
    if (this.emitting) {
      this.again = true;
      return;
    }
    // a fence for clients is written even when no HTTP waiter is left to serve
    this.emitting = true;
    this.deps.emit().then(
      () => this.deps.fenceWritten?.(),
      (err: unknown) => this.deps.log.warn({ err: errorMessage(err) }, 'could not write a fence in Postgres; waiters are served when the stream moves'),
    ).finally(() => {
      this.emitting = false;
      if (this.again && !this.stopped) {
        this.again = false;
        this.requestFence();
      }
    });
  }
}
