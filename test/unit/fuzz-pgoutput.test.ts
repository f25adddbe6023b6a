// Fuzzing the replication stream's decoding: CopyData payloads (XLogData, keepalives), the
// pgoutput messages inside them, and the transaction assembler that takes the decoded messages.
// Valid frames are mutated (bits flipped, bytes set, inserted, deleted, lengths and counts made
// extreme, truncated) and whole random sequences are fed to one decoder. Every input must decode
// or throw an Error saying "pgoutput: …" / "replication protocol: …" with the offset; never another
// exception, never a hang, and a failed decode never changes the decoder's state.
// Fixed seeds: a failure is replayed exactly.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PgoutputDecoder } from '../../src/pg/pgoutput/decoder.js';
import { decodeReplicationMessage } from '../../src/pg/replication-protocol.js';
import { TransactionAssembler } from '../../src/pg/assembler.js';
import * as F from './support/pgoutput-frames.js';
import { T } from './support/tables.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const lsn = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const ts = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const cstring = fc.string({ maxLength: 12 }).map((s) => s.replace(/\0/g, ''));
const value = fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), fc.constant(null), fc.constant(undefined));
const tuple = fc.array(value, { maxLength: 6 });
/** relation OIDs from a small set, so that changes often name a relation the stream described */
const oid = fc.constantFrom(16_400, 16_401, 16_402);
const xid = fc.option(u32, { nil: undefined });
const TYPES = Object.values(T);

/** one valid pgoutput frame of any kind (the `xid` ones are valid inside a streamed block only) */
const frame: fc.Arbitrary<Buffer> = fc.oneof(
  fc.record({ finalLsn: lsn, commitTimeMicros: ts, xid: u32 }).map(F.begin),
  fc.record({ flags: fc.integer({ min: 0, max: 255 }), commitLsn: lsn, endLsn: lsn, commitTimeMicros: ts }).map(F.commit),
  fc.record({ originLsn: lsn, name: cstring }).map(F.origin),
  fc
    .record({
      xid,
      relationOid: oid,
      schema: cstring,
      name: cstring,
      replicaIdentity: fc.constantFrom('d' as const, 'n' as const, 'f' as const, 'i' as const),
      columns: fc.array(fc.record({ isKey: fc.boolean(), name: cstring, typeOid: fc.oneof(fc.constantFrom(...TYPES), u32), typeMod: fc.integer({ min: -1, max: 100 }) }), { maxLength: 5 }),
    })
    .map(F.relation),
  fc.record({ xid, typeOid: u32, schema: cstring, name: cstring }).map(F.type),
  fc.record({ xid, relationOid: oid, newTuple: tuple }).map(F.insert),
  fc.record({ xid, relationOid: oid, oldKind: fc.constantFrom('K' as const, 'O' as const, null), oldTuple: tuple, newTuple: tuple }).map(F.update),
  fc.record({ xid, relationOid: oid, oldKind: fc.constantFrom('K' as const, 'O' as const), oldTuple: tuple }).map(F.del),
  fc.record({ xid, options: fc.integer({ min: 0, max: 255 }), relationOids: fc.array(oid, { maxLength: 4 }) }).map(F.truncate),
  fc.record({ xid, transactional: fc.boolean(), lsn, prefix: cstring, content: fc.uint8Array({ maxLength: 30 }).map((a) => Buffer.from(a)) }).map(F.message),
  fc.record({ xid: u32, firstSegment: fc.boolean() }).map(F.streamStart),
  fc.constant(F.streamStop()),
  fc.record({ xid: u32, flags: fc.integer({ min: 0, max: 255 }), commitLsn: lsn, endLsn: lsn, commitTimeMicros: ts }).map(F.streamCommit),
  fc.record({ xid: u32, subXid: u32 }).map(F.streamAbort),
);

const EXTREMES = [0, 1, 0x7f, 0x80, 0xff];
/** A byte-level mutation; `wide` writes an extreme 16/32-bit value (a count or length) at the offset. */
const mutation = fc.tuple(fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate', 'wide16', 'wide32'), fc.nat(), fc.integer({ min: 0, max: 255 }));

function mutate(buf: Buffer, ops: readonly [string, number, number][]): Buffer {
  let b = Buffer.from(buf);
  for (const [op, at, byte] of ops) {
    const i = b.length === 0 ? 0 : at % b.length;
    if (op === 'flip' && b.length > 0) b[i] = b[i]! ^ (1 << (byte % 8));
    else if (op === 'set' && b.length > 0) b[i] = EXTREMES[byte % EXTREMES.length]!;
    else if (op === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
    else if (op === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
    else if (op === 'truncate') b = b.subarray(0, i);
    else if (op === 'wide16' && i + 2 <= b.length) b.writeUInt16BE([0, 1, 0x7fff, 0x8000, 0xffff][byte % 5]!, i);
    else if (op === 'wide32' && i + 4 <= b.length) b.writeUInt32BE([0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe][byte % 6]!, i);
  }
  return b;
}

function isDecodeError(err: unknown): boolean {
  return err instanceof Error && /^(pgoutput|replication protocol)[: ]/.test(err.message);
}

/** Decodes `buf` with `d`: a message or a pgoutput error, and the stream state kept on failure. */
function decodeOrRefuse(d: PgoutputDecoder, buf: Buffer): void {
  const before = d.inStreamBlock;
  try {
    const m = d.decode(buf);
    assert.equal(typeof m.tag, 'string');
  } catch (err) {
    if (!isDecodeError(err)) throw new Error(`not a pgoutput error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\nframe: ${buf.toString('hex')}`);
    assert.match((err as Error).message, /at offset \d+ \(message length \d+\)|empty message/);
    assert.equal(d.inStreamBlock, before, 'a failed decode changed the stream state');
  }
}

// No clock in these tests (a loaded machine must not fail them): a decoder that hangs is caught by
// the suite's timeout, one that allocates what a frame claims by running out of memory.
describe('pgoutput decoder fuzzing', { timeout: 300_000 }, () => {
  test('mutated frames: a message or a clear error at an offset', () => {
    fc.assert(
      fc.property(fc.boolean(), frame, fc.array(mutation, { minLength: 1, maxLength: 4 }), (streaming, f, ops) => {
        const d = new PgoutputDecoder();
        if (streaming) d.decode(F.streamStart({ xid: 7, firstSegment: true }));
        decodeOrRefuse(d, mutate(f, ops));
      }),
      { seed: 1321, numRuns: 5000 },
    );
  });

  test('random bytes after a valid tag', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.constantFrom(...'BCORYIUDTMSEcAPKbrwk'.split('')), fc.uint8Array({ maxLength: 80 }), (streaming, tag, rest) => {
        const d = new PgoutputDecoder();
        if (streaming) d.decode(F.streamStart({ xid: 7, firstSegment: true }));
        decodeOrRefuse(d, Buffer.concat([Buffer.from(tag, 'latin1'), Buffer.from(rest)]));
      }),
      { seed: 1322, numRuns: 5000 },
    );
  });

  test('sequences of valid and mutated frames through one decoder and the transaction assembler', () => {
    const item = fc.oneof({ weight: 3, arbitrary: frame }, { weight: 1, arbitrary: fc.tuple(frame, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([f, ops]) => mutate(f, ops)) });
    fc.assert(
      fc.property(fc.array(item, { maxLength: 40 }), fc.integer({ min: 1, max: 5 }), (frames, maxRows) => {
        const d = new PgoutputDecoder();
        let handed = 0;
        const assembler = new TransactionAssembler({ transaction: () => void handed++, logicalMessage: () => undefined, relation: () => undefined }, maxRows, 4096);
        for (const f of frames) {
          let m;
          try {
            m = d.decode(f);
          } catch (err) {
            if (!isDecodeError(err)) throw err;
            continue;
          }
          try {
            assembler.push(m, f.length);
          } catch (err) {
            // a message out of place (a change before its Relation, a Commit without Begin): said so, never a TypeError
            if (!(err instanceof Error && /^pgoutput /.test(err.message))) throw new Error(`assembler: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
          }
        }
        assert.ok(handed >= 0);
      }),
      { seed: 1323, numRuns: 2000 },
    );
  });

  test('CopyData payloads: XLogData and keepalives, mutated', () => {
    const payload = fc.oneof(
      fc.record({ walStart: lsn, walEnd: lsn, sendTimeMicros: ts, data: frame }).map(F.xlogData),
      fc.record({ walEnd: lsn, sendTimeMicros: ts, replyRequested: fc.boolean() }).map(F.keepalive),
    );
    fc.assert(
      fc.property(payload, fc.array(mutation, { maxLength: 4 }), (p, ops) => {
        const buf = mutate(p, ops);
        let msg;
        try {
          msg = decodeReplicationMessage(buf);
        } catch (err) {
          if (!isDecodeError(err)) throw new Error(`not a protocol error: ${String(err)}\npayload: ${buf.toString('hex')}`);
          return;
        }
        if (msg.tag === 'xlogdata') decodeOrRefuse(new PgoutputDecoder(), msg.data);
      }),
      { seed: 1324, numRuns: 3000 },
    );
  });

  test('counts and lengths far beyond the message fail before allocating', () => {
    const d = new PgoutputDecoder();
    // Truncate claiming 2^32-1 relations, a Message claiming 4 GiB of content, a text column claiming 2 GiB,
    // a Relation and a tuple claiming 65535 columns
    const cases = [
      Buffer.from([0x54, 0xff, 0xff, 0xff, 0xff, 0x00]),
      Buffer.concat([F.message({ transactional: false, lsn: 1n, prefix: 'p', content: '' }).subarray(0, -4), Buffer.from([0xff, 0xff, 0xff, 0xff])]),
      Buffer.concat([Buffer.from('I'), Buffer.from([0, 0, 0, 1]), Buffer.from('N'), Buffer.from([0, 1]), Buffer.from('t'), Buffer.from([0x7f, 0xff, 0xff, 0xff])]),
      Buffer.concat([Buffer.from('R'), Buffer.from([0, 0, 0, 1]), Buffer.from('s\0t\0d'), Buffer.from([0xff, 0xff])]),
      Buffer.concat([Buffer.from('I'), Buffer.from([0, 0, 0, 1]), Buffer.from('N'), Buffer.from([0xff, 0xff])]),
    ];
    for (const c of cases) assert.throws(() => d.decode(c), /^Error: pgoutput: truncated message: need \d+ byte\(s\) for .* at offset \d+ \(message length \d+\)$/);
  });
});
