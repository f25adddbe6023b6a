import type { CommandOrigin, RedisCommand, RejectedCommand } from '../core/command.js';
import { ReplyError, type Reply } from './resp-connection.js';

/*
 * A plain slot group: a slot's data commands sent with no MULTI around them and no bookkeeping
 * of their own.
 *
 * A slot's share of a batch is sent this way (`isPlainAt`) only when running any prefix of it again
 * leaves Redis as running it once would, and no reader can see half a transaction:
 *
 *   - every command is a data command that sets a key to a value (or removes it), whatever the
 *     key held (`IDEMPOTENT`), with its key as its first argument;
 *   - no key appears twice (so sending the group again cannot put back an older value of a key
 *     it wrote later in the group);
 *   - no transaction has two commands in it (a transaction stays atomic per hash slot).
 *
 * Such a group whose outcome is unknown (a lost connection) or that Redis refused in part (a
 * slot moved or migrating, OOM) is simply sent again: its keys end as one run would leave them,
 * and the lane's one batch at a time means nothing later was written to the slot meanwhile.
 *
 * What keeps a replay after a crash from writing an older value back is the sink's position
 * (`sluice:pos:<sink>`, one key for the whole Cluster), written once every slot of the batch has
 * applied it (cluster-apply-lane.ts): a restart skips what it covers, and resends at most the one
 * batch that was being applied, whose plain groups rewrite the values they already wrote. Lost
 * writes are noticed by the MULTI slots' markers and by one probe per master per batch, written
 * last in that master's write (cluster-apply-lane.ts `sendToNode`). Most groups of a batch spread
 * over a Cluster hold one command: they cost that one command, where a MULTI costs five.
 *
 * A plain slot's states within one batch (cluster-apply-lane.ts `sendToNode`):
 *
 *   pending ──data write──► applied
 *      ▲           │
 *      │           │ a command refused (MOVED, ASK, OOM), or the reply lost
 *      └───────────┘  sent again whole, after a backoff or a new slot map
 *
 * A command Redis found wrong (WRONGTYPE…) is no refusal: it is reported, as a MULTI reports it.
 */

/** Commands whose second run changes nothing (ZADD only without INCR: checked apart). */
const IDEMPOTENT = new Set(['SET', 'DEL', 'UNLINK', 'HSET', 'HMSET', 'HDEL', 'SADD', 'SREM', 'ZADD', 'ZREM', 'JSON.SET', 'JSON.DEL', 'EXPIRE', 'PEXPIRE', 'EXPIREAT', 'PEXPIREAT', 'PERSIST']);

/** Whether the `n` commands whose indices are `order[from…]` (a slot of cluster-batch.ts SlotLayout) may go plain (see above). */
export function isPlainAt(commands: readonly RedisCommand[], origins: readonly (CommandOrigin | null)[], order: Int32Array, from: number, n: number): boolean {
  if (n === 1) {
    const i = order[from]!;
    return plainCommand(commands[i]!, origins[i] ?? null);
  }
  if (n > 64 || n === 0) return false;
  for (let k = 0; k < n; k++) {
    const i = order[from + k]!;
    const cmd = commands[i]!;
    const origin = origins[i] ?? null;
    if (!plainCommand(cmd, origin)) return false;
    for (let m = 0; m < k; m++) {
      const j = order[from + m]!;
      if (commands[j]![1] === cmd[1] || origins[j]!.meta.commitLsn === origin!.meta.commitLsn) return false;
    }
  }
  return true;
}

function plainCommand(cmd: RedisCommand, origin: CommandOrigin | null): boolean {
  const name = cmd[0];
  if (origin === null || name === undefined || cmd.length < 2) return false;
  const upper = name.length <= 9 && name === name.toUpperCase() ? name : name.toUpperCase();
  if (!IDEMPOTENT.has(upper)) return false;
  if (upper === 'ZADD') return !cmd.some((a, i) => i > 1 && a.toUpperCase() === 'INCR');
  if (upper === 'DEL' || upper === 'UNLINK') return cmd.length === 2;
  if (upper === 'SET') return !cmd.some((a, i) => i > 2 && a.toUpperCase() === 'GET');
  return true;
}

/** Errors that say Redis did not run a command for now (the slot elsewhere, memory, state), not that the command is wrong. */
const REFUSALS = new Set(['MOVED', 'ASK', 'TRYAGAIN', 'CLUSTERDOWN', 'OOM', 'READONLY', 'LOADING', 'MASTERDOWN', 'NOREPLICAS', 'BUSY', 'NOPERM', 'NOAUTH', 'MISCONF', 'EXECABORT']);

export function isRefusal(message: string): boolean {
  const space = message.indexOf(' ');
  return REFUSALS.has(space < 0 ? message : message.slice(0, space));
}

/**
 * Checks the replies to a plain slot's data commands (`n` of them, indices `order[from…]`) from
 * `replies[offset]`: a command Redis found wrong (WRONGTYPE…) is added to `rejected`, as in a
 * MULTI; the first refusal (`isRefusal`) is returned: the slot is then sent again whole, and its
 * commands Redis found wrong are found again then.
 */
export function checkPlainData(
  replies: readonly Reply[],
  offset: number,
  origins: readonly (CommandOrigin | null)[],
  order: Int32Array,
  from: number,
  n: number,
  rejected: RejectedCommand[],
): string | null {
  let refusal: string | null = null;
  for (let k = 0; k < n; k++) {
    const r = replies[offset + k];
    if (!(r instanceof ReplyError)) continue;
    const origin = origins[order[from + k]!] ?? null;
    if (origin && !isRefusal(r.message)) rejected.push({ origin, error: r.message });
    else refusal ??= origin ? r.message : `Redis rejected a bookkeeping command: ${r.message}`;
  }
  return refusal;
}
