// The source connection over TLS: sslmode in source.url means what it means to libpq.
// Postgres 15 runs with ssl=on and a server certificate (127.0.0.1 / localhost) signed by the test
// CA; `host` lines in pg_hba accept both plain and TLS connections.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { makeTestCertificates, type TestCertificates } from '../harness/redis-tls.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { eventually } from '../support/sluice-env.js';
import { lookupUser } from '../../src/util/process.js';
import { pgClientConfig } from '../../src/pg/connection-config.js';

/** what OpenSSL says when the chain does not lead to the trusted CA (the server sends its leaf only) */
const UNTRUSTED = /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/;

/** ssl and the TLS version of the session `url` opens through Sluice's helper. */
async function sessionTls(url: string): Promise<{ ssl: boolean; version: string | null }> {
  const c = new pg.Client(pgClientConfig(url, { application_name: 'tls-probe', connectionTimeoutMillis: 5000 }));
  c.on('error', () => {});
  await c.connect();
  try {
    const r = await c.query<{ ssl: boolean; version: string | null }>('select ssl, version from pg_stat_ssl where pid = pg_backend_pid()');
    return r.rows[0]!;
  } finally {
    await c.end();
  }
}

/** why connecting through the helper fails ('' if it does not) */
async function connectError(url: string): Promise<string> {
  try {
    await sessionTls(url);
    return '';
  } catch (err) {
    return `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`;
  }
}

describe('Postgres over TLS (sslmode in source.url)', () => {
  let pgs: TestPostgres;
  let redis: TestRedis;
  let certs: TestCertificates;
  let dir: string;
  let keyDir: string;
  const running: ManagedProcess[] = [];

  const url = (params: string, host = '127.0.0.1'): string => `postgres://postgres@${host}:${pgs.port}/postgres?${params}`;
  const config = (name: string, sourceUrl: string): string => {
    const path = join(dir, name);
    writeFileSync(
      path,
      `instance: pgtls\nsource:\n  url: ${JSON.stringify(sourceUrl)}\n  slot: ${name.replace(/\W/g, '_')}\nredis:\n  main:\n    url: ${redis.url}\nsinks:\n  - name: acct\n    type: string\n    tables: [acct]\nhttp:\n  port: 0\n`,
    );
    return path;
  };

  before(async () => {
    certs = await makeTestCertificates();
    // the server's key must belong to the user Postgres runs as, mode 0600
    keyDir = mkdtempSync(join(tmpdir(), 'sluice-pgtls-'));
    copyFileSync(certs.serverCert, join(keyDir, 'server.crt'));
    copyFileSync(certs.serverKey, join(keyDir, 'server.key'));
    chmodSync(join(keyDir, 'server.key'), 0o600);
    const ids = process.getuid?.() === 0 ? await lookupUser('postgres') : undefined;
    if (ids) for (const f of ['', 'server.crt', 'server.key']) chownSync(join(keyDir, f), ids.uid, ids.gid);
    [pgs, redis] = await Promise.all([
      startPostgres({
        version: 15,
        settings: { ssl: 'on', ssl_cert_file: join(keyDir, 'server.crt'), ssl_key_file: join(keyDir, 'server.key'), listen_addresses: '127.0.0.1,127.0.0.2' },
      }),
      startRedis(),
    ]);
    // 127.0.0.2 reaches the same server under a name the certificate does not list
    appendFileSync(join(pgs.dataDir, 'pg_hba.conf'), '\nhost all all 127.0.0.2/32 trust\nhost replication all 127.0.0.2/32 trust\n');
    await pgs.query('select pg_reload_conf()');
    await pgs.query('create table acct (id int primary key, v int)');
    dir = mkdtempSync(join(tmpdir(), 'sluice-pgtls-cfg-'));
  });

  after(async () => {
    await Promise.all(running.map((p) => p.stop(3000)));
    await Promise.all([pgs?.stop(), redis?.stop()]);
    for (const d of [dir, keyDir, certs?.dir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  test('the helper: each sslmode encrypts and verifies as libpq does', async () => {
    const ca = certs.ca;
    const wrong = certs.wrongCa;
    const full = await sessionTls(url(`sslmode=verify-full&sslrootcert=${ca}`));
    assert.equal(full.ssl, true);
    assert.match(full.version ?? '', /^TLSv1\.[23]$/);
    assert.equal((await sessionTls(url(`sslmode=verify-full&sslrootcert=${ca}`, 'localhost'))).ssl, true);
    assert.equal((await sessionTls(url('sslmode=require'))).ssl, true);
    assert.equal((await sessionTls(url('sslmode=prefer'))).ssl, true);
    assert.equal((await sessionTls(url('sslmode=no-verify'))).ssl, true);
    assert.equal((await sessionTls(url('sslmode=disable'))).ssl, false);
    assert.equal((await sessionTls(url('sslmode=allow'))).ssl, false);
    assert.equal((await sessionTls(pgs.url)).ssl, false, 'no sslmode: no TLS (node-postgres default)');
    // verify-full checks the chain and the host name
    assert.match(await connectError(url(`sslmode=verify-full&sslrootcert=${wrong}`)), UNTRUSTED);
    assert.match(await connectError(url(`sslmode=verify-full&sslrootcert=${ca}`, '127.0.0.2')), /ERR_TLS_CERT_ALTNAME_INVALID/);
    // verify-ca checks the chain only
    assert.equal((await sessionTls(url(`sslmode=verify-ca&sslrootcert=${ca}`, '127.0.0.2'))).ssl, true);
    assert.match(await connectError(url(`sslmode=verify-ca&sslrootcert=${wrong}`)), UNTRUSTED);
    assert.match(await connectError(url('sslmode=verify-ca')), /needs the CA/);
    // require with a root certificate is verify-ca (libpq): the wrong CA fails, a foreign host name does not
    assert.match(await connectError(url(`sslmode=require&sslrootcert=${wrong}`)), UNTRUSTED);
    assert.equal((await sessionTls(url(`sslmode=require&sslrootcert=${ca}`, '127.0.0.2'))).ssl, true);
    // a root certificate without sslmode is never ignored: verify-full
    assert.match(await connectError(url(`sslrootcert=${wrong}`)), UNTRUSTED);
  });

  test('verify-full with the right CA: check passes, start streams over encrypted connections', async () => {
    const path = config('verify_full.yaml', url(`sslmode=verify-full&sslrootcert=${certs.ca}`));
    const check = spawnSluice(['check', '-c', path]);
    const exit = await check.exited;
    assert.equal(exit.code, 0, check.lines.map((l) => l.line).join('\n'));
    assert.match(check.stdout.join('\n'), /connected to Postgres/);
    assert.doesNotMatch(check.stdout.join('\n'), /without verifying/);

    const sluice = spawnSluice(['start', '-c', path]);
    running.push(sluice);
    await sluice.waitForLine(/sluice started/, 30_000);
    await pgs.query('insert into acct values (1, 42)');
    const r = new Redis(redis.url);
    try {
      await eventually(() => r.get('sluice:acct:1'), (v) => v === '{"id":1,"v":42}', 15_000, 'the row through a verify-full source');
    } finally {
      r.disconnect();
    }
    // every connection Sluice holds open is encrypted: the walsender and the slot monitor
    const conns = await eventually(
      async () =>
        (await pgs.query(
          `select a.backend_type, a.application_name, s.ssl from pg_stat_activity a join pg_stat_ssl s using (pid)
            where a.backend_type = 'walsender' or a.application_name like 'sluice%' order by 1, 2`,
        )).rows as { backend_type: string; application_name: string; ssl: boolean }[],
      (rows) => rows.some((x) => x.backend_type === 'walsender') && rows.some((x) => x.application_name === 'sluice-monitor'),
      15_000,
      'the walsender and the monitor',
    );
    assert.ok(conns.every((c) => c.ssl), JSON.stringify(conns));
    const stopped = await sluice.kill('SIGTERM');
    assert.equal(stopped.code, 0);
  });

  test('verify-full with the wrong CA: check and start fail with one line naming the certificate problem', async () => {
    const path = config('wrong_ca.yaml', url(`sslmode=verify-full&sslrootcert=${certs.wrongCa}`));
    const check = spawnSluice(['check', '-c', path]);
    assert.equal((await check.exited).code, 1);
    const checkErr = check.stderr.join('\n');
    assert.match(checkErr, /^error source\.url: cannot connect to Postgres at 127\.0\.0\.1:\d+\/postgres: server certificate verification failed \(sslmode=verify-full\): (unable to verify the first certificate|unable to get local issuer certificate) — sslrootcert \(.*wrong-ca\.crt\) is not the CA/m);
    assert.doesNotMatch(checkErr, /\n\s+at /, 'no stack trace');

    const start = spawnSluice(['start', '-c', path]);
    running.push(start);
    const exit = await start.exited;
    assert.equal(exit.code, 1);
    const err = start.stderr.filter((l) => l.trim() !== '');
    assert.equal(err.length, 1, err.join('\n'));
    assert.match(err[0]!, /^sluice: cannot connect to Postgres at .*: server certificate verification failed .*(unable to verify the first certificate|unable to get local issuer certificate)/);
  });

  test('require without a CA: works, encrypted, with a warning that the server is not verified', async () => {
    const path = config('require.yaml', url('sslmode=require'));
    const check = spawnSluice(['check', '-c', path]);
    assert.equal((await check.exited).code, 0, check.lines.map((l) => l.line).join('\n'));
    assert.match(check.stdout.join('\n'), /warn\s+source\.url: sslmode=require encrypts .* without verifying/);

    const sluice = spawnSluice(['start', '-c', path]);
    running.push(sluice);
    await sluice.waitForLine(/sluice started/, 30_000);
    assert.ok(sluice.lines.some((l) => /without verifying the server's certificate/.test(l.line)), 'the warning is logged');
    await pgs.query('insert into acct values (2, 7)');
    const r = new Redis(redis.url);
    try {
      await eventually(() => r.get('sluice:acct:2'), (v) => v === '{"id":2,"v":7}', 15_000, 'the row through a require source');
    } finally {
      r.disconnect();
    }
    const wal = await pgs.query(`select s.ssl from pg_stat_activity a join pg_stat_ssl s using (pid) where a.backend_type = 'walsender'`);
    assert.ok(wal.rows.length > 0 && wal.rows.every((x: { ssl: boolean }) => x.ssl), JSON.stringify(wal.rows));
    assert.equal((await sluice.kill('SIGTERM')).code, 0);
  });
});
