import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeReplicationMessage,
  encodeStandbyStatusUpdate,
} from '../../src/pg/replication-protocol.js';
import { microsSince2000, microsToIsoUtc } from '../../src/core/time.js';
import * as F from './support/pgoutput-frames.js';

const U64_MAX = 2n ** 64n - 1n;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

describe('decodeReplicationMessage', () => {
  test('XLogData', () => {
    const data = F.begin({ finalLsn: 5n, commitTimeMicros: 6n, xid: 7 });
    const frame = F.xlogData({ walStart: 0x16_b374d848n, walEnd: U64_MAX, sendTimeMicros: -5n, data });
    assert.deepEqual(decodeReplicationMessage(frame), {
      tag: 'xlogdata',
      walStart: 0x16_b374d848n,
      walEnd: U64_MAX,
      sendTimeMicros: -5n,
      data,
    });
  });

  test('XLogData data is a view into the frame, not a copy', () => {
    const frame = F.xlogData({ walStart: 1n, walEnd: 2n, sendTimeMicros: 3n, data: Buffer.from('abc') });
    const m = decodeReplicationMessage(frame);
    assert.ok(m.tag === 'xlogdata');
    assert.equal(m.data.buffer, frame.buffer);
    assert.equal(m.data.byteOffset, frame.byteOffset + 25);
    frame[25] = 'X'.charCodeAt(0);
    assert.equal(m.data.toString(), 'Xbc');
  });

  test('XLogData with empty data and at a non-zero offset of a larger buffer', () => {
    const frame = F.xlogData({ walStart: 1n, walEnd: 2n, sendTimeMicros: 3n, data: Buffer.alloc(0) });
    const big = Buffer.concat([Buffer.from('xx'), frame]);
    const m = decodeReplicationMessage(big.subarray(2));
    assert.deepEqual(m, { tag: 'xlogdata', walStart: 1n, walEnd: 2n, sendTimeMicros: 3n, data: Buffer.alloc(0) });
  });

  test('XLogData truncated anywhere in its header throws', () => {
    const frame = F.xlogData({ walStart: 1n, walEnd: 2n, sendTimeMicros: 3n, data: Buffer.from('B') });
    for (let len = 1; len < 25; len++) {
      assert.throws(
        () => decodeReplicationMessage(frame.subarray(0, len)),
        new RegExp(`truncated XLogData \\('w'\\): ${len} byte\\(s\\), header needs 25`),
      );
    }
  });

  test('Primary keepalive', () => {
    for (const replyRequested of [false, true]) {
      assert.deepEqual(decodeReplicationMessage(F.keepalive({ walEnd: 0xabcn, sendTimeMicros: I64_MAX, replyRequested })), {
        tag: 'keepalive',
        walEnd: 0xabcn,
        sendTimeMicros: I64_MAX,
        replyRequested,
      });
    }
  });

  test('Primary keepalive: any non-zero reply byte requests a reply', () => {
    const frame = F.keepalive({ walEnd: 1n, sendTimeMicros: 1n, replyRequested: false });
    frame[17] = 2;
    const m = decodeReplicationMessage(frame);
    assert.equal(m.tag === 'keepalive' && m.replyRequested, true);
  });

  test('Primary keepalive of the wrong length throws', () => {
    const frame = F.keepalive({ walEnd: 1n, sendTimeMicros: 1n, replyRequested: true });
    for (let len = 1; len < frame.length; len++) {
      assert.throws(() => decodeReplicationMessage(frame.subarray(0, len)), /Primary keepalive \('k'\) must be 18 bytes/);
    }
    assert.throws(() => decodeReplicationMessage(Buffer.concat([frame, Buffer.alloc(1)])), /got 19/);
  });

  test('empty and unknown messages throw', () => {
    assert.throws(() => decodeReplicationMessage(Buffer.alloc(0)), /empty CopyData message/);
    assert.throws(() => decodeReplicationMessage(Buffer.from('r')), /unexpected CopyData message tag 'r' \(expected 'w' or 'k'\)/);
    assert.throws(() => decodeReplicationMessage(Buffer.from([0])), /unexpected CopyData message tag 0x00/);
  });

  test('property: XLogData round-trips', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: U64_MAX }),
        fc.bigInt({ min: 0n, max: U64_MAX }),
        fc.bigInt({ min: I64_MIN, max: I64_MAX }),
        fc.uint8Array({ maxLength: 200 }),
        (walStart, walEnd, sendTimeMicros, bytes) => {
          const data = Buffer.from(bytes);
          const m = decodeReplicationMessage(F.xlogData({ walStart, walEnd, sendTimeMicros, data }));
          assert.deepEqual(m, { tag: 'xlogdata', walStart, walEnd, sendTimeMicros, data });
        },
      ),
    );
  });
});

describe('encodeStandbyStatusUpdate', () => {
  test('exact bytes', () => {
    const buf = encodeStandbyStatusUpdate({
      written: 0x0000_0016_b374_d848n,
      flushed: 0x0000_0016_b374_d800n,
      applied: 0x0000_0016_b374_d000n,
      nowMicros: 0x0102_0304_0506_0708n,
      replyRequested: true,
    });
    assert.equal(
      buf.toString('hex'),
      '72' +
        '00000016b374d848' +
        '00000016b374d800' +
        '00000016b374d000' +
        '0102030405060708' +
        '01',
    );
  });

  test('field layout round-trips, reply flag 0/1, full 64-bit range', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: U64_MAX }),
        fc.bigInt({ min: 0n, max: U64_MAX }),
        fc.bigInt({ min: 0n, max: U64_MAX }),
        fc.bigInt({ min: I64_MIN, max: I64_MAX }),
        fc.boolean(),
        (written, flushed, applied, nowMicros, replyRequested) => {
          const buf = encodeStandbyStatusUpdate({ written, flushed, applied, nowMicros, replyRequested });
          assert.equal(buf.length, 34);
          assert.equal(buf[0], 'r'.charCodeAt(0));
          assert.equal(buf.readBigUInt64BE(1), written);
          assert.equal(buf.readBigUInt64BE(9), flushed);
          assert.equal(buf.readBigUInt64BE(17), applied);
          assert.equal(buf.readBigInt64BE(25), nowMicros);
          assert.equal(buf[33], replyRequested ? 1 : 0);
        },
      ),
    );
  });

  test('an LSN outside 0..2^64-1 throws instead of wrapping', () => {
    const ok = { written: 1n, flushed: 1n, applied: 1n, nowMicros: 0n, replyRequested: false };
    assert.throws(() => encodeStandbyStatusUpdate({ ...ok, written: -1n }), RangeError);
    assert.throws(() => encodeStandbyStatusUpdate({ ...ok, applied: 2n ** 64n }), RangeError);
  });
});

describe('timestamps', () => {
  test('microsSince2000', () => {
    assert.equal(microsSince2000(Date.UTC(2000, 0, 1)), 0n);
    assert.equal(microsSince2000(0), -946_684_800_000_000n);
    assert.equal(microsSince2000(Date.UTC(2026, 10, 22, 13, 11, 3, 123)), 848_668_263_123_000n);
    assert.equal(microsSince2000(Date.UTC(2000, 0, 1) + 0.5), 500n, 'fractional milliseconds are kept');
    assert.equal(microsSince2000(Date.UTC(2000, 0, 1) - 0.25), -250n);
    assert.equal(microsSince2000(8_640_000_000_000_000), 8_639_053_315_200_000_000n, 'exact beyond 2^53 micros');
    assert.throws(() => microsSince2000(Number.NaN), RangeError);
    assert.throws(() => microsSince2000(Number.POSITIVE_INFINITY), RangeError);
  });

  test('microsToIsoUtc', () => {
    assert.equal(microsToIsoUtc(0n), '2000-01-01T00:00:00.000000Z');
    assert.equal(microsToIsoUtc(848_668_263_123_456n), '2026-11-22T13:11:03.123456Z');
    assert.equal(microsToIsoUtc(1n), '2000-01-01T00:00:00.000001Z');
    assert.equal(microsToIsoUtc(-1n), '1999-12-31T23:59:59.999999Z');
    assert.equal(microsToIsoUtc(-946_684_800_000_000n), '1970-01-01T00:00:00.000000Z');
    assert.equal(microsToIsoUtc(-946_684_800_000_001n), '1969-12-31T23:59:59.999999Z');
    assert.equal(microsToIsoUtc(-1_000_000n), '1999-12-31T23:59:59.000000Z');
  });

  test('microsToIsoUtc: Postgres ±infinity and other out-of-range values throw', () => {
    assert.throws(() => microsToIsoUtc(I64_MAX), /timestamp out of range/);
    assert.throws(() => microsToIsoUtc(I64_MIN), /timestamp out of range/);
  });

  test('property: microsToIsoUtc agrees with Date and always has 6 fractional digits', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1, 0, 1), max: Date.UTC(9999, 11, 31) }),
        fc.integer({ min: 0, max: 999 }),
        (ms, extraMicros) => {
          const micros = microsSince2000(ms) + BigInt(extraMicros);
          const iso = microsToIsoUtc(micros);
          assert.match(iso, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
          // the first 3 fractional digits are Date's milliseconds, the next 3 the extra micros
          assert.equal(iso, `${new Date(ms).toISOString().slice(0, -1)}${String(extraMicros).padStart(3, '0')}Z`);
        },
      ),
    );
  });
});
