import { memberSink } from './member-sink.js';
import type { Change, TableInfo } from '../core/change.js';
import { MessageError, TemplateCache } from '../core/template.js';
import { toPlain } from '../core/values.js';
import type { Sink } from './sink.js';
import { Placement } from './placement.js';

export interface ZsetSinkOptions {
  name: string;
  key: string;
  member: string;
  /** the column holding the score */
  score: string;
  expireMs?: number | undefined;
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * `ZADD key score member` (then `PEXPIRE`); delete: `ZREM key member`. A row whose key or member
 * changes is removed from its old place in the same transaction; a new score alone needs nothing
 * more (ZADD updates it). The score column must hold a number: NULL, NaN or text is a failed message.
 */
export function createZsetSink(opts: ZsetSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const placement = new Placement({ sinkName: opts.name, key, member: new TemplateCache(opts.member), memberName: 'member', remove: 'ZREM' });
  const scoreIndex = new WeakMap<TableInfo, number>();
  const scoreOf = (change: Change): string => {
    const table = change.table;
    let idx = scoreIndex.get(table);
    if (idx === undefined) {
      idx = table.columns.findIndex((c) => c.name === opts.score);
      scoreIndex.set(table, idx);
    }
    if (idx < 0) throw new MessageError(`the score column "${opts.score}" is not in table ${table.qualifiedName}`);
    const col = table.columns[idx]!;
    const raw = change.row[idx];
    if (raw === undefined) throw new MessageError(`the score column "${opts.score}" is not in the row Postgres sent (unchanged TOAST)`);
    return redisScore(toPlain(col.codec, raw), `score column "${opts.score}"`);
  };
  return memberSink({
    name: opts.name,
    type: 'zset',
    key,
    placement,
    expireMs: opts.expireMs,
    write: (place, change, route) => {
      const score = route?.score !== undefined ? redisScore(String(route.score), 'score from route') : scoreOf(change);
      return [['ZADD', place.key, score, place.member]];
    },
  });
}

/** A score as ZADD takes it: a decimal number, or +inf/-inf (Postgres's ±Infinity). */
export function redisScore(v: string | null, what: string): string {
  if (v === null) throw new MessageError(`the ${what} is NULL; a sorted set needs a number`);
  if (NUMBER.test(v)) return v;
  if (v === 'Infinity') return '+inf';
  if (v === '-Infinity') return '-inf';
  throw new MessageError(`the ${what} is ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}, not a number; a sorted set needs a number`, `the ${what} is not a number; a sorted set needs a number`);
}
