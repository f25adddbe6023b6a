import type { Redis } from 'ioredis';
import type { CommandOrigin, RedisCommand, RejectedCommand } from '../core/command.js';
import type { EncodedCommands } from '../core/encoded-commands.js';
import { errorMessage } from '../util/errors.js';
import type { RedisClient } from './connect.js';
import { ReplyError, type RespConnection, type RespEndpoint, type Reply } from './resp-connection.js';
import { RespWriter } from './resp-writer.js';

/**
 * One batch's MULTI … EXEC on one connection (or one hash slot):
 *
 *   MULTI · GET marker · data commands · SET position keys · SET marker <batch id> · EXEC
 *
 * or, where Redis has `SET … GET` (6.2+) and the writer says so (`setGet`, the Cluster lane, which
 * sends one such MULTI per hash slot), one command fewer:
 *
 *   MULTI · SET marker <batch id> GET · data commands · SET position keys · EXEC
 *
 * Redis then holds the data and the positions of the same instant, and the marker tells after
 * a lost reply whether the EXEC ran. Two writers send it (ioredis for fallbacks, a pre-encoded
 * RESP write for standalone/Sentinel and, several per write, for Cluster); both check the replies
 * with `checkExec`.
 */
export interface GroupWrite {
  readonly markerKey: string;
  readonly batchId: string;
  readonly commands: readonly RedisCommand[];
  readonly origins: readonly (CommandOrigin | null)[];
  /** more data commands after `commands`, already encoded (standalone lane) */
  readonly encoded?: EncodedCommands | null | undefined;
  /** position keys and values (null: not written) */
  readonly positions: readonly (readonly [string, string | null])[];
  /** the marker is read and written by one `SET marker <batch id> GET` first (Redis 6.2+) */
  readonly setGet?: boolean;
}

export interface GroupResult {
  /** the marker as it was before (the caller compares it with the last batch it applied) */
  readonly before: string | null;
  /** data commands Redis refused at run time while the rest of the MULTI stood */
  readonly rejected: RejectedCommand[];
}

/**
 * The one reply check. `results` are EXEC's replies in order (an Error for a refused command),
 * starting with the marker's GET. A refused data command is rejected (its message fails); a
 * refused bookkeeping command (position, marker, failed-message record) throws: the batch is
 * retried, since Redis holds an incomplete record of it.
 */
export function checkExec(results: readonly unknown[], w: GroupWrite): GroupResult {
  const rejected: RejectedCommand[] = [];
  for (let i = 1; i < results.length; i++) {
    const r = results[i];
    if (!(r instanceof Error)) continue;
    const origin = i - 1 < w.commands.length ? w.origins[i - 1] : w.encoded?.origin(i - 1 - w.commands.length);
    if (!origin) throw new Error(`Redis rejected a bookkeeping command: ${r.message}`);
    rejected.push({ origin, error: r.message });
  }
  const before = results[0];
  if (before instanceof Error) throw new Error(`Redis rejected a bookkeeping command: ${before.message}`);
  if (before !== null && typeof before !== 'string') throw new Error(`unexpected reply to ${w.setGet ? 'SET … GET' : 'GET'} ${w.markerKey}: ${String(before)}`);
  return { before, rejected };
}

function groupCommands(w: GroupWrite): (readonly string[])[] {
  const cmds: (readonly string[])[] = [w.setGet ? ['SET', w.markerKey, w.batchId, 'GET'] : ['GET', w.markerKey]];
  for (const c of w.commands) cmds.push(c);
  if (w.encoded) for (const c of w.encoded.commands()) cmds.push(c);
  // SETs, not one MSET: the documented ACL (docs/redis.md) and `sluice check` allow SET
  for (const [key, position] of w.positions) if (position !== null) cmds.push(['SET', key, position]);
  if (!w.setGet) cmds.push(['SET', w.markerKey, w.batchId]);
  return cmds;
}

/**
 * Through ioredis. A queue-time error (EXECABORT: OOM, NOPERM, READONLY, MOVED…) throws and
 * nothing was applied.
 */
export async function execGroup(redis: RedisClient, w: GroupWrite): Promise<GroupResult> {
  const multi = redis.multi();
  for (const [name, ...args] of groupCommands(w)) multi.call(name!, ...args);
  let results: [Error | null, unknown][] | null;
  try {
    results = await multi.exec();
  } catch (err) {
    const prev = (err as { previousErrors?: Error[] }).previousErrors;
    const detail = prev && prev.length > 0 ? `: ${prev[0]!.message}` : '';
    throw new Error(`${errorMessage(err)}${detail}`, { cause: err });
  }
  if (results === null) throw new Error('MULTI was aborted by Redis');
  return checkExec(results.map(([err, value]) => err ?? value), w);
}

/**
 * The MULTI … EXEC was refused as a whole before it ran (a queue-time error: MOVED, ASK, OOM,
 * READONLY…, then EXECABORT; or MULTI itself refused): Redis applied none of it, so sending it
 * again needs no marker check.
 */
export class MultiAborted extends Error {}

/** The commands of one group's transaction, MULTI and EXEC included, for a pre-encoded write. */
export function multiFrame(w: GroupWrite): (readonly string[])[] {
  const cmds: (readonly string[])[] = [['MULTI']];
  for (const c of groupCommands(w)) cmds.push(c);
  cmds.push(['EXEC']);
  return cmds;
}

const MULTI = Buffer.from('*1\r\n$5\r\nMULTI\r\n');
const EXEC = Buffer.from('*1\r\n$4\r\nEXEC\r\n');
const GET = Buffer.from('*2\r\n$3\r\nGET\r\n');
const SET = Buffer.from('*3\r\n$3\r\nSET\r\n');
const SET_GET = Buffer.from('*4\r\n$3\r\nSET\r\n');
const GET_ARG = Buffer.from('$3\r\nGET\r\n');

/** Writes `multiFrame(w)` (the same bytes as encoding it), without building it as arrays first. */
export function writeMulti(out: RespWriter, w: GroupWrite): void {
  writeMultiHead(out, w);
  if (w.encoded) out.raw(w.encoded.bytes());
  writeMultiTail(out, w);
}

/** MULTI, the marker's GET and the commands given as arrays: what comes before `w.encoded`. */
function writeMultiHead(out: RespWriter, w: GroupWrite): void {
  out.raw(MULTI);
  if (w.setGet) {
    out.raw(SET_GET);
    out.bulk(w.markerKey);
    out.bulk(w.batchId);
    out.raw(GET_ARG);
  } else {
    out.raw(GET);
    out.bulk(w.markerKey);
  }
  for (const c of w.commands) out.command(c);
}

/** The positions, the marker and EXEC: what comes after `w.encoded`. */
function writeMultiTail(out: RespWriter, w: GroupWrite): void {
  for (const [key, position] of w.positions) {
    if (position === null) continue;
    out.raw(SET);
    out.bulk(key);
    out.bulk(position);
  }
  if (!w.setGet) {
    out.raw(SET);
    out.bulk(w.markerKey);
    out.bulk(w.batchId);
  }
  out.raw(EXEC);
}

/** How many replies `multiFrame(w)` gets. */
export function multiFrameReplies(w: GroupWrite): number {
  let n = (w.setGet ? 3 : 4) + w.commands.length + (w.encoded?.length ?? 0); // MULTI, GET marker, …, SET marker, EXEC (or MULTI, SET … GET, …, EXEC)
  for (const [, position] of w.positions) if (position !== null) n++;
  return n;
}

/**
 * Checks the replies of one `multiFrame(w)` starting at `replies[offset]`: MULTI must answer OK
 * and each command QUEUED (or a queue-time error, then EXEC answers EXECABORT: MultiAborted,
 * nothing was applied); EXEC's replies go through `checkExec`.
 */
export function checkMultiReplies(replies: readonly Reply[], offset: number, w: GroupWrite): GroupResult {
  const queued = multiFrameReplies(w) - 2;
  if (replies.length < offset + queued + 2) throw new Error(`expected ${queued + 2} replies to a MULTI, got ${replies.length - offset}`);
  const multi = replies[offset]!;
  if (multi instanceof ReplyError) throw new MultiAborted(`MULTI failed: ${multi.message}`);
  if (multi !== 'OK') throw new Error(`MULTI failed: ${describe(multi)}`);
  let queueError: ReplyError | undefined;
  for (let i = offset + 1; i <= offset + queued; i++) {
    const r = replies[i]!;
    if (r === 'QUEUED') continue;
    if (!(r instanceof ReplyError)) throw new Error(`unexpected reply to a queued command: ${describe(r)}`);
    queueError ??= r;
  }
  const exec = replies[offset + queued + 1]!;
  // EXECABORT names the first refusal only in general terms: the queue-time error says which (MOVED 1234 host:port…)
  if (exec instanceof ReplyError) throw new MultiAborted(queueError ? `${exec.message}: ${queueError.message}` : exec.message);
  if (exec === null) throw new MultiAborted('MULTI was aborted by Redis');
  if (!Array.isArray(exec) || exec.length !== queued || queueError) throw new Error(`unexpected EXEC reply: ${describe(exec)}`);
  // errors are rare: the reply array is checked as it is unless it holds one
  return checkExec(exec.some((r) => r instanceof ReplyError) ? exec.map((r) => (r instanceof ReplyError ? new Error(r.message) : r)) : exec, w);
}

/** As one pre-encoded buffer on a RespConnection (see `checkMultiReplies`). */
export async function execGroupResp(conn: RespConnection, w: GroupWrite): Promise<GroupResult> {
  let payload: Buffer | Buffer[];
  if (w.encoded) {
    // the encoded commands are written as they are, between a head and a tail: not copied
    const head = new RespWriter(256 + 160 * w.commands.length);
    writeMultiHead(head, w);
    const tail = new RespWriter(256 + 64 * w.positions.length);
    writeMultiTail(tail, w);
    payload = [head.finish(), w.encoded.bytes(), tail.finish()];
  } else {
    const out = new RespWriter(256 + 160 * w.commands.length);
    writeMulti(out, w);
    payload = out.finish();
  }
  const replies = await conn.request(payload, multiFrameReplies(w));
  return checkMultiReplies(replies, 0, w);
}

/**
 * Where the raw apply connection goes: the server, credentials, db, TLS options and name of the
 * ioredis client (standalone or Sentinel). With Sentinel, the master the ioredis client is
 * connected to now (it follows failovers; the raw connection follows it at its next batch).
 */
export function endpointOf(redis: Redis): RespEndpoint {
  const o = redis.options;
  let host = o.host ?? '127.0.0.1';
  let port = o.port ?? 6379;
  if (o.sentinels && o.sentinels.length > 0) {
    const s = redis.stream as { remoteAddress?: string; remotePort?: number } | undefined;
    if (redis.status !== 'ready' || !s?.remoteAddress || !s.remotePort) throw new Error('Redis (Sentinel) master connection is not ready');
    host = s.remoteAddress;
    port = s.remotePort;
  }
  const tls = o.tls === undefined ? undefined : typeof o.tls === 'object' ? o.tls : {};
  // ioredis's defaults are null for "none"
  return { host, port, tls, username: o.username ?? undefined, password: o.password ?? undefined, db: o.db ?? undefined, name: o.connectionName ?? undefined };
}

function describe(r: Reply): string {
  if (r instanceof ReplyError) return r.message;
  if (Array.isArray(r)) return `array of ${r.length}`;
  return String(r);
}
