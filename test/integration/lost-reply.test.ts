// A batch's EXEC runs in Redis, one of its commands is refused (WRONGTYPE), and the reply is lost
// with the connection (a TCP proxy between Sluice and Redis holds the reply back and cuts). The
// lane finds its batch marker and does not send the batch again; the refusal, unknown from any
// reply, is told from the key's type (the tail probe's judgement) and recorded as a failed message.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { failedKey } from '../../src/core/keyspace.js';

let env: SluiceTestEnv;
let proxy: TcpProxy;
let redis: Redis;

before(async () => {
  env = await createSluiceTestEnv();
  proxy = await startTcpProxy({ targetPort: env.redis.port });
  redis = env.redis.client();
  await env.pg.query(`create table users (id int primary key, name text)`);
  writeFileSync(
    join(env.dir, 'sluice.yaml'),
    `source:\n  url: ${env.pg.url}\nredis:\n  main:\n    url: redis://127.0.0.1:${proxy.port}\nsinks:\n  - name: users\n    type: hash\n    tables: [users]\n    key: 'user:{id}'\nhttp:\n  port: ${env.httpPort}\nlog:\n  level: info\n`,
  );
});

after(async () => {
  await proxy?.stop();
  await env?.stop();
});

test('a refused command in an EXEC whose reply was lost is recorded once, from the key type', async () => {
  const sluice = await env.start();
  await env.pg.query(`insert into users values (1, 'u1')`);
  await eventually(() => redis.hget('user:1', 'name'), (v) => v === 'u1', 30_000, 'user 1 in Redis');

  await redis.set('user:2', 'not a hash');
  proxy.delay(3000); // both ways: the batch reaches Redis 3 s late, its reply would come 3 s after that
  await env.pg.query(`begin; insert into users values (2, 'u2'); insert into users values (3, 'u3'); commit`);
  // user 3 is in the same MULTI as the refused user 2: once it is in Redis, the EXEC has run
  await eventually(() => redis.hget('user:3', 'name'), (v) => v === 'u3', 60_000, 'user 3 in Redis');
  proxy.delay(0);
  proxy.cut(); // the reply, still held by the proxy, is gone

  await sluice.waitForLine(/batch was applied before its reply was lost/, 60_000);
  await eventually(() => redis.hlen(failedKey('users')), (n) => n === 1, 60_000, 'one failed message');
  const res = await fetch(`http://127.0.0.1:${env.httpPort}/api/sinks/users/messages?status=failed`);
  const page = (await res.json()) as { total: number; messages: { reason: string; identity?: string }[] };
  assert.equal(page.total, 1, JSON.stringify(page));
  assert.match(page.messages[0]!.reason, /^Redis rejected the command: WRONGTYPE/);
  assert.equal(page.messages[0]!.identity, '{"id":2}');
  // the batch was not sent again, and later changes flow
  await env.pg.query(`insert into users values (4, 'u4')`);
  await eventually(() => redis.hget('user:4', 'name'), (v) => v === 'u4', 30_000, 'user 4 in Redis');
  assert.equal(await redis.type('user:2'), 'string');
  assert.equal(await redis.hlen(failedKey('users')), 1);
  assert.equal((await sluice.kill('SIGTERM')).code, 0, sluice.tail(30));
});
