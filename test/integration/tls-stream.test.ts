import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { readFileSync } from 'node:fs';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { redisTlsUnsupportedReason, startTlsRedis, type TestTlsRedis } from '../harness/redis-tls.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { eventually } from '../support/sluice-env.js';

const unsupported = await redisTlsUnsupportedReason();

describe('streaming over TLS with client certificates', { skip: unsupported ?? false }, () => {
  let pg: TestPostgres;
  let tls: TestTlsRedis;
  let dir: string;
  let sluice: ManagedProcess | undefined;

  const configFor = (name: string, tlsYaml: string): string => {
    const path = join(dir, name);
    writeFileSync(path, `source:\n  url: ${pg.url}\nredis:\n  secure:\n    url: ${tls.url}\n    tls: ${tlsYaml}\nsinks:\n  - name: acct\n    type: string\n    tables: [acct]\nhttp:\n  port: 0\n`);
    return path;
  };

  before(async () => {
    [pg, tls] = await Promise.all([startPostgres(), startTlsRedis({ requireClientCert: true })]);
    await pg.query(`create table acct (id int primary key, v int)`);
    dir = mkdtempSync(join(tmpdir(), 'sluice-tls-'));
  });

  after(async () => {
    await sluice?.stop(3000);
    await Promise.all([pg?.stop(), tls?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the right CA and a client certificate: changes arrive', async () => {
    const c = tls.certs;
    sluice = spawnSluice(['start', '-c', configFor('ok.yaml', `{ ca: ${c.ca}, cert: ${c.clientCert}, key: ${c.clientKey} }`)]);
    await sluice.waitForLine(/sluice started/, 30_000);
    await pg.query(`insert into acct values (1, 42)`);
    const reader = new Redis(tls.url, { tls: { ca: readFileSync(c.ca), cert: readFileSync(c.clientCert), key: readFileSync(c.clientKey) } });
    try {
      await eventually(() => reader.get('sluice:acct:1'), (v) => v === '{"id":1,"v":42}', 15_000, 'the row over TLS');
    } finally {
      reader.disconnect();
    }
    const exit = await sluice.kill('SIGTERM');
    assert.equal(exit.code, 0);
  });

  test('a wrong CA: start fails with one clear sentence', async () => {
    const c = tls.certs;
    const p = spawnSluice(['start', '-c', configFor('wrong.yaml', `{ ca: ${c.wrongCa}, cert: ${c.clientCert}, key: ${c.clientKey} }`)]);
    const exit = await p.exited;
    assert.equal(exit.code, 1);
    const err = p.stderr.join('\n');
    assert.match(err, /certificate/i);
    assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
  });
});
