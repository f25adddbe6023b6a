import type { Change, TableInfo } from '../core/change.js';
import { messageJson, recordJson, type MessageMeta } from '../core/render.js';
import { MessageError, TemplateCache, templatePrefix } from '../core/template.js';
import { toPlain } from '../core/values.js';
import { checkValueSize, planSafely, type PlanExtras, type PlanOutput, type RedisCommand, type Sink } from './sink.js';
import { Placement } from './placement.js';

export type HashSinkOptions =
  | { name: string; mode: 'row'; key: string; expireMs?: number | undefined; maxValueBytes: number }
  | { name: string; mode: 'field'; key: string; field: string; value: 'record' | 'message'; expireMs?: number | undefined; maxValueBytes: number };

/**
 * Row mode: one hash per row, one field per column: `HSET key col val …`, NULL columns
 * removed with `HDEL key col …`, `PEXPIRE key expire_ms`; delete: `DEL key`. A backfilled row
 * (`read`) is `DEL key` then `HSET`: the hash is exactly the row, whatever columns it had before.
 * Field mode: one field per row in a shared hash: `HSET key field value`; delete: `HDEL key field`.
 */
export function createHashSink(opts: HashSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const field = opts.mode === 'field' ? new TemplateCache(opts.field) : null;
  const placement = new Placement({ sinkName: opts.name, key, member: field, memberName: 'field', remove: opts.mode === 'row' ? 'DEL' : 'HDEL' });
  return {
    name: opts.name,
    type: 'hash',
    plan(change: Change, meta: MessageMeta, out: PlanOutput, extras?: PlanExtras): void {
      planSafely(change, out, () => {
        const route = extras?.route;
        if ((route?.action ?? change.action) === 'delete') {
          placement.planDelete(change, route, out);
          return;
        }
        const place = placement.place(change.table, change.row, route);
        // everything that can fail is computed before the first command
        let writes: RedisCommand[];
        if (opts.mode === 'row') {
          writes = rowCommands(place.key, extras?.value !== undefined ? fieldsOfValue(extras.value) : fieldsOfRow(change), opts.maxValueBytes);
        } else {
          const value = extras?.value ?? (opts.value === 'message' ? messageJson(change, meta) : recordJson(change.table, change.row));
          checkValueSize(value, opts.maxValueBytes);
          writes = [['HSET', place.key, place.member, value]];
        }
        placement.beforeWrite(change, place, route, out);
        // a row read by a backfill replaces the whole hash: fields of columns dropped or renamed
        // since (a schema change) do not outlive it; DEL and HSET share the batch's MULTI
        if (opts.mode === 'row' && change.action === 'read' && extras?.value === undefined) out.command(['DEL', place.key]);
        for (const w of writes) out.command(w);
        const ttl = route?.expire_ms ?? opts.expireMs;
        if (ttl) out.command(['PEXPIRE', place.key, String(ttl)]);
      });
    },
    truncatePattern(table: TableInfo): string | null {
      return templatePrefix(key.parts, table);
    },
  };
}

/** [field, value or null (remove)] pairs; unchanged TOAST values Postgres did not send are left as Redis holds them. */
type Fields = [string, string | null][];

function fieldsOfRow(change: Change): Fields {
  const { columns } = change.table;
  const out: Fields = [];
  for (let i = 0; i < columns.length; i++) {
    const v = change.row[i];
    if (v === undefined) continue;
    const col = columns[i]!;
    out.push([col.name, toPlain(col.codec, v)]);
  }
  return out;
}

/** A transform's result: its object's properties become the fields (strings as they are, null removes). */
function fieldsOfValue(value: string): Fields {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new MessageError('a hash sink in row mode needs transform to return an object (its properties become the hash fields)');
  }
  return Object.entries(parsed).map(([f, v]): [string, string | null] => [f, v === null ? null : typeof v === 'string' ? v : JSON.stringify(v)]);
}

function rowCommands(key: string, fields: Fields, maxValueBytes: number): RedisCommand[] {
  const hset: RedisCommand = ['HSET', key];
  const hdel: RedisCommand = ['HDEL', key];
  for (const [f, v] of fields) {
    if (v === null) hdel.push(f);
    else hset.push(f, checkValueSize(v, maxValueBytes));
  }
  const out: RedisCommand[] = [];
  if (hset.length > 2) out.push(hset);
  if (hdel.length > 2) out.push(hdel);
  return out;
}
