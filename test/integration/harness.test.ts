import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startPostgres } from '../harness/postgres.js';
import type { TestPostgres } from '../harness/postgres.js';
import { startRedis } from '../harness/redis.js';
import type { TestRedis } from '../harness/redis.js';
import { spawnManaged } from '../harness/process.js';
import { freePort } from '../../src/util/free-port.js';

describe('test harness', () => {
  let pg15: TestPostgres | undefined;
  let pg18: TestPostgres | undefined;
  let redis: TestRedis | undefined;

  before(async () => {
    // started together: each waits mostly on its own child process
    const [a, b, c] = await Promise.allSettled([startPostgres({ version: 15 }), startPostgres({ version: 18 }), startRedis()]);
    if (a.status === 'fulfilled') pg15 = a.value;
    if (b.status === 'fulfilled') pg18 = b.value;
    if (c.status === 'fulfilled') redis = c.value;
    for (const r of [a, b, c]) if (r.status === 'rejected') throw r.reason;
  });

  after(async () => {
    await Promise.all([pg15?.stop(), pg18?.stop(), redis?.stop()]);
  });

  for (const version of [15, 18] as const) {
    test(`postgres ${version}: logical replication ready`, async () => {
      const pg = version === 15 ? pg15! : pg18!;
      assert.match(pg.url, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
      assert.notEqual(pg.port, 5432);
      const v = await pg.query('SHOW server_version_num');
      assert.equal(Math.floor(Number(v.rows[0].server_version_num) / 10000), version);
      assert.equal((await pg.query('SHOW wal_level')).rows[0].wal_level, 'logical');
      assert.equal((await pg.query('SHOW listen_addresses')).rows[0].listen_addresses, '127.0.0.1');
      await pg.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
      await pg.query('CREATE PUBLICATION p FOR TABLE t');
      const slot = await pg.query("SELECT lsn FROM pg_create_logical_replication_slot('harness_slot', 'pgoutput')");
      assert.ok(slot.rows[0].lsn);
      await pg.query("INSERT INTO t VALUES (1, 'a')");
      // synchronous_commit=off: decoding only sees the commit once the WAL writer flushed it
      let n = 0;
      for (let i = 0; i < 100 && n < 3; i++) {
        const changes = await pg.query(
          "SELECT count(*)::int AS n FROM pg_logical_slot_peek_binary_changes('harness_slot', NULL, NULL, 'proto_version', '1', 'publication_names', 'p')",
        );
        n = changes.rows[0].n;
        if (n < 3) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(n >= 3, `BEGIN, (RELATION,) INSERT, COMMIT: got ${n} messages`);
      await pg.query("SELECT pg_drop_replication_slot('harness_slot')");
    });

    test(`postgres ${version}: restart keeps data and port`, async () => {
      const pg = version === 15 ? pg15! : pg18!;
      const port = pg.port;
      await pg.restart();
      assert.equal(pg.port, port);
      assert.equal((await pg.query('SELECT v FROM t WHERE id = 1')).rows[0].v, 'a');
    });
  }

  test('postgres: settings override and stop() cleans up', async () => {
    const pg = await startPostgres({ settings: { max_replication_slots: '7' } });
    try {
      assert.equal((await pg.query('SHOW max_replication_slots')).rows[0].max_replication_slots, '7');
      assert.ok(existsSync(pg.dataDir));
    } finally {
      await pg.stop();
      await pg.stop(); // idempotent
    }
    assert.ok(!existsSync(pg.dataDir));
  });

  test('redis: PING, kill and start on the same port', async () => {
    const r = redis!;
    const c = r.client();
    assert.equal(await c.ping(), 'PONG');
    await c.set('k', 'v');
    const port = r.port;
    await r.kill();
    assert.equal(r.running, false);
    await assert.rejects(r.client({ retryStrategy: () => null, maxRetriesPerRequest: 0 }).ping());
    await r.start();
    assert.equal(r.running, true);
    assert.equal(r.port, port);
    // the old client reconnects by itself; the data is gone (no persistence)
    assert.equal(await c.get('k'), null);
    await c.set('k2', 'v2');
    await r.restart({ keepData: true });
    assert.equal(await c.get('k2'), 'v2');
    await r.restart();
    assert.equal(await c.get('k2'), null);
  });

  test('redis: password', async () => {
    const r = await startRedis({ password: 's3cret' });
    try {
      assert.match(r.url, /^redis:\/\/:s3cret@127\.0\.0\.1:\d+$/);
      assert.equal(await r.client().ping(), 'PONG');
    } finally {
      await r.stop();
    }
    assert.ok(!existsSync(r.dir));
  });

  test('process helper: lines, waitForLine, kill -9', async () => {
    const p = spawnManaged('sh', ['-c', 'echo one; echo two >&2; exec sleep 30']);
    try {
      assert.equal(await p.waitForLine(/^tw/, 5000), 'two');
      await p.waitForLine(/^one$/, 5000, { stream: 'stdout' });
      assert.deepEqual(p.stdout, ['one']);
      assert.deepEqual(p.stderr, ['two']);
    } finally {
      const info = await p.kill('SIGKILL');
      assert.equal(info.signal, 'SIGKILL');
    }
    assert.equal(p.running, false);

    // a last line without a newline is kept too
    const o = spawnManaged('sh', ['-c', 'echo one; printf three']);
    assert.equal((await o.exited).code, 0);
    assert.deepEqual(o.stdout, ['one', 'three']);
    assert.deepEqual(o.lines.map((l) => l.line), ['one', 'three']);

    const q = spawnManaged('sh', ['-c', 'echo bye; exit 3']);
    await assert.rejects(q.waitForLine(/never/, 5000), /exited \(code 3/);
    assert.equal((await q.exited).code, 3);

    const r = spawnManaged('/nonexistent/binary', []);
    assert.ok((await r.exited).error);
  });

  test('freePort never hands out the same port twice', async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    assert.equal(new Set(ports).size, ports.length);
  });
});
