// Fuzzing the RESP reply parser (the apply lane's connection reads every MULTI … EXEC answer
// through it): valid reply streams split anywhere, mutated streams and random bytes. The parser
// must give back exactly what was sent for valid input, and otherwise either wait for more bytes
// or throw "Redis protocol error: …": never another exception, never a hang, never a value that
// is not a reply. Fixed seeds: a failure is replayed exactly.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_REPLY_DEPTH, ReplyError, ReplyParser, type Reply } from '../../src/redis/resp-connection.js';

/** A reply as Redis would send it, and the value the parser must give for it. */
type Wire = { bytes: string; value: Reply };

const line = fc.string({ unit: 'binary', maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, ''));
const { wire } = fc.letrec<{ wire: Wire }>((tie) => ({
  wire: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    line.map((s): Wire => ({ bytes: `+${s}\r\n`, value: s })),
    line.map((s): Wire => ({ bytes: `-${s}\r\n`, value: new ReplyError(s) })),
    fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }).map((n): Wire => ({ bytes: `:${n}\r\n`, value: n })),
    fc.string({ unit: 'binary', maxLength: 60 }).map((s): Wire => ({ bytes: `$${Buffer.byteLength(s)}\r\n${s}\r\n`, value: s })),
    fc.constant<Wire>({ bytes: '$-1\r\n', value: null }),
    fc.constant<Wire>({ bytes: '*-1\r\n', value: null }),
    fc.array(tie('wire'), { maxLength: 5 }).map((items): Wire => ({ bytes: `*${items.length}\r\n${items.map((i) => i.bytes).join('')}`, value: items.map((i) => i.value) })),
  ),
}));

/** a byte stream of several replies, as UTF-8, with the points to split it at */
const stream = fc.tuple(fc.array(wire, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }));

function chunksOf(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (buf.length === 0 ? 0 : c % buf.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    out.push(buf.subarray(from, p));
    from = p;
  }
  out.push(buf.subarray(from));
  return out;
}

function isReply(v: unknown, depth = 0): boolean {
  if (depth > MAX_REPLY_DEPTH) return false;
  if (v === null || typeof v === 'string' || v instanceof ReplyError) return true;
  if (typeof v === 'number') return Number.isInteger(v);
  return Array.isArray(v) && v.every((x) => isReply(x, depth + 1));
}

/**
 * Feeds the chunks to a new parser. Returns the replies, or the protocol error it threw; anything
 * else (another exception, a value that is not a reply) fails the test; a parser that hangs is
 * caught by the suite's timeout (no clock here: a loaded machine must not fail the test).
 */
function run(chunks: readonly Buffer[]): { replies: Reply[]; error: string | null } {
  const replies: Reply[] = [];
  const parser = new ReplyParser((r) => replies.push(r));
  let error: string | null = null;
  try {
    for (const c of chunks) parser.feed(c);
  } catch (err) {
    if (!(err instanceof Error) || !/^Redis protocol error: /.test(err.message)) {
      throw new Error(`not a protocol error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\ninput: ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`);
    }
    error = err.message;
  }
  for (const r of replies) assert.ok(isReply(r), `not a reply: ${JSON.stringify(r)}`);
  return { replies, error };
}

const mutation = fc.tuple(fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate', 'digits'), fc.nat(), fc.integer({ min: 0, max: 255 }));

function mutate(buf: Buffer, ops: readonly [string, number, number][]): Buffer {
  let b = Buffer.from(buf);
  for (const [op, at, byte] of ops) {
    const i = b.length === 0 ? 0 : at % b.length;
    if (op === 'flip' && b.length > 0) b[i] = b[i]! ^ (1 << (byte % 8));
    else if (op === 'set' && b.length > 0) b[i] = byte;
    else if (op === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
    else if (op === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
    else if (op === 'truncate') b = b.subarray(0, i);
    // a length or number replaced by an extreme one
    else if (op === 'digits') {
      const big = ['99999999999999999999', '-2', '-0', '1e3', '0x10', '', ' 1', '4294967296', '536870912', '9007199254740993'][byte % 10]!;
      const s = b.toString('latin1');
      const m = /[$*:](-?\d+)\r/g;
      const all = [...s.matchAll(m)];
      const hit = all.length === 0 ? undefined : all[at % all.length];
      if (hit) b = Buffer.from(s.slice(0, hit.index + 1) + big + s.slice(hit.index + 1 + hit[1]!.length), 'latin1');
    }
  }
  return b;
}

describe('RESP reply parser fuzzing', { timeout: 300_000 }, () => {
  test('valid replies split anywhere come back exactly', () => {
    fc.assert(
      fc.property(stream, ([wires, cuts]) => {
        const buf = Buffer.from(wires.map((w) => w.bytes).join(''), 'utf8');
        const { replies, error } = run(chunksOf(buf, cuts));
        assert.equal(error, null);
        assert.deepEqual(replies, wires.map((w) => w.value));
      }),
      { seed: 1311, numRuns: 1500 },
    );
  });

  test('mutated replies: replies or a protocol error, never anything else', () => {
    fc.assert(
      fc.property(stream, fc.array(mutation, { minLength: 1, maxLength: 4 }), ([wires, cuts], ops) => {
        const buf = mutate(Buffer.from(wires.map((w) => w.bytes).join(''), 'utf8'), ops);
        run(chunksOf(buf, cuts));
      }),
      { seed: 1312, numRuns: 3000 },
    );
  });

  test('random bytes: replies or a protocol error, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 5 }), (bytes, cuts) => {
        run(chunksOf(Buffer.from(bytes), cuts));
      }),
      { seed: 1313, numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.array(fc.constantFrom('+', '-', ':', '$', '*', '\r', '\n', '\r\n', '0', '1', '-1', '3', 'OK', 'x', '\u00e9'), { maxLength: 60 }), (parts) => {
        run([Buffer.from(parts.join(''), 'utf8')]);
      }),
      { seed: 1314, numRuns: 3000 },
    );
  });

  test('cases found or feared, kept', () => {
    const error = (s: string): string | null => run([Buffer.from(s, 'latin1')]).error;
    // lengths and integers must be plain decimal integers
    assert.match(error('$\r\n\r\n') ?? '', /bad length/);
    assert.match(error('$ 1\r\nx\r\n') ?? '', /bad length/);
    assert.match(error('$1e1\r\n0123456789\r\n') ?? '', /bad length/);
    assert.match(error('$0x1\r\nx\r\n') ?? '', /bad length/);
    assert.match(error('*-2\r\n') ?? '', /bad length/);
    assert.match(error(':abc\r\n') ?? '', /bad integer/);
    assert.match(error(':\r\n') ?? '', /bad integer/);
    assert.match(error(':1.5\r\n') ?? '', /bad integer/);
    // a bulk string must end with CRLF where its length says
    assert.match(error('$3\r\nabcXY+OK\r\n') ?? '', /CRLF/);
    // a line ends with CRLF, not CR alone
    assert.match(error('+OK\rX\n') ?? '', /CRLF/);
    // a length no reply can have is refused at once instead of waiting for it
    assert.match(error('$99999999999999999999\r\n') ?? '', /bulk string of 99999999999999999999 bytes/);
    assert.match(error('*99999999999999999999\r\n') ?? '', /array of 99999999999999999999 elements/);
    // still fine: the largest lengths are waited for, partial replies are not replies
    assert.deepEqual(run([Buffer.from('$536870000\r\nabc')]), { replies: [], error: null });
    assert.deepEqual(run([Buffer.from('*3\r\n:1\r\n')]), { replies: [], error: null });
    assert.deepEqual(run([Buffer.from(':-0\r\n:007\r\n')]), { replies: [0, 7], error: null });
  });

  test('a long line arriving a byte at a time is parsed in linear time', () => {
    const text = `-ERR ${'x'.repeat(200_000)}\r\n`;
    const chunks = [...Buffer.from(text)].map((b) => Buffer.from([b]));
    const { replies, error } = run(chunks);
    assert.equal(error, null);
    assert.deepEqual(replies, [new ReplyError(`ERR ${'x'.repeat(200_000)}`)]);
  });

  test('a line longer than any reply is refused instead of buffered without end', () => {
    const { error } = run([Buffer.from('+'), Buffer.alloc(2 * 1024 * 1024, 0x61)]);
    assert.match(error ?? '', /line of more than 1048576 bytes/);
  });

  test('arrays nested deeper than any reply are refused', () => {
    const nested = (depth: number): Buffer => Buffer.from(`${'*1\r\n'.repeat(depth)}:1\r\n`);
    const { replies, error } = run([nested(MAX_REPLY_DEPTH)]);
    assert.equal(error, null);
    let v: Reply = replies[0]!;
    let n = 0;
    while (Array.isArray(v)) (v = v[0]!), n++;
    assert.equal(n, MAX_REPLY_DEPTH);
    assert.equal(v, 1);
    assert.match(run([nested(200_000)]).error ?? '', /arrays nested more than 1000 deep/);
  });
});
