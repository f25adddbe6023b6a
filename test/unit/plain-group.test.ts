import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkPlainData, isPlainAt, isRefusal } from '../../src/redis/plain-group.js';
import { ReplyError, ReplyParser, type Reply } from '../../src/redis/resp-connection.js';
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
});
