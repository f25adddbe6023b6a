import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SluiceClient, type ReadOptions } from '../../src/client/client.js';
import { SluiceClientError } from '../../src/client/errors.js';
import { later, reaches, readPosition, timeoutError, toLsn } from '../../src/client/fence.js';
import { parseDefinition, renderFromDefinition, resolveTable, type SinkDefinition } from '../../src/client/keys.js';
import { TemplateCache } from '../../src/core/template.js';
import { parseLsn } from '../../src/core/lsn.js';
import { T, table, tuple } from './support/tables.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SluiceClientError, `expected a SluiceClientError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('did not throw');
}

describe('sluice/client: the fence rule', () => {
  test('an LSN as pg_current_wal_lsn() prints it, or a bigint; anything else is bad_lsn', () => {
    assert.equal(toLsn('16/B374D848'), 0x16b374d848n);
    assert.equal(toLsn(' 0/0 '), 0n);
    assert.equal(toLsn(42n), 42n);
    assert.equal(code(() => toLsn('nope')), 'bad_lsn');
    assert.equal(code(() => toLsn('16/B374D848:3')), 'bad_lsn');
    assert.equal(code(() => toLsn(-1n)), 'bad_lsn');
    assert.equal(code(() => toLsn(1 as unknown as string)), 'bad_lsn');
  });

  test('<LSN> covers what committed before it; <LSN>:<idx> only what committed before LSN (as /api/wait)', () => {
    const at = (t: string) => readPosition(t);
    assert.equal(reaches(at('0/100'), parseLsn('0/100')), true, 'the position is past a commit at 0/100');
    assert.equal(reaches(at('0/100'), parseLsn('0/101')), false);
    assert.equal(reaches(at('0/100:5'), parseLsn('0/100')), false, 'a large transaction at 0/100 is not done');
    assert.equal(reaches(at('0/100:5'), parseLsn('0/FF')), true);
    assert.equal(reaches(null, 0n), false, 'no position yet: nothing is known to be applied');
  });

  test('published positions: garbage is ignored, and a late one never moves a position back', () => {
    assert.equal(readPosition('garbage'), null);
    assert.equal(readPosition(null), null);
    const a = readPosition('0/200');
    const b = readPosition('0/200:3');
    const c = readPosition('0/1FF');
    assert.equal(later(a, c), a);
    assert.equal(later(c, a), a);
    assert.equal(later(b, a), b, '0/200:3 is after everything before 0/200');
    assert.equal(later(null, a), a);
    assert.equal(later(a, null), a);
  });

  test('the timeout error names the sinks behind, with their positions', () => {
    const err = timeoutError(parseLsn('0/300'), 250, new Map([['prices', readPosition('0/400')], ['feed', readPosition('0/2FF')], ['new', null]]));
    assert.equal(err.code, 'timeout');
    assert.deepEqual(err.sinks, ['feed', 'new']);
    assert.deepEqual(err.positions, { prices: '0/400', feed: '0/2FF', new: null });
    assert.match(err.message, /0\/300 not applied within 250 ms by "feed" \(at 0\/2FF\), "new" \(at no position yet\)/);
  });
});

const products: SinkDefinition = {
  name: 'products',
  type: 'string',
  tables: ['products'],
  templates: { key: 'product:{id}' },
  primary_keys: { 'public.products': ['id'] },
};

describe('sluice/client: keys rendered as the sinks render them', () => {
  test('columns, {pk} joined with ":", {schema}, {table}, literal braces (hash tags)', () => {
    assert.equal(renderFromDefinition(products, { id: 7, name: 'Lamp' }), 'product:7');
    const lines: SinkDefinition = {
      name: 'lines',
      type: 'hash',
      tables: ['shop.order_lines'],
      templates: { key: 'sluice:{schema}.{table}:{pk}', field: '{line}', tagged: 'order:{{{order_id}}}:{line}' },
      primary_keys: { 'shop.order_lines': ['order_id', 'line'] },
    };
    const row = { order_id: 42n, line: 3, note: null };
    assert.equal(renderFromDefinition(lines, row), 'sluice:shop.order_lines:42:3');
    assert.equal(renderFromDefinition(lines, row, { template: 'field' }), '3');
    assert.equal(renderFromDefinition(lines, row, { template: 'tagged' }), 'order:{42}:3');
  });

  test('values: strings as they are, numbers, bigints and booleans as Sluice writes them', () => {
    const def: SinkDefinition = { ...products, templates: { key: '{a}|{b}|{c}|{d}|{e}' } };
    assert.equal(renderFromDefinition(def, { a: 'x:y', b: 12.5, c: 9007199254740993n, d: true, e: false }), 'x:y|12.5|9007199254740993|true|false');
  });

  test('rows the sink would not write a key for: bad_row, saying which column', () => {
    assert.equal(code(() => renderFromDefinition(products, { name: 'no id' })), 'bad_row');
    assert.equal(code(() => renderFromDefinition(products, { id: null })), 'bad_row');
    assert.throws(() => renderFromDefinition(products, { id: new Date() }), /column "id" is a Date: pass it as the text/);
    assert.throws(() => renderFromDefinition(products, { id: { a: 1 } }), /is an object/);
    assert.equal(code(() => renderFromDefinition(products, null as unknown as Record<string, unknown>)), 'bad_row');
    const noPk: SinkDefinition = { ...products, templates: { key: 'p:{pk}' }, primary_keys: {} };
    assert.throws(() => renderFromDefinition(noPk, { id: 1 }), /knows no primary key of public.products/);
  });

  test('which table: the only one, else `table` (checked, schema wildcards too)', () => {
    const multi: SinkDefinition = { ...products, tables: ['products', 'sales.*'], templates: { key: '{table}:{pk}' }, primary_keys: { 'public.products': ['id'], 'sales.orders': ['no'] } };
    assert.equal(code(() => renderFromDefinition(multi, { id: 1 })), 'table_required');
    assert.equal(renderFromDefinition(multi, { id: 1 }, { table: 'products' }), 'products:1');
    assert.equal(renderFromDefinition(multi, { no: 9 }, { table: 'sales.orders' }), 'orders:9');
    assert.equal(code(() => renderFromDefinition(multi, { id: 1 }, { table: 'public.other' })), 'table_not_found');
    assert.deepEqual(resolveTable(products, 'public.products'), { schema: 'public', name: 'products', qualified: 'public.products' });
    assert.equal(code(() => resolveTable({ ...products, tables: ['sales.*'] }, undefined)), 'table_required');
  });

  test('a template the sink does not have: no_template, listing those it has', () => {
    assert.throws(() => renderFromDefinition(products, { id: 1 }, { template: 'member' }), (err: unknown) => err instanceof SluiceClientError && err.code === 'no_template' && /it has: key/.test(err.message));
  });

  test('published definitions are checked before use', () => {
    assert.deepEqual(parseDefinition(JSON.stringify(products)), products);
    assert.equal(parseDefinition('nope'), null);
    assert.equal(parseDefinition('{"name":"x"}'), null);
    assert.equal(parseDefinition('{"name":"x","type":"string","tables":[1],"templates":{},"primary_keys":{}}'), null);
  });

  test('property: keyFor of a row equals the key the sink renders for the same row from the stream', () => {
    const names = ['id', 'tenant', 'kind', 'n', 'flag'] as const;
    const types = { id: T.int8, tenant: T.text, kind: T.varchar, n: T.int4, flag: T.bool } as const;
    const placeholder = fc.constantFrom('{id}', '{tenant}', '{kind}', '{n}', '{flag}', '{pk}', '{table}', '{schema}', '{{', '}}', ':', 'x', '-');
    const text = fc.string({ unit: fc.constantFrom('a', 'b', ':', '{', '}', 'é', ' ', '7'), maxLength: 6 });
    fc.assert(
      fc.property(
        fc.array(placeholder, { minLength: 1, maxLength: 6 }),
        fc.subarray([...names], { minLength: 1 }),
        fc.record({ id: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), tenant: text, kind: text, n: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), flag: fc.boolean() }),
        (parts, keyCols, values) => {
          const source = parts.join('');
          // the stream's view: a table whose key columns are flagged, in column order
          const t = table('app', 'things', names.map((n) => [n, types[n], keyCols.includes(n)] as const));
          const pgText: Record<string, string> = { id: String(values.id), tenant: values.tenant, kind: values.kind, n: String(values.n), flag: values.flag ? 't' : 'f' };
          const expected = new TemplateCache(source).render(t, tuple(t, pgText));
          const def: SinkDefinition = { name: 's', type: 'string', tables: ['app.things'], templates: { key: source }, primary_keys: { 'app.things': names.filter((n) => keyCols.includes(n)) } };
          assert.equal(renderFromDefinition(def, values), expected);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('sluice/client: options and close, without a server', () => {
  // nothing here reaches Redis: the URL's connection is lazy and every call fails before a command
  const unused = (): SluiceClient => new SluiceClient({ redis: 'redis://127.0.0.1:1', sinks: ['products'] });

  test('a connection the client cannot use is refused with bad_option', () => {
    assert.equal(code(() => new SluiceClient({ redis: 42 as unknown as string })), 'bad_option');
    assert.equal(code(() => new SluiceClient(undefined as unknown as { redis: string })), 'bad_option');
    assert.equal(code(() => new SluiceClient({ redis: 'redis://x', sinks: [''] })), 'bad_option');
    assert.equal(code(() => new SluiceClient({ redis: 'redis://x', lockPrefix: '' })), 'bad_option');
  });

  test('calls checked before any command: bad_lsn, no_sinks, bad_option', async () => {
    const c = unused();
    await assert.rejects(c.waitFor('0/0/0'), (e: unknown) => e instanceof SluiceClientError && e.code === 'bad_lsn');
    await assert.rejects(c.waitFor('0/0', { sinks: [] }), (e: unknown) => e instanceof SluiceClientError && e.code === 'no_sinks');
    await assert.rejects(c.waitFor('0/0', { timeoutMs: 2 ** 31 }), (e: unknown) => e instanceof SluiceClientError && e.code === 'bad_option');
    await assert.rejects(c.read('k', () => 1, {} as ReadOptions), (e: unknown) => e instanceof SluiceClientError && e.code === 'bad_option');
    await assert.rejects(c.read('k', () => 1, { ttlMs: 1000, lockMs: -1 }), (e: unknown) => e instanceof SluiceClientError && e.code === 'bad_option');
    await assert.rejects(c.read('', () => 1, { ttlMs: 1000 }), (e: unknown) => e instanceof SluiceClientError && e.code === 'bad_option');
    await c.close();
  });

  test('close() of a client never used resolves at once, again and again; then every call is closed', async () => {
    const c = unused();
    // no connection to say goodbye on: nothing to wait for (a hang is caught by the test's timeout)
    await c.close();
    await c.close();
    await assert.rejects(c.waitFor('0/0'), (e: unknown) => e instanceof SluiceClientError && e.code === 'closed');
    await assert.rejects(c.read('k', () => 1, { ttlMs: 1000 }), (e: unknown) => e instanceof SluiceClientError && e.code === 'closed');
    await assert.rejects(c.keyFor('products', { id: 1 }), (e: unknown) => e instanceof SluiceClientError && e.code === 'closed');
  });
});
