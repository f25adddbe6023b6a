import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { encodeCommands, ReplyError, ReplyParser, RespConnection, type Reply } from '../../src/redis/resp-connection.js';
import { checkExec, execGroupResp, type GroupWrite } from '../../src/redis/multi-exec.js';
import type { CommandOrigin } from '../../src/core/command.js';

function parseAll(chunks: Buffer[]): Reply[] {
  const out: Reply[] = [];
  const p = new ReplyParser((r) => out.push(r));
  for (const c of chunks) p.feed(c);
  return out;
}

const STREAM = Buffer.from(
  '+OK\r\n+QUEUED\r\n-OOM command not allowed\r\n+QUEUED\r\n' +
    '*7\r\n$5\r\nhello\r\n$-1\r\n:42\r\n-WRONGTYPE Operation against a key\r\n*2\r\n$6\r\na\r\nb\u00e9\r\n*0\r\n*-1\r\n$0\r\n\r\n' +
    ':-3\r\n+PONG\r\n-EXECABORT Transaction discarded\r\n',
);
const EXPECTED: Reply[] = [
  'OK', 'QUEUED', new ReplyError('OOM command not allowed'), 'QUEUED',
  ['hello', null, 42, new ReplyError('WRONGTYPE Operation against a key'), ['a\r\nbé', []], null, ''],
  -3, 'PONG', new ReplyError('EXECABORT Transaction discarded'),
];

describe('RESP encoding', () => {
  test('commands as arrays of bulk strings, lengths in UTF-8 bytes', () => {
    const buf = encodeCommands([['SET', 'k', 'vé€😀'], ['GET', ''], ['X', 'a'.repeat(12)]]);
    assert.equal(
      buf.toString('utf8'),
      '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nvé€😀\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n*2\r\n$1\r\nX\r\n$12\r\naaaaaaaaaaaa\r\n',
    );
  });

  test('the same bytes as Buffer.from for any strings, short or long, ASCII or not', () => {
    const arg = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 60 }), fc.string({ unit: 'grapheme-ascii', minLength: 40, maxLength: 120 }), fc.string({ unit: 'binary', minLength: 49, maxLength: 1200 }));
    fc.assert(
      fc.property(fc.array(fc.array(arg, { minLength: 1, maxLength: 5 }), { maxLength: 5 }), (cmds) => {
        const naive = Buffer.concat(
          cmds.flatMap((c) => [Buffer.from(`*${c.length}\r\n`), ...c.flatMap((a) => [Buffer.from(`$${Buffer.byteLength(a)}\r\n`), Buffer.from(a), Buffer.from('\r\n')])]),
        );
        assert.deepEqual(encodeCommands(cmds), naive);
      }),
    );
  });

  test('a long string whose UTF-8 length has more digits than its length', () => {
    for (const v of ['é'.repeat(99), 'a'.repeat(98) + '€', '😀'.repeat(600), `${'x'.repeat(70)}\ud800`]) {
      const n = Buffer.byteLength(v);
      assert.deepEqual(encodeCommands([['SET', 'k', v], ['GET', 'k']]), Buffer.concat([Buffer.from(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${n}\r\n`), Buffer.from(v), Buffer.from('\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n')]));
    }
  });

  test('a lone surrogate takes the bytes Buffer.byteLength counts', () => {
    const buf = encodeCommands([['SET', 'k', 'a\ud800b']]);
    assert.equal(buf.toString('latin1', 0, 24), '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\n');
    assert.equal(buf.length, 24 + 5 + 2);
  });
});

describe('RESP reply parser', () => {
  test('whole stream', () => {
    assert.deepEqual(parseAll([STREAM]), EXPECTED);
  });

  test('split at every byte', () => {
    for (let i = 1; i < STREAM.length; i++) {
      assert.deepEqual(parseAll([STREAM.subarray(0, i), STREAM.subarray(i)]), EXPECTED, `split at ${i}`);
    }
  });

  test('one byte at a time', () => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < STREAM.length; i++) chunks.push(STREAM.subarray(i, i + 1));
    assert.deepEqual(parseAll(chunks), EXPECTED);
  });

  test('a large bulk string in many chunks', () => {
    const big = 'x'.repeat(100_000);
    const wire = Buffer.from(`*2\r\n$${big.length}\r\n${big}\r\n+OK\r\n`);
    const chunks: Buffer[] = [];
    for (let i = 0; i < wire.length; i += 997) chunks.push(wire.subarray(i, i + 997));
    assert.deepEqual(parseAll(chunks), [[big, 'OK']]);
  });

  test('a protocol error throws', () => {
    assert.throws(() => parseAll([Buffer.from('?what\r\n')]), /protocol error/);
  });
});

/** A fake connection answering one request with `replies`. */
function fakeConn(replies: Reply[], sent: Buffer[] = []): RespConnection {
  return { request: async (payload: Buffer, count: number) => {
    sent.push(payload);
    assert.equal(count, replies.length);
    return replies;
  } } as unknown as RespConnection;
}

const origin = (n: number): CommandOrigin => ({ sink: `s${n}` }) as unknown as CommandOrigin;

function write(): GroupWrite {
  return {
    markerKey: 'sluice:batch:main',
    batchId: 'b2',
    commands: [['SET', 'a', '1'], ['HSET', 'b', 'f', 'v']],
    origins: [origin(0), origin(1)],
    positions: [['sluice:pos:s', '0/10'], ['sluice:pos:t', null]],
  };
}

describe('execGroupResp', () => {
  test('writes GET marker, the commands, positions, SET marker in one MULTI; returns the marker before', async () => {
    const sent: Buffer[] = [];
    const { before, rejected } = await execGroupResp(fakeConn(['OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', ['b1', 'OK', 1, 'OK', 'OK']], sent), write());
    assert.equal(before, 'b1');
    assert.deepEqual(rejected, []);
    assert.equal(
      sent[0]!.toString(),
      encodeCommands([['MULTI'], ['GET', 'sluice:batch:main'], ['SET', 'a', '1'], ['HSET', 'b', 'f', 'v'], ['SET', 'sluice:pos:s', '0/10'], ['SET', 'sluice:batch:main', 'b2'], ['EXEC']]).toString(),
    );
  });

  test('a queue-time error: EXECABORT throws with the first error', async () => {
    await assert.rejects(
      execGroupResp(fakeConn(['OK', 'QUEUED', new ReplyError('OOM command not allowed'), 'QUEUED', 'QUEUED', 'QUEUED', new ReplyError('EXECABORT Transaction discarded because of previous errors.')]), write()),
      /^Error: EXECABORT Transaction discarded because of previous errors\.: OOM command not allowed$/,
    );
  });

  test('runtime errors of data commands are returned as rejected, with the marker', async () => {
    const { before, rejected } = await execGroupResp(fakeConn(['OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', [null, 'OK', new ReplyError('WRONGTYPE x'), 'OK', 'OK']]), write());
    assert.equal(before, null);
    assert.deepEqual(rejected, [{ origin: origin(1), error: 'WRONGTYPE x' }]);
  });

  test('checkExec: the one reply check of both writers', () => {
    assert.deepEqual(checkExec(['b1', 'OK', new Error('WRONGTYPE y'), 'OK', 'OK'], write()), { before: 'b1', rejected: [{ origin: origin(1), error: 'WRONGTYPE y' }] });
    assert.throws(() => checkExec([new Error('NOPERM'), 'OK', 1, 'OK', 'OK'], write()), /bookkeeping command: NOPERM/);
    assert.throws(() => checkExec([7, 'OK', 1, 'OK', 'OK'], write()), /unexpected reply to GET/);
  });

  test('a runtime error of a bookkeeping command throws', async () => {
    await assert.rejects(execGroupResp(fakeConn(['OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', ['b1', 'OK', 1, new ReplyError('ERR x'), 'OK']]), write()), /bookkeeping command: ERR x/);
  });

  test('MULTI refused, a null EXEC, a short EXEC reply: all throw', async () => {
    await assert.rejects(execGroupResp(fakeConn(['X', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', []]), write()), /MULTI failed/);
    await assert.rejects(execGroupResp(fakeConn(['OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', null]), write()), /aborted/);
    await assert.rejects(execGroupResp(fakeConn(['OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', ['b1']]), write()), /unexpected EXEC reply/);
  });
});

describe('RespConnection', () => {
  async function server(onData: (s: Socket, data: Buffer) => void): Promise<{ srv: Server; port: number; sockets: Socket[] }> {
    const sockets: Socket[] = [];
    const srv = createServer((s) => {
      sockets.push(s);
      s.on('data', (d) => onData(s, d));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return { srv, port: (srv.address() as AddressInfo).port, sockets };
  }

  test('AUTH and SELECT first; replies split in pieces; a lost connection rejects and nothing is sent again', async () => {
    const received: string[] = [];
    const { srv, port, sockets } = await server((s, d) => {
      received.push(d.toString());
      const text = d.toString();
      if (text.includes('AUTH')) s.write('+OK\r\n+OK\r\n');
      else if (text.includes('PING')) {
        s.write('+PO');
        setTimeout(() => s.write('NG\r\n:1'), 5);
        setTimeout(() => s.write('2\r\n'), 10);
      } else if (text.includes('HANG')) s.destroy();
    });
    const conn = new RespConnection(() => ({ host: '127.0.0.1', port, username: 'u', password: 'p', db: 3 }));
    try {
      assert.deepEqual(await conn.request(encodeCommands([['PING'], ['INCR', 'x']]), 2), ['PONG', 12]);
      await assert.rejects(conn.request(encodeCommands([['HANG']]), 1), /connection lost/);
      assert.equal(received.filter((r) => r.includes('HANG')).length, 1);
      // the next request opens a new connection (with AUTH again)
      assert.deepEqual(await conn.request(encodeCommands([['PING'], ['INCR', 'x']]), 2), ['PONG', 12]);
      assert.equal(sockets.length, 2);
      assert.equal(received.filter((r) => r.includes('AUTH')).length, 2);
      assert.match(received[0]!, /^\*3\r\n\$4\r\nAUTH\r\n\$1\r\nu\r\n\$1\r\np\r\n\*2\r\n\$6\r\nSELECT\r\n\$1\r\n3\r\n$/);
    } finally {
      conn.close();
      srv.close();
    }
  });

  test('a wrong password fails the request with the server error', async () => {
    const { srv, port } = await server((s) => s.write('-WRONGPASS invalid username-password pair\r\n'));
    const conn = new RespConnection(() => ({ host: '127.0.0.1', port, password: 'bad' }));
    try {
      await assert.rejects(conn.request(encodeCommands([['PING']]), 1), /^Error: WRONGPASS/);
    } finally {
      conn.close();
      srv.close();
    }
  });

  test('connection refused rejects', async () => {
    const { srv, port } = await server(() => undefined);
    await new Promise((r) => srv.close(r));
    const conn = new RespConnection(() => ({ host: '127.0.0.1', port }));
    await assert.rejects(conn.request(encodeCommands([['PING']]), 1), /ECONNREFUSED/);
    conn.close();
  });
});
