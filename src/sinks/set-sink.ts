import { memberSink } from './member-sink.js';
import { TemplateCache } from '../core/template.js';
import type { Sink } from './sink.js';
import { Placement } from './placement.js';

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
  return memberSink({
    name: opts.name,
    type: 'set',
    key,
    placement,
    expireMs: opts.expireMs,
    write: (place, _change, _route) => {
      return [['SADD', place.key, place.member]];
    },
  });
}
