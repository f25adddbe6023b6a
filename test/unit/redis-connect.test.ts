import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, Redis } from 'ioredis';
import { createRedisClient, describeRedis, explainRedisError, redisUsername, tlsOptions, usesTls } from '../../src/redis/connect.js';
import type { RedisConnectionSpec } from '../../src/redis/connect.js';

const url = (u: string, tls?: RedisConnectionSpec['tls']): RedisConnectionSpec => ({ kind: 'url', url: u, tls });
const err = (message: string, code?: string): Error => Object.assign(new Error(message), code ? { code } : {});

test('describeRedis never shows credentials', () => {
  assert.equal(describeRedis(url('redis://u:secret@10.0.0.1:6380/3')), '10.0.0.1:6380/3');
  assert.equal(describeRedis(url('rediss://:secret@cache')), 'cache:6379');
  assert.equal(describeRedis({ kind: 'cluster', cluster: ['redis://a:pw@h1:7000', 'redis://h2:7001'], username: undefined, password: 'x', tls: undefined }), 'cluster h1:7000,h2:7001');
  assert.equal(
    describeRedis({ kind: 'sentinel', sentinel: { name: 'mm', nodes: ['redis://s:pw@h1', 'redis://h2:26380'] }, db: 2, username: undefined, password: undefined, tls: undefined }),
    'sentinel mm@h1:26379,h2:26380 db 2',
  );
});

test('usernames: from the URL, or the username key (which wins) for cluster', () => {
  assert.equal(redisUsername(url('redis://alice:pw@h')), 'alice');
  assert.equal(redisUsername(url('redis://:pw@h')), undefined);
  assert.equal(redisUsername({ kind: 'cluster', cluster: ['redis://bob:pw@h'], username: undefined, password: undefined, tls: undefined }), 'bob');
  assert.equal(redisUsername({ kind: 'cluster', cluster: ['redis://bob:pw@h'], username: 'carol', password: undefined, tls: undefined }), 'carol');
});

test('tls options: verification on unless insecure; unreadable files are named', () => {
  assert.equal(tlsOptions(undefined).rejectUnauthorized, true);
  assert.equal(tlsOptions({ insecure: true }).rejectUnauthorized, false);
  assert.equal(tlsOptions({ insecure: false, servername: 'x' }).servername, 'x');
  assert.throws(() => tlsOptions({ insecure: false, ca: '/nonexistent/ca.pem' }), /cannot read tls\.ca \(\/nonexistent\/ca\.pem\)/);
  assert.equal(usesTls(url('rediss://h')), true);
  assert.equal(usesTls(url('redis://h')), false);
});

test('clients get the credentials, TLS and db of their kind', () => {
  const c = createRedisClient({ kind: 'cluster', cluster: ['rediss://u:pw@127.0.0.1:7000'], username: undefined, password: 'other', tls: { insecure: true } }, 'n', { warn: () => undefined });
  assert.ok(c instanceof Cluster);
  const ro = c.options.redisOptions!;
  assert.equal(ro.username, 'u');
  assert.equal(ro.password, 'other');
  assert.equal((ro.tls as { rejectUnauthorized?: boolean }).rejectUnauthorized, false);
  assert.equal(ro.maxRetriesPerRequest, 0);
  assert.equal(c.options.enableOfflineQueue, false);
  assert.equal(c.options.retryDelayOnFailover, 0);
  c.disconnect();

  const s = createRedisClient(
    { kind: 'sentinel', sentinel: { name: 'mm', nodes: ['redis://su:spw@127.0.0.1:26379'] }, db: 4, username: 'mu', password: 'mpw', tls: undefined },
    'n',
  ) as Redis;
  assert.equal(s.options.db, 4);
  assert.equal(s.options.username, 'mu');
  assert.equal(s.options.password, 'mpw');
  assert.equal(s.options.sentinelUsername, 'su');
  assert.equal(s.options.sentinelPassword, 'spw');
  assert.equal(s.options.enableOfflineQueue, false);
  assert.equal(s.options.autoResendUnfulfilledCommands, false);
  s.disconnect();
});

test('tls.insecure warns once per connection', () => {
  const warnings: string[] = [];
  const log = { warn: (_o: object, m: string) => warnings.push(m) };
  const spec = url('rediss://127.0.0.1:6999', { insecure: true });
  createRedisClient(spec, 'once', log).disconnect();
  createRedisClient(spec, 'once', log).disconnect();
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /certificate verification is OFF for Redis at 127\.0\.0\.1:6999/);
});

test('errors in plain words', () => {
  const tlsSpec = url('rediss://h', { insecure: false, ca: '/x/ca.pem' });
  assert.match(explainRedisError(err('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'), url('rediss://h')), /^certificate verification failed: self-signed certificate in certificate chain — set tls\.ca to the CA that signed the server's certificate, or tls\.insecure: true for testing$/);
  assert.match(explainRedisError(err('unable to get local issuer certificate', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'), tlsSpec), /tls\.ca \(\/x\/ca\.pem\) is not the CA that signed/);
  assert.equal(explainRedisError(err('self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT'), tlsSpec), "the server's certificate is self-signed: self-signed certificate — to trust it, set tls.ca to that certificate itself (or tls.insecure: true for testing)");
  assert.equal(explainRedisError(err('certificate has expired', 'CERT_HAS_EXPIRED'), tlsSpec), 'certificate verification failed: certificate has expired — the server needs a currently valid certificate (or tls.insecure: true for testing)');
  assert.match(explainRedisError(err('x:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../rec.c:1601:SSL alert number 116\n'), url('rediss://h')), /^the server requires a client certificate \(tlsv13 alert certificate required\) — set tls\.cert and tls\.key/);
  assert.match(explainRedisError(err('x:SSL routines:ssl3_get_record:wrong version number:'), url('rediss://h')), /does not speak TLS on this port/);
  assert.match(explainRedisError(err('WRONGPASS invalid username-password pair or user is disabled.'), url('redis://al:pw@h')), /^authentication failed for user "al": WRONGPASS/);
  assert.match(explainRedisError(err('NOAUTH Authentication required.'), url('redis://h')), /put it in the URL/);
  assert.equal(explainRedisError(err('connect ECONNREFUSED 127.0.0.1:1'), url('redis://h')), 'connect ECONNREFUSED 127.0.0.1:1');
});
