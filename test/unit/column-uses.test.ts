import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sinkColumnUses } from '../../src/config/column-uses.js';
import { columnProblems, type ColumnRow } from '../../src/pg/source-setup.js';

const col = (name: string, over: Partial<ColumnRow> = {}): ColumnRow => ({ name, type: 'integer', numeric: true, generated: false, ...over });

describe('the columns a sink names', () => {
  test('placeholders of every template and a zset score, each once; literal braces and {pk} name nothing', () => {
    assert.deepEqual(sinkColumnUses({ type: 'zset', key: 'z:{{{region}}}:{table}', member: '{sku}:{sku}', score: 'price' }), [
      { option: 'key', column: 'region', template: true },
      { option: 'member', column: 'sku', template: true },
      { option: 'score', column: 'price', template: false },
    ]);
    assert.deepEqual(sinkColumnUses({ type: 'hash', key: 'sluice:{table}:{pk}', mode: 'field', field: '{id}' }), [{ option: 'field', column: 'id', template: true }]);
    assert.deepEqual(sinkColumnUses({ type: 'pubsub', channel: 'c:{room}' }), [{ option: 'channel', column: 'room', template: true }]);
    assert.deepEqual(sinkColumnUses({ type: 'string', key: 'bad:{' }), [], 'a template that does not parse is the schema\'s to report');
  });

  test('checked against each table of the sink', () => {
    const state = {
      sinkTables: new Map([['sinks[0]', ['public.a', 'public.b']]]),
      columns: new Map([
        ['public.a', [col('id'), col('product_id'), col('label', { type: 'text', numeric: false })]],
        ['public.b', [col('id'), col('total', { generated: true })]],
      ]),
    };
    const sink = { name: 's', path: 'sinks[0]', tables: ['public.*'], columns: sinkColumnUses({ type: 'zset', key: 'k:{prodct_id}', member: '{total}', score: 'label' }) };
    assert.deepEqual(columnProblems(state, sink).map((p) => `${p.severity} ${p.option}: ${p.message}`), [
      'error key: table public.a has no column "prodct_id"; did you mean "product_id"?',
      'error member: table public.a has no column "total" (its columns: id, product_id, label)',
      'warn score: column "label" of table public.a is text, not a number: each row whose value is not a number becomes a failed message',
      'error key: table public.b has no column "prodct_id" (its columns: id)',
      'error member: column "total" of table public.b is a generated column, which logical replication does not send: use the columns it is computed from',
      'error score: table public.b has no column "label" (its columns: id)',
    ]);
    // a route may give the key itself, an API sink is fixed through the API: warnings, start goes on
    assert.ok(columnProblems(state, { ...sink, functions: ['route'] }).every((p) => p.severity === 'warn'));
    assert.ok(columnProblems(state, { ...sink, api: true }).every((p) => p.severity === 'warn'));
    assert.match(columnProblems(state, { ...sink, api: true })[0]!.message, /PATCH \/api\/sinks\/s, or delete it\)$/);
  });
});
