// Sinks, transactions and watermark messages for the tests of src/plan/ (route, planner).
import type { Change, LogicalMessage, Transaction, Truncate } from '../../../src/core/change.js';
import type { Lsn } from '../../../src/core/lsn.js';
import type { Position } from '../../../src/core/position.js';
import { WATERMARK_PREFIX } from '../../../src/core/keyspace.js';
import { sinkSchema, type SinkConfig } from '../../../src/config/schema.js';
import { createSink } from '../../../src/sinks/index.js';
import type { Sink } from '../../../src/sinks/sink.js';
import { sinkRuntime, type HoldReason, type SinkRuntime } from '../../../src/plan/route.js';
import { insertChange, T, table } from './tables.js';

export const products = table('public', 'products', [
  ['id', T.int4, true],
  ['name', T.text],
]);
export const orders = table('public', 'orders', [
  ['id', T.int4, true],
  ['total', T.numeric],
]);

export interface SinkOptions {
  redis?: string;
  position?: Position | null;
  hold?: HoldReason | null;
}

/** A runtime sink from a sink config (`{ type: 'string' }`…), tables default to public.products. */
export function runtime(name: string, cfg: Record<string, unknown>, opts: SinkOptions = {}): SinkRuntime {
  const parsed = sinkSchema.parse({ name, tables: ['products'], ...cfg }) as SinkConfig;
  return fromSink(createSink(parsed), parsed.tables, parsed.actions, opts);
}

/** A runtime sink around any Sink object (fakes included). */
export function fromSink(
  sink: Sink,
  tables: readonly string[] = ['public.products'],
  actions: readonly Change['action'][] = ['insert', 'update', 'delete'],
  opts: SinkOptions = {},
): SinkRuntime {
  return sinkRuntime({ sink, redis: opts.redis ?? 'main', tables, actions }, opts.position ?? null, opts.hold ?? null);
}

export const pos = (lsn: Lsn, idx: number | null = null): Position => ({ lsn, idx });

export interface TxnOptions {
  complete?: boolean;
  endLsn?: Lsn;
  truncates?: Truncate[];
  messages?: LogicalMessage[];
  commitTimeMicros?: bigint;
}

/** A transaction committed at `commitLsn`; complete ones end at commitLsn + 8 unless told. */
export function txn(commitLsn: Lsn, changes: readonly Change[], opts: TxnOptions = {}): Transaction {
  const complete = opts.complete ?? true;
  return {
    xid: Number(commitLsn),
    commitLsn,
    endLsn: complete ? (opts.endLsn ?? commitLsn + 8n) : 0n,
    commitTimeMicros: opts.commitTimeMicros ?? 1_000_000n,
    changes,
    truncates: opts.truncates ?? [],
    messages: opts.messages ?? [],
    complete,
  };
}

/** Inserts into products with ids `first`…, idx from `firstIdx`. */
export function inserts(count: number, firstIdx = 0, first = 1): Change[] {
  return Array.from({ length: count }, (_, i) => insertChange(products, { id: String(first + i), name: `n${first + i}` }, firstIdx + i));
}

/** A transaction of `n` inserts as the assembler hands it over with max_transaction_rows = `chunk`. */
export function chunked(commitLsn: Lsn, n: number, chunk: number): Transaction[] {
  const out: Transaction[] = [];
  let cur: Change[] = [];
  for (let i = 0; i < n; i++) {
    cur.push(insertChange(products, { id: String(i + 1), name: `n${i + 1}` }, i));
    if (cur.length >= chunk) {
      out.push(txn(commitLsn, cur, { complete: false }));
      cur = [];
    }
  }
  out.push(txn(commitLsn, cur));
  return out;
}

export function watermark(text: string, lsn: Lsn = 0x500n): LogicalMessage {
  return { tag: 'message', transactional: true, lsn, prefix: WATERMARK_PREFIX, content: Buffer.from(text, 'utf8') };
}
