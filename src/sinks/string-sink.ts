import type { Change, TableInfo } from '../core/change.js';
import { messageJson, recordJson, type MessageMeta } from '../core/render.js';
import { TemplateCache, templatePrefix } from '../core/template.js';
import { checkKey, checkValueSize, planSafely, type CopyRowEncoder, type PlanExtras, type PlanOutput, type Sink } from './sink.js';
import { oldKeyIfMoved } from './moves.js';
import { copySetEncoder } from './copy-encoder.js';

export interface StringSinkOptions {
  name: string;
  key: string;
  value: 'record' | 'message';
  expireMs?: number | undefined;
  maxValueBytes: number;
}

/** `SET key value [PX expire_ms]` on insert/update/read, `DEL key` on delete (SPEC §4). */
export function createStringSink(opts: StringSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const encoders = new WeakMap<TableInfo, CopyRowEncoder | null>();
  return {
    name: opts.name,
    type: 'string',
    plan(change: Change, meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void {
      planSafely(change, out, () => {
        const route = extras?.route;
        const k = checkKey(route?.key ?? key.render(change.table, change.row));
        if ((route?.action ?? change.action) === 'delete') {
          out.command(['DEL', k]);
          return;
        }
        const value = extras?.value ?? (opts.value === 'message' ? messageJson(change, meta) : recordJson(change.table, change.row));
        checkValueSize(value, opts.maxValueBytes);
        if (route?.key === undefined) {
          const old = oldKeyIfMoved(key, change, k);
          if (old !== null) out.command(['DEL', old]);
        }
        const ttl = route?.expire_ms ?? opts.expireMs;
        out.command(ttl ? ['SET', k, value, 'PX', String(ttl)] : ['SET', k, value]);
      });
    },
    truncatePattern(table: TableInfo): string | null {
      return templatePrefix(key.parts, table);
    },
    copyEncoder(table: TableInfo): CopyRowEncoder | null {
      if (opts.value !== 'record') return null;
      let e = encoders.get(table);
      if (e === undefined) encoders.set(table, (e = copySetEncoder(table, key.parts, opts.maxValueBytes, opts.expireMs)));
      return e;
    },
  };
}
