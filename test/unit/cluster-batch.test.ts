import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkMulti, hasSetGet, keySlot, refusalKind, SlotLayout, slotsByNode, type MultiOutcome, type SlotGroup, type SlotWrite } from '../../src/redis/cluster-batch.js';
import { multiFrame, multiFrameReplies, writeMulti, type GroupWrite } from '../../src/redis/multi-exec.js';
import { RespWriter } from '../../src/redis/resp-writer.js';
import { encodeCommands, ReplyError, ReplyParser, type Reply } from '../../src/redis/resp-connection.js';
import { slotOf } from '../../src/redis/slot-tags.js';
import type { CommandOrigin, RedisCommand, RejectedCommand } from '../../src/core/command.js';

const origin = (n: number): CommandOrigin => ({ sink: `s${n % 3}`, n }) as unknown as CommandOrigin;

/** keys that land in a few slots: plain ones and hash-tagged ones sharing a slot */
const key = fc.oneof(
  fc.integer({ min: 0, max: 40 }).map((i) => `k:${i}`),
  fc.tuple(fc.constantFrom('u1', 'u2', 'u3'), fc.integer({ min: 0, max: 9 })).map(([t, i]) => `o:{${t}}:${i}`),
);
const command: fc.Arbitrary<RedisCommand> = fc.oneof(
  key.map((k) => ['SET', k, 'v']),
  key.map((k) => ['DEL', k]),
  key.map((k) => ['hset', k, 'f', 'v']),
  key.map((k) => ['PUBLISH', k, 'm']),
  fc.array(key, { minLength: 1, maxLength: 3 }).map((ks) => ['evalsha', 'abc', String(ks.length), ...ks]),
  fc.array(key, { minLength: 1, maxLength: 3 }).map((ks) => ['EVAL', 'return 1', String(ks.length), ...ks]),
);

/** Parses what encodeCommands wrote back into commands (arrays of bulk strings), for checking. */
function decodeCommands(buf: Buffer): string[][] {
  const out: string[][] = [];
  let pos = 0;
  const line = (): string => {
    const eol = buf.indexOf('\r\n', pos);
    const s = buf.toString('latin1', pos, eol);
    pos = eol + 2;
    return s;
  };
  while (pos < buf.length) {
    const n = Number(line().slice(1));
    const cmd: string[] = [];
    for (let i = 0; i < n; i++) {
      const len = Number(line().slice(1));
      cmd.push(buf.toString('utf8', pos, pos + len));
      pos += len + 2;
    }
    out.push(cmd);
  }
  return out;
}

/** Encodes replies as Redis would send them. */
function encodeReply(r: Reply): string {
  if (r === null) return '*-1\r\n';
  if (r instanceof ReplyError) return `-${r.message}\r\n`;
  if (typeof r === 'number') return `:${r}\r\n`;
  if (Array.isArray(r)) return `*${r.length}\r\n${r.map(encodeReply).join('')}`;
  if (r === 'OK' || r === 'QUEUED') return `+${r}\r\n`;
  return `$${Buffer.byteLength(r)}\r\n${r}\r\n`;
}

/** A SlotLayout read back as a map of slot → its commands, in the order its slots first appear. */
function groupBySlot(
  commands: readonly RedisCommand[],
  origins: readonly (CommandOrigin | null)[],
  covered: (origin: CommandOrigin, slot: number) => boolean,
): { groups: Map<number, SlotGroup>; rejected: RejectedCommand[] } {
  const layout = new SlotLayout();
  layout.layout(commands, origins, covered);
  return { groups: new Map(layout.slots.map((slot) => [slot, layout.group(slot, commands, origins)])), rejected: layout.rejected };
}

describe('SlotLayout', () => {
  test('each command once, in its slot, in the batch order; cross-slot refused; covered left out', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(command, fc.boolean()), { maxLength: 60 }), fc.integer({ min: 0, max: 4 }), (entries, coverMod) => {
        const commands = entries.map(([c]) => c);
        const origins = entries.map(([, hasOrigin], i) => (hasOrigin ? origin(i) : null));
        const covered = (o: CommandOrigin): boolean => coverMod > 0 && (o as unknown as { n: number }).n % coverMod === 0;
        const { groups, rejected } = groupBySlot(commands, origins, covered);
        const expected = new Map<number, RedisCommand[]>();
        const expectedRejected: CommandOrigin[] = [];
        commands.forEach((c, i) => {
          const keys = c[0] === 'EVAL' || c[0] === 'evalsha' ? c.slice(3) : [c[1]!];
          const slots = new Set(keys.map(slotOf));
          const o = origins[i] ?? null;
          if (slots.size > 1) {
            if (o) expectedRejected.push(o);
            return;
          }
          if (o && covered(o)) return;
          const slot = slotOf(keys[0]!);
          expected.set(slot, [...(expected.get(slot) ?? []), c]);
        });
        assert.deepEqual(new Map([...groups].map(([s, g]) => [s, g.commands])), expected);
        assert.deepEqual(rejected.map((r) => r.origin), expectedRejected);
        for (const r of rejected) assert.match(r.error, /^CROSSSLOT: /);
        for (const g of groups.values()) assert.equal(g.origins.length, g.commands.length);
      }),
    );
  });

  test('origins stay beside their commands', () => {
    const { groups } = groupBySlot([['SET', 'a', '1'], ['SET', 'b', '1'], ['SET', 'a', '2']], [origin(0), null, origin(2)], () => false);
    assert.deepEqual(groups.get(slotOf('a'))!.origins, [origin(0), origin(2)]);
    assert.deepEqual(groups.get(slotOf('b'))!.origins, [null]);
  });
});

/** Redis's keyHashSlot (cluster.c), over the key's UTF-8 bytes, with a bitwise CRC16/XMODEM: the reference. */
function redisKeySlot(key: string): number {
  const b = Buffer.from(key, 'utf8');
  let s = b.indexOf(123);
  let e = s < 0 ? -1 : b.indexOf(125, s + 1);
  if (s < 0 || e < 0 || e === s + 1) (s = -1), (e = b.length);
  let crc = 0;
  for (const byte of b.subarray(s + 1, e)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc & 16383;
}

describe('keySlot', () => {
  test("Redis's slot for any key: hash tags, empty tags, non-ASCII", () => {
    const part = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 }), fc.constantFrom('{', '}', '{}', '{a}', 'é'));
    fc.assert(
      fc.property(fc.array(part, { maxLength: 6 }).map((p) => p.join('')), (k) => {
        assert.equal(keySlot(k), redisKeySlot(k), JSON.stringify(k));
        // cluster-key-slot agrees except after an empty {} (it looks for a later tag)
        if (!k.includes('{}')) assert.equal(keySlot(k), slotOf(k), JSON.stringify(k));
      }),
      { numRuns: 2000 },
    );
    for (const k of ['', '{}', '{', '}{', 'a{}b{c}', '{user1000}.following', 'foo{}{bar}', 'foo{{bar}}zap', '123456789', 'é{ü}x']) assert.equal(keySlot(k), redisKeySlot(k), k);
    assert.equal(keySlot('123456789'), 0x31c3 & 16383);
  });
});

describe('slotsByNode', () => {
  test('a partition of the slots by owner, order kept; unowned apart', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 16383 }), { maxLength: 200 }), fc.integer({ min: 1, max: 5 }), (slots, nodes) => {
        const owner = (s: number): string | undefined => (s % 7 === 0 ? undefined : `n${s % nodes}`);
        const { byNode, unowned } = slotsByNode(slots, owner);
        assert.deepEqual(unowned, slots.filter((s) => owner(s) === undefined));
        for (const [node, list] of byNode) assert.deepEqual(list, slots.filter((s) => owner(s) === node));
        assert.equal([...byNode.values()].reduce((n, l) => n + l.length, 0) + unowned.length, slots.length);
      }),
    );
  });
});

/** What Redis does with one group: apply it (some data commands refused), refuse it at queue time, or answer nonsense. */
type Fate = { kind: 'apply'; refused: number[]; before: string | null } | { kind: 'queue-error'; at: number; error: string } | { kind: 'bad-bookkeeping' };

/** One master's write as the lane makes it of MULTI slots: each slot's MULTI … EXEC in turn. */
function encode(writes: readonly SlotWrite[]): { payload: Buffer; replies: number } {
  const out = new RespWriter(64);
  for (const w of writes) writeMulti(out, w);
  return { payload: out.finish(), replies: writes.reduce((n, w) => n + multiFrameReplies(w), 0) };
}

/** Its replies checked slot by slot, as the lane does. */
function checkMultis(replies: readonly Reply[], writes: readonly SlotWrite[]): MultiOutcome[] {
  let offset = 0;
  return writes.map((w) => {
    const o = checkMulti(replies, offset, w);
    offset += multiFrameReplies(w);
    return o;
  });
}

const groupWrite = (i: number, n: number, sinks: number, setGet = false): SlotWrite => ({
  slot: i,
  markerKey: `sluice:batch:main:{t${i}}`,
  batchId: 'b7',
  commands: Array.from({ length: n }, (_, j) => ['SET', `{t${i}}:${j}`, j % 2 ? `v${j}é` : 'x'.repeat(j * 20)]),
  origins: Array.from({ length: n }, (_, j) => origin(j)),
  positions: Array.from({ length: sinks }, (_, s) => [`sluice:pos:s${s}:{t${i}}`, s === 1 ? null : `0/${i}${s}`] as const),
  setGet,
});

function repliesFor(w: GroupWrite, fate: Fate): Reply[] {
  const queued = multiFrameReplies(w) - 2;
  if (fate.kind === 'queue-error') {
    const at = fate.at % queued;
    return ['OK', ...Array.from({ length: queued }, (_, i): Reply => (i === at ? new ReplyError(fate.error) : 'QUEUED')), new ReplyError('EXECABORT Transaction discarded because of previous errors.')];
  }
  const exec: Reply[] = Array.from({ length: queued }, (_, i): Reply => {
    // the marker's SET: last, or first with SET … GET (then its reply is the marker before)
    if (i === (w.setGet ? 0 : queued - 1) && fate.kind === 'bad-bookkeeping') return new ReplyError('OOM marker');
    if (i === 0) return fate.kind === 'apply' ? fate.before : null;
    if (i <= w.commands.length && fate.kind === 'apply' && fate.refused.includes(i - 1)) return new ReplyError(`WRONGTYPE ${i - 1}`);
    return 'OK';
  });
  return ['OK', ...Array.from({ length: queued }, (): Reply => 'QUEUED'), exec];
}

const fate: fc.Arbitrary<Fate> = fc.oneof(
  fc.record({ kind: fc.constant('apply' as const), refused: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }), before: fc.option(fc.constantFrom('b5', 'b6')) }),
  fc.record({ kind: fc.constant('queue-error' as const), at: fc.nat(), error: fc.constantFrom('MOVED 3999 127.0.0.1:7001', 'ASK 3999 127.0.0.1:7002', 'TRYAGAIN Multiple keys request during rehashing of slot', 'OOM command not allowed') }),
  fc.constant({ kind: 'bad-bookkeeping' as const }),
);

describe('one write per node carrying every slot\'s MULTI', () => {
  test('encodes each group\'s MULTI … EXEC one after the other', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 3 }), fc.boolean()), { minLength: 1, maxLength: 8 }), (shapes) => {
        const writes = shapes.map(([n, sinks, setGet], i) => groupWrite(i, n, sinks, setGet));
        const { payload, replies } = encode(writes);
        assert.deepEqual(payload, encodeCommands(writes.flatMap((w) => multiFrame(w))));
        const decoded = decodeCommands(payload);
        assert.deepEqual(decoded, writes.flatMap((w) => multiFrame(w)));
        assert.equal(replies, decoded.length);
        assert.equal(replies, writes.reduce((n, w) => n + multiFrameReplies(w), 0));
        // every MULTI holds one slot's keys only
        let slot: number | null = null;
        for (const c of decoded) {
          if (c[0] === 'MULTI') slot = null;
          else if (c[0] !== 'EXEC') {
            const s = slotOf(c[1]!);
            assert.ok(slot === null || s === slot, `${c.join(' ')} in another slot`);
            slot = s;
          }
        }
      }),
    );
  });

  test('the pipelined reply, split anywhere, is checked slot by slot', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 3 }), fate, fc.boolean()), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (shapes, cuts) => {
        const writes = shapes.map(([n, sinks, , setGet], i) => groupWrite(i, n, sinks, setGet));
        const wire = Buffer.from(shapes.flatMap(([, , f], i) => repliesFor(writes[i]!, f)).map(encodeReply).join(''));
        const replies: Reply[] = [];
        const parser = new ReplyParser((r) => replies.push(r));
        let last = 0;
        for (const c of [...cuts.map((c) => c % (wire.length + 1))].sort((a, b) => a - b)) {
          parser.feed(wire.subarray(last, c));
          last = c;
        }
        parser.feed(wire.subarray(last));
        assert.equal(replies.length, encode(writes).replies);
        const outcomes = checkMultis(replies, writes);
        const expected: MultiOutcome['kind'][] = shapes.map(([, , f]) => {
          if (f.kind === 'queue-error') return 'refused';
          if (f.kind === 'bad-bookkeeping') return 'unknown';
          return 'applied';
        });
        assert.deepEqual(outcomes.map((o) => o.kind), expected);
        outcomes.forEach((o, i) => {
          const [n, , f] = shapes[i]!;
          if (o.kind === 'applied' && f.kind === 'apply') {
            assert.equal(o.result.before, f.before);
            const refused = [...new Set(f.refused.filter((j) => j < n))].sort((a, b) => a - b);
            assert.deepEqual(o.result.rejected.map((r) => r.error), refused.map((j) => `WRONGTYPE ${j}`));
            assert.deepEqual(o.result.rejected.map((r) => r.origin), refused.map((j) => origin(j)));
          }
          if (o.kind === 'refused' && f.kind === 'queue-error') assert.ok(o.error.includes(f.error), o.error);
        });
      }),
    );
  });

  test('too few replies: the groups without theirs are unknown', () => {
    const writes = [groupWrite(0, 1, 1), groupWrite(1, 1, 1)];
    const first = repliesFor(writes[0]!, { kind: 'apply', refused: [], before: null });
    const outcomes = checkMultis(first, writes);
    assert.deepEqual(outcomes.map((o) => o.kind), ['applied', 'unknown']);
  });
});

describe('refusalKind', () => {
  test('MOVED refreshes the slot map; ASK and TRYAGAIN wait for the migration; the rest backs off', () => {
    assert.equal(refusalKind('EXECABORT Transaction discarded because of previous errors.: MOVED 3999 127.0.0.1:7001'), 'moved');
    assert.equal(refusalKind('EXECABORT Transaction discarded because of previous errors.: ASK 3999 127.0.0.1:7002'), 'migrating');
    assert.equal(refusalKind('TRYAGAIN Multiple keys request during rehashing of slot'), 'migrating');
    assert.equal(refusalKind('CLUSTERDOWN The cluster is down'), 'other');
    assert.equal(refusalKind('EXECABORT Transaction discarded because of previous errors.: OOM command not allowed'), 'other');
  });
});

describe('hasSetGet', () => {
  test('SET … GET from Redis 6.2 on; unknown or older servers read the marker with GET', () => {
    assert.equal(hasSetGet('# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\n'), true);
    assert.equal(hasSetGet('redis_version:6.2.0\r\n'), true);
    assert.equal(hasSetGet('redis_version:10.0.1\r\n'), true);
    assert.equal(hasSetGet('redis_version:6.0.16\r\n'), false);
    assert.equal(hasSetGet('redis_version:5.0.14\r\n'), false);
    assert.equal(hasSetGet(''), false);
  });

  test('a SET … GET frame is the GET frame with the marker read and written by its first command', () => {
    const plain = groupWrite(3, 2, 2);
    const folded = groupWrite(3, 2, 2, true);
    const a = multiFrame(plain);
    const b = multiFrame(folded);
    assert.deepEqual(b[1], ['SET', plain.markerKey, plain.batchId, 'GET']);
    assert.deepEqual(a[1], ['GET', plain.markerKey]);
    assert.deepEqual(a[a.length - 2], ['SET', plain.markerKey, plain.batchId]);
    assert.deepEqual(b.slice(2, -1), a.slice(2, -2));
    assert.equal(multiFrameReplies(folded), multiFrameReplies(plain) - 1);
  });
});
