import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';

const ROWS = 100_000;

/**
 * ALTER TABLE … ADD COLUMN … DEFAULT on a 100k-row table while a writer runs: every row in Redis
 * gets the new column by itself (a backfill through the watermarks), and sluice verify is in
 * sync; a list sink keeps its history; on_schema_change: ignore leaves its rows as they were.
 */
describe('schema changes reach Redis', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let sluice: ManagedProcess;
  let writing = false;
  let writer: Promise<void> = Promise.resolve();

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`
      create table items (id int primary key, name text, n int);
      insert into items select g, 'item' || g, g from generate_series(1, ${ROWS}) g;`);
    env.writeConfig(`  - name: items
    type: string
    tables: [items]
    key: "item:{id}"
    backfill: true
  - name: names
    type: set
    tables: [items]
    key: "names"
    member: "{name}"
  - name: frozen
    type: hash
    tables: [items]
    key: "frozen:{id}"
    on_schema_change: ignore
  - name: log
    type: list
    tables: [items]
    key: "log"`);
    sluice = await env.start();
    redis = env.redis.client();
    await eventually(() => redis.dbsize(), (n) => n >= ROWS, 60_000, 'the initial backfill');
    await eventually(async () => (await fetch(`http://127.0.0.1:${env.httpPort}/api/sinks/items/backfills`).then((r) => r.json())) as { backfills: { state: string }[] }, (b) => b.backfills.every((x) => x.state === 'done'), 60_000, 'the initial backfill done');
  });

  after(async () => {
    writing = false;
    await writer;
    await env?.stop();
  });

  test('ADD COLUMN … DEFAULT under a writer: every row gets the column; verify is in sync', async () => {
    await env.pg.query(`insert into items values (${ROWS + 1}, 'frozen-probe', 1)`);
    await eventually(() => redis.exists(`frozen:${ROWS + 1}`), (n) => n === 1, 15_000, 'the hash sink');
    writing = true;
    writer = (async () => {
      let i = 0;
      while (writing) {
        i++;
        const id = 1 + ((i * 7919) % ROWS);
        await env.pg.query(`update items set n = n + 1 where id = ${id}`);
      }
    })();
    await env.pg.query(`alter table items add column color text not null default 'blue'`);
    await env.pg.query(`update items set n = n + 1 where id = 1`); // the stream describes the table again
    const line = await sluice.waitForLine(/schema change: backfilling the table again/, 30_000);
    assert.match(line, /"sink":"items"/);
    await eventually(() => redis.get(`item:${ROWS}`), (v) => v !== null && v.includes('"color":"blue"'), 120_000, 'the last row re-backfilled');
    writing = false;
    await writer;
    await eventually(async () => (await fetch(`http://127.0.0.1:${env.httpPort}/api/sinks/items/backfills`).then((r) => r.json())) as { backfills: { state: string; reason?: string }[] }, (b) => b.backfills.length > 0 && b.backfills.every((x) => x.state === 'done'), 120_000, 'the schema backfill done');
    const verify = spawnSluice(['verify', 'items', '-c', `${env.dir}/sluice.yaml`]);
    const v = await verify.exited;
    assert.equal(v.code, 0, verify.tail(20));
    // the set's member column did not change: no backfill of it; the list keeps its history
    assert.ok(!sluice.lines.some((l) => /schema change: backfilling/.test(l.line) && /"sink":"(names|log)"/.test(l.line)));
    // ignore: the probe's hash has no color until the row changes
    assert.equal(await redis.hget(`frozen:${ROWS + 1}`, 'color'), null);
    const metrics = await (await fetch(`http://127.0.0.1:${env.httpPort}/metrics`)).text();
    assert.match(metrics, /sluice_schema_backfills_total\{sink="items"\} 1/);
  });

  test('a change made while Sluice was stopped is noticed at the next start', async () => {
    assert.equal((await sluice.stop(20_000)).code, 0);
    await env.pg.query(`alter table items drop column n`);
    await env.pg.query(`update items set name = 'renamed' where id = 2`);
    sluice = await env.start();
    await sluice.waitForLine(/schema change: backfilling the table again/, 30_000);
    await eventually(() => redis.get(`item:${ROWS}`), (v) => v !== null && !v.includes('"n":'), 120_000, 'rows without the dropped column');
    assert.equal(await redis.get('item:2'), '{"id":2,"name":"renamed","color":"blue"}');
  });
});
