import type pg from 'pg';
import { WATERMARK_PREFIX, watermarkContent, type WatermarkKind } from '../core/keyspace.js';

/*
 * DBLog watermarks (Netflix): to copy rows beside the live stream without ever writing a value
 * older than the stream's, write a low watermark to the WAL, read the rows, write a high one.
 * The stream meets both in WAL order. A row it changes between them may have been read before or
 * after the change, so the pipeline drops it from the read (the stream's change stands); every
 * other row read is the row as it is at the high watermark, where the pipeline applies it. Each
 * watermark is a transactional logical message (`pg_logical_emit_message(true, 'sluice',
 * 'lw:<id>')`) committed on its own, so the read's snapshot lies between the two.
 */

/** A window the pipeline opened for this read (openBackfillWindow, openOrphanWindow). */
export interface WatermarkWindow<A> {
  readonly id: string;
  /** settles once the high watermark's batch is applied (or rejects when the window is cancelled) */
  readonly applied: Promise<A>;
  /** closes the window without applying anything (no-op once it is closed) */
  cancel(reason: string): void;
}

export interface WindowSteps<T> {
  /** after the low watermark committed: reads the rows (statements on the same client, outside a transaction) */
  read(): Promise<T>;
  /** hands what was read to the window; runs before the high watermark is written */
  fill(value: T): void;
  /** the reason the window is cancelled with when anything fails */
  failure: string;
}

/** Writes one watermark to the WAL, in its own transaction (the client must not be in one). */
export async function emitWatermark(client: pg.Client, kind: WatermarkKind, windowId: string): Promise<void> {
  await client.query(`select pg_logical_emit_message(true, $1, $2)`, [WATERMARK_PREFIX, watermarkContent(kind, windowId)]);
}

/**
 * low watermark → read → fill → high watermark → wait until applied. Any failure (a statement,
 * `read` or `fill` throwing, the window rejected) cancels the window and rethrows. Use a client
 * with `synchronous_commit = on`, so the watermarks reach the walsender at once.
 * @returns what `read` returned, and what the window reported once applied
 */
export async function withWatermarkWindow<T, A>(client: pg.Client, window: WatermarkWindow<A>, steps: WindowSteps<T>): Promise<{ value: T; applied: A }> {
  // a window rejected while a step runs (Sluice stopping) must not be an unhandled rejection
  window.applied.catch(() => undefined);
  try {
    await emitWatermark(client, 'low', window.id);
    const value = await steps.read();
    steps.fill(value);
    await emitWatermark(client, 'high', window.id);
    return { value, applied: await window.applied };
  } catch (err) {
    window.cancel(steps.failure);
    throw err;
  }
}
