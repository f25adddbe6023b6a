import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { spawnSluice } from '../harness/process.js';
import { failedKey, instanceIdentity, positionKey, sinkOwnerKey, slotBatchMarkerKey, slotPositionKey } from '../../src/core/keyspace.js';
import { stateTables } from '../../src/state/migrations.js';
import { startRedisCluster } from '../harness/redis-cluster.js';

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnSluice(args);
  const exit = await p.exited;
  return { code: exit.code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

describe('sluice teardown', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  const count = async (sql: string, params: unknown[] = []): Promise<number> => Number(((await env.pg.query(sql, params)).rows[0] as { n: string }).n);
  const slots = (name: string): Promise<number> => count(`select count(*) n from pg_replication_slots where slot_name = $1`, [name]);
  const pubs = (name: string): Promise<number> => count(`select count(*) n from pg_publication where pubname = $1`, [name]);
  const schemas = (name: string): Promise<number> => count(`select count(*) n from pg_namespace where nspname = $1`, [name]);

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table items (id int primary key, code text)`);
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test('refused while Sluice runs; then drops the slot, the publication it created, its state schema and, with --keys, its own keys', async () => {
    const path = env.writeConfig(`  - name: items\n    type: string\n    tables: [items]\n    key: "item:{id}"`);
    const sluice = await env.start(path);
    await env.pg.query(`insert into items values (1, 'a'), (2, null)`);
    await eventually(() => redis.get('item:1'), (v) => v !== null, 10_000, 'item:1');
    await env.pg.query(`update items set code = 'b' where id = 2`);
    await eventually(() => redis.get('item:2'), (v) => v !== null && v.includes('"b"'), 10_000, 'item:2');

    const busy = await run(['teardown', '-c', path, '--yes']);
    assert.equal(busy.code, 1, busy.stdout + busy.stderr);
    assert.match(busy.stderr, /^sluice: replication slot "sluice" is in use by process \d+ \(a running sluice start\?\): stop it, then run sluice teardown again; nothing was changed$/m);
    assert.equal(await slots('sluice'), 1);

    await sluice.stop(5000);
    // no terminal to ask on: --yes is needed
    const unasked = await run(['teardown', '-c', path]);
    assert.equal(unasked.code, 1);
    assert.match(unasked.stdout, /^sluice teardown will, for good:$/m);
    assert.match(unasked.stdout, /^ {2}- drop the replication slot "sluice" at /m);
    assert.match(unasked.stdout, /^ {2}- drop the publication "sluice" \(Sluice created it on \d{4}-\d\d-\d\d /m);
    assert.match(unasked.stdout, /^ {2}- drop the schema "sluice" in the source database: Sluice's state/m);
    assert.match(unasked.stderr, /add --yes to confirm \(there is no terminal to ask on\)/);
    assert.equal(await slots('sluice'), 1, 'nothing changed');

    assert.ok((await redis.exists(positionKey('items'))) === 1);
    const done = await run(['teardown', '-c', path, '--yes', '--keys']);
    assert.equal(done.code, 0, done.stdout + done.stderr);
    assert.match(done.stdout, /^ok {4}deleted Sluice's own keys in Redis "main" \(\d+ key\(s\)\)$/m);
    assert.match(done.stdout, /^ok {4}dropped the replication slot "sluice"$/m);
    assert.match(done.stdout, /^ok {4}dropped the publication "sluice"$/m);
    assert.match(done.stdout, /^ok {4}dropped the schema "sluice"$/m);
    assert.match(done.stdout, /^Sluice is torn down\.$/m);
    assert.equal(await slots('sluice'), 0);
    assert.equal(await pubs('sluice'), 0);
    assert.equal(await schemas('sluice'), 0);
    assert.equal(await redis.exists(positionKey('items'), failedKey('items')), 0, "Sluice's own keys are gone");
    assert.equal(await redis.keys('sluice:*').then((k) => k.length), 0);
    assert.notEqual(await redis.get('item:1'), null, 'what the sink wrote stays');

    const again = await run(['teardown', '-c', path, '--yes']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Nothing to tear down:$/m);
  });

  test('a publication Sluice did not create and a schema holding other things are left, said so', async () => {
    await env.pg.query(`create publication mine for table items; create schema shared; create table shared.other (x int)`);
    const path = join(env.dir, 'shared.yaml');
    writeFileSync(
      path,
      `source:\n  url: ${env.pg.url}\n  slot: second\n  publication: mine\nredis:\n  main:\n    url: ${env.redis.url}\n` +
        `sinks:\n  - name: items2\n    type: string\n    tables: [items]\n    key: "i2:{id}"\nhttp:\n  port: ${env.httpPort}\nstate:\n  schema: shared\n`,
    );
    const sluice = await env.start(path);
    // a change applied for the sink: its position is in Redis (what teardown must leave without --keys)
    await env.pg.query(`insert into items values (3, 'c')`);
    await eventually(() => redis.get('i2:3'), (v) => v !== null, 30_000, 'i2:3');
    await sluice.stop(5000);
    assert.equal(await count(`select count(*) n from pg_tables where schemaname = 'shared'`), stateTables().length + 1, `${stateTables().join(', ')} and other`);

    const done = await run(['teardown', '-c', path, '--yes']);
    assert.equal(done.code, 0, done.stdout + done.stderr);
    assert.match(done.stdout, /publication "mine": Sluice did not create it \(or no record says so\), so it stays; DROP PUBLICATION "mine"; removes it/);
    assert.ok(done.stdout.includes(`drop Sluice's tables in schema "shared" in the source database (${stateTables().join(', ')}); the schema stays, it also holds other`), done.stdout);
    assert.match(done.stdout, /^ok {4}dropped Sluice's tables in schema "shared"$/m);
    assert.equal(await slots('second'), 0);
    assert.equal(await pubs('mine'), 1);
    assert.deepEqual((await env.pg.query(`select tablename from pg_tables where schemaname = 'shared'`)).rows, [{ tablename: 'other' }]);
    assert.doesNotMatch(done.stdout, /deleted Sluice's own keys/, 'keys only with --keys');
    assert.equal(await redis.exists(positionKey('items2')), 1);
  });

  test('--keys deletes this instance\'s own keys on every master of a Redis Cluster, and only those: other instances\' keys and data stay', async () => {
    const cluster = await startRedisCluster();
    try {
      const c = cluster.client();
      const sysid = String((await env.pg.query('select system_identifier::text id from pg_control_system()')).rows[0].id);
      const me = instanceIdentity('third', sysid);
      const other = instanceIdentity('fourth', sysid);
      const own = Array.from({ length: 20 }, (_, i) => [positionKey(`s${i}`), failedKey(`s${i}`), slotPositionKey(`s${i}`, `t${i}`), sinkOwnerKey(`s${i}`), slotBatchMarkerKey(me, 'big', `t${i}`), `sluice:batch:big:{t${i}}`]).flat();
      const others = Array.from({ length: 20 }, (_, i) => [positionKey(`o${i}`), failedKey(`o${i}`), sinkOwnerKey(`o${i}`), slotBatchMarkerKey(other, 'big', `t${i}`)]).flat();
      const data = Array.from({ length: 30 }, (_, i) => `sluice:items:${i}`);
      for (const k of [...own, ...others, ...data]) await c.set(k, k.startsWith('sluice:owner:s') ? me : k.startsWith('sluice:owner:o') ? other : 'x');
      const ownSlots = new Set(await Promise.all(own.map(async (k) => (await c.cluster('KEYSLOT', k)) as number))).size;
      assert.ok(ownSlots > 3, 'own keys spread over many slots');
      const path = join(env.dir, 'cluster.yaml');
      writeFileSync(
        path,
        `source:\n  url: ${env.pg.url}\n  slot: third\n  publication: third\nredis:\n  main:\n    url: ${env.redis.url}\n  big:\n    cluster: [${cluster.seedUrls.join(', ')}]\n` +
          `sinks:\n  - name: items3\n    type: string\n    redis: main\n    tables: [items]\nhttp:\n  port: 0\nstate:\n  schema: third\n`,
      );
      const done = await run(['teardown', '-c', path, '--yes', '--keys']);
      assert.equal(done.code, 0, done.stdout + done.stderr);
      assert.match(done.stdout, new RegExp(`^ok {4}deleted Sluice's own keys in Redis "big" \\(${own.length} key\\(s\\); ${others.length} key\\(s\\) of other instances left\\)$`, 'm'));
      assert.match(done.stdout, new RegExp(`delete this instance's \\("${me}"\\) own keys`));
      for (const k of own) assert.equal(await c.exists(k), 0, k);
      for (const k of others) assert.equal(await c.exists(k), 1, `${k} is another instance's`);
      for (const k of data) assert.equal(await c.exists(k), 1, `${k} is data, not Sluice's own`);
    } finally {
      await cluster.stop();
    }
  });
});
