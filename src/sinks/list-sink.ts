import type { Change } from '../core/change.js';
import { messageJson, recordJson, type MessageMeta } from '../core/render.js';
import { TemplateCache } from '../core/template.js';
import { checkKey, checkValueSize, planSafely, type PlanExtras, type PlanOutput, type Sink } from './sink.js';
import { renderFor } from './moves.js';

export interface ListSinkOptions {
  name: string;
  key: string;
  push: 'append' | 'prepend';
  maxLength?: number | undefined;
  value: 'record' | 'message';
  expireMs?: number | undefined;
  maxValueBytes: number;
}

/**
 * `RPUSH key value` (append) or `LPUSH key value` (prepend), then `LTRIM` to keep the newest
 * `max_length` entries, then `PEXPIRE`. A delete (when `actions` has it) pushes its message too:
 * a list is a history, not a copy of the table, so there are no moves. Exactly once because a
 * replayed transaction is skipped as a whole (position check).
 */
export function createListSink(opts: ListSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const push = opts.push === 'append' ? 'RPUSH' : 'LPUSH';
  const max = opts.maxLength;
  return {
    name: opts.name,
    type: 'list',
    plan(change: Change, meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void {
      planSafely(change, out, () => {
        const route = extras?.route;
        const action = route?.action ?? change.action;
        const k = checkKey(route?.key ?? renderFor(key, change, 'key'));
        const value = extras?.value ?? (opts.value === 'message' ? messageJson(change, meta, action) : recordJson(change.table, change.row));
        checkValueSize(value, opts.maxValueBytes);
        out.command([push, k, value]);
        // keep the newest: they are at the tail when appending, at the head when prepending
        if (max !== undefined) out.command(opts.push === 'append' ? ['LTRIM', k, String(-max), '-1'] : ['LTRIM', k, '0', String(max - 1)]);
        const ttl = route?.expire_ms ?? opts.expireMs;
        if (ttl) out.command(['PEXPIRE', k, String(ttl)]);
      });
    },
  };
}
