import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Change } from '../../src/core/change.js';
import { messageJson, recordJson, type MessageMeta } from '../../src/core/render.js';
import type { PlanExtras, PlanOutput, RedisCommand, Sink } from '../../src/sinks/sink.js';
import { createStringSink, type StringSinkOptions } from '../../src/sinks/string-sink.js';
import { T, deleteChange, insertChange, table, tuple, updateChange } from './support/tables.js';

const META: MessageMeta = { commitLsn: 0x16b3748n, commitTimeMicros: 817_125_063_123_456n, sinkName: 'products-cache' };
const MAX = 1024 * 1024;

const products = table('public', 'products', [
  ['id', T.int4, true],
  ['name', T.text],
  ['price', T.numeric],
  ['note', T.text],
]);
const full = table('public', 'products', [
  ['id', T.int4, true],
  ['name', T.text],
  ['price', T.numeric],
  ['note', T.text],
], { replicaIdentity: 'f' });
const lamp = { id: '1', name: 'Lamp', price: '9.50', note: null };

function sink(opts: Partial<StringSinkOptions> = {}): Sink {
  return createStringSink({ name: 'products-cache', key: 'sluice:{table}:{pk}', value: 'record', maxValueBytes: MAX, ...opts });
}

function plan(s: Sink, change: Change, extras?: PlanExtras): { commands: RedisCommand[]; failures: string[] } {
  const commands: RedisCommand[] = [];
  const failures: string[] = [];
  const out: PlanOutput = {
    command: (c) => commands.push(c),
    fail: (c, reason) => {
      assert.equal(c, change, 'fail() receives the change that failed');
      failures.push(reason);
    },
  };
  s.plan(change, META, out, extras);
  return { commands, failures };
}

function fails(s: Sink, change: Change, reason: RegExp): void {
  const { commands, failures } = plan(s, change);
  assert.deepEqual(commands, [], 'a failed message plans no command');
  assert.equal(failures.length, 1);
  assert.match(failures[0]!, reason);
}

describe('string sink', () => {
  test('has its name and type', () => {
    const s = sink();
    assert.equal(s.name, 'products-cache');
    assert.equal(s.type, 'string');
  });

  test('insert: SET key record', () => {
    const change = insertChange(products, lamp);
    const { commands, failures } = plan(sink(), change);
    assert.deepEqual(failures, []);
    assert.deepEqual(commands, [['SET', 'sluice:products:1', recordJson(products, change.row)]]);
    assert.deepEqual(JSON.parse(commands[0]![2]!), { id: 1, name: 'Lamp', price: 9.5, note: null });
  });

  test('read (backfill) is a SET too', () => {
    const change: Change = { ...insertChange(products, lamp), action: 'read' };
    assert.deepEqual(plan(sink(), change).commands, [['SET', 'sluice:products:1', recordJson(products, change.row)]]);
  });

  test('value: message stores the §3 envelope', () => {
    const change = insertChange(products, lamp, 4);
    const { commands } = plan(sink({ value: 'message' }), change);
    assert.deepEqual(commands, [['SET', 'sluice:products:1', messageJson(change, META)]]);
    const msg = JSON.parse(commands[0]![2]!) as { action: string; metadata: { sink: { name: string }; commit_idx: number } };
    assert.equal(msg.action, 'insert');
    assert.equal(msg.metadata.commit_idx, 4);
    assert.deepEqual(msg.metadata.sink, { name: 'products-cache' });
  });

  test('expireMs adds PX', () => {
    const { commands } = plan(sink({ expireMs: 60_000 }), insertChange(products, lamp));
    assert.deepEqual(commands, [['SET', 'sluice:products:1', recordJson(products, tuple(products, lamp)), 'PX', '60000']]);
  });

  test('delete: DEL key (from the identity columns)', () => {
    const { commands, failures } = plan(sink({ expireMs: 1000 }), deleteChange(products, { id: '1' }));
    assert.deepEqual(failures, []);
    assert.deepEqual(commands, [['DEL', 'sluice:products:1']]);
  });

  test('update with unchanged key: only SET, no DEL', () => {
    const { commands } = plan(sink(), updateChange(products, { ...lamp, name: 'Desk Lamp' }));
    assert.deepEqual(commands, [['SET', 'sluice:products:1', recordJson(products, tuple(products, { ...lamp, name: 'Desk Lamp' }))]]);
    // an old tuple with the same key (REPLICA IDENTITY FULL sends it on every update)
    const same = plan(sink(), updateChange(full, { ...lamp, name: 'Desk Lamp' }, lamp, 'O'));
    assert.deepEqual(same.commands.map((c) => c[0]), ['SET']);
  });

  test("update that changed the key ('K' old tuple): DEL old then SET new", () => {
    const change = updateChange(products, { ...lamp, id: '2' }, { id: '1' }, 'K');
    const { commands, failures } = plan(sink(), change);
    assert.deepEqual(failures, []);
    assert.deepEqual(commands, [
      ['DEL', 'sluice:products:1'],
      ['SET', 'sluice:products:2', recordJson(products, change.row)],
    ]);
  });

  test("update that changed a key column read by the template, with the whole old row ('O')", () => {
    const s = sink({ key: 'p:{name}' });
    const { commands } = plan(s, updateChange(full, { ...lamp, name: 'Desk Lamp' }, lamp, 'O'));
    assert.deepEqual(commands.map((c) => c.slice(0, 2)), [['DEL', 'p:Lamp'], ['SET', 'p:Desk Lamp']]);
  });

  test("no DEL when the old key cannot be rendered ('K' without the template's column)", () => {
    const s = sink({ key: 'p:{name}' });
    const { commands, failures } = plan(s, updateChange(products, { ...lamp, id: '2' }, { id: '1' }, 'K'));
    assert.deepEqual(failures, []);
    assert.deepEqual(commands.map((c) => c.slice(0, 2)), [['SET', 'p:Lamp']]);
  });

  test('a route key replaces the template and disables the move DEL', () => {
    const change = updateChange(products, { ...lamp, id: '2' }, { id: '1' }, 'K');
    const { commands } = plan(sink(), change, { route: { key: 'custom' } });
    assert.deepEqual(commands.map((c) => c.slice(0, 2)), [['SET', 'custom']]);
  });

  test('route action and expire_ms, transform value', () => {
    const insert = insertChange(products, lamp);
    assert.deepEqual(plan(sink(), insert, { route: { action: 'delete' } }).commands, [['DEL', 'sluice:products:1']]);
    assert.deepEqual(plan(sink({ expireMs: 5 }), insert, { route: { expire_ms: 10 } }).commands, [['SET', 'sluice:products:1', recordJson(products, insert.row), 'PX', '10']]);
    assert.deepEqual(plan(sink(), insert, { value: 'Lamp' }).commands, [['SET', 'sluice:products:1', 'Lamp']]);
  });

  test('an empty key is a failed message, not a command', () => {
    fails(sink({ key: '{name}' }), insertChange(products, { ...lamp, name: '' }), /empty/);
  });

  test('a key over 512 bytes fails; exactly 512 is fine', () => {
    fails(sink({ key: '{name}' }), insertChange(products, { ...lamp, name: 'x'.repeat(513) }), /513 bytes; the limit is 512/);
    assert.deepEqual(plan(sink({ key: '{name}' }), insertChange(products, { ...lamp, name: 'x'.repeat(512) })).failures, []);
  });

  test('the key limit counts UTF-8 bytes, not characters', () => {
    // 171 × '€' is 513 bytes in 171 characters; 170 × '€' is 510 bytes
    fails(sink({ key: '{name}' }), insertChange(products, { ...lamp, name: '€'.repeat(171) }), /513 bytes/);
    assert.deepEqual(plan(sink({ key: '{name}' }), insertChange(products, { ...lamp, name: '€'.repeat(170) })).failures, []);
    // 257 × 'é' is 514 bytes
    fails(sink({ key: '{name}' }), insertChange(products, { ...lamp, name: 'é'.repeat(257) }), /514 bytes/);
    // 128 emoji is 512 bytes (256 UTF-16 units)
    assert.deepEqual(plan(sink({ key: '{name}' }), insertChange(products, { ...lamp, name: '😀'.repeat(128) })).failures, []);
    fails(sink({ key: '{name}' }), insertChange(products, { ...lamp, name: '😀'.repeat(128) + 'x' }), /513 bytes/);
  });

  test('a too-long key on delete fails too', () => {
    fails(sink({ key: '{table}:{pk}:' + 'k'.repeat(600) }), deleteChange(products, { id: '1' }), /bytes; the limit is 512/);
  });

  test('a value over maxValueBytes fails', () => {
    const change = insertChange(products, { ...lamp, name: 'x'.repeat(200) });
    const size = Buffer.byteLength(recordJson(products, change.row));
    fails(sink({ maxValueBytes: size - 1 }), change, new RegExp(`${size} bytes, over max_value_bytes \\(${size - 1}\\)`));
    assert.deepEqual(plan(sink({ maxValueBytes: size }), change).failures, []);
  });

  test('the value limit also stops the move DEL', () => {
    const change = updateChange(products, { ...lamp, id: '2', name: 'x'.repeat(200) }, { id: '1' }, 'K');
    fails(sink({ maxValueBytes: 100 }), change, /over max_value_bytes/);
  });

  test('a NULL key column fails the message', () => {
    fails(sink({ key: 'p:{note}' }), insertChange(products, lamp), /"note" is NULL/);
  });

  test('a key column the table does not have fails the message', () => {
    fails(sink({ key: 'p:{sku}' }), insertChange(products, lamp), /"sku" is not in table public\.products/);
  });

  test('unchanged TOAST without the old row fails (never stored as a placeholder)', () => {
    const change = updateChange(products, { ...lamp, note: undefined });
    fails(sink(), change, /"note" is an unchanged TOASTed value/);
    fails(sink({ value: 'message' }), change, /"note"/);
  });

  test('unchanged TOAST does not matter for delete', () => {
    assert.deepEqual(plan(sink(), deleteChange(products, { id: '1' })).failures, []);
  });

  test('truncatePattern is the key prefix, or null', () => {
    assert.equal(sink().truncatePattern?.(products), 'sluice:products:');
    assert.equal(sink({ key: '{pk}' }).truncatePattern?.(products), null);
  });
});
