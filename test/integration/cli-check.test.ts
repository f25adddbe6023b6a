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

  test('a template or option naming a column the table does not have: check and start say which, with the closest one', async () => {
    await pg.query(`create table orders (id int primary key, product_id int, price numeric(10,2), label text, doubled int generated always as (id * 2) stored)`);
    const path = join(dir, 'columns.yaml');
    writeFileSync(
      path,
      `source:\n  url: ${pg.url}\nredis:\n  main:\n    url: ${redis.url}\nsinks:\n` +
        `  - name: a\n    type: string\n    tables: [orders]\n    key: "order:{prodct_id}"\n` +
        `  - name: b\n    type: zset\n    tables: [orders]\n    key: "by-price"\n    member: "{id}"\n    score: prce\n` +
        `  - name: c\n    type: set\n    tables: [orders]\n    key: "s:{doubled}"\n    member: "{{{label}}}"\n` +
        `  - name: d\n    type: zset\n    tables: [orders]\n    key: "by-label"\n    member: "{id}"\n    score: label\n` +
        `  - name: e\n    type: string\n    tables: [orders]\n    key: "e:{nope}"\n    route: "function route(action, record) { return { key: 'e:' + record.id }; }"\n` +
        `  - name: f\n    type: hash\n    tables: [orders]\n    key: "o:{{{id}}}"\n    mode: field\n    field: "{product_id}:{price}"\n`,
    );
    const r = await run(['check', '-c', path]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^error sinks\[0\]\.key: table public\.orders has no column "prodct_id"; did you mean "product_id"\?$/m);
    assert.match(r.stderr, /^error sinks\[1\]\.score: table public\.orders has no column "prce"; did you mean "price"\?$/m);
    assert.match(r.stderr, /^error sinks\[2\]\.key: column "doubled" of table public\.orders is a generated column, which logical replication does not send/m);
    assert.doesNotMatch(r.stderr, /sinks\[2\]\.member/, 'a literal brace around a column is fine');
    assert.match(r.stdout, /^warn  sinks\[3\]\.score: column "label" of table public\.orders is text, not a number/m);
    assert.match(r.stdout, /^warn  sinks\[4\]\.key: table public\.orders has no column "nope" \(its columns: id, product_id, price, label\): every row of it becomes a failed message unless the sink's route takes care of it$/m);
    assert.doesNotMatch(r.stdout + r.stderr, /sinks\[5\]/, 'a sink whose columns exist is not mentioned');
    assert.match(r.stdout, /3 problem\(s\) found/);

    // sluice start refuses with the same sentences, before it creates anything
    const start = spawnSluice(['start', '-c', path]);
    const exit = await start.exited;
    assert.equal(exit.code, 1, start.tail(20));
    const err = start.stderr.join('\n');
    assert.match(err, /sinks\[0\]\.key: table public\.orders has no column "prodct_id"; did you mean "product_id"\?/);
    assert.match(err, /sinks\[1\]\.score: table public\.orders has no column "prce"; did you mean "price"\?/);
    assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
    const slots = await pg.query(`select count(*)::int n from pg_replication_slots`);
    assert.equal((slots.rows[0] as { n: number }).n, 0, 'no slot was created');
  });

  test('POST /api/sinks refuses a sink whose template names a column its table does not have (400, with the path)', async () => {
    const port = await freePort();
    const path = join(dir, 'api.yaml');
    writeFileSync(path, `source:\n  url: ${pg.url}\n  slot: api_check\n  publication: api_check\nredis:\n  main:\n    url: ${redis.url}\nsinks:\n  - name: p\n    type: string\n    tables: [products]\nhttp:\n  port: ${port}\nstate:\n  schema: api_check\n`);
    const sluice = spawnSluice(['start', '-c', path]);
    try {
      await sluice.waitForLine(/sluice started/, 30_000);
      const res = await fetch(`http://127.0.0.1:${port}/api/sinks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'bad', type: 'zset', tables: ['products'], key: 'by-name', member: '{nmae}', score: 'id' }),
      });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: { code: string; message: string; problems: { path: string; message: string }[] } };
      assert.equal(body.error.code, 'invalid_sink');
      assert.deepEqual(body.error.problems, [{ path: 'member', message: 'table public.products has no column "nmae"; did you mean "name"?' }]);
    } finally {
      await sluice.stop(5000);
    }
  });

  test('a Redis database the server does not have: check and start say so; start writes nothing into database 0', async () => {
    const small = await startRedis({ args: ['--databases', '4'] });
    try {
      const admin = small.client();
      await admin.call('ACL', 'SETUSER', 'nocfg', 'on', '>pw', '~*', '&*', '+@all', '-config');
      await admin.call('ACL', 'SETUSER', 'blind', 'on', '>pw', '~*', '&*', '+@all', '-config', '-select');
      const sentence = /redis\.main: database 9 does not exist: the server has 4 \(its "databases" setting\), numbered 0 to 3: use one of those \(put it in the URL path \(redis:\/\/host:port\/N\)\), or raise databases in the server's configuration/;
      const path = config('db9.yaml', pg.url, `${small.url}/9`);
      const r = await run(['check', '-c', path]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`^error ${sentence.source}$`, 'm'));

      const start = spawnSluice(['start', '-c', path]);
      const exit = await start.exited;
      assert.equal(exit.code, 1, start.tail(20));
      assert.match(start.stderr.join('\n'), sentence);
      assert.equal(await admin.dbsize(), 0, 'nothing was written into database 0');

      // CONFIG not allowed: SELECT says it
      const noConfig = await run(['check', '-c', config('db9-nocfg.yaml', pg.url, `redis://nocfg:pw@127.0.0.1:${small.port}/9`)]);
      assert.match(noConfig.stderr, /^error redis\.main: database 9 does not exist on the server \(SELECT 9: ERR DB index is out of range\)/m);
      // neither CONFIG nor SELECT: said, not guessed
      const blind = await run(['check', '-c', config('db2-blind.yaml', pg.url, `redis://blind:pw@127.0.0.1:${small.port}/2`)]);
      assert.match(blind.stdout, /^warn  redis\.main: could not check that database 2 exists \(CONFIG GET databases: NOPERM/m);
      // a database it has: nothing to say
      const fine = await run(['check', '-c', config('db3.yaml', pg.url, `${small.url}/3`)]);
      assert.doesNotMatch(fine.stdout + fine.stderr, /database 3/);
    } finally {
      await small.stop();
    }
  });

  test('a missing config file says so', async () => {
    const r = await run(['check', '-c', join(dir, 'nope.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nope\.yaml/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
