import type { Change, TableInfo } from '../core/change.js';
import { rowIdentity } from '../core/table-info.js';
import type { Tuple } from '../core/tuple.js';
import type { RedisCommand } from './sink.js';
import { reverseIndexKey } from '../core/keyspace.js';

/**
 * The reverse index of a keyed sink: `sluice:idx:<sink>`, a Redis hash from a row's identity
 * (table + replica identity values) to the key and member the sink last wrote for that row.
 *
 * It is needed when a key, member or field template reads columns outside the replica identity
 * and the table is not REPLICA IDENTITY FULL: Postgres then sends neither the old values on an
 * update that moves the row nor those values on a delete (only the identity), so the old place
 * cannot be computed from the WAL. The index supplies it.
 *
 * Planning stays pure: the planned command is an EVAL of the script below, queued in the same
 * MULTI as the data commands, so the index and the data change atomically and replays are
 * skipped with them (position check).
 *
 *   EVAL script 2 <index> <new key> <old id> <new id> <remove command> <new entry>   (write)
 *   EVAL script 1 <index>           <old id> ""       <remove command> ""            (delete)
 *
 * The script removes the place recorded under <old id> when it differs from <new entry>
 * (`DEL key`, `HDEL key field`, `SREM key member`, `ZREM key member` or `SETBIT key offset 0`), then records the new
 * entry under <new id> (or only drops the old one, on delete). The key it removes from is read
 * from the index, so it is not declared in KEYS: on Redis Cluster this only works when that key
 * is in the index's slot (see docs/sinks.md).
 */
export const REVERSE_INDEX_SCRIPT = `local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev and prev ~= ARGV[4] then
  local c = string.find(prev, ':', 1, true)
  local n = tonumber(string.sub(prev, 1, c - 1))
  local key = string.sub(prev, c + 1, c + n)
  if ARGV[3] == 'DEL' then redis.call('DEL', key)
  elseif ARGV[3] == 'SETBIT' then redis.call('SETBIT', key, string.sub(prev, c + n + 1), 0)
  else redis.call(ARGV[3], key, string.sub(prev, c + n + 1)) end
end
if ARGV[2] == '' or ARGV[1] ~= ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[4]) end
return prev and 1 or 0`;

/**
 * How the script removes an old place: the whole key (hash row mode), one member/field (ZREM also
 * removes a geo member), or one bit cleared (bitmap: `SETBIT key offset 0`).
 */
export type RemoveCommand = 'DEL' | 'HDEL' | 'SREM' | 'ZREM' | 'SETBIT';

/**
 * One index entry: `<byte length of key>:<key><member>`. Length-prefixed (in bytes, as Lua
 * counts them) so that any key and member round-trip, whatever characters they hold.
 */
export function encodeEntry(key: string, member: string): string {
  return `${Buffer.byteLength(key)}:${key}${member}`;
}

/** The index field of a row: `schema.table:` then its identity values. */
export function indexField(table: TableInfo, row: Tuple): string {
  return `${table.qualifiedName}:${rowIdentity(table, row)}`;
}

/** Insert, update or read: drop the old place if the row moved, record the new one. */
export function indexWriteCommand(sinkName: string, change: Change, remove: RemoveCommand, key: string, member: string): RedisCommand {
  const newId = indexField(change.table, change.row);
  // 'K': the identity itself changed, the entry was recorded under the old identity
  const oldId = change.oldKind === 'K' && change.oldRow ? indexField(change.table, change.oldRow) : newId;
  return ['EVAL', REVERSE_INDEX_SCRIPT, '2', reverseIndexKey(sinkName), key, oldId, newId, remove, encodeEntry(key, member)];
}

/** Delete: remove the place recorded for the row's identity, and the entry. */
export function indexDeleteCommand(sinkName: string, change: Change, remove: RemoveCommand): RedisCommand {
  const row = change.action === 'update' && change.oldKind === 'K' && change.oldRow ? change.oldRow : change.row;
  return ['EVAL', REVERSE_INDEX_SCRIPT, '1', reverseIndexKey(sinkName), indexField(change.table, row), '', remove, ''];
}
