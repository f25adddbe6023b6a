import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { startTcpProxy } from '../harness/tcp-proxy.js';

/** an echo server on a free port */
async function echoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return { server, port: typeof a === 'object' && a ? a.port : 0 };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('the proxy never reorders bytes, whatever the delays, stalls and resumes along the way', async () => {
  const { server, port } = await echoServer();
  const proxy = await startTcpProxy({ targetPort: port });
  const client: Socket = connect({ host: '127.0.0.1', port: proxy.port });
  await new Promise<void>((r) => client.once('connect', () => r()));
  const received: Buffer[] = [];
  client.on('data', (d: Buffer) => received.push(d));
  const sent: Buffer[] = [];
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 400; i++) {
    const chunk = Buffer.from(`<${i}:${'x'.repeat(rand(200))}>`);
    sent.push(chunk);
    client.write(chunk);
    const r = rand(20);
    // delays going up and down: a later chunk's due time may be earlier than the one before
    if (r === 0) proxy.delay(rand(40));
    else if (r === 1) proxy.delay(0);
    else if (r === 2) {
      proxy.stall();
      await sleep(rand(15));
      proxy.resume();
    }
    if (rand(4) === 0) await sleep(rand(5));
  }
  proxy.delay(0);
  const want = Buffer.concat(sent);
  const deadline = Date.now() + 10_000;
  while (Buffer.concat(received).length < want.length && Date.now() < deadline) await sleep(20);
  assert.equal(Buffer.concat(received).toString(), want.toString());
  client.destroy();
  await proxy.stop();
  server.close();
});

test('cut() resets open connections and refuses new ones for a while; stall() holds bytes until resume()', async () => {
  const { server, port } = await echoServer();
  const proxy = await startTcpProxy({ targetPort: port });
  const client = connect({ host: '127.0.0.1', port: proxy.port });
  client.on('error', () => {});
  await new Promise<void>((r) => client.once('connect', () => r()));
  let got = '';
  client.on('data', (d: Buffer) => (got += d.toString()));
  const current = (): string => got;
  proxy.stall();
  client.write('held');
  await sleep(100);
  assert.equal(current(), '', 'nothing passes while stalled');
  proxy.resume();
  const deadline = Date.now() + 5000;
  while (current() !== 'held' && Date.now() < deadline) await sleep(10);
  assert.equal(current(), 'held');
  const closed = new Promise<void>((r) => client.once('close', () => r()));
  proxy.cut({ refuseMs: 300 });
  await closed;
  const refused = connect({ host: '127.0.0.1', port: proxy.port });
  const outcome = await new Promise<string>((r) => {
    refused.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
    refused.on('close', () => r('closed'));
  });
  assert.ok(['ECONNRESET', 'closed'].includes(outcome), outcome);
  await sleep(350);
  const again = connect({ host: '127.0.0.1', port: proxy.port });
  await new Promise<void>((r) => again.once('connect', () => r()));
  let echo = '';
  again.on('data', (d: Buffer) => (echo += d.toString()));
  again.write('back');
  const d2 = Date.now() + 5000;
  while (echo !== 'back' && Date.now() < d2) await sleep(10);
  assert.equal(echo, 'back', 'new connections pass once the refusal is over');
  again.destroy();
  await proxy.stop();
  server.close();
});
