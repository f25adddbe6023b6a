// A command Redis refuses inside a batch, with Sluice killed (SIGKILL, by the test-only fault
// point SLUICE_TEST_FAULT) right after the EXEC and before its failed message is recorded, or right
// after the record and before the slot is confirmed. The next start probes the unconfirmed tail
// (src/plan/tail-probe.ts): the failed message is recorded exactly once, a surviving one is kept.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis-cluster.js';
import { freePort } from '../../src/util/free-port.js';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { failedKey } from '../../src/core/keyspace.js';

interface FailedPage {
  total: number;
  messages: { id: string; reason: string; identity?: string; commit_idx: number; failed_at: string }[];
}

describe('a refused command whose failed message a crash did not let Sluice record', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let config: string;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table users (id int primary key, name text)`);
    config = env.writeConfig(`  - name: users
    type: hash
    tables: [users]
    key: 'user:{id}'
  - name: feed
    type: list
    tables: [users]
    actions: [insert]
    key: 'feed'`);
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  /** `bin/sluice start` that kills itself at the fault point. */
  async function startWithFault(fault: string): Promise<ManagedProcess> {
    const p = spawnSluice(['start', '-c', config], { env: { ...process.env, SLUICE_TEST_FAULT: fault } });
    await p.waitForLine(/sluice started/, 30_000);
    return p;
  }

  async function failedOf(sink: string): Promise<FailedPage> {
    const res = await fetch(`http://127.0.0.1:${env.httpPort}/api/sinks/${sink}/messages?status=failed`);
    assert.equal(res.status, 200);
    return (await res.json()) as FailedPage;
  }

  /** How many TYPE commands Redis has run (INFO commandstats). */
  async function typeCalls(): Promise<number> {
    const m = /cmdstat_type:calls=(\d+)/.exec(await redis.info('commandstats'));
    return m ? Number(m[1]) : 0;
  }

  /** Inserts a user and waits until Sluice has applied it: everything before it is applied too. */
  async function insertAndWait(id: number): Promise<void> {
    await env.pg.query(`insert into users values ($1, $2)`, [id, `u${id}`]);
    await eventually(() => redis.hget(`user:${id}`, 'name'), (v) => v === `u${id}`, 30_000, `user ${id} in Redis`);
  }

  test('killed between the EXEC and the record: the next start records it, once', async () => {
    await redis.set('user:1', 'not a hash');
    await redis.set('feed', 'not a list');
    const first = await startWithFault('exit-after-rejected-exec');
    await env.pg.query(`insert into users values (1, 'u1')`);
    const exit = await first.exited;
    assert.equal(exit.signal, 'SIGKILL', first.tail(30));
    assert.ok(first.lines.some((l) => l.line.includes('exit-after-rejected-exec')), first.tail(30));
    // the window was hit: the change's position is in Redis, its failed message is not
    assert.notEqual(await redis.get('sluice:pos:users'), null);
    assert.equal(await redis.hlen(failedKey('users')), 0);
    assert.equal(await redis.hlen(failedKey('feed')), 0);

    const second = await env.start();
    // the probe reads the keys' types as they are: 'feed' must stay a string until it has
    await second.waitForLine(/unconfirmed tail probed/, 60_000);
    await redis.del('feed');
    await insertAndWait(2); // applied after the tail: the probe's records are in by now
    for (const sink of ['users', 'feed']) {
      const page = await failedOf(sink);
      assert.equal(page.total, 1, `${sink}: ${JSON.stringify(page)}\n${second.tail(30)}`);
      const m = page.messages[0]!;
      assert.match(m.reason, /^Redis rejected the command: WRONGTYPE/);
      assert.equal(m.identity, '{"id":1}');
      assert.equal(m.commit_idx, 0);
      assert.equal(await redis.hlen(failedKey(sink)), 1);
    }
    assert.deepEqual(await redis.lrange('feed', 0, -1).then((l) => l.length), 1, 'user 2 only: user 1 was refused');
    const exit2 = await second.kill('SIGTERM');
    assert.equal(exit2.code, 0, second.tail(30));
  });

  test('killed after the record, before the slot is confirmed: the record is kept as it was, not duplicated', async () => {
    await redis.set('user:3', 'not a hash');
    const first = await startWithFault('exit-after-rejected-record');
    await env.pg.query(`insert into users values (3, 'u3')`);
    const exit = await first.exited;
    assert.equal(exit.signal, 'SIGKILL', first.tail(30));
    const recorded = await redis.hgetall(failedKey('users'));
    const ids = Object.keys(recorded);
    assert.equal(ids.length, 2, 'user 1 and user 3');
    const probesBefore = await typeCalls();
    const second = await env.start();
    await insertAndWait(4);
    assert.ok((await typeCalls()) > probesBefore, 'the tail was probed with TYPE');
    assert.deepEqual(await redis.hgetall(failedKey('users')), recorded, 'the same records, each once, as they were (failed_at too)');
    assert.ok(second.lines.some((l) => /unconfirmed tail probed/.test(l.line) && /"refused":1/.test(l.line)), `the probe found the refusal again:\n${second.tail(40)}`);
    // a normal restart: nothing is probed twice or recorded again
    assert.equal((await second.kill('SIGTERM')).code, 0, second.tail(30));
    const third = await env.start();
    const typesBefore = await typeCalls();
    await insertAndWait(5);
    assert.equal(await typeCalls(), typesBefore, 'no tail after a clean stop: nothing probed on the normal path');
    assert.deepEqual(await redis.hgetall(failedKey('users')), recorded);
    assert.equal((await failedOf('users')).total, 2);
    assert.equal((await third.kill('SIGTERM')).code, 0, third.tail(30));
  });
});

describe('the same on a Redis Cluster (the lane skips per hash slot)', () => {
  let pg: TestPostgres;
  let cluster: TestRedisCluster;
  let client: Cluster;
  let dir: string;
  let config: string;
  const running: ManagedProcess[] = [];

  before(async () => {
    [pg, cluster] = await Promise.all([startPostgres(), startRedisCluster()]);
    await pg.query(`create table users (id int primary key, name text)`);
    dir = mkdtempSync(join(tmpdir(), 'sluice-tail-cluster-'));
    config = join(dir, 'sluice.yaml');
    writeFileSync(config, `source:\n  url: ${pg.url}\nredis:\n  cl:\n    cluster: [${cluster.seedUrls.join(', ')}]\nsinks:\n  - name: users\n    type: hash\n    tables: [users]\n    key: 'user:{id}'\nhttp:\n  port: ${await freePort()}\n`);
    client = cluster.client();
  });

  after(async () => {
    await Promise.all(running.map((p) => p.stop(3000)));
    await Promise.all([pg?.stop(), cluster?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('killed between the EXEC and the record: the next start records it, once', async () => {
    await client.set('user:1', 'not a hash');
    const first = spawnSluice(['start', '-c', config], { env: { ...process.env, SLUICE_TEST_FAULT: 'exit-after-rejected-exec' } });
    running.push(first);
    await first.waitForLine(/sluice started/, 30_000);
    await pg.query(`insert into users values (1, 'u1')`);
    assert.equal((await first.exited).signal, 'SIGKILL', first.tail(30));
    assert.equal(await client.hlen(failedKey('users')), 0, 'the window was hit');
    const second = spawnSluice(['start', '-c', config]);
    running.push(second);
    await second.waitForLine(/sluice started/, 30_000);
    await pg.query(`insert into users values (2, 'u2')`);
    await eventually(() => client.hget('user:2', 'name'), (v) => v === 'u2', 30_000, 'user 2 in Redis');
    const records = await client.hgetall(failedKey('users'));
    assert.equal(Object.keys(records).length, 1, `${JSON.stringify(records)}\n${second.tail(30)}`);
    const record = JSON.parse(Object.values(records)[0]!) as { reason: string; identity: string };
    assert.match(record.reason, /WRONGTYPE/);
    assert.equal(record.identity, '{"id":1}');
    assert.equal((await second.kill('SIGTERM')).code, 0, second.tail(30));
  });
});
