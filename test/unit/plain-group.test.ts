import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkPlainData, checkTail, isPlainAt, isRefusal, PlainTails, type PlainTail } from '../../src/redis/plain-group.js';
import { encodeCommands, ReplyError, ReplyParser, type Reply } from '../../src/redis/resp-connection.js';
import { RespWriter } from '../../src/redis/resp-writer.js';
import type { CommandOrigin, RedisCommand, RejectedCommand } from '../../src/core/command.js';

/** an origin in transaction `tx` (only commitLsn is read) */
const origin = (tx: number, n = 0): CommandOrigin => ({ sink: 's', n, meta: { commitLsn: BigInt(tx) } }) as unknown as CommandOrigin;

/** isPlainAt over a whole group, its commands in order */
function isPlain(group: { commands: RedisCommand[]; origins: (CommandOrigin | null)[] }): boolean {
  return isPlainAt(group.commands, group.origins, Int32Array.from(group.commands, (_, i) => i), 0, group.commands.length);
}

describe('isPlainAt: which slot groups may go without MULTI', () => {
  test('one idempotent data command is plain', () => {
    for (const cmd of [['SET', 'k', 'v'], ['SET', 'k', 'v', 'PX', '100'], ['DEL', 'k'], ['UNLINK', 'k'], ['HSET', 'k', 'f', 'v', 'g', 'w'], ['hset', 'k', 'f', 'v'], ['ZADD', 'k', '1', 'm'], ['SADD', 'k', 'm'], ['SREM', 'k', 'm'], ['JSON.SET', 'k', '$', '{}'], ['PEXPIRE', 'k', '10']]) {
      assert.equal(isPlain({ commands: [cmd], origins: [origin(1)] }), true, cmd.join(' '));
    }
  });

  test('a command whose second run changes Redis, or that is not a data command, keeps its MULTI', () => {
    for (const cmd of [['INCRBY', 'k', '1'], ['XADD', 'k', '*', 'f', 'v'], ['LPUSH', 'k', 'v'], ['HINCRBY', 'k', 'f', '1'], ['ZADD', 'k', 'INCR', '1', 'm'], ['zadd', 'k', 'incr', '1', 'm'], ['PUBLISH', 'c', 'm'], ['EVALSHA', 'abc', '1', 'k'], ['DEL', 'a', 'b'], ['SET', 'k', 'v', 'GET'], ['HSETNX', 'k', 'f', 'v'], ['SET']]) {
      assert.equal(isPlain({ commands: [cmd], origins: [origin(1)] }), false, cmd.join(' '));
    }
    // bookkeeping (no origin: failed-message records)
    assert.equal(isPlain({ commands: [['SET', 'k', 'v']], origins: [null] }), false);
  });

  test('a key written twice, or a transaction with two commands in the slot, keeps its MULTI', () => {
    assert.equal(isPlain({ commands: [['SET', '{u}:a', '1'], ['SET', '{u}:b', '2']], origins: [origin(1), origin(2)] }), true);
    assert.equal(isPlain({ commands: [['SET', '{u}:a', '1'], ['SET', '{u}:a', '2']], origins: [origin(1), origin(2)] }), false);
    assert.equal(isPlain({ commands: [['DEL', 'k'], ['HSET', 'k', 'f', 'v']], origins: [origin(1), origin(1)] }), false);
    assert.equal(isPlain({ commands: [['SET', '{u}:a', '1'], ['SET', '{u}:b', '2']], origins: [origin(1), origin(1)] }), false);
  });

  test('property: a plain group holds each key once, each transaction once, and only idempotent commands', () => {
    const cmd = fc.tuple(fc.constantFrom('SET', 'DEL', 'HSET', 'INCR', 'XADD'), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 }));
    fc.assert(
      fc.property(fc.array(cmd, { minLength: 1, maxLength: 6 }), (shapes) => {
        const commands: RedisCommand[] = shapes.map(([name, k]) => (name === 'DEL' ? [name, `k${k}`] : name === 'HSET' ? [name, `k${k}`, 'f', 'v'] : [name, `k${k}`, 'v']));
        const origins = shapes.map(([, , tx], i) => origin(tx, i));
        const keys = new Set(commands.map((c) => c[1]));
        const txs = new Set(shapes.map(([, , tx]) => tx));
        const idempotent = commands.every((c) => ['SET', 'DEL', 'HSET'].includes(c[0]!));
        assert.equal(isPlain({ commands, origins }), idempotent && keys.size === commands.length && txs.size === commands.length);
      }),
    );
  });
});

describe('isRefusal', () => {
  test('refusals are errors about the server or the slot, not the command', () => {
    for (const e of ['MOVED 3999 127.0.0.1:7001', 'ASK 3999 127.0.0.1:7002', 'TRYAGAIN Multiple keys', 'CLUSTERDOWN The cluster is down', 'OOM command not allowed', 'READONLY You can\'t write', 'LOADING Redis is loading', 'NOPERM this user has no permissions', 'MASTERDOWN Link with MASTER is down']) assert.equal(isRefusal(e), true, e);
    for (const e of ['WRONGTYPE Operation against a key holding the wrong kind of value', 'ERR value is not an integer or out of range', 'ERR syntax error']) assert.equal(isRefusal(e), false, e);
  });
});

const markerKey = (slot: number): string => `sluice:batch:i:main:{t${slot}}`;
const positionKey = (sink: string, slot: number): string => `sluice:pos:${sink}:{t${slot}}`;
const positions = [['a', '0/10'], ['b', null], ['c', '0/2A:3']] as const;

/** a tail's bytes in one slot */
function tailBytes(tail: PlainTail, slot: number): Buffer {
  const out = new RespWriter(16);
  tail.write(out, slot);
  return Buffer.from(out.finish());
}

describe('the tail of a plain slot', () => {
  const tails = new PlainTails(markerKey, positionKey);

  test('is SET … GET of each position written, in any slot, the same bytes every time', () => {
    const tail = tails.batch('b9', positions);
    assert.equal(tail.replies, 2);
    assert.deepEqual(tail.written, [{ sink: 'a', value: '0/10' }, { sink: 'c', value: '0/2A:3' }]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 16383 }), (slot) => {
        const expected = encodeCommands([['SET', positionKey('a', slot), '0/10', 'GET'], ['SET', positionKey('c', slot), '0/2A:3', 'GET']]);
        assert.deepEqual(tailBytes(tail, slot), expected);
        // the slot's heads are kept: a second write is the same
        assert.deepEqual(tailBytes(tail, slot), expected);
      }),
    );
    // another batch, other values, the same heads
    assert.deepEqual(tailBytes(tails.batch('b10', [['a', '0/11']]), 5), encodeCommands([['SET', positionKey('a', 5), '0/11', 'GET']]));
  });

  test('a batch with no position: the tail is SET … GET of the batch marker', () => {
    const tail = tails.batch('b10', [['a', null]]);
    assert.equal(tail.replies, 1);
    assert.deepEqual(tail.written, [{ sink: null, value: 'b10' }]);
    assert.deepEqual(tailBytes(tail, 5), encodeCommands([['SET', markerKey(5), 'b10', 'GET']]));
  });

  test('a non-ASCII sink name is measured in bytes', () => {
    const tail = new PlainTails(markerKey, positionKey).batch('b1', [['prödukte', '0/1']]);
    assert.deepEqual(tailBytes(tail, 9), encodeCommands([['SET', positionKey('prödukte', 9), '0/1', 'GET']]));
  });
});

/** Parses replies as Redis sends them, split at `cuts`. */
function parse(replies: readonly Reply[], cuts: readonly number[]): Reply[] {
  const text = replies.map((r) => (r instanceof ReplyError ? `-${r.message}\r\n` : r === null ? '$-1\r\n' : r === 'OK' ? '+OK\r\n' : `$${Buffer.byteLength(String(r))}\r\n${String(r)}\r\n`)).join('');
  const bytes = Buffer.from(text);
  const out: Reply[] = [];
  const parser = new ReplyParser((r) => out.push(r));
  let last = 0;
  for (const c of cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b)) {
    parser.feed(bytes.subarray(last, c));
    last = c;
  }
  parser.feed(bytes.subarray(last));
  return out;
}

describe('checking a plain slot\'s replies', () => {
  const error = fc.constantFrom('WRONGTYPE Operation', 'MOVED 3999 127.0.0.1:7001', 'ASK 3999 127.0.0.1:7002', 'OOM command not allowed', 'ERR value is not an integer');

  test('data: what Redis found wrong is rejected with its origin; the first refusal is returned', () => {
    fc.assert(
      fc.property(fc.array(fc.option(error, { nil: undefined }), { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 3 }), fc.array(fc.nat(), { maxLength: 4 }), (errors, pad, cuts) => {
        const n = errors.length;
        // the slot's commands sit among others of the batch: order maps them to their origins
        const origins = Array.from({ length: n + pad }, (_, i) => origin(i, i));
        const order = Int32Array.from({ length: n }, (_, k) => k + pad);
        const replies = parse(['OK', ...errors.map((e): Reply => (e === undefined ? 'OK' : new ReplyError(e)))], cuts);
        const rejected: RejectedCommand[] = [];
        const refusal = checkPlainData(replies, 1, origins, order, 0, n, rejected);
        assert.equal(refusal, errors.find((e) => e !== undefined && isRefusal(e)) ?? null);
        const wrong = errors.flatMap((e, k) => (e !== undefined && !isRefusal(e) ? [{ origin: origins[k + pad], error: e }] : []));
        assert.deepEqual(rejected, wrong);
      }),
    );
  });

  test('tail: what each SET … GET found, undefined where refused, and the first failure', () => {
    const tail = new PlainTails(markerKey, positionKey).batch('b9', positions);
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant(null), fc.constantFrom('0/9', '0/10'), error.map((e) => new ReplyError(e))), { minLength: 2, maxLength: 2 }), fc.array(fc.nat(), { maxLength: 4 }), (rs, cuts) => {
        const replies = parse(['OK', ...rs], cuts);
        const found: (string | null | undefined)[] = ['stale'];
        const failed = checkTail(replies, 1, tail, found);
        assert.deepEqual(found, rs.map((r) => (r instanceof ReplyError ? undefined : r)));
        const firstError = rs.find((r): r is ReplyError => r instanceof ReplyError);
        assert.equal(failed, firstError ? `Redis rejected a bookkeeping command: ${firstError.message}` : null);
      }),
    );
  });

  test('tail: a reply of the wrong shape is a failure', () => {
    const tail = new PlainTails(markerKey, positionKey).batch('b9', [['a', '0/1']]);
    const found: (string | null | undefined)[] = [];
    assert.match(checkTail([[1, 2]], 0, tail, found) ?? '', /unexpected reply/);
    assert.deepEqual(found, [undefined]);
  });
});
