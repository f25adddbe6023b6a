import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { pino } from 'pino';
import { startPostgresForSuite } from '../harness/postgres.js';
import { StateStore } from '../../src/state/state-store.js';
import { LATEST_VERSION, stateTables } from '../../src/state/migrations.js';
import { SluiceError } from '../../src/util/errors.js';

const log = pino({ level: 'silent' });
const db = startPostgresForSuite();

let dbCount = 0;
/** A fresh database on the test server; returns its URL. */
async function freshDatabase(): Promise<string> {
  const name = `state_${++dbCount}`;
  await db.pg.query(`create database ${name}`);
  const u = new URL(db.pg.url);
  u.pathname = `/${name}`;
  return u.toString();
}

const isSluiceError = (code: string, message?: RegExp) => (err: unknown): boolean => {
  assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (message) assert.match(err.message, message);
  return true;
};

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

describe('StateStore', () => {
  before(db.start);
  after(db.stop);

  test('create, list, get, update, pause, resume, delete', async () => {
    const url = await freshDatabase();
    const store = await StateStore.open({ url, log });
    try {
      assert.deepEqual(await store.listSinks(), []);
      assert.equal(await store.getSink('orders'), null);

      const spec = { name: 'orders', type: 'hash', tables: ['public.orders'], key: 'order:{id}', big: 12345678901234567890n.toString() };
      const created = await store.createSink('orders', spec);
      assert.equal(created.name, 'orders');
      assert.equal(created.origin, 'api');
      assert.deepEqual(created.spec, spec);
      assert.equal(created.paused, false);
      assert.match(created.created_at, ISO);
      assert.equal(created.updated_at, created.created_at);
      await store.createSink('audit', { name: 'audit', type: 'stream', tables: ['public.audit'] });

      assert.deepEqual((await store.listSinks()).map((s) => s.name), ['audit', 'orders']);
      assert.deepEqual(await store.getSink('orders'), created);

      const spec2 = { ...spec, key: 'o:{id}' };
      const updated = await store.updateSink('orders', spec2);
      assert.deepEqual(updated.spec, spec2);
      assert.equal(updated.created_at, created.created_at);
      assert.ok(updated.updated_at >= created.updated_at);

      const paused = await store.setPaused('orders', true, 'api');
      assert.equal(paused.paused, true);
      assert.equal((await store.getSink('orders'))!.paused, true);
      const resumed = await store.setPaused('orders', false, 'api');
      assert.equal(resumed.paused, false);

      assert.equal(await store.deleteSink('orders'), true);
      assert.equal(await store.getSink('orders'), null);
      assert.equal(await store.deleteSink('orders'), false);
      assert.deepEqual((await store.listSinks()).map((s) => s.name), ['audit']);
      // the name is free again
      await store.createSink('orders', spec);
    } finally {
      await store.close();
    }
  });

  test('a sluice.yaml sink gets a row without spec when paused; it can only be paused, or replaced by an API sink', async () => {
    const url = await freshDatabase();
    const store = await StateStore.open({ url, log });
    try {
      assert.equal((await store.setPaused('idle', false, 'config')).paused, false);
      const row = await store.setPaused('products', true, 'config');
      assert.deepEqual({ origin: row.origin, spec: row.spec, paused: row.paused }, { origin: 'config', spec: null, paused: true });
      assert.equal((await store.setPaused('products', false, 'config')).paused, false);
      assert.equal((await store.setPaused('products', true, 'config')).paused, true);
      assert.equal((await store.getSink('products'))!.origin, 'config');
      await assert.rejects(store.updateSink('products', { type: 'string' }), isSluiceError('sink_read_only', /sluice\.yaml/));
      await assert.rejects(store.setPaused('nope', true, 'api'), isSluiceError('sink_not_found', /"nope"/));
      assert.equal(await store.getSink('nope'), null);

      // a file sink shadowing a stored API sink of the same name can still be paused
      await store.createSink('shadowed', { type: 'set' });
      const p = await store.setPaused('shadowed', true, 'config');
      assert.deepEqual({ origin: p.origin, spec: p.spec, paused: p.paused }, { origin: 'api', spec: { type: 'set' }, paused: true });

      // the file no longer has 'products' (the caller checked): an API sink takes the name, unpaused
      const created = await store.createSink('products', { type: 'string' });
      assert.deepEqual({ origin: created.origin, spec: created.spec, paused: created.paused }, { origin: 'api', spec: { type: 'string' }, paused: false });
      const [ev] = await store.events('products', 1);
      assert.deepEqual(ev!.detail, { spec: { type: 'string' }, replaced: { origin: 'config', paused: true } });
      assert.deepEqual((await store.events('idle')), []); // created unpaused: nothing changed
    } finally {
      await store.close();
    }
  });

  test('duplicate create: sink_exists; update of a missing sink: sink_not_found; nothing half-written', async () => {
    const url = await freshDatabase();
    const store = await StateStore.open({ url, log });
    try {
      await store.createSink('a', { type: 'set' });
      await assert.rejects(store.createSink('a', { type: 'list' }), isSluiceError('sink_exists', /"a" already exists/));
      assert.deepEqual((await store.getSink('a'))!.spec, { type: 'set' });
      await assert.rejects(store.updateSink('missing', { type: 'list' }), isSluiceError('sink_not_found', /"missing"/));
      assert.equal(await store.getSink('missing'), null);
      await assert.rejects(store.createSink('b', [] as unknown as Record<string, unknown>), isSluiceError('bad_sink_spec'));
      // only the one successful create left an event
      assert.deepEqual((await store.events()).map((e) => [e.sink, e.action]), [['a', 'created']]);
    } finally {
      await store.close();
    }
  });

  test('events: recorded with each change, newest first, per sink or all, limited', async () => {
    const url = await freshDatabase();
    const store = await StateStore.open({ url, log });
    try {
      await store.createSink('s1', { type: 'string', v: 1 });
      await store.createSink('s2', { type: 'string' });
      await store.updateSink('s1', { type: 'string', v: 2 });
      await store.setPaused('s1', true, 'api');
      await store.setPaused('s1', true, 'api'); // no change: no event
      await store.setPaused('s1', false, 'api');
      await store.deleteSink('s1');

      const s1 = await store.events('s1');
      assert.deepEqual(s1.map((e) => e.action), ['deleted', 'resumed', 'paused', 'updated', 'created']);
      for (const e of s1) {
        assert.equal(e.sink, 's1');
        assert.match(e.id, /^\d+$/);
        assert.match(e.at, ISO);
      }
      assert.ok(BigInt(s1[0]!.id) > BigInt(s1[1]!.id));
      assert.deepEqual(s1.at(-1)!.detail, { spec: { type: 'string', v: 1 } });
      assert.deepEqual(s1[3]!.detail, { before: { type: 'string', v: 1 }, after: { type: 'string', v: 2 } });
      assert.deepEqual(s1[0]!.detail, { origin: 'api', spec: { type: 'string', v: 2 }, paused: false });

      const all = await store.events();
      assert.equal(all.length, 6);
      assert.deepEqual(all.map((e) => e.sink), ['s1', 's1', 's1', 's1', 's2', 's1']);
      assert.deepEqual((await store.events(undefined, 2)).map((e) => e.action), ['deleted', 'resumed']);
      assert.deepEqual(await store.events('none'), []);
      await assert.rejects(store.events(undefined, 0), isSluiceError('bad_limit'));
    } finally {
      await store.close();
    }
  });

  test('two processes opening a fresh database together both succeed and migrate once', async () => {
    const url = await freshDatabase();
    const stores = await Promise.all([StateStore.open({ url, log }), StateStore.open({ url, log }), StateStore.open({ url, log })]);
    try {
      await stores[0]!.createSink('x', { type: 'set' });
      assert.equal((await stores[1]!.getSink('x'))!.name, 'x');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
    const check = await openRaw(url);
    try {
      const v = await check.query('select version from sluice.schema_migrations order by version');
      assert.deepEqual(v.rows.map((r: { version: number }) => r.version), Array.from({ length: LATEST_VERSION }, (_, i) => i + 1));
    } finally {
      await check.end();
    }
  });

  test('open waits for the migration lock another process holds', async () => {
    const url = await freshDatabase();
    const holder = await openRaw(url);
    try {
      // the same key as migrate(): class 'SLUI', hash of the schema name
      await holder.query(`select pg_advisory_lock(${0x534c5549}, hashtext('sluice'))`);
      let opened = false;
      const opening = StateStore.open({ url, log }).then((s) => {
        opened = true;
        return s;
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(opened, false, 'open() must wait while the lock is held');
      await holder.query(`select pg_advisory_unlock(${0x534c5549}, hashtext('sluice'))`);
      const store = await opening;
      await store.close();
    } finally {
      await holder.end();
    }
  });

  test('reopening keeps the data and changes nothing', async () => {
    const url = await freshDatabase();
    const first = await StateStore.open({ url, log });
    await first.createSink('kept', { type: 'zset', score: 'price' });
    await first.setPaused('kept', true, 'api');
    await first.close();
    await first.close(); // idempotent
    await assert.rejects(first.listSinks(), isSluiceError('state_closed'));

    const again = await StateStore.open({ url, log });
    try {
      const row = await again.getSink('kept');
      assert.deepEqual({ spec: row!.spec, paused: row!.paused }, { spec: { type: 'zset', score: 'price' }, paused: true });
      assert.equal((await again.events('kept')).length, 2);
    } finally {
      await again.close();
    }
  });

  test('a custom schema name holds its own state; a bad one is refused before connecting', async () => {
    const url = await freshDatabase();
    const custom = await StateStore.open({ url, schema: 'sluice_prod', log });
    const plain = await StateStore.open({ url, log });
    try {
      await custom.createSink('only_here', { type: 'set' });
      assert.equal(await plain.getSink('only_here'), null);
      assert.equal(custom.schema, 'sluice_prod');
    } finally {
      await custom.close();
      await plain.close();
    }
    const raw = await openRaw(url);
    try {
      const r = await raw.query(`select table_name from information_schema.tables where table_schema = 'sluice_prod' order by 1`);
      assert.deepEqual(r.rows.map((x: { table_name: string }) => x.table_name), stateTables().sort());
    } finally {
      await raw.end();
    }
    for (const bad of ['Sluice', 'sluice; drop schema public', 'a"b', '1x']) {
      await assert.rejects(StateStore.open({ url, schema: bad, log }), isSluiceError('state_schema_name'), bad);
    }
  });

  test('a database at a newer schema version than this Sluice knows is refused with a clear error', async () => {
    const url = await freshDatabase();
    await (await StateStore.open({ url, log })).close();
    const raw = await openRaw(url);
    try {
      await raw.query(`insert into sluice.schema_migrations (version, applied_at) values (${LATEST_VERSION + 41}, now())`);
    } finally {
      await raw.end();
    }
    await assert.rejects(
      StateStore.open({ url, log }),
      isSluiceError('state_schema_too_new', new RegExp(`at version ${LATEST_VERSION + 41}, this Sluice knows up to ${LATEST_VERSION}: upgrade Sluice`)),
    );
  });

  test('cannot connect: the error names host, port and database, never the password', async () => {
    const u = new URL(db.pg.url);
    u.password = 's3cr3t-pw';
    u.port = '1'; // nothing listens there
    u.pathname = '/nowhere';
    await assert.rejects(StateStore.open({ url: u.toString(), log }), (err: unknown) => {
      isSluiceError('state_connect', /127\.0\.0\.1:1\/nowhere/)(err);
      assert.doesNotMatch((err as Error).message, /s3cr3t/);
      return true;
    });
  });
});

async function openRaw(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}
