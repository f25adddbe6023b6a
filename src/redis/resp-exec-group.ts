import type { Redis } from 'ioredis';
import type { GroupWrite, RejectedCommand } from './apply-lane.js';
import { encodeCommands, ReplyError, type RespConnection, type RespEndpoint, type Reply } from './resp-connection.js';

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

/**
 * The same MULTI … EXEC as `execGroup` (apply-lane.ts), written as one pre-encoded buffer on a
 * RespConnection; the replies are checked the same way: MULTI must answer OK, each command
 * QUEUED or a queue-time error (then EXEC answers EXECABORT: throw, nothing was applied), and
 * EXEC's results are checked one by one (a data command's error goes to onRejected, a
 * bookkeeping command's error throws). Returns the marker as it was before.
 */
export async function execGroupResp(conn: RespConnection, w: GroupWrite): Promise<string | null> {
  const cmds: (readonly string[])[] = [['MULTI'], ['GET', w.markerKey]];
  for (const c of w.commands) cmds.push(c);
  for (const [key, position] of w.positions) if (position !== null) cmds.push(['SET', key, position]);
  cmds.push(['SET', w.markerKey, w.batchId], ['EXEC']);
  const replies = await conn.request(encodeCommands(cmds), cmds.length);
  const queued = cmds.length - 2;
  if (replies[0] !== 'OK') throw new Error(`MULTI failed: ${describe(replies[0]!)}`);
  let queueError: ReplyError | undefined;
  for (let i = 1; i <= queued; i++) {
    const r = replies[i]!;
    if (r === 'QUEUED') continue;
    if (!(r instanceof ReplyError)) throw new Error(`unexpected reply to a queued command: ${describe(r)}`);
    queueError ??= r;
  }
  const exec = replies[queued + 1]!;
  if (exec instanceof ReplyError) throw new Error(queueError ? `${exec.message}: ${queueError.message}` : exec.message);
  if (exec === null) throw new Error('MULTI was aborted by Redis');
  if (!Array.isArray(exec) || exec.length !== queued || queueError) throw new Error(`unexpected EXEC reply: ${describe(exec)}`);
  const rejected: RejectedCommand[] = [];
  for (let i = 1; i < exec.length; i++) {
    const r = exec[i]!;
    if (!(r instanceof ReplyError)) continue;
    const origin = w.origins[i - 1];
    if (!origin) throw new Error(`Redis rejected a bookkeeping command: ${r.message}`);
    rejected.push({ origin, error: r.message });
  }
  if (rejected.length > 0) w.onRejected(rejected);
  const before = exec[0]!;
  if (before !== null && typeof before !== 'string') throw new Error(`Redis rejected a bookkeeping command: ${describe(before)}`);
  return before;
}

function describe(r: Reply): string {
  if (r instanceof ReplyError) return r.message;
  if (Array.isArray(r)) return `array of ${r.length}`;
  return String(r);
}
