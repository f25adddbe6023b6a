// `sluice check` against Redis Cluster, Sentinel, TLS (right CA, wrong CA, mutual TLS,
// insecure) and ACL users, all started by the harnesses on free ports.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis-cluster.js';
import { startRedisSentinel, type TestRedisSentinel } from '../harness/redis-sentinel.js';
import { makeTestCertificates, redisTlsUnsupportedReason, startTlsRedis, type TestTlsRedis } from '../harness/redis-tls.js';
import { spawnSluice } from '../harness/process.js';

const tlsSkip = await redisTlsUnsupportedReason();

async function check(configPath: string): Promise<{ code: number | null; stdout: string; stderr: string; all: string }> {
  const p = spawnSluice(['check', '-c', configPath]);
  const exit = await p.exited;
  const stdout = p.stdout.join('\n');
  const stderr = p.stderr.join('\n');
  return { code: exit.code, stdout, stderr, all: `${stdout}\n${stderr}` };
}

describe('sluice check with Redis Cluster, Sentinel, TLS and ACL users', () => {
  let pg: TestPostgres;
  let cluster: TestRedisCluster;
  let sentinel: TestRedisSentinel;
  let tlsRedis: TestTlsRedis | undefined;
  let mtlsRedis: TestTlsRedis | undefined;
  let aclRedis: TestRedis;
  let dir: string;

  before(async () => {
    const tlsServers = async (): Promise<void> => {
      if (tlsSkip) return;
      const certs = await makeTestCertificates();
      [tlsRedis, mtlsRedis] = await Promise.all([startTlsRedis({ certs }), startTlsRedis({ certs, requireClientCert: true })]);
    };
    [pg, cluster, sentinel, aclRedis] = await Promise.all([startPostgres(), startRedisCluster(), startRedisSentinel(), startRedis(), tlsServers()]);
    await pg.query('create table t (id int primary key)');
    const admin = aclRedis.client();
    // may do everything but XADD and EVAL (ACL DRYRUN works for it: it may run ACL)
    await admin.call('ACL', 'SETUSER', 'partial', 'on', '>pw', '~sluice:*', '&sluice:*', '+@all', '-xadd', '-eval');
    // only a handful of commands, not ACL: checked by queuing inside a discarded MULTI
    await admin.call('ACL', 'SETUSER', 'narrow', 'on', '>pw', '~sluice:*', '&sluice:*', '+get', '+set', '+del', '+unlink', '+scan', '+multi', '+exec', '+discard', '+hset', '+hdel', '+rpush', '+lpush', '+ltrim', '+sadd', '+srem', '+zadd', '+zrem', '+publish', '+pexpire', '+mget', '+info', '+ping');
    await admin.call('ACL', 'SETUSER', 'full', 'on', '>pw', '~sluice:*', '&sluice:*', '+@all');
    dir = mkdtempSync(join(tmpdir(), 'sluice-topologies-'));
  });

  after(async () => {
    await Promise.all([pg?.stop(), cluster?.stop(), sentinel?.stop(), aclRedis?.stop(), tlsRedis?.stop(), mtlsRedis?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let n = 0;
  /** a config whose only Redis connection is `connection` (YAML lines under `main:`) */
  const config = (connection: string): string => {
    const path = join(dir, `c${n++}.yaml`);
    const body = connection.split('\n').map((l) => `    ${l}`).join('\n');
    writeFileSync(path, `source:\n  url: ${pg.url}\nredis:\n  main:\n${body}\nsinks:\n  - name: t\n    type: string\n    tables: [t]\n`);
    return path;
  };

  test('cluster: reachable, mode cluster, all slots covered', async () => {
    const r = await check(config(`cluster: [${cluster.seedUrls.slice(0, 2).join(', ')}]`));
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /redis\.main: reachable at cluster 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ \(Redis [\d.]+, cluster: 3 master\(s\), cluster_state ok, all 16384 slots covered\)/);
    assert.match(r.stdout, /all checks passed/);
  });

  test('sentinel: reachable, reports the master', async () => {
    const r = await check(config(`sentinel: { name: ${sentinel.masterName}, nodes: [${sentinel.sentinelUrls.join(', ')}] }`));
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, new RegExp(`redis\\.main: reachable at sentinel ${sentinel.masterName}@.*sentinel: master "${sentinel.masterName}" at 127\\.0\\.0\\.1:${sentinel.master.port}\\b`));
  });

  test('sentinel: an unknown master name is an error', async () => {
    const r = await check(config(`sentinel: { name: nosuchmaster, nodes: [${sentinel.sentinelUrls[0]}] }`));
    assert.equal(r.code, 1, r.all);
    assert.match(r.stderr, /redis\.main: cannot use Redis at sentinel nosuchmaster@/);
  });

  test('TLS with the right CA', { skip: tlsSkip }, async () => {
    const r = await check(config(`url: ${tlsRedis!.url}\ntls: { ca: ${tlsRedis!.certs.ca} }`));
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /redis\.main: reachable at 127\.0\.0\.1:\d+ \(Redis [\d.]+, standalone; TLS\)/);
  });

  test('TLS with a wrong CA: a clear error, exit 1', { skip: tlsSkip }, async () => {
    const r = await check(config(`url: ${tlsRedis!.url}\ntls: { ca: ${tlsRedis!.certs.wrongCa} }`));
    assert.equal(r.code, 1, r.all);
    assert.match(r.stderr, /redis\.main: cannot use Redis at 127\.0\.0\.1:\d+: certificate verification failed: .+ — tls\.ca \(.*wrong-ca\.crt\) is not the CA that signed the server's certificate/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  test('TLS without tls.ca: the system CAs do not know the test CA', { skip: tlsSkip }, async () => {
    const r = await check(config(`url: ${tlsRedis!.url}`));
    assert.equal(r.code, 1, r.all);
    assert.match(r.stderr, /certificate verification failed: .+ — set tls\.ca to the CA that signed the server's certificate, or tls\.insecure: true for testing/);
  });

  test('TLS with a servername the certificate does not list', { skip: tlsSkip }, async () => {
    const r = await check(config(`url: ${tlsRedis!.url}\ntls: { ca: ${tlsRedis!.certs.ca}, servername: other.example }`));
    assert.equal(r.code, 1, r.all);
    assert.match(r.stderr, /the server's certificate does not match the host name: .*other\.example/);
  });

  test('mutual TLS: client certificate given', { skip: tlsSkip }, async () => {
    const c = mtlsRedis!.certs;
    const r = await check(config(`url: ${mtlsRedis!.url}\ntls: { ca: ${c.ca}, cert: ${c.clientCert}, key: ${c.clientKey} }`));
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /redis\.main: reachable/);
  });

  test('mutual TLS: no client certificate, a clear error', { skip: tlsSkip }, async () => {
    const r = await check(config(`url: ${mtlsRedis!.url}\ntls: { ca: ${mtlsRedis!.certs.ca} }`));
    assert.equal(r.code, 1, r.all);
    assert.match(r.stderr, /redis\.main: cannot use Redis at 127\.0\.0\.1:\d+: the server (requires a client certificate \(.*certificate required\) —|closed the TLS connection during the handshake .* — it probably requires a client certificate:) set tls\.cert and tls\.key/);
  });

  test('tls.insecure: true connects with a warning', { skip: tlsSkip }, async () => {
    const r = await check(config(`url: ${tlsRedis!.url}\ntls: { ca: ${tlsRedis!.certs.wrongCa}, insecure: true }`));
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /^warn  redis\.main: tls\.insecure is true: the server's certificate is not verified/m);
    assert.match(r.stdout, /redis\.main: reachable/);
  });

  test('a missing tls.ca file is named', { skip: tlsSkip }, async () => {
    const r = await check(config(`url: ${tlsRedis!.url}\ntls: { ca: ${join(dir, 'nope.pem')} }`));
    assert.equal(r.code, 1, r.all);
    assert.match(r.stderr, /redis\.main: cannot read tls\.ca \(.*nope\.pem\)/);
  });

  test('an ACL user lacking XADD and EVAL (checked with ACL DRYRUN)', async () => {
    const r = await check(config(`url: redis://partial:pw@127.0.0.1:${aclRedis.port}`));
    assert.equal(r.code, 1, r.all);
    assert.match(r.stderr, /^error redis\.main: ACL user "partial" may not run EVAL, XADD: run ACL SETUSER partial \+eval \+xadd ~sluice:\*/m);
  });

  test('an ACL user without ACL rights lacking XADD and EVAL (checked inside a discarded MULTI)', async () => {
    const before = await aclRedis.client().dbsize();
    const r = await check(config(`url: redis://narrow:pw@127.0.0.1:${aclRedis.port}`));
    assert.equal(r.code, 1, r.all);
    assert.match(r.stderr, /^error redis\.main: ACL user "narrow" may not run EVAL, XADD: run ACL SETUSER narrow \+eval \+xadd ~sluice:\*/m);
    assert.equal(await aclRedis.client().dbsize(), before, 'the probe wrote nothing');
  });

  test('an ACL user with every permission', async () => {
    const r = await check(config(`url: redis://full:pw@127.0.0.1:${aclRedis.port}`));
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /redis\.main: ACL user "full" may run every command Sluice uses on sluice:\* keys/);
  });

  test('a wrong password: a clear error', async () => {
    const r = await check(config(`url: redis://partial:wrong@127.0.0.1:${aclRedis.port}`));
    assert.equal(r.code, 1, r.all);
    assert.match(r.stderr, /redis\.main: cannot use Redis at 127\.0\.0\.1:\d+: authentication failed for user "partial": WRONGPASS .* — check the username and password/);
    assert.doesNotMatch(r.all, /:wrong@/, 'the password is not echoed');
  });
});
