import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Redis } from 'ioredis';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { killPostgres, startStandby, type TestStandby } from '../harness/postgres-standby.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { eventually } from '../support/sluice-env.js';
import { freePort } from '../../src/util/free-port.js';
import { prepareSource } from '../../src/pg/source-setup.js';

/** `sluice check -c <config>`: exit code and output */
async function check(config: string): Promise<{ code: number | null; out: string }> {
  const p = spawnSluice(['check', '-c', config]);
  const exit = await p.exited;
  return { code: exit.code, out: p.lines.map((l) => l.line).join('\n') };
}

const configText = (url: string, redisUrl: string, httpPort: number): string => `source:
  url: ${url}
  failover_slot: true
redis:
  main:
    url: ${redisUrl}
sinks:
  - name: items
    type: hash
    tables: [items]
    key: "item:{id}"
  - name: events
    type: list
    tables: [events]
    key: "events"
    value: record
http:
  port: ${httpPort}
`;

/**
 * A Postgres standby taking over (issue 13), Postgres 18: Sluice streams a failover slot
 * (source.failover_slot) through a TCP proxy standing for a virtual IP. The standby synchronizes
 * the slot; the primary holds logical changes back until the standby has them
 * (synchronized_standby_slots). Under a steady writer, the primary stops at once (immediate), the
 * proxy moves to the standby while it is still a standby (Sluice must retry, and say why in
 * /health), then the standby is promoted and the writer goes on against it.
 *
 * The truth at the end is the new primary: a transaction the old primary committed but never
 * sent to the standby is lost with it, and must not be in Redis either. `items` (a hash sink)
 * equals the table; `events` (a list sink) holds each committed transaction's event exactly once,
 * in commit order (one writer: its `n` grows with commit order).
 */
describe('a Postgres standby taking over (failover slot, Postgres 18)', () => {
  let primary: TestPostgres;
  let standby: TestStandby;
  let redis: TestRedis;
  let proxy: TcpProxy;
  let sluice: ManagedProcess;
  let dir: string;
  let httpPort: number;
  let config: string;
  let rc: Redis;

  before(async () => {
    [primary, redis] = await Promise.all([startPostgres({ version: 18 }), startRedis()]);
    await primary.query(`create table items (id int primary key, v int not null)`);
    await primary.query(`create table events (n int primary key, op text not null, item int not null)`);
    standby = await startStandby(primary, { physicalSlot: 'standby1' });
    await primary.query(`alter system set synchronized_standby_slots = 'standby1'`);
    await primary.query(`select pg_reload_conf()`);
    proxy = await startTcpProxy({ targetPort: primary.port });
    httpPort = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'sluice-failover-'));
    config = join(dir, 'sluice.yaml');
    writeFileSync(config, configText(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`, redis.url, httpPort));
    // a slot made before failover_slot was set: start makes it a failover slot (ALTER_REPLICATION_SLOT)
    await primary.query(`select pg_create_logical_replication_slot('sluice', 'pgoutput')`);
    const before = await check(config);
    assert.match(before.out, /^warn {2}replication slot "sluice" is not a failover slot: sluice start will make it one/m, before.out);
    sluice = spawnSluice(['start', '-c', config]);
    await sluice.waitForLine(/sluice started/, 60_000);
    rc = redis.client();
  });

  after(async () => {
    await sluice?.stop(5000);
    await proxy?.stop();
    await Promise.all([standby?.stop(), primary?.stop(), redis?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('start made the existing slot a failover slot; check reports it, and synchronized_standby_slots', async () => {
    await sluice.waitForLine(/made replication slot \\"sluice\\" a failover slot/, 1000);
    const slot = (await primary.query(`select failover from pg_replication_slots where slot_name = 'sluice'`)).rows[0] as { failover: boolean } | undefined;
    assert.equal(slot?.failover, true);
    const r = await check(config);
    assert.match(r.out, /^ok {4}replication slot "sluice" is a failover slot$/m, r.out);
    assert.match(r.out, /^ok {4}synchronized_standby_slots is "standby1"/m, r.out);
  });

  test('a new slot is created as a failover slot', async () => {
    const admin = new pg.Client({ connectionString: primary.url });
    await admin.connect();
    try {
      const s = await prepareSource(admin, { slot: 'created_failover', publication: 'created_failover', sinks: [], failover: true, url: primary.url }, () => undefined);
      assert.equal(s.slotCreated, true);
      assert.equal(s.slot.failover, true);
      await admin.query(`select pg_drop_replication_slot('created_failover')`);
      await admin.query(`drop publication created_failover`);
    } finally {
      await admin.end();
    }
  });

  test('Redis equals the new primary; the list has each committed event once, in order', async (t) => {
    const writer = new Writer(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`);
    const writing = writer.run();
    const listLength = (): Promise<number> => rc.llen('events');
    try {
      // the synced slot must be persisted on the standby before the takeover, or it is dropped at promotion
      // (the sync worker naps up to 30 s while the primary is idle: the writer keeps it awake)
      await standby.waitForSyncedSlot('sluice');
      // check against the standby: an error, naming its synced slot
      const path = join(dir, 'standby.yaml');
      writeFileSync(path, configText(standby.url, redis.url, 0));
      const r = await check(path);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /^error Postgres is a standby \(in recovery\) \(its slot "sluice" is synchronized from the primary, usable once this server is promoted\): point source\.url at the primary$/m, r.out);
      await eventually(listLength, (n) => n >= 200, 120_000, '200 events applied before the takeover');

      await killPostgres(primary);
      proxy.cut();
      const beforeTakeover = writer.committed;
      // the proxy moves while the standby is not promoted yet: Sluice reconnects to a standby
      proxy.retarget(standby.port);
      const health = async (): Promise<string> => {
        try {
          return JSON.stringify(((await (await fetch(`http://127.0.0.1:${httpPort}/health`)).json()) as { problems?: unknown }).problems ?? []);
        } catch (err) {
          return String(err);
        }
      };
      const seen = await eventually(health, (p) => /standby/.test(p), 120_000, '/health naming a standby');
      t.diagnostic(`while a standby: ${seen}`);

      const synced = (await standby.query(`select confirmed_flush_lsn::text lsn from pg_replication_slots where slot_name = 'sluice'`)).rows[0] as { lsn: string } | undefined;
      t.diagnostic(`the synced slot is at ${synced?.lsn ?? '?'} when the standby is promoted`);
      await standby.promote();
      const promoted = Date.now();
      const lastBefore = writer.attempted;
      const tail = async (): Promise<number> => {
        const last = await rc.lindex('events', -1);
        return last === null ? 0 : (JSON.parse(last) as { n: number }).n;
      };
      await eventually(tail, (n) => n > lastBefore, 120_000, 'a transaction of the new primary in Redis');
      t.diagnostic(`from pg_promote() returning to the first new transaction in Redis: ${Date.now() - promoted} ms`);
      await eventually(async () => writer.committed, (n) => n >= beforeTakeover + 200, 120_000, '200 transactions committed on the new primary');
    } finally {
      await writer.stop();
      await writing;
    }
    t.diagnostic(`writer: ${writer.committed} commits acknowledged, ${writer.errors} errors`);

    const items = async (): Promise<string> => {
      const rows = (await standby.query(`select id, v from items order by id`)).rows as { id: number; v: number }[];
      return JSON.stringify(rows.map((r) => [r.id, String(r.v)]));
    };
    const inRedis = async (): Promise<string> => {
      const keys = (await rc.keys('item:*')).map((k) => Number(k.slice('item:'.length))).sort((a, b) => a - b);
      return JSON.stringify(await Promise.all(keys.map(async (id) => [id, await rc.hget(`item:${id}`, 'v')])));
    };
    const wantItems = await items();
    await eventually(inRedis, (a) => a === wantItems, 120_000, 'items in Redis equal to the new primary').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${sluice.tail(30)}`);
    });

    const events = (await standby.query(`select n from events order by n`)).rows.map((r: { n: number }) => r.n);
    await eventually(listLength, (n) => n >= events.length, 120_000, 'every event in the list');
    const list = (await rc.lrange('events', 0, -1)).map((e) => (JSON.parse(e) as { n: number }).n);
    assert.deepEqual(list, events, 'the list holds each committed event once, in commit order');
    const from = sluice.lines.map((l) => /"from":"([^"]+)","msg":"replication stream reconnected"/.exec(l.line)?.[1]).filter((x) => x !== undefined);
    t.diagnostic(`Sluice reconnected from ${from.join(', ')}`);
    assert.ok(from.length > 0, 'the stream reconnected');
  });
});

describe('source.failover_slot on Postgres 15', () => {
  test('check and start refuse it, naming source.failover_slot', async () => {
    const [pg15, redis] = await Promise.all([startPostgres({ version: 15 }), startRedis()]);
    const dir = mkdtempSync(join(tmpdir(), 'sluice-failover15-'));
    try {
      await pg15.query(`create table items (id int primary key, v int not null); create table events (n int primary key, op text not null, item int not null)`);
      const path = join(dir, 'sluice.yaml');
      writeFileSync(path, configText(pg15.url, redis.url, 0));
      const r = await check(path);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /^error source\.failover_slot: Postgres 15 has no failover slots \(they need Postgres 17 or later\)/m, r.out);
      const start = spawnSluice(['start', '-c', path]);
      const exit = await start.exited;
      assert.notEqual(exit.code, 0);
      assert.match(start.lines.map((l) => l.line).join('\n'), /source\.failover_slot: Postgres 15 has no failover slots/);
    } finally {
      await Promise.all([pg15.stop(), redis.stop()]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * One connection, one transaction at a time: an upsert or a delete of an item and its event.
 * Errors (the primary gone, a standby refusing writes) drop the connection; it connects again.
 */
class Writer {
  committed = 0;
  errors = 0;
  private n = 0;
  /** the last `n` tried */
  get attempted(): number {
    return this.n;
  }

  private stopping = false;
  private seed = 13;

  constructor(private readonly url: string) {}

  private random(k: number): number {
    // a small LCG: the same sequence of operations every run
    this.seed = (this.seed * 1103515245 + 12345) % 2147483648;
    return this.seed % k;
  }

  async run(): Promise<void> {
    let client: pg.Client | null = null;
    while (!this.stopping) {
      try {
        if (client === null) {
          const c = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 3000 });
          c.on('error', () => undefined);
          client = c;
          await c.connect();
        }
        const n = ++this.n;
        const id = 1 + this.random(40);
        const op = this.random(4) === 0 ? 'delete' : 'upsert';
        await client.query('begin');
        if (op === 'delete') await client.query(`delete from items where id = $1`, [id]);
        else await client.query(`insert into items values ($1, $2) on conflict (id) do update set v = excluded.v`, [id, n]);
        await client.query(`insert into events values ($1, $2, $3)`, [n, op, id]);
        await client.query('commit');
        this.committed++;
      } catch {
        this.errors++;
        const c = client;
        client = null;
        await c?.end().catch(() => undefined);
        // a retry loop's pause, not a timed assertion
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await client?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopping = true;
  }
}
