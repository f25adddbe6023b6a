import { memberSink } from './member-sink.js';
import { MessageError, TemplateCache } from '../core/template.js';
import type { Sink } from './sink.js';
import { Placement } from './placement.js';
import { ColumnValue, quoteValue } from './column-value.js';

export interface BitmapSinkOptions {
  name: string;
  key: string;
  /** the integer column giving the bit's offset */
  offset: string;
  expireMs?: number | undefined;
}

/** SETBIT's offsets: 0 ≤ offset < 2^32 (a string is at most 512 MB). */
export const MAX_BIT_OFFSET = 2 ** 32 - 1;

const INTEGER = /^([+-]?)(\d+)(?:\.0*)?$/;

/**
 * `SETBIT key offset 1` (then `PEXPIRE`); delete: `SETBIT key offset 0`. A row whose key or offset
 * changes has its old bit cleared in the same transaction (the old place comes from the old row or
 * the reverse index, as for set members). The offset must be a whole number from 0 to 2^32-1:
 * NULL, negative, fractional or larger offsets are a failed message. A transform's value is the
 * offset; a route may give the key.
 */
export function createBitmapSink(opts: BitmapSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const what = `offset column "${opts.offset}"`;
  const placement = new Placement({
    sinkName: opts.name,
    key,
    member: new ColumnValue(opts.offset, 'offset'),
    memberName: 'member',
    remove: 'SETBIT',
    checkMember: (v) => bitOffset(v, what),
  });
  return memberSink({
    name: opts.name,
    type: 'bitmap',
    key,
    placement,
    expireMs: opts.expireMs,
    write: (place, _change, _route) => {
      return [['SETBIT', place.key, place.member, '1']];
    },
  });
}

/** An offset as SETBIT takes it (`42`; `42.0` becomes `42`), or a MessageError saying what is wrong. */
export function bitOffset(v: string, what: string): string {
  const m = INTEGER.exec(v);
  if (!m) throw new MessageError(`the ${what} is ${quoteValue(v)}, not a whole number; a bitmap offset is an integer from 0 to ${MAX_BIT_OFFSET}`, `the ${what} is not a whole number; a bitmap offset is an integer from 0 to ${MAX_BIT_OFFSET}`);
  const n = BigInt(m[2]!);
  if (m[1] === '-' && n !== 0n) throw new MessageError(`the ${what} is ${quoteValue(v)}, negative; a bitmap offset is an integer from 0 to ${MAX_BIT_OFFSET}`, `the ${what} is negative; a bitmap offset is an integer from 0 to ${MAX_BIT_OFFSET}`);
  if (n > BigInt(MAX_BIT_OFFSET)) throw new MessageError(`the ${what} is ${quoteValue(v)}, too large; a bitmap offset is an integer from 0 to ${MAX_BIT_OFFSET} (2^32-1)`, `the ${what} is too large; a bitmap offset is an integer from 0 to ${MAX_BIT_OFFSET} (2^32-1)`);
  return n.toString();
}
