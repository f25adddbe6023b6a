// geo, hyperloglog and bitmap sinks, a stream trimmed by age, hash field mode selected by `field`,
// the check warning for a HyperLogLog that subscribes to deletes, and the keys each new command routes by.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sinkSchema, type SinkConfig } from '../../src/config/schema.js';
import { commandKeys } from '../../src/core/command.js';
import { sinkColumnUses } from '../../src/config/column-uses.js';
import { createSink, sinkWarnings } from '../../src/sinks/index.js';
import { createGeoSink, geohashScore } from '../../src/sinks/geo-sink.js';
import { createHyperLogLogSink } from '../../src/sinks/hyperloglog-sink.js';
import { bitOffset, createBitmapSink } from '../../src/sinks/bitmap-sink.js';
import { createStreamSink, minIdFor } from '../../src/sinks/stream-sink.js';
import { encodeEntry, REVERSE_INDEX_SCRIPT } from '../../src/sinks/reverse-index.js';
import { sinkOnlyCommands } from '../../src/redis/inspect.js';
import { planRow, redisTypeOf, unverifiableReason } from '../../src/verify/shared.js';
import { brief, del, insert, META, plan, read, table, update } from './support/sink-fixtures.js';

const MAX = 16 * 1024 * 1024;
const cfgOf = (c: Record<string, unknown>): SinkConfig => sinkSchema.parse({ name: 'x', tables: ['t'], ...c }) as SinkConfig;

describe('geo sink', () => {
  const stores = table('public.stores', [
    ['id', 'int4', true],
    ['city', 'text'],
    ['lon', 'float8'],
    ['lat', 'numeric'],
    ['name', 'text'],
  ], 'f');
  const storesD = { ...stores, replicaIdentity: 'd' as const };
  const berlin = { id: '1', city: 'berlin', lon: '13.361389', lat: '38.115556', name: 'Mitte' };
  const sink = createGeoSink({ name: 'near', key: 'stores:{city}', member: '{pk}', longitude: 'lon', latitude: 'lat' });

  test('insert, update, read: GEOADD key lon lat member; delete: ZREM key member', () => {
    for (const c of [insert(stores, berlin), read(stores, berlin), update(stores, { ...berlin, lon: '13.4' }, berlin, true)]) {
      const expected = c.action === 'update' ? '13.4' : '13.361389';
      assert.deepEqual(plan(sink, c).commands, [['GEOADD', 'stores:berlin', expected, '38.115556', '1']], c.action);
    }
    assert.deepEqual(plan(sink, del(stores, berlin, true)).commands, [['ZREM', 'stores:berlin', '1']]);
  });

  test('a row that moves to another key or member leaves its old place in the same plan', () => {
    assert.deepEqual(plan(sink, update(stores, { ...berlin, city: 'paris', lon: '2.35', lat: '48.85' }, berlin, true)).commands, [
      ['ZREM', 'stores:berlin', '1'],
      ['GEOADD', 'stores:paris', '2.35', '48.85', '1'],
    ]);
    // the primary key (the member) changes: the old identity Postgres sends ('K') is enough
    const byPk = createGeoSink({ name: 'near', key: 'stores', member: '{pk}', longitude: 'lon', latitude: 'lat' });
    assert.deepEqual(plan(byPk, update(storesD, { ...berlin, id: '2' }, { id: '1' })).commands, [
      ['ZREM', 'stores', '1'],
      ['GEOADD', 'stores', '13.361389', '38.115556', '2'],
    ]);
  });

  test('default identity with a key from another column: the reverse index removes the old place (ZREM)', () => {
    assert.deepEqual(brief(plan(sink, update(storesD, { ...berlin, city: 'paris' })).commands), [
      ['EVAL', '<script>', '2', 'sluice:idx:near', 'stores:paris', 'public.stores:1', 'public.stores:1', 'ZREM', encodeEntry('stores:paris', '1')],
      ['GEOADD', 'stores:paris', '13.361389', '38.115556', '1'],
    ]);
    assert.deepEqual(brief(plan(sink, del(storesD, { id: '1' })).commands), [['EVAL', '<script>', '1', 'sluice:idx:near', 'public.stores:1', '', 'ZREM', '']]);
  });

  test('coordinates out of range, not numbers, NULL or missing are failed messages with the reason', () => {
    for (const [values, re] of [
      [{ ...berlin, lon: '180.0001' }, /longitude column "lon" is "180.0001", out of range: Redis indexes longitudes from -180 to 180/],
      [{ ...berlin, lon: '-181' }, /longitude column "lon" is "-181", out of range/],
      [{ ...berlin, lat: '85.06' }, /latitude column "lat" is "85.06", out of range: Redis indexes latitudes from -85.05112878 to 85.05112878/],
      [{ ...berlin, lat: '-89' }, /latitude column "lat" is "-89", out of range/],
      [{ ...berlin, lat: 'NaN' }, /latitude column "lat" is "NaN", not a number/],
      [{ ...berlin, lon: 'Infinity' }, /longitude column "lon" is "Infinity", not a number/],
      [{ ...berlin, lon: null }, /longitude column "lon" is NULL/],
    ] as const) {
      const r = plan(sink, insert(stores, values));
      assert.deepEqual(r.commands, [], JSON.stringify(values));
      assert.match(r.failures[0] ?? '', re);
    }
    // the limits themselves are accepted, as GEOADD accepts them
    assert.equal(plan(sink, insert(stores, { ...berlin, lon: '-180', lat: '85.05112878' })).failures.length, 0);
    const missing = plan(createGeoSink({ name: 'g', key: 'g', member: '{pk}', longitude: 'lng', latitude: 'lat' }), insert(stores, berlin));
    assert.match(missing.failures[0]!, /the longitude column "lng" is not in table public.stores/);
  });

  test('route member and key, transform value as the member, TTL', () => {
    const ttl = createGeoSink({ name: 'near', key: 'stores:{city}', member: '{pk}', longitude: 'lon', latitude: 'lat', expireMs: 9 });
    assert.deepEqual(plan(ttl, insert(stores, berlin), { route: { key: 'k', member: 'm' } }).commands, [
      ['GEOADD', 'k', '13.361389', '38.115556', 'm'],
      ['PEXPIRE', 'k', '9'],
    ]);
    assert.deepEqual(plan(sink, insert(stores, berlin), { value: 'Mitte' }).commands, [['GEOADD', 'stores:berlin', '13.361389', '38.115556', 'Mitte']]);
  });

  test('geohashScore is the score GEOADD gives (values read back from Redis 7)', () => {
    // GEOADD k 13.361389 38.115556 Palermo; ZSCORE k Palermo → 3479099956230698 (Redis docs' example)
    assert.equal(geohashScore(13.361389, 38.115556), 3479099956230698);
    assert.equal(geohashScore(15.087269, 37.502669), 3479447370796909);
    assert.equal(geohashScore(-180, -85.05112878), 0);
    assert.equal(geohashScore(180, 85.05112878), 13510798882111488);
  });
});

describe('hyperloglog sink', () => {
  const visits = table('public.visits', [
    ['id', 'int4', true],
    ['day', 'text'],
    ['user_id', 'int8'],
  ]);
  const v = { id: '1', day: '2026-11-22', user_id: '42' };
  const sink = createHyperLogLogSink({ name: 'uniq', key: 'visitors:{day}', element: '{user_id}' });

  test('insert, update, read: PFADD key element', () => {
    for (const c of [insert(visits, v), read(visits, v), update(visits, { ...v, user_id: '43' }, { id: '1' })]) {
      assert.deepEqual(plan(sink, c).commands, [['PFADD', 'visitors:2026-11-22', c.action === 'update' ? '43' : '42']]);
    }
  });

  test('a delete plans nothing and fails nothing: a HyperLogLog cannot forget', () => {
    assert.deepEqual(plan(sink, del(visits, { id: '1' })), { commands: [], failures: [] });
    assert.deepEqual(plan(sink, insert(visits, v), { route: { action: 'delete' } }), { commands: [], failures: [] });
  });

  test('route key, transform value as the element, TTL; a NULL element fails', () => {
    const ttl = createHyperLogLogSink({ name: 'uniq', key: 'visitors:{day}', element: '{user_id}', expireMs: 86_400_000 });
    assert.deepEqual(plan(ttl, insert(visits, v), { value: 'e', route: { key: 'k' } }).commands, [
      ['PFADD', 'k', 'e'],
      ['PEXPIRE', 'k', '86400000'],
    ]);
    const r = plan(sink, insert(visits, { ...v, user_id: null }));
    assert.deepEqual(r.commands, []);
    assert.match(r.failures[0]!, /column "user_id" is NULL/);
  });

  test('default actions are insert and update; `sluice check` warns when delete is among them', () => {
    const dflt = cfgOf({ type: 'hyperloglog', key: 'k', element: '{pk}' });
    assert.deepEqual(dflt.actions, ['insert', 'update']);
    assert.deepEqual(sinkWarnings(dflt), []);
    const withDelete = cfgOf({ type: 'hyperloglog', key: 'k', element: '{pk}', actions: ['insert', 'delete'] });
    const w = sinkWarnings(withDelete);
    assert.equal(w.length, 1);
    assert.equal(w[0]!.option, 'actions');
    assert.match(w[0]!.message, /cannot forget an element: a delete changes nothing/);
  });

  test('no TRUNCATE pattern (the count keeps what it has seen), and verify does not apply', () => {
    const s = createSink(cfgOf({ type: 'hyperloglog', key: 'visitors:{day}', element: '{pk}' }));
    assert.equal(s.truncatePattern, undefined);
    assert.match(unverifiableReason(cfgOf({ type: 'hyperloglog', key: 'k', element: '{pk}' })) ?? '', /estimate of distinct elements/);
  });
});

describe('bitmap sink', () => {
  const sessions = table('public.sessions', [
    ['id', 'int4', true],
    ['day', 'text'],
    ['user_id', 'int8'],
    ['ratio', 'numeric'],
  ], 'f');
  const sessionsD = { ...sessions, replicaIdentity: 'd' as const };
  const s1 = { id: '1', day: 'mon', user_id: '42', ratio: '0.5' };
  const sink = createBitmapSink({ name: 'active', key: 'active:{day}', offset: 'user_id' });

  test('insert, update, read: SETBIT key offset 1; delete: SETBIT key offset 0', () => {
    for (const c of [insert(sessions, s1), read(sessions, s1), update(sessions, s1, s1, true)]) {
      assert.deepEqual(plan(sink, c).commands, [['SETBIT', 'active:mon', '42', '1']], c.action);
    }
    assert.deepEqual(plan(sink, del(sessions, s1, true)).commands, [['SETBIT', 'active:mon', '42', '0']]);
  });

  test('a move (key or offset changed) clears the old bit first', () => {
    assert.deepEqual(plan(sink, update(sessions, { ...s1, user_id: '7' }, s1, true)).commands, [
      ['SETBIT', 'active:mon', '42', '0'],
      ['SETBIT', 'active:mon', '7', '1'],
    ]);
    assert.deepEqual(plan(sink, update(sessions, { ...s1, day: 'tue' }, s1, true)).commands, [
      ['SETBIT', 'active:mon', '42', '0'],
      ['SETBIT', 'active:tue', '42', '1'],
    ]);
    // offset by primary key: the old identity ('K') is enough
    const byPk = createBitmapSink({ name: 'active', key: 'seen', offset: 'id' });
    assert.deepEqual(plan(byPk, update(sessionsD, { ...s1, id: '5' }, { id: '1' })).commands, [
      ['SETBIT', 'seen', '1', '0'],
      ['SETBIT', 'seen', '5', '1'],
    ]);
    assert.deepEqual(plan(byPk, del(sessionsD, { id: '5' })).commands, [['SETBIT', 'seen', '5', '0']]);
  });

  test('default identity with the offset from another column: the reverse index clears the old bit', () => {
    assert.deepEqual(brief(plan(sink, update(sessionsD, { ...s1, user_id: '7' })).commands), [
      ['EVAL', '<script>', '2', 'sluice:idx:active', 'active:mon', 'public.sessions:1', 'public.sessions:1', 'SETBIT', encodeEntry('active:mon', '7')],
      ['SETBIT', 'active:mon', '7', '1'],
    ]);
    assert.deepEqual(brief(plan(sink, del(sessionsD, { id: '1' })).commands), [['EVAL', '<script>', '1', 'sluice:idx:active', 'public.sessions:1', '', 'SETBIT', '']]);
    assert.match(REVERSE_INDEX_SCRIPT, /redis\.call\('SETBIT', key, string\.sub\(prev, c \+ n \+ 1\), 0\)/);
  });

  test('a negative, fractional, too large, NULL or non-numeric offset is a failed message', () => {
    for (const [offset, re] of [
      ['-1', /offset column "user_id" is "-1", negative/],
      ['4294967296', /offset column "user_id" is "4294967296", too large; a bitmap offset is an integer from 0 to 4294967295/],
      ['1.5', /is "1.5", not a whole number/],
      ['abc', /is "abc", not a whole number/],
      [null, /offset column "user_id" is NULL/],
    ] as const) {
      const r = plan(sink, insert(sessions, { ...s1, user_id: offset }));
      assert.deepEqual(r.commands, [], String(offset));
      assert.match(r.failures[0] ?? '', re);
    }
    assert.equal(bitOffset('4294967295', 'offset'), '4294967295');
    assert.equal(bitOffset('7.000', 'offset'), '7');
    assert.equal(bitOffset('-0', 'offset'), '0');
    assert.equal(bitOffset('007', 'offset'), '7');
  });

  test('an old offset that was never valid is not cleared (it was never set)', () => {
    assert.deepEqual(plan(sink, update(sessions, s1, { ...s1, user_id: '-3' }, true)).commands, [['SETBIT', 'active:mon', '42', '1']]);
  });

  test('transform value as the offset, checked the same way; route key; TTL', () => {
    const ttl = createBitmapSink({ name: 'active', key: 'active:{day}', offset: 'user_id', expireMs: 5 });
    assert.deepEqual(plan(ttl, insert(sessions, s1), { value: '9', route: { key: 'k' } }).commands, [
      ['SETBIT', 'k', '9', '1'],
      ['PEXPIRE', 'k', '5'],
    ]);
    assert.match(plan(sink, insert(sessions, s1), { value: '-2' }).failures[0]!, /negative/);
  });
});

describe('stream sink: max_age_ms', () => {
  // META's commit time, 2025-11-22T11:11:03.123456Z, in Unix milliseconds
  const commitMs = 1_763_809_863_123;

  test('alone: XADD key MINID ~ <commit time − max_age_ms> *', () => {
    const sink = createStreamSink({ name: 'ev', key: 'ev', maxAgeMs: 300, maxValueBytes: MAX });
    const cmds = plan(sink, insert(table('public.t', [['id', 'int4', true]]), { id: '1' })).commands;
    assert.equal(cmds.length, 1);
    assert.deepEqual(cmds[0]!.slice(0, 6), ['XADD', 'ev', 'MINID', '~', String(commitMs - 300), '*']);
  });

  test('with max_length: XADD trims by length, then XTRIM MINID in the same plan (one strategy per XADD)', () => {
    const sink = createStreamSink({ name: 'ev', key: 'ev', maxLength: 100, maxAgeMs: 60_000, expireMs: 10, maxValueBytes: MAX });
    const cmds = plan(sink, del(table('public.t', [['id', 'int4', true]]), { id: '1' })).commands;
    assert.deepEqual(cmds.map((c) => c.slice(0, 6)), [
      ['XADD', 'ev', 'MAXLEN', '~', '100', '*'],
      ['XTRIM', 'ev', 'MINID', '~', String(commitMs - 60_000)],
      ['PEXPIRE', 'ev', '10'],
    ]);
  });

  test('"now" is the commit time: the same message always plans the same MINID; before 1970 it is 0', () => {
    assert.equal(minIdFor(META, 1000), String(commitMs - 1000));
    assert.equal(minIdFor({ ...META, commitTimeMicros: -946_684_800_000_000n }, 1), '0');
    const cfg = cfgOf({ type: 'stream', max_age_ms: 5000 });
    assert.ok(cfg.type === 'stream' && cfg.max_age_ms === 5000);
    const cmd = plan(createSink(cfg), insert(table('public.t', [['id', 'int4', true]]), { id: '1' })).commands[0]!;
    assert.deepEqual(cmd.slice(2, 5), ['MINID', '~', String(commitMs - 5000)]);
  });
});

describe('hash sink: `field` selects field mode', () => {
  test('field without mode is field mode; mode: row with field is refused; value alone is refused', () => {
    const cfg = cfgOf({ type: 'hash', key: 'users', field: '{pk}' });
    assert.ok(cfg.type === 'hash' && cfg.mode === 'field' && cfg.value === 'record');
    const products = table('public.t', [['id', 'int4', true], ['name', 'text']]);
    assert.deepEqual(plan(createSink(cfg), insert(products, { id: '1', name: 'a' })).commands, [['HSET', 'users', '1', '{"id":1,"name":"a"}']]);
    const row = cfgOf({ type: 'hash' });
    assert.ok(row.type === 'hash' && row.mode === 'row');
    assert.throws(() => cfgOf({ type: 'hash', mode: 'row', field: '{pk}' }), /only valid with mode: field/);
    assert.throws(() => cfgOf({ type: 'hash', value: 'message' }), /only valid in field mode: give `field`/);
    assert.ok(cfgOf({ type: 'hash', field: '{pk}', value: 'message' }).type === 'hash');
  });
});

describe('configuration of the new types', () => {
  test('required options and column names', () => {
    assert.throws(() => cfgOf({ type: 'geo', key: 'k', member: '{pk}', longitude: 'lon' }), /latitude/);
    assert.throws(() => cfgOf({ type: 'geo', key: 'k', member: '{pk}', longitude: 'lon', latitude: '{lat}' }), /must be a column name/);
    assert.throws(() => cfgOf({ type: 'bitmap', key: 'k' }), /offset/);
    assert.throws(() => cfgOf({ type: 'hyperloglog', key: 'k' }), /element/);
    assert.throws(() => cfgOf({ type: 'stream', max_age_ms: 0 }), /max_age_ms/);
  });

  test('sluice check reads the columns they name (templates, coordinates, offset)', () => {
    const uses = (c: Record<string, unknown>) => sinkColumnUses(cfgOf(c)).map((u) => `${u.option}:${u.column}:${u.template}`);
    assert.deepEqual(uses({ type: 'geo', key: 'g:{city}', member: '{pk}', longitude: 'lon', latitude: 'lat' }), ['key:city:true', 'longitude:lon:false', 'latitude:lat:false']);
    assert.deepEqual(uses({ type: 'hyperloglog', key: 'h', element: '{user_id}' }), ['element:user_id:true']);
    assert.deepEqual(uses({ type: 'bitmap', key: 'b:{day}', offset: 'user_id' }), ['key:day:true', 'offset:user_id:false']);
  });

  test('the ACL check asks for the commands only the connection\'s sinks need', () => {
    const names = (cs: Record<string, unknown>[]) => sinkOnlyCommands(cs.map(cfgOf)).map((c) => c[0]);
    assert.deepEqual(names([{ type: 'string' }, { type: 'stream', max_length: 5 }]), []);
    assert.deepEqual(
      names([
        { type: 'geo', key: 'k', member: '{pk}', longitude: 'a', latitude: 'b' },
        { type: 'hyperloglog', key: 'k', element: '{pk}' },
        { type: 'bitmap', key: 'k', offset: 'id' },
        { type: 'stream', max_length: 5, max_age_ms: 5 },
        { type: 'bitmap', key: 'k2', offset: 'id' },
      ]),
      ['GEOADD', 'PFADD', 'SETBIT', 'XTRIM'],
    );
  });
});

describe('verify: what geo and bitmap sinks should hold', () => {
  const t = table('public.p', [['id', 'int4', true], ['lon', 'float8'], ['lat', 'float8']]);
  test('a geo row is a sorted-set member scored by its geohash; a bitmap row a set bit', () => {
    const geo = cfgOf({ type: 'geo', key: 'g', member: '{pk}', longitude: 'lon', latitude: 'lat' });
    const r = planRow(createSink(geo), geo, t, ['1', '13.361389', '38.115556']);
    assert.deepEqual(r.expectations, [{ kind: 'zmember', key: 'g', member: '1', score: '3479099956230698' }]);
    assert.equal(redisTypeOf(geo), 'zset');
    const bm = cfgOf({ type: 'bitmap', key: 'b', offset: 'id' });
    assert.deepEqual(planRow(createSink(bm), bm, t, ['3', null, null]).expectations, [{ kind: 'bit', key: 'b', offset: '3' }]);
    assert.equal(redisTypeOf(bm), 'string');
  });
});

describe('Redis Cluster routing: the keys of the new commands', () => {
  test('commandKeys names the key of GEOADD, PFADD, SETBIT and XTRIM (and of XADD with MINID)', () => {
    assert.deepEqual(commandKeys(['GEOADD', 'stores:{eu}', '13.4', '52.5', '1']), ['stores:{eu}']);
    assert.deepEqual(commandKeys(['PFADD', 'visitors:mon', '42']), ['visitors:mon']);
    assert.deepEqual(commandKeys(['SETBIT', 'active:mon', '42', '1']), ['active:mon']);
    assert.deepEqual(commandKeys(['XTRIM', 'ev', 'MINID', '~', '1']), ['ev']);
    assert.deepEqual(commandKeys(['XADD', 'ev', 'MINID', '~', '1', '*', 'a', 'b']), ['ev']);
    assert.deepEqual(commandKeys(['ZREM', 'stores:{eu}', '1']), ['stores:{eu}']);
  });
});
