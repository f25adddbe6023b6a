import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PgoutputDecoder } from '../../src/pg/pgoutput/decoder.js';
import type { PgoutputMessage, Tuple } from '../../src/pg/pgoutput/types.js';
import * as F from './support/pgoutput-frames.js';

const U32_MAX = 0xffffffff;
const U64_MAX = 2n ** 64n - 1n;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

function decodeOne(buf: Buffer): PgoutputMessage {
  return new PgoutputDecoder().decode(buf);
}

/** A decoder that is inside a streamed block of `xid`. */
function streamingDecoder(xid = 900): PgoutputDecoder {
  const d = new PgoutputDecoder();
  d.decode(F.streamStart({ xid, firstSegment: true }));
  return d;
}

/** Every strict prefix of `frame` must throw, and the decoder state must not change. */
function assertEveryPrefixThrows(frame: Buffer, make: () => PgoutputDecoder, label: string): void {
  for (let len = 0; len < frame.length; len++) {
    const d = make();
    const before = d.inStreamBlock;
    assert.throws(
      () => d.decode(frame.subarray(0, len)),
      (e: unknown) => e instanceof Error && /pgoutput: /.test(e.message),
      `${label}: prefix of ${len}/${frame.length} bytes should throw`,
    );
    assert.equal(d.inStreamBlock, before, `${label}: state changed after failed decode at ${len}`);
  }
}

describe('PgoutputDecoder: transaction framing', () => {
  test('Begin', () => {
    const m = decodeOne(F.begin({ finalLsn: 0x16_b374d848n, commitTimeMicros: 817_000_000_123_456n, xid: 7_654_321 }));
    assert.deepEqual(m, { tag: 'begin', finalLsn: 0x16_b374d848n, commitTimeMicros: 817_000_000_123_456n, xid: 7_654_321 });
  });

  test('Begin with extreme values: max LSN, max xid, negative timestamp', () => {
    const m = decodeOne(F.begin({ finalLsn: U64_MAX, commitTimeMicros: I64_MIN, xid: U32_MAX }));
    assert.deepEqual(m, { tag: 'begin', finalLsn: U64_MAX, commitTimeMicros: I64_MIN, xid: U32_MAX });
  });

  test('Commit', () => {
    const m = decodeOne(F.commit({ flags: 0, commitLsn: 100n, endLsn: 0x1_0000_0000n, commitTimeMicros: I64_MAX }));
    assert.deepEqual(m, { tag: 'commit', flags: 0, commitLsn: 100n, endLsn: 0x1_0000_0000n, commitTimeMicros: I64_MAX });
  });

  test('Commit keeps unknown flag bits', () => {
    const m = decodeOne(F.commit({ flags: 0xff, commitLsn: 1n, endLsn: 2n, commitTimeMicros: 3n }));
    assert.equal(m.tag === 'commit' && m.flags, 0xff);
  });

  test('Origin', () => {
    assert.deepEqual(decodeOne(F.origin({ originLsn: 42n, name: 'pg_16385' })), {
      tag: 'origin',
      originLsn: 42n,
      name: 'pg_16385',
    });
    assert.deepEqual(decodeOne(F.origin({ originLsn: 0n, name: '' })), { tag: 'origin', originLsn: 0n, name: '' });
    assert.deepEqual(decodeOne(F.origin({ originLsn: 1n, name: 'région-東京-🚀' })), {
      tag: 'origin',
      originLsn: 1n,
      name: 'région-東京-🚀',
    });
  });
});

describe('PgoutputDecoder: Relation and Type', () => {
  test('Relation with key and non-key columns and typmods', () => {
    const m = decodeOne(
      F.relation({
        relationOid: 16_385,
        schema: 'public',
        name: 'orders',
        replicaIdentity: 'd',
        columns: [
          { isKey: true, name: 'id', typeOid: 20 },
          { name: 'status', typeOid: 1043, typeMod: 36 },
          { name: 'total', typeOid: 1700, typeMod: 655_366 },
        ],
      }),
    );
    assert.deepEqual(m, {
      tag: 'relation',
      relationOid: 16_385,
      schema: 'public',
      name: 'orders',
      replicaIdentity: 'd',
      columns: [
        { isKey: true, name: 'id', typeOid: 20, typeMod: -1 },
        { isKey: false, name: 'status', typeOid: 1043, typeMod: 36 },
        { isKey: false, name: 'total', typeOid: 1700, typeMod: 655_366 },
      ],
    });
    assert.equal('xid' in m, false, 'no xid key outside a stream');
  });

  test('Relation: every replica identity', () => {
    for (const ri of ['d', 'n', 'f', 'i'] as const) {
      const m = decodeOne(F.relation({ relationOid: 1, schema: 's', name: 't', replicaIdentity: ri, columns: [] }));
      assert.equal(m.tag === 'relation' && m.replicaIdentity, ri);
    }
  });

  test('Relation: zero columns, max OID, quoted/unicode names, unknown flag bits', () => {
    const m = decodeOne(
      F.relation({
        relationOid: U32_MAX,
        schema: 'Schéma "x"',
        name: '表',
        columns: [
          { flags: 0xfe, name: 'not key (bit 1 clear)', typeOid: U32_MAX, typeMod: -2_147_483_648 },
          { flags: 0x03, name: '', typeOid: 0, typeMod: 2_147_483_647 },
        ],
      }),
    );
    assert.deepEqual(m, {
      tag: 'relation',
      relationOid: U32_MAX,
      schema: 'Schéma "x"',
      name: '表',
      replicaIdentity: 'd',
      columns: [
        { isKey: false, name: 'not key (bit 1 clear)', typeOid: U32_MAX, typeMod: -2_147_483_648 },
        { isKey: true, name: '', typeOid: 0, typeMod: 2_147_483_647 },
      ],
    });
    const empty = decodeOne(F.relation({ relationOid: 5, schema: 'a', name: 'b', columns: [] }));
    assert.deepEqual(empty.tag === 'relation' && empty.columns, []);
  });

  test('Relation with 1600 columns', () => {
    const columns = Array.from({ length: 1600 }, (_, i) => ({ isKey: i === 0, name: `c${i}`, typeOid: 25 }));
    const m = decodeOne(F.relation({ relationOid: 9, schema: 'public', name: 'wide', columns }));
    assert.ok(m.tag === 'relation');
    assert.equal(m.columns.length, 1600);
    assert.deepEqual(m.columns[1599], { isKey: false, name: 'c1599', typeOid: 25, typeMod: -1 });
  });

  test('Relation: unknown replica identity throws', () => {
    const frame = F.relation({ relationOid: 1, schema: 's', name: 't', columns: [] });
    frame[1 + 4 + 2 + 2] = 'x'.charCodeAt(0);
    assert.throws(() => decodeOne(frame), /unknown replica identity 'x' in message 'R' at offset 9/);
  });

  test('Type', () => {
    assert.deepEqual(decodeOne(F.type({ typeOid: 16_400, schema: 'public', name: 'mood' })), {
      tag: 'type',
      typeOid: 16_400,
      schema: 'public',
      name: 'mood',
    });
  });
});

describe('PgoutputDecoder: row changes', () => {
  test('Insert with every tuple kind', () => {
    const m = decodeOne(F.insert({ relationOid: 16_385, newTuple: ['1', null, undefined, '', 'hello'] }));
    assert.deepEqual(m, { tag: 'insert', relationOid: 16_385, newTuple: ['1', null, undefined, '', 'hello'] });
    assert.ok(m.tag === 'insert');
    assert.equal(m.newTuple.length, 5);
    assert.ok(2 in m.newTuple, 'unchanged TOAST is an explicit undefined, not a hole');
  });

  test('Insert with zero columns', () => {
    assert.deepEqual(decodeOne(F.insert({ relationOid: 1, newTuple: [] })), {
      tag: 'insert',
      relationOid: 1,
      newTuple: [],
    });
  });

  test('Insert with multi-byte UTF-8: emoji, CJK, combining marks, NUL inside text', () => {
    const values = ['🚀🎉👩‍👩‍👧', '日本語テキスト', '한국어', 'e\u0301', 'a\u0000b', '\u{10FFFF}', 'ß'];
    const m = decodeOne(F.insert({ relationOid: 2, newTuple: values }));
    assert.deepEqual(m.tag === 'insert' && m.newTuple, values);
  });

  test('Insert with 100 KB values', () => {
    const ascii = 'x'.repeat(100 * 1024);
    const cjk = '漢'.repeat(40 * 1024); // 120 KB of UTF-8
    const m = decodeOne(F.insert({ relationOid: 3, newTuple: [ascii, null, cjk] }));
    assert.ok(m.tag === 'insert');
    assert.equal(m.newTuple[0], ascii);
    assert.equal(m.newTuple[1], null);
    assert.equal(m.newTuple[2], cjk);
  });

  test('Insert with 1600 columns', () => {
    const values: Tuple = Array.from({ length: 1600 }, (_, i) => (i % 3 === 0 ? null : i % 3 === 1 ? undefined : `${i}`));
    const m = decodeOne(F.insert({ relationOid: 4, newTuple: values }));
    assert.deepEqual(m.tag === 'insert' && m.newTuple, values);
  });

  test('Update without old tuple', () => {
    assert.deepEqual(decodeOne(F.update({ relationOid: 7, newTuple: ['1', 'new'] })), {
      tag: 'update',
      relationOid: 7,
      oldKind: null,
      oldTuple: null,
      newTuple: ['1', 'new'],
    });
  });

  test("Update with 'K' old key tuple", () => {
    assert.deepEqual(decodeOne(F.update({ relationOid: 7, oldKind: 'K', oldTuple: ['1', null], newTuple: ['2', 'x'] })), {
      tag: 'update',
      relationOid: 7,
      oldKind: 'K',
      oldTuple: ['1', null],
      newTuple: ['2', 'x'],
    });
  });

  test("Update with 'O' full old tuple and unchanged TOAST in the new tuple", () => {
    assert.deepEqual(
      decodeOne(F.update({ relationOid: 7, oldKind: 'O', oldTuple: ['1', 'big', ''], newTuple: ['1', undefined, 'y'] })),
      {
        tag: 'update',
        relationOid: 7,
        oldKind: 'O',
        oldTuple: ['1', 'big', ''],
        newTuple: ['1', undefined, 'y'],
      },
    );
  });

  test("Delete with 'K' and with 'O'", () => {
    assert.deepEqual(decodeOne(F.del({ relationOid: 8, oldKind: 'K', oldTuple: ['42', null] })), {
      tag: 'delete',
      relationOid: 8,
      oldKind: 'K',
      oldTuple: ['42', null],
    });
    assert.deepEqual(decodeOne(F.del({ relationOid: 8, oldKind: 'O', oldTuple: ['42', 'a', ''] })), {
      tag: 'delete',
      relationOid: 8,
      oldKind: 'O',
      oldTuple: ['42', 'a', ''],
    });
  });

  test('Insert without the N marker throws', () => {
    const frame = F.insert({ relationOid: 1, newTuple: ['a'] });
    frame[5] = 'K'.charCodeAt(0);
    assert.throws(() => decodeOne(frame), /expected 'N' before the new tuple, got 'K' in message 'I' at offset 5/);
  });

  test('Update with a bad marker throws', () => {
    const frame = F.update({ relationOid: 1, newTuple: ['a'] });
    frame[5] = 'X'.charCodeAt(0);
    assert.throws(() => decodeOne(frame), /expected 'K', 'O' or 'N' in Update, got 'X' in message 'U' at offset 5/);
    // 'K' old tuple followed by something other than 'N'
    const twice = F.update({ relationOid: 1, oldKind: 'K', oldTuple: ['1'], newTuple: ['a'] });
    const secondMarker = 5 + 1 + 2 + 1 + 4 + 1;
    assert.equal(twice[secondMarker], 'N'.charCodeAt(0));
    twice[secondMarker] = 'O'.charCodeAt(0);
    assert.throws(() => decodeOne(twice), /got 'O' in message 'U' at offset 14/);
  });

  test("Delete with 'N' marker throws", () => {
    const frame = F.del({ relationOid: 1, oldKind: 'K', oldTuple: ['a'] });
    frame[5] = 'N'.charCodeAt(0);
    assert.throws(() => decodeOne(frame), /expected 'K' or 'O' in Delete, got 'N'/);
  });

  test('binary tuple format throws a clear error', () => {
    const frame = F.insert({ relationOid: 1, newTuple: ['abc'] });
    frame[8] = 'b'.charCodeAt(0); // I(1) oid(4) N(1) ncols(2) → kind byte of column 0
    assert.throws(() => decodeOne(frame), /column 0 is in binary tuple format, which is not supported.*'I' at offset 8/);
  });

  test('unknown tuple column kind throws', () => {
    const frame = F.insert({ relationOid: 1, newTuple: [null, 'a'] });
    frame[9] = 'z'.charCodeAt(0);
    assert.throws(() => decodeOne(frame), /unknown tuple column kind 'z' in column 1 in message 'I' at offset 9/);
  });

  test('negative text length throws', () => {
    const frame = F.insert({ relationOid: 1, newTuple: ['a'] });
    frame.writeInt32BE(-1, 9);
    assert.throws(() => decodeOne(frame), /negative text length -1 in column 0/);
  });

  test('text length past the end throws rather than reading garbage', () => {
    const frame = F.insert({ relationOid: 1, newTuple: ['abc'] });
    frame.writeInt32BE(4, 9);
    assert.throws(() => decodeOne(frame), /truncated message: need 4 byte\(s\) for text of column 0, have 3/);
  });
});

describe('PgoutputDecoder: Truncate and Message', () => {
  test('Truncate: every option combination', () => {
    for (const cascade of [false, true]) {
      for (const restartIdentity of [false, true]) {
        assert.deepEqual(decodeOne(F.truncate({ cascade, restartIdentity, relationOids: [16_385, U32_MAX] })), {
          tag: 'truncate',
          cascade,
          restartIdentity,
          relationOids: [16_385, U32_MAX],
        });
      }
    }
  });

  test('Truncate: unknown option bits are ignored, zero relations allowed', () => {
    assert.deepEqual(decodeOne(F.truncate({ options: 0xfc, relationOids: [] })), {
      tag: 'truncate',
      cascade: false,
      restartIdentity: false,
      relationOids: [],
    });
  });

  test('Truncate: a huge relation count fails fast', () => {
    const frame = F.truncate({ relationOids: [1] });
    frame.writeUInt32BE(U32_MAX, 1);
    assert.throws(() => decodeOne(frame), /truncated message: need \d+ byte\(s\) for relation OIDs/);
  });

  test('Message: transactional and not, binary content with NUL bytes', () => {
    const content = Buffer.from([0, 1, 2, 0xff, 0, 0x80]);
    assert.deepEqual(decodeOne(F.message({ transactional: true, lsn: 99n, prefix: 'sluice', content })), {
      tag: 'message',
      transactional: true,
      lsn: 99n,
      prefix: 'sluice',
      content,
    });
    const m = decodeOne(F.message({ transactional: false, lsn: 1n, prefix: '', content: '' }));
    assert.deepEqual(m, { tag: 'message', transactional: false, lsn: 1n, prefix: '', content: Buffer.alloc(0) });
  });

  test('Message: only flag bit 1 means transactional', () => {
    const frame = F.message({ transactional: false, lsn: 1n, prefix: 'p', content: 'x' });
    frame[1] = 0xfe;
    const m = decodeOne(frame);
    assert.equal(m.tag === 'message' && m.transactional, false);
  });

  test('Message: content is a copy, not a view into the input', () => {
    const frame = F.message({ transactional: true, lsn: 1n, prefix: 'p', content: 'abc' });
    const m = decodeOne(frame);
    assert.ok(m.tag === 'message');
    frame.fill(0);
    assert.equal(m.content.toString(), 'abc');
  });
});

describe('PgoutputDecoder: streamed transactions (protocol v2)', () => {
  test('data messages inside a stream block carry the xid; outside they do not', () => {
    const d = new PgoutputDecoder();
    assert.equal(d.inStreamBlock, false);
    assert.deepEqual(d.decode(F.streamStart({ xid: 1234, firstSegment: true })), {
      tag: 'stream_start',
      xid: 1234,
      firstSegment: true,
    });
    assert.equal(d.inStreamBlock, true);

    // Origin never carries an xid, even inside a stream block
    assert.deepEqual(d.decode(F.origin({ originLsn: 5n, name: 'o' })), { tag: 'origin', originLsn: 5n, name: 'o' });
    assert.deepEqual(d.decode(F.relation({ xid: 1234, relationOid: 10, schema: 's', name: 't', columns: [] })), {
      tag: 'relation',
      xid: 1234,
      relationOid: 10,
      schema: 's',
      name: 't',
      replicaIdentity: 'd',
      columns: [],
    });
    assert.deepEqual(d.decode(F.type({ xid: 1234, typeOid: 11, schema: 's', name: 'ty' })), {
      tag: 'type',
      xid: 1234,
      typeOid: 11,
      schema: 's',
      name: 'ty',
    });
    assert.deepEqual(d.decode(F.insert({ xid: 1235, relationOid: 10, newTuple: ['a'] })), {
      tag: 'insert',
      xid: 1235, // a subtransaction's xid
      relationOid: 10,
      newTuple: ['a'],
    });
    assert.deepEqual(d.decode(F.update({ xid: 1234, relationOid: 10, oldKind: 'K', oldTuple: ['a'], newTuple: ['b'] })), {
      tag: 'update',
      xid: 1234,
      relationOid: 10,
      oldKind: 'K',
      oldTuple: ['a'],
      newTuple: ['b'],
    });
    assert.deepEqual(d.decode(F.del({ xid: 1234, relationOid: 10, oldKind: 'O', oldTuple: ['b'] })), {
      tag: 'delete',
      xid: 1234,
      relationOid: 10,
      oldKind: 'O',
      oldTuple: ['b'],
    });
    assert.deepEqual(d.decode(F.truncate({ xid: 1234, cascade: true, relationOids: [10] })), {
      tag: 'truncate',
      xid: 1234,
      cascade: true,
      restartIdentity: false,
      relationOids: [10],
    });
    assert.deepEqual(d.decode(F.message({ xid: 1234, transactional: true, lsn: 7n, prefix: 'p', content: 'c' })), {
      tag: 'message',
      xid: 1234,
      transactional: true,
      lsn: 7n,
      prefix: 'p',
      content: Buffer.from('c'),
    });
    assert.deepEqual(d.decode(F.streamStop()), { tag: 'stream_stop' });
    assert.equal(d.inStreamBlock, false);

    const plain = d.decode(F.insert({ relationOid: 10, newTuple: ['z'] }));
    assert.deepEqual(plain, { tag: 'insert', relationOid: 10, newTuple: ['z'] });
    assert.equal('xid' in plain, false);

    assert.deepEqual(d.decode(F.streamStart({ xid: 1234, firstSegment: false })), {
      tag: 'stream_start',
      xid: 1234,
      firstSegment: false,
    });
    d.decode(F.streamStop());
    assert.deepEqual(
      d.decode(F.streamCommit({ xid: 1234, flags: 0, commitLsn: 0x10n, endLsn: 0x20n, commitTimeMicros: 777n })),
      { tag: 'stream_commit', xid: 1234, flags: 0, commitLsn: 0x10n, endLsn: 0x20n, commitTimeMicros: 777n },
    );
  });

  test('Stream Abort (v2) and with v4 abort LSN/timestamp trailing', () => {
    assert.deepEqual(decodeOne(F.streamAbort({ xid: 1, subXid: 2 })), { tag: 'stream_abort', xid: 1, subXid: 2 });
    assert.deepEqual(decodeOne(F.streamAbort({ xid: U32_MAX, subXid: U32_MAX, abortLsn: 5n, abortTimeMicros: 6n })), {
      tag: 'stream_abort',
      xid: U32_MAX,
      subXid: U32_MAX,
    });
  });

  test('a streamed data message misread without stream state would differ: the xid shifts every field', () => {
    // guards against the decoder ignoring stream state: the same bytes mean something else
    const frame = F.insert({ xid: 1234, relationOid: 10, newTuple: ['a'] });
    assert.throws(() => decodeOne(frame));
    assert.deepEqual(streamingDecoder().decode(frame), { tag: 'insert', xid: 1234, relationOid: 10, newTuple: ['a'] });
  });

  test('protocol violations around stream blocks throw', () => {
    assert.throws(() => decodeOne(F.streamStop()), /Stream Stop outside a streamed block in message 'E' at offset 1/);
    const d = streamingDecoder();
    assert.throws(() => d.decode(F.streamStart({ xid: 1, firstSegment: false })), /inside a streamed block/);
    assert.throws(
      () => d.decode(F.begin({ finalLsn: 1n, commitTimeMicros: 1n, xid: 1 })),
      /inside a streamed block.*in message 'B' at offset 0/,
    );
    assert.throws(() => d.decode(F.commit({ commitLsn: 1n, endLsn: 1n, commitTimeMicros: 1n })), /inside a streamed block/);
    assert.throws(
      () => d.decode(F.streamCommit({ xid: 1, commitLsn: 1n, endLsn: 1n, commitTimeMicros: 1n })),
      /inside a streamed block/,
    );
    assert.throws(() => d.decode(F.streamAbort({ xid: 1, subXid: 1 })), /inside a streamed block/);
    assert.equal(d.inStreamBlock, true, 'rejected messages leave the state alone');
    d.reset();
    assert.equal(d.inStreamBlock, false);
    assert.deepEqual(d.decode(F.insert({ relationOid: 3, newTuple: [] })), { tag: 'insert', relationOid: 3, newTuple: [] });
  });

  test('Stream Start with trailing bytes does not enter the stream block', () => {
    const d = new PgoutputDecoder();
    const frame = Buffer.concat([F.streamStart({ xid: 1, firstSegment: true }), Buffer.from([0])]);
    assert.throws(() => d.decode(frame), /1 unexpected trailing byte\(s\) in message 'S' at offset 6/);
    assert.equal(d.inStreamBlock, false);
  });
});

describe('PgoutputDecoder: malformed input', () => {
  test('empty buffer', () => {
    assert.throws(() => decodeOne(Buffer.alloc(0)), /pgoutput: empty message/);
  });

  test('unknown tag names the tag and the offset', () => {
    assert.throws(() => decodeOne(Buffer.from('Zxyz')), /^Error: pgoutput: unknown message tag 'Z' at offset 0 \(message length 4\)$/);
    assert.throws(() => decodeOne(Buffer.from([0x00])), /unknown message tag 0x00/);
    assert.throws(() => decodeOne(Buffer.from([0xff, 1, 2])), /unknown message tag 0xff/);
    // protocol v3 two-phase messages are not requested, so they are unknown here
    assert.throws(() => decodeOne(Buffer.from('P')), /unknown message tag 'P'/);
  });

  test('trailing bytes are rejected (misframing must not go unnoticed)', () => {
    const frames = [
      F.begin({ finalLsn: 1n, commitTimeMicros: 2n, xid: 3 }),
      F.commit({ commitLsn: 1n, endLsn: 2n, commitTimeMicros: 3n }),
      F.insert({ relationOid: 1, newTuple: ['a'] }),
      F.truncate({ relationOids: [1] }),
      F.message({ transactional: true, lsn: 1n, prefix: 'p', content: 'c' }),
    ];
    for (const f of frames) {
      const tag = String.fromCharCode(f[0]!);
      assert.throws(
        () => decodeOne(Buffer.concat([f, Buffer.from([0x42])])),
        new RegExp(`1 unexpected trailing byte\\(s\\) in message '${tag}' at offset ${f.length}`),
      );
    }
  });

  test('decodes a message that is a view at a non-zero offset of a larger buffer', () => {
    const frame = F.insert({ relationOid: 77, newTuple: ['hé', null] });
    const big = Buffer.concat([Buffer.from('garbage-before'), frame, Buffer.from('garbage-after\0')]);
    const view = big.subarray(14, 14 + frame.length);
    assert.deepEqual(decodeOne(view), { tag: 'insert', relationOid: 77, newTuple: ['hé', null] });
  });

  test('a decoder keeps working after an error', () => {
    const d = new PgoutputDecoder();
    assert.throws(() => d.decode(Buffer.from('I')));
    assert.deepEqual(d.decode(F.insert({ relationOid: 1, newTuple: ['ok'] })), {
      tag: 'insert',
      relationOid: 1,
      newTuple: ['ok'],
    });
  });
});

describe('PgoutputDecoder: truncation at every byte boundary throws', () => {
  const plain: [string, Buffer][] = [
    ['begin', F.begin({ finalLsn: 0x1234n, commitTimeMicros: 5n, xid: 6 })],
    ['commit', F.commit({ commitLsn: 1n, endLsn: 2n, commitTimeMicros: 3n })],
    ['origin', F.origin({ originLsn: 1n, name: 'origin-🚀' })],
    [
      'relation',
      F.relation({
        relationOid: 1,
        schema: 'public',
        name: 'tbl',
        replicaIdentity: 'f',
        columns: [
          { isKey: true, name: 'id', typeOid: 23 },
          { name: 'näme', typeOid: 25, typeMod: 10 },
        ],
      }),
    ],
    ['type', F.type({ typeOid: 1, schema: 'public', name: 'mood' })],
    ['insert', F.insert({ relationOid: 1, newTuple: ['1', null, undefined, '', '日本🚀'] })],
    ['update (no old)', F.update({ relationOid: 1, newTuple: ['1', 'x'] })],
    ['update K', F.update({ relationOid: 1, oldKind: 'K', oldTuple: ['1', null], newTuple: ['2', undefined] })],
    ['update O', F.update({ relationOid: 1, oldKind: 'O', oldTuple: ['1', 'a'], newTuple: ['1', 'b'] })],
    ['delete K', F.del({ relationOid: 1, oldKind: 'K', oldTuple: ['1', null] })],
    ['delete O', F.del({ relationOid: 1, oldKind: 'O', oldTuple: ['1', 'ab'] })],
    ['truncate', F.truncate({ cascade: true, restartIdentity: true, relationOids: [1, 2, 3] })],
    ['message', F.message({ transactional: true, lsn: 9n, prefix: 'pfx', content: 'payload' })],
    ['message (empty content)', F.message({ transactional: false, lsn: 9n, prefix: 'pfx', content: '' })],
    ['stream start', F.streamStart({ xid: 1, firstSegment: true })],
    ['stream commit', F.streamCommit({ xid: 1, commitLsn: 1n, endLsn: 2n, commitTimeMicros: 3n })],
    ['stream abort', F.streamAbort({ xid: 1, subXid: 2 })],
  ];
  for (const [label, frame] of plain) {
    test(label, () => {
      const full = decodeOne(frame); // the whole frame decodes
      assert.ok(full);
      assertEveryPrefixThrows(frame, () => new PgoutputDecoder(), label);
    });
  }

  const streamed: [string, Buffer][] = [
    ['relation', F.relation({ xid: 900, relationOid: 1, schema: 's', name: 't', columns: [{ name: 'c', typeOid: 25 }] })],
    ['type', F.type({ xid: 900, typeOid: 1, schema: 's', name: 't' })],
    ['insert', F.insert({ xid: 900, relationOid: 1, newTuple: ['a', null] })],
    ['update', F.update({ xid: 900, relationOid: 1, oldKind: 'K', oldTuple: ['a'], newTuple: ['b'] })],
    ['delete', F.del({ xid: 900, relationOid: 1, oldKind: 'K', oldTuple: ['a'] })],
    ['truncate', F.truncate({ xid: 900, relationOids: [1] })],
    ['message', F.message({ xid: 900, transactional: true, lsn: 1n, prefix: 'p', content: 'c' })],
    ['stream stop', F.streamStop()],
  ];
  for (const [label, frame] of streamed) {
    test(`${label} inside a stream block`, () => {
      assert.ok(streamingDecoder().decode(frame));
      assertEveryPrefixThrows(frame, () => streamingDecoder(), `streamed ${label}`);
    });
  }

  test('stream abort v4: prefixes shorter than xid + subxid throw', () => {
    const frame = F.streamAbort({ xid: 1, subXid: 2, abortLsn: 3n, abortTimeMicros: 4n });
    assertEveryPrefixThrows(frame.subarray(0, 9), () => new PgoutputDecoder(), 'stream abort v4');
  });

  test('a 100 KB value truncated anywhere inside it throws', () => {
    const frame = F.insert({ relationOid: 1, newTuple: ['🚀'.repeat(25 * 1024)] });
    for (const len of [13, 14, 1000, 50_000, frame.length - 1]) {
      assert.throws(() => decodeOne(frame.subarray(0, len)), /truncated message/);
    }
  });

  test('error messages name the tag and the offset', () => {
    assert.throws(
      () => decodeOne(F.begin({ finalLsn: 1n, commitTimeMicros: 1n, xid: 1 }).subarray(0, 19)),
      /pgoutput: truncated message: need 4 byte\(s\) for Int32, have 2 in message 'B' at offset 17 \(message length 19\)/,
    );
    assert.throws(
      () => decodeOne(F.origin({ originLsn: 1n, name: 'abc' }).subarray(0, 11)),
      /string without terminating NUL in message 'O' at offset 9/,
    );
  });
});

// --- property tests -----------------------------------------------------------------------

// Full Unicode without lone surrogates (which cannot survive UTF-8)
const text = fc.string({ unit: 'binary', maxLength: 40 });
const cstring = text.filter((s) => !s.includes('\u0000'));
const tupleValue: fc.Arbitrary<string | null | undefined> = fc.oneof(
  { weight: 5, arbitrary: text },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 200, maxLength: 2000 }) },
);
const tuple = fc.array(tupleValue, { maxLength: 30 });
const u32 = fc.integer({ min: 0, max: U32_MAX });
const lsn = fc.bigInt({ min: 0n, max: U64_MAX });
const ts = fc.bigInt({ min: I64_MIN, max: I64_MAX });
const maybeXid = fc.option(u32, { nil: undefined });

/** [frame, expected message, needs a stream block] */
type Case = [Buffer, PgoutputMessage, boolean];

function withXid<T extends object>(m: T, xid: number | undefined): T {
  return xid === undefined ? m : { ...m, xid };
}

const anyMessage: fc.Arbitrary<Case> = fc.oneof(
  fc.record({ finalLsn: lsn, commitTimeMicros: ts, xid: u32 }).map((o): Case => [F.begin(o), { tag: 'begin', ...o }, false]),
  fc
    .record({ flags: fc.integer({ min: 0, max: 255 }), commitLsn: lsn, endLsn: lsn, commitTimeMicros: ts })
    .map((o): Case => [F.commit(o), { tag: 'commit', ...o }, false]),
  fc.record({ originLsn: lsn, name: cstring }).map((o): Case => [F.origin(o), { tag: 'origin', ...o }, false]),
  fc
    .record({
      xid: maybeXid,
      relationOid: u32,
      schema: cstring,
      name: cstring,
      replicaIdentity: fc.constantFrom('d' as const, 'n' as const, 'f' as const, 'i' as const),
      columns: fc.array(
        fc.record(
          { isKey: fc.boolean(), name: cstring, typeOid: u32, typeMod: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) },
          { noNullPrototype: true }, // deepStrictEqual compares prototypes
        ),
        { maxLength: 10 },
      ),
    })
    .map(({ xid, ...o }): Case => [F.relation({ xid, ...o }), withXid({ tag: 'relation', ...o }, xid), xid !== undefined]),
  fc
    .record({ xid: maybeXid, typeOid: u32, schema: cstring, name: cstring })
    .map(({ xid, ...o }): Case => [F.type({ xid, ...o }), withXid({ tag: 'type', ...o }, xid), xid !== undefined]),
  fc
    .record({ xid: maybeXid, relationOid: u32, newTuple: tuple })
    .map(({ xid, ...o }): Case => [F.insert({ xid, ...o }), withXid({ tag: 'insert', ...o }, xid), xid !== undefined]),
  fc
    .record({
      xid: maybeXid,
      relationOid: u32,
      old: fc.option(fc.tuple(fc.constantFrom('K' as const, 'O' as const), tuple), { nil: null }),
      newTuple: tuple,
    })
    .map(({ xid, relationOid, old, newTuple }): Case => {
      const oldKind = old ? old[0] : null;
      const oldTuple = old ? old[1] : null;
      return [
        F.update({ xid, relationOid, oldKind, oldTuple, newTuple }),
        withXid({ tag: 'update', relationOid, oldKind, oldTuple, newTuple }, xid),
        xid !== undefined,
      ];
    }),
  fc
    .record({ xid: maybeXid, relationOid: u32, oldKind: fc.constantFrom('K' as const, 'O' as const), oldTuple: tuple })
    .map(({ xid, ...o }): Case => [F.del({ xid, ...o }), withXid({ tag: 'delete', ...o }, xid), xid !== undefined]),
  fc
    .record({ xid: maybeXid, cascade: fc.boolean(), restartIdentity: fc.boolean(), relationOids: fc.array(u32, { maxLength: 20 }) })
    .map(({ xid, ...o }): Case => [F.truncate({ xid, ...o }), withXid({ tag: 'truncate', ...o }, xid), xid !== undefined]),
  fc
    .record({
      xid: maybeXid,
      transactional: fc.boolean(),
      lsn,
      prefix: cstring,
      content: fc.uint8Array({ maxLength: 100 }).map((a) => Buffer.from(a)),
    })
    .map(({ xid, ...o }): Case => [F.message({ xid, ...o }), withXid({ tag: 'message', ...o }, xid), xid !== undefined]),
  fc
    .record({ xid: u32, firstSegment: fc.boolean() })
    .map((o): Case => [F.streamStart(o), { tag: 'stream_start', ...o }, false]),
  fc
    .record({ xid: u32, flags: fc.integer({ min: 0, max: 255 }), commitLsn: lsn, endLsn: lsn, commitTimeMicros: ts })
    .map((o): Case => [F.streamCommit(o), { tag: 'stream_commit', ...o }, false]),
  fc.record({ xid: u32, subXid: u32 }).map((o): Case => [F.streamAbort(o), { tag: 'stream_abort', ...o }, false]),
);

describe('PgoutputDecoder: properties', () => {
  test('random tuples round-trip through Insert/Update/Delete', () => {
    fc.assert(
      fc.property(u32, tuple, tuple, (relationOid, a, b) => {
        const d = new PgoutputDecoder();
        assert.deepEqual(d.decode(F.insert({ relationOid, newTuple: a })), { tag: 'insert', relationOid, newTuple: a });
        assert.deepEqual(d.decode(F.update({ relationOid, oldKind: 'O', oldTuple: a, newTuple: b })), {
          tag: 'update',
          relationOid,
          oldKind: 'O',
          oldTuple: a,
          newTuple: b,
        });
        assert.deepEqual(d.decode(F.del({ relationOid, oldKind: 'K', oldTuple: b })), {
          tag: 'delete',
          relationOid,
          oldKind: 'K',
          oldTuple: b,
        });
      }),
      { numRuns: 300 },
    );
  });

  test('every message kind round-trips', () => {
    fc.assert(
      fc.property(anyMessage, ([frame, expected, streamed]) => {
        const d = streamed ? streamingDecoder() : new PgoutputDecoder();
        assert.deepEqual(d.decode(frame), expected);
      }),
      { numRuns: 1000 },
    );
  });

  test('every strict prefix of any message throws', () => {
    fc.assert(
      fc.property(
        anyMessage.chain(([frame, , streamed]) =>
          fc.tuple(fc.constant(frame), fc.constant(streamed), fc.integer({ min: 0, max: frame.length - 1 })),
        ),
        ([frame, streamed, len]) => {
          const d = streamed ? streamingDecoder() : new PgoutputDecoder();
          assert.throws(() => d.decode(frame.subarray(0, len)), /pgoutput: /);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('arbitrary bytes either decode or throw an Error (never anything else)', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ minLength: 0, maxLength: 64 }), (streamed, bytes) => {
        const d = streamed ? streamingDecoder() : new PgoutputDecoder();
        try {
          const m = d.decode(Buffer.from(bytes));
          assert.equal(typeof m.tag, 'string');
        } catch (e) {
          assert.ok(e instanceof Error && e.message.startsWith('pgoutput: '), String(e));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
