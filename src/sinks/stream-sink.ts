import type { Change } from '../core/change.js';
import { changesJson, recordJson, type MessageMeta } from '../core/render.js';
import { TemplateCache } from '../core/template.js';
import { checkKey, checkValueSize, planSafely, type PlanExtras, type PlanOutput, type RedisCommand, type Sink } from './sink.js';
import { renderFor } from './moves.js';
import { metadataJson } from '../core/render.js';

export interface StreamSinkOptions {
  name: string;
  key: string;
  maxLength?: number | undefined;
  expireMs?: number | undefined;
  maxValueBytes: number;
}

/**
 * `XADD key [MAXLEN ~ n] * action <action> record <json> changes <json> metadata <json>` for every
 * change, deletes included (action=delete), then `PEXPIRE` when expire_ms is set. With a
 * transform, `record` holds its value and `changes` is left out (it could show what the
 * transform removes).
 *
 * Entry IDs are Redis's own (`*`): a replayed transaction is skipped as a whole by the position
 * check, so no entry is added twice and deriving IDs from LSNs is not needed.
 */
export function createStreamSink(opts: StreamSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const trim: string[] = opts.maxLength !== undefined ? ['MAXLEN', '~', String(opts.maxLength)] : [];
  return {
    name: opts.name,
    type: 'stream',
    plan(change: Change, meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void {
      planSafely(change, out, () => {
        const route = extras?.route;
        const action = route?.action ?? change.action;
        const k = checkKey(route?.key ?? renderFor(key, change, 'key'));
        const record = checkValueSize(extras?.value ?? recordJson(change.table, change.row), opts.maxValueBytes);
        const cmd: RedisCommand = ['XADD', k, ...trim, '*', 'action', action, 'record', record];
        if (extras?.value === undefined) cmd.push('changes', checkValueSize(changesJson(change), opts.maxValueBytes));
        cmd.push('metadata', metadataJson(change, meta));
        out.command(cmd);
        const ttl = route?.expire_ms ?? opts.expireMs;
        if (ttl) out.command(['PEXPIRE', k, String(ttl)]);
      });
    },
  };
}
