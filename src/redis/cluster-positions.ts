import type { RespWriter } from './resp-writer.js';
import { ReplyError, type Reply } from './resp-connection.js';

/*
 * The sinks' positions on a Redis Cluster (pure part; cluster-apply-lane.ts sends them): one key
 * per sink, `sluice:pos:<sink>`, written once every hash slot has applied the batch. Each is
 * written with `SET key value GET` (Redis 6.2+) or, on an older master, `GET key` then `SET key
 * value`: the value before tells whether Redis still holds what the lane wrote there last.
 */

/** A sink's position to write: [sink, position key, value]. */
export type PositionWrite = readonly [sink: string, key: string, value: string];

/** What became of one position write: the value its key held before (undefined: not written, sent again). */
export interface PositionOutcome {
  readonly found: (string | null | undefined)[];
  /** the first failure (a refusal, or a reply not understood), if any */
  readonly error: string | null;
}

/** Encodes the writes of `list`. Returns how many replies they get. */
export function writePositions(out: RespWriter, list: readonly PositionWrite[], setGet: boolean): number {
  for (const [, key, value] of list) {
    if (setGet) out.command(['SET', key, value, 'GET']);
    else {
      out.command(['GET', key]);
      out.command(['SET', key, value]);
    }
  }
  return list.length * (setGet ? 1 : 2);
}

/** Checks the replies to `writePositions(out, list, setGet)` (null: lost with the connection). */
export function checkPositions(replies: readonly Reply[] | null, list: readonly PositionWrite[], setGet: boolean): PositionOutcome {
  const found: (string | null | undefined)[] = [];
  let error: string | null = null;
  for (let j = 0; j < list.length; j++) {
    if (replies === null) {
      found.push(undefined);
      continue;
    }
    const before = replies[setGet ? j : 2 * j];
    const after = setGet ? 'OK' : replies[2 * j + 1];
    const refusal = before instanceof ReplyError ? before : after instanceof ReplyError ? after : null;
    if (refusal !== null) error ??= refusal.message;
    if (refusal !== null || (before !== null && typeof before !== 'string') || after === undefined || before === undefined) {
      if (refusal === null) error ??= `unexpected reply to a position write: ${String(before)}`;
      found.push(undefined);
    } else found.push(before);
  }
  return { found, error };
}
