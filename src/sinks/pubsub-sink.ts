import type { Change } from '../core/change.js';
import { messageJson, recordJson, type MessageMeta } from '../core/render.js';
import { TemplateCache } from '../core/template.js';
import { checkKey, checkValueSize, planSafely, type PlanExtras, type PlanOutput, type Sink } from './sink.js';
import { renderFor } from './moves.js';

export interface PubsubSinkOptions {
  name: string;
  channel: string;
  value: 'record' | 'message';
  maxValueBytes: number;
}

/**
 * `PUBLISH channel message` for every change, deletes included. Pub/sub is fire and forget: a
 * subscriber that is not connected at that moment never gets the message, and Redis keeps
 * nothing. Sluice publishes each change exactly once (a replay is skipped by the position check),
 * but delivery is only as good as pub/sub's; use a stream sink for durable delivery.
 */
export function createPubsubSink(opts: PubsubSinkOptions): Sink {
  const channel = new TemplateCache(opts.channel);
  return {
    name: opts.name,
    type: 'pubsub',
    plan(change: Change, meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void {
      planSafely(change, out, () => {
        const route = extras?.route;
        const action = route?.action ?? change.action;
        const ch = checkKey(route?.channel ?? route?.key ?? renderFor(channel, change, 'channel'), 'channel');
        const value = extras?.value ?? (opts.value === 'message' ? messageJson(change, meta, action) : recordJson(change.table, change.row));
        checkValueSize(value, opts.maxValueBytes);
        out.command(['PUBLISH', ch, value]);
      });
    },
  };
}
