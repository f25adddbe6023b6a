import type { Change } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { TemplateCache } from '../core/template.js';
import { checkKey, planSafely, type PlanExtras, type PlanOutput, type Sink } from './sink.js';

export interface HyperLogLogSinkOptions {
  name: string;
  key: string;
  element: string;
  expireMs?: number | undefined;
}

/**
 * `PFADD key element` (then `PEXPIRE`) for every insert, update and read. A HyperLogLog cannot
 * forget an element: a delete (when `actions` lists it) plans nothing, and an update that changes
 * the element adds the new one while the old one stays counted. A transform's value is the element;
 * a route may give the key. No TRUNCATE pattern: like a history, the count keeps what it has seen.
 */
export function createHyperLogLogSink(opts: HyperLogLogSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const element = new TemplateCache(opts.element);
  return {
    name: opts.name,
    type: 'hyperloglog',
    plan(change: Change, _meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void {
      planSafely(change, out, () => {
        const route = extras?.route;
        if ((route?.action ?? change.action) === 'delete') return;
        const k = checkKey(route?.key ?? key.render(change.table, change.row));
        const e = extras?.value ?? element.render(change.table, change.row);
        out.command(['PFADD', k, e]);
        const ttl = route?.expire_ms ?? opts.expireMs;
        if (ttl) out.command(['PEXPIRE', k, String(ttl)]);
      });
    },
  };
}
