import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkMultis, encodeMultis, type SlotWrite } from '../../src/redis/cluster-batch.js';
import { multiFrame, multiFrameReplies } from '../../src/redis/multi-exec.js';
import { isPlain, isRefusal, PlainTails } from '../../src/redis/plain-group.js';
import { encodeCommands, ReplyError, ReplyParser, type Reply } from '../../src/redis/resp-connection.js';
import type { CommandOrigin, RedisCommand } from '../../src/core/command.js';

/** an origin in transaction `tx` (only commitLsn is read) */
const origin = (tx: number, n = 0): CommandOrigin => ({ sink: 's', n, meta: { commitLsn: BigInt(tx) } }) as unknown as CommandOrigin;

describe('isPlain: which slot groups may go without MULTI', () => {
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

function plainWrite(slot: number, n: number, plain = true): SlotWrite {
  return {
    slot,
    markerKey: markerKey(slot),
    batchId: 'b9',
    commands: Array.from({ length: n }, (_, j) => ['SET', `{t${slot}}:${j}`, j % 2 ? `v${j}é` : 'x'.repeat(j * 30)]),
    origins: Array.from({ length: n }, (_, j) => origin(j, j)),
    positions: plain ? [] : positions.map(([sink, p]) => [positionKey(sink, slot), p] as const),
    setGet: true,
    plain,
  };
}

/** what a plain write is, as commands: its data, then SET … GET of each position */
function plainCommands(w: SlotWrite): string[][] {
  return [...w.commands, ...positions.filter(([, p]) => p !== null).map(([sink, p]) => ['SET', positionKey(sink, w.slot), p!, 'GET'])];
}

/** What Redis does with a plain group: run it, refusing some commands for a reason given per reply index; the positions held `before`. */
type PlainFate = { errors: [number, string][]; before: string | null };

function plainRepliesFor(w: SlotWrite, fate: PlainFate): Reply[] {
  const n = plainCommands(w).length;
  return Array.from({ length: n }, (_, i): Reply => {
    const e = fate.errors.find(([at]) => at % n === i);
    if (e) return new ReplyError(e[1]);
    return i >= w.commands.length ? fate.before : 'OK';
  });
}

describe('plain groups on the wire', () => {
  const tails = new PlainTails(markerKey, positionKey);

  test('a plain group is its commands and SET … GET of its positions, among MULTIs', () => {
    const tail = tails.batch('b9', positions);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 16383 }), fc.integer({ min: 1, max: 4 }), fc.boolean()), { minLength: 1, maxLength: 8 }), (shapes) => {
        const writes = shapes.map(([slot, n, plain]) => plainWrite(slot, n, plain));
        const { payload, replies } = encodeMultis(writes, tail);
        const expected = writes.flatMap((w) => (w.plain ? plainCommands(w) : multiFrame(w)));
        assert.deepEqual(Buffer.from(payload.finish()), encodeCommands(expected));
        payload.release();
        assert.equal(replies, writes.reduce((n, w) => n + (w.plain ? plainCommands(w).length : multiFrameReplies(w)), 0));
      }),
    );
  });

  test('replies, split anywhere: applied with what Redis found wrong, or refused (sent again); the positions before, where they ran', () => {
    const tail = tails.batch('b9', positions);
    const error = fc.constantFrom('WRONGTYPE Operation', 'MOVED 3999 127.0.0.1:7001', 'ASK 3999 127.0.0.1:7002', 'OOM command not allowed', 'ERR value is not an integer');
    const fate: fc.Arbitrary<PlainFate> = fc.record({ errors: fc.array(fc.tuple(fc.nat(), error), { maxLength: 2 }), before: fc.option(fc.constantFrom('0/9', '0/10')) });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 4 }), fate), { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 5 }), (shapes, cuts) => {
        const writes = shapes.map(([n], i) => plainWrite(i, n));
        // the replies as Redis sends them, fed through the parser split anywhere
        const text = shapes.flatMap(([, f], i) => plainRepliesFor(writes[i]!, f)).map((r) => (r instanceof ReplyError ? `-${r.message}\r\n` : r === null ? '$-1\r\n' : r === 'OK' ? '+OK\r\n' : `$${String(r).length}\r\n${String(r)}\r\n`)).join('');
        const bytes = Buffer.from(text);
        const replies: Reply[] = [];
        const parser = new ReplyParser((r) => replies.push(r));
        let last = 0;
        for (const c of cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b)) {
          parser.feed(bytes.subarray(last, c));
          last = c;
        }
        parser.feed(bytes.subarray(last));
        const outcomes = checkMultis(replies, writes, tail);
        outcomes.forEach((o, i) => {
          const [n, f] = shapes[i]!;
          const count = plainCommands(writes[i]!).length;
          const errors = new Map<number, string>();
          for (const [at, e] of f.errors) if (!errors.has(at % count)) errors.set(at % count, e);
          const refusals = [...errors].filter(([at, e]) => at >= n || isRefusal(e));
          // each position's SET … GET tells what it held, unless it was refused itself
          const found = Array.from({ length: count - n }, (_, j) => (errors.has(n + j) ? undefined : f.before));
          if (refusals.length > 0) {
            assert.equal(o.kind, 'refused');
            if (o.kind !== 'refused') return;
            assert.deepEqual(o.found, found);
            return;
          }
          assert.equal(o.kind, 'applied');
          if (o.kind !== 'applied') return;
          assert.deepEqual(o.found, found);
          const rejected = [...errors].filter(([at]) => at < n).sort(([a], [b]) => a - b);
          assert.deepEqual(o.result.rejected.map((r) => r.error), rejected.map(([, e]) => e));
          assert.deepEqual(o.result.rejected.map((r) => r.origin), rejected.map(([at]) => writes[i]!.origins[at]));
        });
      }),
    );
  });

  test('too few replies: the plain group without all of its own is unknown', () => {
    const tail = tails.batch('b9', positions);
    const writes = [plainWrite(1, 1), plainWrite(2, 2)];
    const first = plainRepliesFor(writes[0]!, { errors: [], before: '0/9' });
    assert.deepEqual(checkMultis([...first, 'OK'], writes, tail).map((o) => o.kind), ['applied', 'unknown']);
  });

  test('a batch with no position: the tail is SET … GET of the batch marker', () => {
    const tail = tails.batch('b10', [['a', null]]);
    assert.equal(tail.replies, 1);
    assert.deepEqual(tail.written, [{ sink: null, value: 'b10' }]);
    const w = { ...plainWrite(5, 1), batchId: 'b10' };
    const { payload } = encodeMultis([w], tail);
    assert.deepEqual(Buffer.from(payload.finish()), encodeCommands([...w.commands, ['SET', markerKey(5), 'b10', 'GET']]));
    payload.release();
  });
});
