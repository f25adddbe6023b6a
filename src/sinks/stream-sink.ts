import type { Change } from '../core/change.js';
import { changesJson, recordJson, type MessageMeta } from '../core/render.js';
import { TemplateCache } from '../core/template.js';
import { checkKey, checkValueSize, planSafely, type PlanExtras, type PlanOutput, type RedisCommand, type Sink } from './sink.js';
import { renderFor } from './moves.js';
import { metadataJson } from '../core/render.js';
import { microsToUnixMs } from '../core/time.js';

export interface StreamSinkOptions {
  name: string;
  key: string;
  maxLength?: number | undefined;
  /** entries older than this (relative to the message's commit time) are trimmed */
  maxAgeMs?: number | undefined;
  expireMs?: number | undefined;
  maxValueBytes: number;
}

/**
 * `XADD key [MAXLEN ~ n | MINID ~ t] * action <action> record <json> changes <json> metadata <json>`
 * for every change, deletes included (action=delete), then `PEXPIRE` when expire_ms is set. With a
 * transform, `record` holds its value and `changes` is left out (it could show what the
 * transform removes).
 *
 * `max_age_ms`: `t` is the message's commit time minus max_age_ms, in milliseconds (an entry ID
 * of that time): planning has no clock, and the commit time is the "now" of the stream's newest
 * change. XADD takes one trim strategy: with `max_length` too, XADD trims by length and an
 * `XTRIM key MINID ~ t` follows it in the same transaction.
 *
 * Entry IDs are Redis's own (`*`): a replayed transaction is skipped as a whole by the position
 * check, so no entry is added twice and deriving IDs from LSNs is not needed.
 */
export function createStreamSink(opts: StreamSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const maxLen: string[] = opts.maxLength !== undefined ? ['MAXLEN', '~', String(opts.maxLength)] : [];
  const maxAge = opts.maxAgeMs;
  return {
    name: opts.name,
    type: 'stream',
    plan(change: Change, meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void {
      planSafely(change, out, () => {
        const route = extras?.route;
        const action = route?.action ?? change.action;
        const k = checkKey(route?.key ?? renderFor(key, change, 'key'));
        const record = checkValueSize(extras?.value ?? recordJson(change.table, change.row), opts.maxValueBytes);
        const minId = maxAge !== undefined ? minIdFor(meta, maxAge) : null;
        const trim = minId !== null && maxLen.length === 0 ? ['MINID', '~', minId] : maxLen;
        const cmd: RedisCommand = ['XADD', k, ...trim, '*', 'action', action, 'record', record];
        if (extras?.value === undefined) cmd.push('changes', checkValueSize(changesJson(change), opts.maxValueBytes));
        cmd.push('metadata', metadataJson(change, meta));
        out.command(cmd);
        if (minId !== null && maxLen.length > 0) out.command(['XTRIM', k, 'MINID', '~', minId]);
        const ttl = route?.expire_ms ?? opts.expireMs;
        if (ttl) out.command(['PEXPIRE', k, String(ttl)]);
      });
    },
  };
}

/** The oldest entry ID to keep: the commit time minus max_age_ms, in ms (0 when that is before 1970). */
export function minIdFor(meta: MessageMeta, maxAgeMs: number): string {
  const t = microsToUnixMs(meta.commitTimeMicros) - maxAgeMs;
  return t > 0 ? String(t) : '0';
}
