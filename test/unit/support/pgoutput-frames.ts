/**
 * Builds pgoutput and replication-protocol frames byte by byte, for decoder tests.
 * Written independently of the decoder, straight from the protocol documentation:
 * https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
 */
import type { Lsn } from '../../../src/core/lsn.js';
import type { ReplicaIdentity, Tuple, TupleValue } from '../../../src/pg/pgoutput/types.js';

/** A growable big-endian writer. */
export class FrameWriter {
  private chunks: Buffer[] = [];

  byte(v: number | string): this {
    const b = Buffer.alloc(1);
    b[0] = typeof v === 'string' ? v.charCodeAt(0) : v;
    this.chunks.push(b);
    return this;
  }

  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.chunks.push(b);
    return this;
  }

  /** unsigned (OIDs, xids, lengths) */
  uint32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.chunks.push(b);
    return this;
  }

  /** signed (typmod) */
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.chunks.push(b);
    return this;
  }

  uint64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    this.chunks.push(b);
    return this;
  }

  int64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    this.chunks.push(b);
    return this;
  }

  /** NUL-terminated UTF-8 */
  cstring(s: string): this {
    this.chunks.push(Buffer.from(s, 'utf8'), Buffer.alloc(1));
    return this;
  }

  bytes(b: Buffer): this {
    this.chunks.push(b);
    return this;
  }

  tuple(values: readonly TupleValue[]): this {
    this.int16(values.length);
    for (const v of values) {
      if (v === null) this.byte('n');
      else if (v === undefined) this.byte('u');
      else {
        const text = Buffer.from(v, 'utf8');
        this.byte('t').uint32(text.length).bytes(text);
      }
    }
    return this;
  }

  build(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const w = () => new FrameWriter();

/** Adds the Int32 xid that data messages carry inside a streamed block. */
function withXid(f: FrameWriter, xid: number | undefined): FrameWriter {
  return xid === undefined ? f : f.uint32(xid);
}

export function begin(o: { finalLsn: Lsn; commitTimeMicros: bigint; xid: number }): Buffer {
  return w().byte('B').uint64(o.finalLsn).int64(o.commitTimeMicros).uint32(o.xid).build();
}

export function commit(o: { flags?: number; commitLsn: Lsn; endLsn: Lsn; commitTimeMicros: bigint }): Buffer {
  return w()
    .byte('C')
    .byte(o.flags ?? 0)
    .uint64(o.commitLsn)
    .uint64(o.endLsn)
    .int64(o.commitTimeMicros)
    .build();
}

export function origin(o: { originLsn: Lsn; name: string }): Buffer {
  return w().byte('O').uint64(o.originLsn).cstring(o.name).build();
}

export interface ColumnSpec {
  isKey?: boolean;
  /** raw flags byte; overrides isKey */
  flags?: number;
  name: string;
  typeOid: number;
  typeMod?: number;
}

export function relation(o: {
  xid?: number;
  relationOid: number;
  schema: string;
  name: string;
  replicaIdentity?: ReplicaIdentity;
  columns: readonly ColumnSpec[];
}): Buffer {
  const f = withXid(w().byte('R'), o.xid)
    .uint32(o.relationOid)
    .cstring(o.schema)
    .cstring(o.name)
    .byte(o.replicaIdentity ?? 'd')
    .int16(o.columns.length);
  for (const c of o.columns) {
    f.byte(c.flags ?? (c.isKey ? 1 : 0))
      .cstring(c.name)
      .uint32(c.typeOid)
      .int32(c.typeMod ?? -1);
  }
  return f.build();
}

export function type(o: { xid?: number; typeOid: number; schema: string; name: string }): Buffer {
  return withXid(w().byte('Y'), o.xid).uint32(o.typeOid).cstring(o.schema).cstring(o.name).build();
}

export function insert(o: { xid?: number; relationOid: number; newTuple: Tuple }): Buffer {
  return withXid(w().byte('I'), o.xid).uint32(o.relationOid).byte('N').tuple(o.newTuple).build();
}

export function update(o: {
  xid?: number;
  relationOid: number;
  oldKind?: 'K' | 'O' | null;
  oldTuple?: Tuple | null;
  newTuple: Tuple;
}): Buffer {
  const f = withXid(w().byte('U'), o.xid).uint32(o.relationOid);
  if (o.oldKind) f.byte(o.oldKind).tuple(o.oldTuple ?? []);
  return f.byte('N').tuple(o.newTuple).build();
}

export function del(o: { xid?: number; relationOid: number; oldKind: 'K' | 'O'; oldTuple: Tuple }): Buffer {
  return withXid(w().byte('D'), o.xid).uint32(o.relationOid).byte(o.oldKind).tuple(o.oldTuple).build();
}

export function truncate(o: {
  xid?: number;
  cascade?: boolean;
  restartIdentity?: boolean;
  /** raw options byte; overrides cascade/restartIdentity */
  options?: number;
  relationOids: readonly number[];
}): Buffer {
  const options = o.options ?? (o.cascade ? 1 : 0) | (o.restartIdentity ? 2 : 0);
  const f = withXid(w().byte('T'), o.xid).uint32(o.relationOids.length).byte(options);
  for (const oid of o.relationOids) f.uint32(oid);
  return f.build();
}

export function message(o: {
  xid?: number;
  transactional: boolean;
  lsn: Lsn;
  prefix: string;
  content: Buffer | string;
}): Buffer {
  const content = typeof o.content === 'string' ? Buffer.from(o.content, 'utf8') : o.content;
  return withXid(w().byte('M'), o.xid)
    .byte(o.transactional ? 1 : 0)
    .uint64(o.lsn)
    .cstring(o.prefix)
    .uint32(content.length)
    .bytes(content)
    .build();
}

export function streamStart(o: { xid: number; firstSegment: boolean }): Buffer {
  return w().byte('S').uint32(o.xid).byte(o.firstSegment ? 1 : 0).build();
}

export function streamStop(): Buffer {
  return w().byte('E').build();
}

export function streamCommit(o: {
  xid: number;
  flags?: number;
  commitLsn: Lsn;
  endLsn: Lsn;
  commitTimeMicros: bigint;
}): Buffer {
  return w()
    .byte('c')
    .uint32(o.xid)
    .byte(o.flags ?? 0)
    .uint64(o.commitLsn)
    .uint64(o.endLsn)
    .int64(o.commitTimeMicros)
    .build();
}

/** `abortLsn`/`abortTimeMicros` are the protocol v4 (streaming = parallel) extras. */
export function streamAbort(o: { xid: number; subXid: number; abortLsn?: Lsn; abortTimeMicros?: bigint }): Buffer {
  const f = w().byte('A').uint32(o.xid).uint32(o.subXid);
  if (o.abortLsn !== undefined) f.uint64(o.abortLsn).int64(o.abortTimeMicros ?? 0n);
  return f.build();
}

// --- streaming replication protocol (CopyData payloads) ---------------------------------

export function xlogData(o: { walStart: Lsn; walEnd: Lsn; sendTimeMicros: bigint; data: Buffer }): Buffer {
  return w().byte('w').uint64(o.walStart).uint64(o.walEnd).int64(o.sendTimeMicros).bytes(o.data).build();
}

export function keepalive(o: { walEnd: Lsn; sendTimeMicros: bigint; replyRequested: boolean }): Buffer {
  return w()
    .byte('k')
    .uint64(o.walEnd)
    .int64(o.sendTimeMicros)
    .byte(o.replyRequested ? 1 : 0)
    .build();
}
