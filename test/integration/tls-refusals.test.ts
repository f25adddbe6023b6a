// Bad server certificates are refused, for Redis and for Postgres, with one clear sentence from
// `sluice check` and `sluice start`: expired, made for another host name, self-signed. Only an
// explicit opt-out connects anyway: `tls.insecure: true` (Redis), `sslmode=no-verify` (Postgres).
// Certificates: test/harness/redis-tls.ts (openssl). One Postgres serves each bad certificate in
// turn (ssl_cert_file and a reload); one TLS redis-server per bad certificate.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createConnection } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { makeTestCertificates, redisTlsUnsupportedReason, startTlsRedis, type TestCertificates, type TestTlsRedis } from '../harness/redis-tls.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { eventually } from '../support/sluice-env.js';
import { lookupUser } from '../../src/util/process.js';

type Bad = 'expired' | 'wrongHost' | 'selfSigned';
const BAD: readonly Bad[] = ['expired', 'wrongHost', 'selfSigned'];

/** What each refusal must say (after "cannot connect to … at …: " or "cannot use Redis at …: "). */
const REDIS_REASON: Record<Bad, RegExp> = {
  expired: /certificate verification failed: certificate has expired — the server needs a currently valid certificate \(or tls\.insecure: true for testing\)/,
  wrongHost: /the server's certificate does not match the host name: Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the cert's list.* — connect with a name the certificate lists, or set tls\.servername to one of them/,
  selfSigned: /the server's certificate is self-signed: self-signed certificate — to trust it, set tls\.ca to that certificate itself \(or tls\.insecure: true for testing\)/,
};
const PG_REASON: Record<Bad, RegExp> = {
  expired: /server certificate verification failed \(sslmode=verify-full\): certificate has expired — the server needs a currently valid certificate \(or sslmode=no-verify for testing\)/,
  wrongHost: /the server's certificate does not match the host name \(sslmode=verify-full\): Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the cert's list.* — connect with a name the certificate lists, or use sslmode=verify-ca to check the chain only/,
  selfSigned: /the server's certificate is self-signed \(sslmode=verify-full\): self-signed certificate — to trust it, set sslrootcert to that certificate itself \(or sslmode=no-verify for testing\)/,
};

const tlsSkip = await redisTlsUnsupportedReason();

describe('bad server certificates are refused unless verification is turned off', () => {
  let certs: TestCertificates;
  let pgs: TestPostgres;
  let plainRedis: TestRedis;
  let keyDir: string;
  let dir: string;
  const tlsRedis = new Map<Bad, TestTlsRedis>();
  const running: ManagedProcess[] = [];

  /** each bad certificate and its key */
  let files: Record<Bad, [cert: string, key: string]>;
  let pgIds: { uid: number; gid: number } | undefined;

  /** Postgres presents `bad` from now on: its files copied over the ones it reads, a reload, then checked on the wire */
  const presentToPostgres = async (bad: Bad): Promise<void> => {
    const [cert, key] = files[bad];
    copyFileSync(cert, join(keyDir, 'server.crt'));
    copyFileSync(key, join(keyDir, 'server.key'));
    chmodSync(join(keyDir, 'server.key'), 0o600);
    if (pgIds) for (const f of ['server.crt', 'server.key']) chownSync(join(keyDir, f), pgIds.uid, pgIds.gid);
    await pgs.query('select pg_reload_conf()');
    const want = new X509Certificate(readFileSync(cert)).fingerprint256;
    await eventually(() => pgPeerFingerprint(pgs.port), (f) => f === want, 10_000, `Postgres presenting the ${bad} certificate`);
  };

  before(async () => {
    certs = await makeTestCertificates();
    keyDir = mkdtempSync(join(tmpdir(), 'sluice-badcerts-'));
    dir = mkdtempSync(join(tmpdir(), 'sluice-badcerts-cfg-'));
    files = {
      expired: [certs.expiredCert, certs.serverKey],
      wrongHost: [certs.wrongHostCert, certs.serverKey],
      selfSigned: [certs.selfSignedCert, certs.selfSignedKey],
    };
    // the server's files must belong to the user Postgres runs as, the key mode 0600
    pgIds = process.getuid?.() === 0 ? await lookupUser('postgres') : undefined;
    copyFileSync(certs.serverCert, join(keyDir, 'server.crt'));
    copyFileSync(certs.serverKey, join(keyDir, 'server.key'));
    chmodSync(join(keyDir, 'server.key'), 0o600);
    if (pgIds) for (const f of ['', 'server.crt', 'server.key']) chownSync(join(keyDir, f), pgIds.uid, pgIds.gid);
    const redisServers = async (): Promise<void> => {
      if (tlsSkip) return;
      for (const bad of BAD) tlsRedis.set(bad, await startTlsRedis({ certs, serverCert: files[bad][0], serverKey: files[bad][1] }));
    };
    [pgs, plainRedis] = await Promise.all([
      startPostgres({ version: 15, settings: { ssl: 'on', ssl_cert_file: join(keyDir, 'server.crt'), ssl_key_file: join(keyDir, 'server.key') } }),
      startRedis(),
      redisServers(),
    ]);
    await pgs.query('create table acct (id int primary key, v int)');
  });

  after(async () => {
    await Promise.all(running.map((p) => p.stop(3000)));
    await Promise.all([pgs?.stop(), plainRedis?.stop(), ...[...tlsRedis.values()].map((r) => r.stop())]);
    for (const d of [dir, keyDir, certs?.dir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  const writeConfig = (name: string, sourceUrl: string, redisYaml: string): string => {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, `instance: tls-refusals\nsource:\n  url: ${JSON.stringify(sourceUrl)}\n  slot: ${name.replace(/\W/g, '_').toLowerCase()}\nredis:\n  main:\n${redisYaml}\nsinks:\n  - name: acct\n    type: string\n    tables: [acct]\nhttp:\n  port: 0\n`);
    return path;
  };

  /** `sluice check` and `sluice start` both fail, each with one line matching `reason` and no stack trace */
  const refused = async (path: string, reason: RegExp): Promise<void> => {
    const check = spawnSluice(['check', '-c', path]);
    assert.equal((await check.exited).code, 1, check.lines.map((l) => l.line).join('\n'));
    const checkErr = check.stderr.join('\n');
    assert.match(checkErr, reason);
    assert.doesNotMatch(checkErr, /\n\s+at /, 'no stack trace');
    const start = spawnSluice(['start', '-c', path]);
    running.push(start);
    assert.equal((await start.exited).code, 1);
    const err = start.stderr.filter((l) => l.trim() !== '');
    assert.equal(err.length, 1, err.join('\n'));
    assert.match(err[0]!, reason);
  };

  /** `sluice start` streams a row through the config */
  const streams = async (path: string, id: number, redisUrl: string, redisOpts: RedisOptions = {}): Promise<ManagedProcess> => {
    const sluice = spawnSluice(['start', '-c', path]);
    running.push(sluice);
    await sluice.waitForLine(/sluice started/, 30_000);
    await pgs.query('insert into acct values ($1, $1)', [id]);
    const r = new Redis(redisUrl, redisOpts);
    try {
      await eventually(() => r.get(`sluice:acct:${id}`), (v) => v === `{"id":${id},"v":${id}}`, 15_000, `row ${id}`);
    } finally {
      r.disconnect();
    }
    assert.equal((await sluice.kill('SIGTERM')).code, 0);
    return sluice;
  };

  for (const [i, bad] of BAD.entries()) {
    test(`Redis with a ${bad} certificate: refused with tls.ca set; tls.insecure: true connects, with a warning`, { skip: tlsSkip ?? false }, async () => {
      const server = tlsRedis.get(bad)!;
      await refused(writeConfig(`redis_${bad}`, pgs.url, `    url: ${server.url}\n    tls: { ca: ${certs.ca} }`), REDIS_REASON[bad]);
      // without tls.ca (the system's CAs) it is refused too
      await refused(writeConfig(`redis_${bad}_system`, pgs.url, `    url: ${server.url}`), bad === 'wrongHost' ? /certificate verification failed: (self-signed certificate in certificate chain|unable to verify the first certificate|unable to get local issuer certificate) — set tls\.ca to the CA that signed the server's certificate, or tls\.insecure: true for testing/ : REDIS_REASON[bad]);
      const sluice = await streams(writeConfig(`redis_${bad}_insecure`, pgs.url, `    url: ${server.url}\n    tls: { insecure: true }`), 100 + i, server.url, { tls: { rejectUnauthorized: false } });
      assert.ok(sluice.lines.some((l) => /TLS certificate verification is OFF for Redis at 127\.0\.0\.1:\d+/.test(l.line)), 'the insecure warning is logged');
    });
  }

  for (const [i, bad] of BAD.entries()) {
    test(`Postgres with a ${bad} certificate: refused by sslmode=verify-full; sslmode=no-verify connects, with a warning`, async () => {
      await presentToPostgres(bad);
      const redisYaml = `    url: ${plainRedis.url}`;
      const base = `postgres://postgres@127.0.0.1:${pgs.port}/postgres`;
      await refused(writeConfig(`pg_${bad}`, `${base}?sslmode=verify-full&sslrootcert=${certs.ca}`, redisYaml), PG_REASON[bad]);
      const sluice = await streams(writeConfig(`pg_${bad}_noverify`, `${base}?sslmode=no-verify`, redisYaml), 200 + i, plainRedis.url);
      assert.ok(sluice.lines.some((l) => /sslmode=no-verify encrypts the Postgres connection without verifying the server's certificate/.test(l.line)), 'the no-verify warning is logged');
    });
  }
});

/** The SHA-256 fingerprint of the certificate a Postgres server presents (SSLRequest, then a TLS handshake that verifies nothing). */
function pgPeerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('error', reject);
    socket.once('connect', () => {
      const req = Buffer.alloc(8);
      req.writeInt32BE(8, 0);
      req.writeInt32BE(80877103, 4);
      socket.write(req);
    });
    socket.once('data', (b: Buffer) => {
      if (b[0] !== 0x53) return reject(new Error('the server refused TLS'));
      const tls = tlsConnect({ socket, rejectUnauthorized: false }, () => {
        const fingerprint = tls.getPeerX509Certificate()?.fingerprint256 ?? '';
        tls.destroy();
        resolve(fingerprint);
      });
      tls.once('error', reject);
    });
  });
}
