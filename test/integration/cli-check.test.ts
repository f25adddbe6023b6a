import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { spawnSluice } from '../harness/process.js';
import { freePort } from '../../src/util/free-port.js';

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnSluice(args);
  const exit = await p.exited;
  return { code: exit.code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

describe('sluice check', () => {
  let pg: TestPostgres;
  let replicaPg: TestPostgres;
  let redis: TestRedis;
  let dir: string;

  before(async () => {
    [pg, replicaPg, redis] = await Promise.all([startPostgres(), startPostgres({ settings: { wal_level: 'replica' } }), startRedis()]);
    dir = mkdtempSync(join(tmpdir(), 'sluice-check-'));
    await pg.query(`create table products (id int primary key, name text);
      create table nokey (a int, b text);
      create role weak login;`);
  });

  after(async () => {
    await Promise.all([pg?.stop(), replicaPg?.stop(), redis?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (name: string, url: string, redisUrl: string, tables = '[products]'): string => {
    const path = join(dir, name);
    writeFileSync(path, `source:\n  url: ${url}\nredis:\n  main:\n    url: ${redisUrl}\nsinks:\n  - name: p\n    type: string\n    tables: ${tables}\n`);
    return path;
  };

  test('a good environment passes with exit 0', async () => {
    const r = await run(['check', '-c', config('good.yaml', pg.url, redis.url)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /wal_level is logical/);
    assert.match(r.stdout, /replication slot "sluice" does not exist yet; sluice start will create it/);
    assert.match(r.stdout, /redis\.main: reachable/);
    assert.match(r.stdout, /all checks passed/);
    // check changes nothing
    const pubs = await pg.query(`select count(*)::int n from pg_publication`);
    assert.equal((pubs.rows[0] as { n: number }).n, 0);
  });

  test('wal_level=replica is reported with the fix', async () => {
    await replicaPg.query(`create table if not exists products (id int primary key)`);
    const r = await run(['check', '-c', config('replica.yaml', replicaPg.url, redis.url)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error Postgres wal_level is "replica" but Sluice needs "logical": run ALTER SYSTEM SET wal_level = logical; then restart Postgres$/m);
  });

  test('a role without REPLICATION, a missing table and a table without a key', async () => {
    const weakUrl = pg.url.replace('postgres@', 'weak@');
    const r = await run(['check', '-c', config('weak.yaml', weakUrl, redis.url, '[products, missing, nokey]')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /role "weak" may not stream replication: run ALTER ROLE "weak" WITH REPLICATION;/);
    assert.match(r.stderr, /sinks\[0\]\.tables\[1\]: table public\.missing does not exist/);
    assert.match(r.stderr, /table public\.nokey has no primary key or replica identity index/);
  });

  test('Postgres and Redis unreachable', async () => {
    const port = await freePort();
    const r = await run(['check', '-c', config('down.yaml', `postgres://postgres@127.0.0.1:${port}/postgres`, `redis://127.0.0.1:${port}`)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /source\.url: cannot connect to Postgres at 127\.0\.0\.1:\d+\/postgres/);
    assert.match(r.stderr, /redis\.main: cannot use Redis at 127\.0\.0\.1:\d+/);
  });

  test('config mistakes: each on one line with its YAML path, no stack trace', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, `source:\n  url: ${pg.url}\nredis:\n  main:\n    url: ${redis.url}\nsinks:\n  - name: p\n    type: strng\n    tables: [products]\n  - name: q\n    type: string\n    tables: [products]\n    expire: 5\n`);
    const r = await run(['check', '-c', path]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /sinks\[0\]\.type/);
    assert.match(r.stderr, /sinks\[1\]\.expire/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  test('a missing config file says so', async () => {
    const r = await run(['check', '-c', join(dir, 'nope.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nope\.yaml/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
