import type { LogicalMessage, Transaction } from '../core/change.js';
import type { Planner } from '../plan/planner.js';
import type { ResendState, SinkRuntime } from '../plan/route.js';
import type { RowLookups } from './lookups.js';

export type IntakeItem = { kind: 'txn'; txn: Transaction; gen: number } | { kind: 'message'; msg: LogicalMessage; gen: number };

/** What the intake needs of the pipeline around it. */
export interface IntakeDeps {
  readonly planner: Planner;
  readonly lookups: RowLookups;
  readonly resend: ResendState;
  sinks(): readonly SinkRuntime[];
  /** the pipeline failed: nothing more is taken in */
  failed(): boolean;
  /** reading stops while a row lookup runs (order is kept), and goes on after it */
  pause(reason: string): void;
  resume(reason: string): void;
  fail(err: unknown): void;
  /** something was planned: apply it */
  kick(): void;
  /** a lookup could not finish (Sluice stops): waiters for idleness are told */
  lookupAbandoned(err: unknown): void;
}

/**
 * The ordered intake between the change stream and the planner. Synchronous unless a
 * transaction needs rows looked up in Postgres first (unchanged TOAST values, primary keys of
 * REPLICA IDENTITY FULL tables): then the stream pauses until they are read, so order is kept.
 */
export class Intake {
  private readonly queue: IntakeItem[] = [];
  private busy = false;

  constructor(private readonly deps: IntakeDeps) {}

  /** nothing waits to be planned and no lookup runs */
  get idle(): boolean {
    return this.queue.length === 0 && !this.busy;
  }

  /** a lookup runs: batches wait with it (their order with the looked-up transaction) */
  get looking(): boolean {
    return this.busy;
  }

  push(item: IntakeItem): void {
    this.queue.push(item);
    if (!this.busy) this.drain();
  }

  private drain(): void {
    const d = this.deps;
    try {
      while (this.queue.length > 0 && !d.failed()) {
        const item = this.queue[0]!;
        if (item.kind === 'txn' && d.lookups.needs(item.txn, d.sinks())) {
          this.busy = true;
          d.pause('intake');
          d.lookups.prepare(item.txn, d.sinks()).then(
            (txn) => {
              item.txn = txn;
              // the table is looked up now: needs() is false for it
              this.busy = false;
              d.resume('intake');
              this.process(this.queue.shift()!);
              this.drain();
            },
            (err: unknown) => {
              this.busy = false;
              d.lookupAbandoned(err);
            },
          );
          return;
        }
        this.queue.shift();
        this.process(item);
      }
    } catch (err) {
      d.fail(err);
      return;
    }
    d.kick();
  }

  private process(item: IntakeItem): void {
    const { resend, planner, lookups } = this.deps;
    if (resend.shouldReset(item.gen)) resend.filter.reset();
    if (item.kind === 'message') {
      planner.message(item.msg, item.gen);
      return;
    }
    const txn = resend.filter.take(item.txn);
    if (txn === null) return;
    planner.transaction(lookups.keyed(txn), item.gen);
  }
}
