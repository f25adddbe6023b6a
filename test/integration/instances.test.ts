import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { diffMaps, expectedStrings, scanStrings } from '../support/compare.js';
import { eventually } from '../support/sluice-env.js';
import { freePort } from '../../src/util/free-port.js';
import { batchMarkerKey, instanceIdentity, legacyBatchMarkerKey, sinkOwnerKey } from '../../src/core/keyspace.js';

/**
 * Several Sluice instances on one Redis (docs/scaling.md): two `sluice start` processes, each with
 * its own slot, publication and state schema on disjoint tables of one database, both naming their
 * Redis connection `main`, under a steady writer. Each keeps its own batch marker: neither takes
 * the other's batches for lost writes. One of them restarts on a Redis as the previous version left
 * it (the marker under its old, per-connection name). A third instance wanting a sink name the first
 * owns is refused, at start and through the API.
 */
describe('two instances on one Redis with the same connection name', () => {
  let pg: TestPostgres;
  let redis: TestRedis;
  let admin: Redis;
  let dir: string;
  let sysid: string;
  let apiPort: number;
  const processes: ManagedProcess[] = [];
  /** every run of each instance, for the log checks at the end */
  const runs: Record<'a' | 'b', ManagedProcess[]> = { a: [], b: [] };

  const config = (name: string, o: { slot: string; sinks: string; port: number }): string => {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(
      path,
      `source:\n  url: ${pg.url}\n  slot: ${o.slot}\n  publication: pub_${name}\nredis:\n  main:\n    url: ${redis.url}\nsinks:\n${o.sinks}\nhttp:\n  port: ${o.port}\nstate:\n  schema: st_${name}\nlog:\n  level: info\n`,
    );
    return path;
  };
  const sinkYaml = (sink: string, table: string): string => `  - name: ${sink}\n    type: string\n    tables: [${table}]\n`;
  const start = async (path: string): Promise<ManagedProcess> => {
    const p = spawnSluice(['start', '-c', path]);
    processes.push(p);
    await p.waitForLine(/sluice started/, 90_000);
    return p;
  };
  const converged = async (table: string): Promise<void> => {
    await eventually(
      async () => diffMaps(await expectedStrings(pg, table), await scanStrings(admin, `sluice:${table}:`)),
      (d) => d.length === 0,
      120_000,
      `Redis to hold ${table} as Postgres does`,
    );
  };

  before(async () => {
    [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
    admin = redis.client();
    dir = mkdtempSync(join(tmpdir(), 'sluice-instances-'));
    apiPort = await freePort();
    await pg.query('create table items_a (id int primary key, v int not null); create table items_b (id int primary key, v int not null);');
    sysid = String((await pg.query('select system_identifier::text id from pg_control_system()')).rows[0].id);
  });

  after(async () => {
    await Promise.all(processes.map((p) => p.stop(3000)));
    await Promise.all([pg?.stop(), redis?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('both converge under a steady writer, through an upgrade restart, without "lost writes"', async () => {
    const pathA = config('a', { slot: 'inst_a', sinks: sinkYaml('items_a', 'items_a'), port: 0 });
    const pathB = config('b', { slot: 'inst_b', sinks: sinkYaml('items_b', 'items_b'), port: apiPort });
    runs.a.push(await start(pathA));
    runs.b.push(await start(pathB));

    // the steady writer: inserts and updates on both tables, one statement after the other
    let writing = true;
    let rounds = 0;
    const writer = (async () => {
      for (let i = 1; writing; i++) {
        await pg.query('insert into items_a values ($1, 0) on conflict (id) do update set v = items_a.v + 1', [i % 200]);
        await pg.query('insert into items_b values ($1, 0) on conflict (id) do update set v = items_b.v + 1', [i % 200]);
        rounds = i;
      }
    })();
    const progressed = async (n: number): Promise<void> => {
      const target = rounds + n;
      await eventually(async () => rounds, (r) => r >= target, 120_000, `${n} more writer rounds`);
    };
    try {
      await progressed(300);
      // both instances are writing: each has its own marker under the same connection name
      const markerA = batchMarkerKey(instanceIdentity('inst_a', sysid), 'main');
      const markerB = batchMarkerKey(instanceIdentity('inst_b', sysid), 'main');
      await eventually(async () => [await admin.exists(markerA), await admin.exists(markerB)], (e) => e[0] === 1 && e[1] === 1, 60_000, 'both markers');
      assert.equal(await admin.exists(legacyBatchMarkerKey('main')), 0);

      // A stops; Redis is made what the previous version left: its marker under the old name
      await runs.a[0]!.stop(10_000);
      await admin.rename(markerA, legacyBatchMarkerKey('main'));
      await progressed(100);
      const again = spawnSluice(['start', '-c', pathA]);
      processes.push(again);
      runs.a.push(again);
      await again.waitForLine(/batch marker of the previous version renamed/, 90_000);
      await again.waitForLine(/sluice started/, 90_000);
      await progressed(300);
      assert.equal(await admin.exists(legacyBatchMarkerKey('main')), 0, 'the old marker is renamed, not left behind');
      assert.equal(await admin.exists(markerA), 1);
    } finally {
      writing = false;
      await writer;
    }
    await converged('items_a');
    await converged('items_b');

    for (const [name, list] of Object.entries(runs)) {
      for (const p of list) {
        const bad = p.lines.map((l) => l.line).filter((l) => /lost writes|backfilling the sink again|Redis is behind/.test(l));
        assert.deepEqual(bad, [], `instance ${name} took the other's batches for lost writes:\n${bad.join('\n')}`);
      }
    }
    // each sink's name is owned by its instance
    assert.equal(await admin.get(sinkOwnerKey('items_a')), instanceIdentity('inst_a', sysid));
    assert.equal(await admin.get(sinkOwnerKey('items_b')), instanceIdentity('inst_b', sysid));
  });

  test('a sink name another instance owns on the same Redis is refused: sluice start exits 1, the API answers 409', async () => {
    const pathC = config('c', { slot: 'inst_c', sinks: sinkYaml('items_a', 'items_b'), port: 0 });
    const c = spawnSluice(['start', '-c', pathC]);
    processes.push(c);
    const exit = await c.exited;
    const out = c.lines.map((l) => l.line).join('\n');
    assert.equal(exit.code, 1, out);
    const a = instanceIdentity('inst_a', sysid);
    const mine = instanceIdentity('inst_c', sysid);
    assert.match(out, new RegExp(`sink "items_a" on Redis "main" belongs to another Sluice instance \\("${a}"\\), not to this one \\("${mine}"\\)`));
    // sluice check says so beforehand, with the same words, and exits 1
    const checked = spawnSluice(['check', '-c', pathC]);
    const checkExit = await checked.exited;
    const checkOut = checked.lines.map((l) => l.line).join('\n');
    assert.equal(checkExit.code, 1, checkOut);
    assert.match(checkOut, new RegExp(`error +sinks: sink "items_a" on Redis "main" belongs to another Sluice instance \\("${a}"\\), not to this one \\("${mine}"\\)`));
    // refused before anything was created or written: A still owns the name, C has no slot
    assert.equal(await admin.get(sinkOwnerKey('items_a')), a);
    assert.equal((await pg.query("select count(*)::int n from pg_replication_slots where slot_name = 'inst_c'")).rows[0].n, 0);

    const res = await fetch(`http://127.0.0.1:${apiPort}/api/sinks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'items_a', type: 'string', tables: ['items_b'] }),
    });
    const body = (await res.json()) as { error?: { code?: string; message?: string }; code?: string; message?: string };
    assert.equal(res.status, 409, JSON.stringify(body));
    assert.match(JSON.stringify(body), /belongs to another Sluice instance/);
    assert.match(JSON.stringify(body), new RegExp(instanceIdentity('inst_b', sysid)));

    // a name nobody owns is taken, and given back when the sink is deleted
    const created = await fetch(`http://127.0.0.1:${apiPort}/api/sinks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'items_b2', type: 'string', tables: ['items_b'], key: 'b2:{pk}' }),
    });
    assert.equal(created.status, 201, await created.text());
    assert.equal(await admin.get(sinkOwnerKey('items_b2')), instanceIdentity('inst_b', sysid));
    const deleted = await fetch(`http://127.0.0.1:${apiPort}/api/sinks/items_b2`, { method: 'DELETE' });
    assert.ok(deleted.status === 204 || deleted.status === 200, await deleted.text());
    assert.equal(await admin.exists(sinkOwnerKey('items_b2')), 0);
  });
});
