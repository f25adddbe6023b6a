import type {
  BeginMessage,
  CommitMessage,
  DeleteMessage,
  InsertMessage,
  LogicalMessage,
  OriginMessage,
  PgoutputMessage,
  RelationColumn,
  RelationMessage,
  ReplicaIdentity,
  StreamAbortMessage,
  StreamCommitMessage,
  StreamStartMessage,
  StreamStopMessage,
  TruncateMessage,
  Tuple,
  TypeMessage,
  UpdateMessage,
} from './types.js';

/**
 * Decoder for pgoutput messages (protocol versions 1–4, text tuple format).
 * https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
 *
 * Pure: one whole message in, one typed message out. Any truncated, over-long or unknown
 * input throws an Error naming the message and the byte offset, so a framing bug can never
 * turn into silently wrong rows.
 */

// Message tag bytes (first byte of every pgoutput message).
/** Begin of a transaction */
export const TAG_BEGIN = 0x42; // 'B'
/** Commit of a transaction */
export const TAG_COMMIT = 0x43; // 'C'
/** Replication origin of the following transaction */
export const TAG_ORIGIN = 0x4f; // 'O'
/** Relation (table) description, sent before the first change to it */
export const TAG_RELATION = 0x52; // 'R'
/** Data type description (non-builtin types) */
export const TAG_TYPE = 0x59; // 'Y'
/** Row inserted */
export const TAG_INSERT = 0x49; // 'I'
/** Row updated */
export const TAG_UPDATE = 0x55; // 'U'
/** Row deleted */
export const TAG_DELETE = 0x44; // 'D'
/** Table(s) truncated */
export const TAG_TRUNCATE = 0x54; // 'T'
/** pg_logical_emit_message() */
export const TAG_MESSAGE = 0x4d; // 'M'
/** v2: a block of a streamed (in-progress) transaction starts */
export const TAG_STREAM_START = 0x53; // 'S'
/** v2: the current streamed block ends */
export const TAG_STREAM_STOP = 0x45; // 'E'
/** v2: a streamed transaction committed */
export const TAG_STREAM_COMMIT = 0x63; // 'c'
/** v2: a streamed (sub)transaction aborted */
export const TAG_STREAM_ABORT = 0x41; // 'A'

// Markers inside Update/Delete/Insert bodies.
/** new tuple follows */
const SUB_NEW = 0x4e; // 'N'
/** old tuple with replica identity key columns only */
const SUB_KEY = 0x4b; // 'K'
/** old tuple with all columns (REPLICA IDENTITY FULL) */
const SUB_OLD = 0x4f; // 'O'

// TupleData column kinds.
/** SQL NULL */
const COL_NULL = 0x6e; // 'n'
/** unchanged TOASTed value, not sent */
const COL_UNCHANGED = 0x75; // 'u'
/** text-format value */
const COL_TEXT = 0x74; // 't'
/** binary-format value (only with the `binary` option, which we never request) */
const COL_BINARY = 0x62; // 'b'

/** Relation flag bit: column is part of the replica identity. */
const COLUMN_FLAG_KEY = 1;
/** Truncate option bits. */
const TRUNCATE_CASCADE = 1;
const TRUNCATE_RESTART_IDENTITY = 2;
/** Logical message flag bit. */
const MESSAGE_TRANSACTIONAL = 1;

function tagName(tag: number): string {
  // printable tags are shown as characters, anything else as hex
  return tag >= 0x20 && tag < 0x7f ? `'${String.fromCharCode(tag)}'` : `0x${tag.toString(16).padStart(2, '0')}`;
}

export class PgoutputDecoder {
  // Cursor state for the message being decoded; reset by every decode() call.
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private tag = 0;
  /** between Stream Start and Stream Stop: data messages carry an extra xid */
  private streaming = false;

  /** true between a Stream Start and its Stream Stop */
  get inStreamBlock(): boolean {
    return this.streaming;
  }

  /** Forget stream state, e.g. when a replication connection is restarted. */
  reset(): void {
    this.streaming = false;
  }

  decode(buf: Buffer): PgoutputMessage {
    this.buf = buf;
    this.pos = 0;
    this.tag = 0;
    if (buf.length === 0) throw new Error('pgoutput: empty message');
    const tag = buf[0]!;
    this.tag = tag;
    this.pos = 1;
    let msg: PgoutputMessage;
    switch (tag) {
      case TAG_BEGIN:
        this.expectOutsideStream();
        msg = this.decodeBegin();
        break;
      case TAG_COMMIT:
        this.expectOutsideStream();
        msg = this.decodeCommit();
        break;
      case TAG_ORIGIN:
        msg = this.decodeOrigin();
        break;
      case TAG_RELATION:
        msg = this.decodeRelation();
        break;
      case TAG_TYPE:
        msg = this.decodeType();
        break;
      case TAG_INSERT:
        msg = this.decodeInsert();
        break;
      case TAG_UPDATE:
        msg = this.decodeUpdate();
        break;
      case TAG_DELETE:
        msg = this.decodeDelete();
        break;
      case TAG_TRUNCATE:
        msg = this.decodeTruncate();
        break;
      case TAG_MESSAGE:
        msg = this.decodeMessage();
        break;
      case TAG_STREAM_START: {
        this.expectOutsideStream();
        const m: StreamStartMessage = {
          tag: 'stream_start',
          xid: this.u32(),
          firstSegment: this.u8() === 1,
        };
        this.end();
        this.streaming = true; // only once the whole message decoded
        return m;
      }
      case TAG_STREAM_STOP: {
        if (!this.streaming) throw this.fail('Stream Stop outside a streamed block');
        this.end();
        this.streaming = false;
        const m: StreamStopMessage = { tag: 'stream_stop' };
        return m;
      }
      case TAG_STREAM_COMMIT: {
        this.expectOutsideStream();
        const m: StreamCommitMessage = {
          tag: 'stream_commit',
          xid: this.u32(),
          flags: this.u8(),
          commitLsn: this.lsn(),
          endLsn: this.lsn(),
          commitTimeMicros: this.i64(),
        };
        this.end();
        return m;
      }
      case TAG_STREAM_ABORT: {
        this.expectOutsideStream();
        const m: StreamAbortMessage = { tag: 'stream_abort', xid: this.u32(), subXid: this.u32() };
        // protocol v4 (streaming = parallel) appends abort LSN and timestamp: not needed
        return m;
      }
      default:
        throw new Error(`pgoutput: unknown message tag ${tagName(tag)} at offset 0 (message length ${buf.length})`);
    }
    this.end();
    return msg;
  }

  // --- messages -------------------------------------------------------------------------

  private decodeBegin(): BeginMessage {
    return { tag: 'begin', finalLsn: this.lsn(), commitTimeMicros: this.i64(), xid: this.u32() };
  }

  private decodeCommit(): CommitMessage {
    return {
      tag: 'commit',
      flags: this.u8(),
      commitLsn: this.lsn(),
      endLsn: this.lsn(),
      commitTimeMicros: this.i64(),
    };
  }

  private decodeOrigin(): OriginMessage {
    return { tag: 'origin', originLsn: this.lsn(), name: this.cstring() };
  }

  private decodeRelation(): RelationMessage {
    const xid = this.streamXid();
    const relationOid = this.u32();
    const schema = this.cstring();
    const name = this.cstring();
    const ident = this.u8();
    let replicaIdentity: ReplicaIdentity;
    switch (ident) {
      case 0x64: // 'd'
        replicaIdentity = 'd';
        break;
      case 0x6e: // 'n'
        replicaIdentity = 'n';
        break;
      case 0x66: // 'f'
        replicaIdentity = 'f';
        break;
      case 0x69: // 'i'
        replicaIdentity = 'i';
        break;
      default:
        throw this.fail(`unknown replica identity ${tagName(ident)}`, this.pos - 1);
    }
    const ncols = this.u16();
    const columns: RelationColumn[] = [];
    for (let i = 0; i < ncols; i++) {
      const flags = this.u8();
      const colName = this.cstring();
      const typeOid = this.u32();
      const typeMod = this.i32();
      columns.push({ isKey: (flags & COLUMN_FLAG_KEY) !== 0, name: colName, typeOid, typeMod });
    }
    const m: RelationMessage = { tag: 'relation', relationOid, schema, name, replicaIdentity, columns };
    return xid === undefined ? m : { ...m, xid };
  }

  private decodeType(): TypeMessage {
    const xid = this.streamXid();
    const m: TypeMessage = { tag: 'type', typeOid: this.u32(), schema: this.cstring(), name: this.cstring() };
    return xid === undefined ? m : { ...m, xid };
  }

  private decodeInsert(): InsertMessage {
    const xid = this.streamXid();
    const relationOid = this.u32();
    const marker = this.u8();
    if (marker !== SUB_NEW) throw this.fail(`expected 'N' before the new tuple, got ${tagName(marker)}`, this.pos - 1);
    const newTuple = this.tuple();
    return xid === undefined
      ? { tag: 'insert', relationOid, newTuple }
      : { tag: 'insert', xid, relationOid, newTuple };
  }

  private decodeUpdate(): UpdateMessage {
    const xid = this.streamXid();
    const relationOid = this.u32();
    let marker = this.u8();
    let oldKind: 'K' | 'O' | null = null;
    let oldTuple: Tuple | null = null;
    if (marker === SUB_KEY || marker === SUB_OLD) {
      oldKind = marker === SUB_KEY ? 'K' : 'O';
      oldTuple = this.tuple();
      marker = this.u8();
    }
    if (marker !== SUB_NEW) {
      throw this.fail(`expected 'K', 'O' or 'N' in Update, got ${tagName(marker)}`, this.pos - 1);
    }
    const newTuple = this.tuple();
    return xid === undefined
      ? { tag: 'update', relationOid, oldKind, oldTuple, newTuple }
      : { tag: 'update', xid, relationOid, oldKind, oldTuple, newTuple };
  }

  private decodeDelete(): DeleteMessage {
    const xid = this.streamXid();
    const relationOid = this.u32();
    const marker = this.u8();
    if (marker !== SUB_KEY && marker !== SUB_OLD) {
      throw this.fail(`expected 'K' or 'O' in Delete, got ${tagName(marker)}`, this.pos - 1);
    }
    const oldKind = marker === SUB_KEY ? 'K' : 'O';
    const oldTuple = this.tuple();
    return xid === undefined
      ? { tag: 'delete', relationOid, oldKind, oldTuple }
      : { tag: 'delete', xid, relationOid, oldKind, oldTuple };
  }

  private decodeTruncate(): TruncateMessage {
    const xid = this.streamXid();
    const nrels = this.u32();
    const options = this.u8();
    // check the whole array up front so a huge bogus count fails before allocating
    this.need(nrels * 4, 'relation OIDs');
    const relationOids: number[] = [];
    for (let i = 0; i < nrels; i++) relationOids.push(this.u32());
    const m: TruncateMessage = {
      tag: 'truncate',
      cascade: (options & TRUNCATE_CASCADE) !== 0,
      restartIdentity: (options & TRUNCATE_RESTART_IDENTITY) !== 0,
      relationOids,
    };
    return xid === undefined ? m : { ...m, xid };
  }

  private decodeMessage(): LogicalMessage {
    const xid = this.streamXid();
    const flags = this.u8();
    const lsn = this.lsn();
    const prefix = this.cstring();
    const len = this.u32();
    this.need(len, 'message content');
    // a copy, so that holding on to the content does not pin the whole network chunk
    const content = Buffer.from(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    const m: LogicalMessage = {
      tag: 'message',
      transactional: (flags & MESSAGE_TRANSACTIONAL) !== 0,
      lsn,
      prefix,
      content,
    };
    return xid === undefined ? m : { ...m, xid };
  }

  // --- TupleData --------------------------------------------------------------------------

  private tuple(): Tuple {
    const ncols = this.u16();
    const tuple: Tuple = [];
    const buf = this.buf;
    for (let i = 0; i < ncols; i++) {
      const kind = this.u8();
      if (kind === COL_TEXT) {
        const len = this.i32();
        if (len < 0) throw this.fail(`negative text length ${len} in column ${i}`, this.pos - 4);
        // the check first: the message naming the column is made only when it fails (once per value otherwise)
        if (this.pos + len > buf.length) this.need(len, `text of column ${i}`);
        tuple.push(buf.toString('utf8', this.pos, this.pos + len));
        this.pos += len;
      } else if (kind === COL_NULL) {
        tuple.push(null);
      } else if (kind === COL_UNCHANGED) {
        tuple.push(undefined);
      } else if (kind === COL_BINARY) {
        throw this.fail(
          `column ${i} is in binary tuple format, which is not supported (do not set the pgoutput "binary" option)`,
          this.pos - 1,
        );
      } else {
        throw this.fail(`unknown tuple column kind ${tagName(kind)} in column ${i}`, this.pos - 1);
      }
    }
    return tuple;
  }

  // --- cursor primitives ------------------------------------------------------------------

  private fail(what: string, at: number = this.pos): Error {
    const tag = this.tag === 0 ? '' : ` in message ${tagName(this.tag)}`;
    return new Error(`pgoutput: ${what}${tag} at offset ${at} (message length ${this.buf.length})`);
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw this.fail(`truncated message: need ${n} byte(s) for ${what}, have ${this.buf.length - this.pos}`);
    }
  }

  private end(): void {
    if (this.pos !== this.buf.length) {
      throw this.fail(`${this.buf.length - this.pos} unexpected trailing byte(s)`);
    }
  }

  private expectOutsideStream(): void {
    if (this.streaming) throw this.fail('message not allowed inside a streamed block (missing Stream Stop?)', 0);
  }

  /** the extra xid that data messages carry inside a streamed block */
  private streamXid(): number | undefined {
    return this.streaming ? this.u32() : undefined;
  }

  private u8(): number {
    if (this.pos + 1 > this.buf.length) this.need(1, 'Int8');
    return this.buf[this.pos++]!;
  }

  private u16(): number {
    if (this.pos + 2 > this.buf.length) this.need(2, 'Int16');
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    if (this.pos + 4 > this.buf.length) this.need(4, 'Int32');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  private i32(): number {
    if (this.pos + 4 > this.buf.length) this.need(4, 'Int32');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  private lsn(): bigint {
    if (this.pos + 8 > this.buf.length) this.need(8, 'Int64 LSN');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** signed, as Postgres TimestampTz is */
  private i64(): bigint {
    if (this.pos + 8 > this.buf.length) this.need(8, 'Int64');
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  private cstring(): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0) throw this.fail('truncated message: string without terminating NUL');
    const s = this.buf.toString('utf8', this.pos, nul);
    this.pos = nul + 1;
    return s;
  }
}
