import type { Change, TableInfo } from '../core/change.js';
import type { MessageMeta } from '../core/render.js';
import { templatePrefix, type TemplateCache } from '../core/template.js';
import type { RedisCommand } from '../core/command.js';
import { planSafely, type PlanExtras, type PlanOutput, type RouteOverride, type Sink, type SinkType } from './sink.js';
import { memberRoute, type Place, type Placement } from './placement.js';

export interface MemberSinkOptions {
  readonly name: string;
  readonly type: SinkType;
  readonly key: TemplateCache;
  readonly placement: Placement;
  readonly expireMs?: number | undefined;
  /**
   * The commands that put the row at its place (everything that can fail is computed here,
   * before the old place is removed).
   */
  write(place: Place, change: Change, route: RouteOverride | undefined): RedisCommand[];
}

/**
 * The shape every keyed-member sink shares (set, zset, geo, bitmap): a delete (or a route's
 * `action: delete`) removes the row's place; any other change computes its writes, removes the
 * row's old place if it moved, writes, then refreshes the TTL.
 */
export function memberSink(o: MemberSinkOptions): Sink {
  return {
    name: o.name,
    type: o.type,
    plan(change: Change, _meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void {
      planSafely(change, out, () => {
        const route = memberRoute(extras);
        if ((route?.action ?? change.action) === 'delete') {
          o.placement.planDelete(change, route, out);
          return;
        }
        const place = o.placement.place(change.table, change.row, route);
        const writes = o.write(place, change, route);
        o.placement.beforeWrite(change, place, route, out);
        for (const w of writes) out.command(w);
        const ttl = route?.expire_ms ?? o.expireMs;
        if (ttl) out.command(['PEXPIRE', place.key, String(ttl)]);
      });
    },
    truncatePattern(table: TableInfo): string | null {
      return templatePrefix(o.key.parts, table);
    },
  };
}
