import type { Change, TableInfo } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { TemplateCache, templatePrefix } from '../core/template.js';
import { planSafely, type PlanExtras, type PlanOutput, type Sink } from './sink.js';
import { memberRoute, Placement } from './placement.js';

export interface SetSinkOptions {
  name: string;
  key: string;
  member: string;
  expireMs?: number | undefined;
}

/**
 * `SADD key member` (then `PEXPIRE`); delete: `SREM key member`; a row that moves is removed from
 * its old set (or loses its old member) in the same transaction. A transform's value is the member.
 */
export function createSetSink(opts: SetSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const placement = new Placement({ sinkName: opts.name, key, member: new TemplateCache(opts.member), memberName: 'member', remove: 'SREM' });
  return {
    name: opts.name,
    type: 'set',
    plan(change: Change, _meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void {
      planSafely(change, out, () => {
        const route = memberRoute(extras);
        if ((route?.action ?? change.action) === 'delete') {
          placement.planDelete(change, route, out);
          return;
        }
        const place = placement.place(change.table, change.row, route);
        placement.beforeWrite(change, place, route, out);
        out.command(['SADD', place.key, place.member]);
        const ttl = route?.expire_ms ?? opts.expireMs;
        if (ttl) out.command(['PEXPIRE', place.key, String(ttl)]);
      });
    },
    truncatePattern(table: TableInfo): string | null {
      return templatePrefix(key.parts, table);
    },
  };
}
