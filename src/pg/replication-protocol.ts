import type { Lsn } from '../core/lsn.js';
import type { PrimaryKeepaliveMessage, ReplicationMessage, XLogDataMessage } from './pgoutput/types.js';

/**
 * Pure framing of the streaming replication sub-protocol carried inside CopyData.
 * https://www.postgresql.org/docs/current/protocol-replication.html
 */

/** XLogData: a chunk of WAL (here: one pgoutput message) */
const TAG_XLOGDATA = 0x77; // 'w'
/** Primary keepalive */
const TAG_KEEPALIVE = 0x6b; // 'k'
/** Standby status update (client → server) */
const TAG_STANDBY_STATUS = 0x72; // 'r'

const XLOGDATA_HEADER = 1 + 8 + 8 + 8;
const KEEPALIVE_LENGTH = 1 + 8 + 8 + 1;
const STANDBY_STATUS_LENGTH = 1 + 8 + 8 + 8 + 8 + 1;


export function decodeReplicationMessage(buf: Buffer): ReplicationMessage {
  if (buf.length === 0) throw new Error('replication protocol: empty CopyData message');
  const tag = buf[0]!;
  if (tag === TAG_XLOGDATA) {
    if (buf.length < XLOGDATA_HEADER) {
      throw new Error(
        `replication protocol: truncated XLogData ('w'): ${buf.length} byte(s), header needs ${XLOGDATA_HEADER}`,
      );
    }
    const m: XLogDataMessage = {
      tag: 'xlogdata',
      walStart: buf.readBigUInt64BE(1),
      walEnd: buf.readBigUInt64BE(9),
      sendTimeMicros: buf.readBigInt64BE(17),
      // a view, not a copy: this is the hot path
      data: buf.subarray(XLOGDATA_HEADER),
    };
    return m;
  }
  if (tag === TAG_KEEPALIVE) {
    if (buf.length !== KEEPALIVE_LENGTH) {
      throw new Error(
        `replication protocol: Primary keepalive ('k') must be ${KEEPALIVE_LENGTH} bytes, got ${buf.length}`,
      );
    }
    const m: PrimaryKeepaliveMessage = {
      tag: 'keepalive',
      walEnd: buf.readBigUInt64BE(1),
      sendTimeMicros: buf.readBigInt64BE(9),
      replyRequested: buf[17] !== 0,
    };
    return m;
  }
  const shown = tag >= 0x20 && tag < 0x7f ? `'${String.fromCharCode(tag)}'` : `0x${tag.toString(16).padStart(2, '0')}`;
  throw new Error(`replication protocol: unexpected CopyData message tag ${shown} (expected 'w' or 'k')`);
}

export function encodeStandbyStatusUpdate(opts: {
  written: Lsn;
  flushed: Lsn;
  applied: Lsn;
  nowMicros: bigint;
  replyRequested: boolean;
}): Buffer {
  const buf = Buffer.allocUnsafe(STANDBY_STATUS_LENGTH);
  buf[0] = TAG_STANDBY_STATUS;
  // writeBigUInt64BE throws a RangeError for a negative or > 64-bit LSN rather than wrapping
  buf.writeBigUInt64BE(opts.written, 1);
  buf.writeBigUInt64BE(opts.flushed, 9);
  buf.writeBigUInt64BE(opts.applied, 17);
  buf.writeBigInt64BE(opts.nowMicros, 25);
  buf[33] = opts.replyRequested ? 1 : 0;
  return buf;
}
