import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pgClientConfig, pgTlsSettings, pgTlsWarning } from '../../src/pg/connection-config.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-pgcfg-'));
const ca = join(dir, 'ca.pem');
writeFileSync(ca, 'CA PEM');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const base = 'postgres://u:p%40ss@db.example:5433/app';
const noEnv = {};

test('sslmode maps to node TLS options the libpq way', () => {
  assert.equal(pgTlsSettings(`${base}?sslmode=disable`, noEnv).ssl, false);
  assert.equal(pgTlsSettings(`${base}?sslmode=allow`, noEnv).ssl, false);
  assert.equal(pgTlsSettings(base, noEnv).ssl, false);
  for (const m of ['prefer', 'require', 'no-verify']) {
    const s = pgTlsSettings(`${base}?sslmode=${m}`, noEnv);
    assert.deepEqual(s.ssl, { rejectUnauthorized: false }, m);
    assert.equal(s.verifiesChain, false);
  }
  const full = pgTlsSettings(`${base}?sslmode=verify-full&sslrootcert=${ca}`, noEnv);
  assert.equal(full.ssl && full.ssl.ca, 'CA PEM');
  assert.equal(full.ssl && full.ssl.rejectUnauthorized, true);
  assert.equal(full.ssl && full.ssl.checkServerIdentity, undefined);
  assert.equal(full.verifiesHost, true);
  const vca = pgTlsSettings(`${base}?sslmode=verify-ca&sslrootcert=${ca}`, noEnv);
  assert.equal(vca.ssl && typeof vca.ssl.checkServerIdentity, 'function');
  assert.equal(vca.verifiesHost, false);
  // require + a root certificate = verify-ca
  assert.equal(pgTlsSettings(`${base}?sslmode=require&sslrootcert=${ca}`, noEnv).mode, 'verify-ca');
  // a root certificate alone is not ignored
  assert.equal(pgTlsSettings(`${base}?sslrootcert=${ca}`, noEnv).mode, 'verify-full');
});

test('system CAs, missing CA, unreadable files, bad modes', () => {
  const sys = pgTlsSettings(`${base}?sslrootcert=system`, noEnv);
  assert.equal(sys.mode, 'verify-full');
  assert.equal(sys.ssl && sys.ssl.ca, undefined);
  assert.throws(() => pgTlsSettings(`${base}?sslmode=require&sslrootcert=system`, noEnv), /weak sslmode "require"/);
  assert.throws(() => pgTlsSettings(`${base}?sslmode=verify-ca`, noEnv), /verify-ca needs the CA/);
  assert.equal(pgTlsSettings(`${base}?sslmode=verify-full`, noEnv).rootCert, 'system');
  assert.throws(() => pgTlsSettings(`${base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem`, noEnv), /cannot read sslrootcert \/nonexistent\/ca\.pem/);
  assert.throws(() => pgTlsSettings(`${base}?sslmode=maybe`, noEnv), /sslmode must be one of/);
});

test('environment defaults, unix sockets', () => {
  assert.equal(pgTlsSettings(base, { PGSSLMODE: 'require' }).mode, 'require');
  assert.equal(pgTlsSettings(`${base}?sslmode=disable`, { PGSSLMODE: 'require' }).ssl, false);
  assert.equal(pgTlsSettings(base, { PGSSLMODE: 'verify-ca', PGSSLROOTCERT: ca }).mode, 'verify-ca');
  assert.equal(pgTlsSettings('postgres://u@/app?host=/var/run/postgresql&sslmode=require', noEnv).ssl, false);
});

test('the connection string handed to node-postgres keeps everything but the ssl parameters', () => {
  const cfg = pgClientConfig(`${base}?sslmode=verify-ca&sslrootcert=${ca}&application_name=x&uselibpqcompat=true`, { application_name: 'y' });
  assert.equal(cfg.connectionString, 'postgres://u:p%40ss@db.example:5433/app?application_name=x');
  assert.equal(typeof cfg.ssl, 'object');
  assert.equal(pgClientConfig(base).connectionString, base);
  assert.equal(pgClientConfig(base).ssl, false);
});

test('warning when encrypted but not verified', () => {
  assert.match(pgTlsWarning(`${base}?sslmode=require`) ?? '', /without verifying/);
  assert.equal(pgTlsWarning(`${base}?sslmode=verify-full&sslrootcert=${ca}`), undefined);
  assert.equal(pgTlsWarning(`${base}?sslmode=disable`), undefined);
});
