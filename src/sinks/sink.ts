import type { Action, Change, TableInfo } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { MessageError } from '../core/template.js';

import type { RedisCommand } from '../core/command.js';
import type { RespWriter } from '../core/resp-writer.js';

export type { RedisCommand };

/**
 * Writes one backfilled row, a line of COPY text (`line[start..end)`, no newline), as its sink's
 * command in RESP, straight from the bytes: no row array, no strings, no command array
 * (sinks/copy-encoder.ts). Returns false, having written nothing, when the row needs the sink's
 * own planning (a NULL or an escape in the line, a byte outside ASCII, a value that is not in its
 * common form, a key or a value over its limit): the caller plans that row as a change. Either way
 * the commands are the same (test/unit/copy-encoder.test.ts compares them for random rows and types).
 */
export type CopyRowEncoder = (line: Buffer, start: number, end: number, out: RespWriter) => boolean;

export interface PlanOutput {
  command(cmd: RedisCommand): void;
  /**
   * The message cannot be delivered: it goes to the sink's failed messages with `reason`.
   * `withoutValues` is the reason without the row values it quotes, for logs (default: `reason`).
   */
  fail(change: Change, reason: string, withoutValues?: string): void;
}

export type SinkType = 'string' | 'hash' | 'list' | 'set' | 'zset' | 'stream' | 'pubsub' | 'geo' | 'hyperloglog' | 'bitmap' | 'aggregate';

/**
 * What the sink's `route` function decided for one message. Each field replaces what the sink's
 * own template or option would give; absent fields keep the defaults.
 */
export interface RouteOverride {
  readonly key?: string;
  readonly action?: Action;
  readonly expire_ms?: number;
  readonly channel?: string;
  readonly member?: string;
  readonly score?: number;
  readonly field?: string;
}

/** Results of the sink's user functions for one message (filter has already been applied). */
export interface PlanExtras {
  /** `transform`'s result, serialized: strings and numbers as they are, anything else as JSON */
  readonly value?: string;
  readonly route?: RouteOverride;
}

/**
 * A sink turns changes into Redis commands. Planning is pure: no I/O, no clock, the same
 * change always gives the same commands, so replays and tests are exact.
 */
export interface Sink {
  readonly name: string;
  readonly type: SinkType;
  plan(change: Change, meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void;
  /**
   * A fixed key prefix under which all of a table's keys live, if the key template has one
   * (so TRUNCATE can remove them with SCAN MATCH prefix*); null when it cannot be known.
   */
  truncatePattern?(table: TableInfo): string | null;
  /**
   * Encodes a backfilled row's command straight from its COPY text (sinks/copy-encoder.ts), for
   * a sink without functions whose commands the pipeline takes encoded; null when this sink or
   * table has no such way. The commands must equal what `plan` gives for the row's `read` change.
   */
  copyEncoder?(table: TableInfo): CopyRowEncoder | null;
}

export const MAX_KEY_BYTES = 512;

/** Keys must be non-empty and at most 512 bytes (SPEC §4). */
export function checkKey(key: string, what = 'key'): string {
  if (key.length === 0) throw new MessageError(`the ${what} rendered empty`);
  // UTF-16 code units take at most 3 UTF-8 bytes each: only long strings need measuring.
  if (key.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new MessageError(`the ${what} is ${Buffer.byteLength(key)} bytes; the limit is ${MAX_KEY_BYTES}`);
  }
  return key;
}

export function checkValueSize(value: string, maxBytes: number): string {
  if (value.length > maxBytes / 3 && Buffer.byteLength(value) > maxBytes) {
    throw new MessageError(`the value is ${Buffer.byteLength(value)} bytes, over max_value_bytes (${maxBytes})`);
  }
  return value;
}

/** Runs one planning step, turning a MessageError into a failed message. */
export function planSafely(change: Change, out: PlanOutput, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (err instanceof MessageError) out.fail(change, err.message, err.withoutValues);
    else throw err;
  }
}
