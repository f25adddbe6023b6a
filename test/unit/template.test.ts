import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MessageError,
  TemplateCache,
  compileTemplate,
  parseTemplate,
  templateColumns,
  templatePrefix,
} from '../../src/core/template.js';
import { T, anyText, table, tuple } from './support/tables.js';

const products = table('public', 'products', [
  ['id', T.int8, true],
  ['name', T.text],
  ['price', T.numeric],
  ['updated_at', T.timestamptz],
  ['active', T.bool],
  ['meta', T.jsonb],
  ['ratio', T.float8],
  ['tags', T.textArray],
]);
const orderItems = table('shop', 'order_items', [
  ['order_id', T.int4, true],
  ['note', T.text],
  ['line', T.int2, true],
]);
const noKey = table('public', 'events', [['payload', T.text]]);

function render(source: string, t = products, values: Record<string, string | null | undefined> = { id: '7', name: 'Lamp' }): string {
  return new TemplateCache(source).render(t, tuple(t, values));
}

function renderError(source: string, t = products, values: Record<string, string | null | undefined> = { id: '7' }): MessageError {
  try {
    render(source, t, values);
  } catch (err) {
    assert.ok(err instanceof MessageError, `expected a MessageError, got ${String(err)}`);
    return err;
  }
  assert.fail(`rendering ${source} should have failed`);
}

describe('parseTemplate', () => {
  test('plain text is one text part', () => {
    assert.deepEqual(parseTemplate('products'), [{ kind: 'text', text: 'products' }]);
  });

  test('empty template has no parts', () => {
    assert.deepEqual(parseTemplate(''), []);
  });

  test('schema, table, pk and column placeholders', () => {
    assert.deepEqual(parseTemplate('sluice:{schema}.{table}:{pk}:{user_id}'), [
      { kind: 'text', text: 'sluice:' },
      { kind: 'schema' },
      { kind: 'text', text: '.' },
      { kind: 'table' },
      { kind: 'text', text: ':' },
      { kind: 'pk' },
      { kind: 'text', text: ':' },
      { kind: 'column', name: 'user_id' },
    ]);
  });

  test('adjacent placeholders without text between them', () => {
    assert.deepEqual(parseTemplate('{table}{pk}'), [{ kind: 'table' }, { kind: 'pk' }]);
  });

  test('column names may contain digits, underscores and $ after the first character', () => {
    assert.deepEqual(parseTemplate('{_a1$b}'), [{ kind: 'column', name: '_a1$b' }]);
  });

  test('doubled braces are literal braces (Redis Cluster hash tags)', () => {
    assert.deepEqual(parseTemplate('order:{{{user_id}}}:{id}'), [
      { kind: 'text', text: 'order:{' },
      { kind: 'column', name: 'user_id' },
      { kind: 'text', text: '}:' },
      { kind: 'column', name: 'id' },
    ]);
    assert.deepEqual(parseTemplate('{{}}'), [{ kind: 'text', text: '{}' }]);
  });

  for (const [source, message] of [
    ['a{b', /unclosed "\{" at position 2/],
    ['{', /unclosed/],
    ['a}b', /unmatched "\}" at position 2/],
    ['}', /unmatched/],
    ['{pk}}', /unmatched/],
    ['{}', /is not a placeholder/],
    ['{1abc}', /is not a placeholder/],
    ['{a-b}', /is not a placeholder/],
    ['{a b}', /is not a placeholder/],
    ['{ pk }', /is not a placeholder/],
    ['{a{b}', /is not a placeholder/],
    ['{{x}', /unmatched/],
  ] as const) {
    test(`rejects ${JSON.stringify(source)}`, () => {
      assert.throws(() => parseTemplate(source), message);
    });
  }
});

describe('rendering', () => {
  test('schema and table', () => {
    assert.equal(render('{schema}.{table}'), 'public.products');
    assert.equal(render('x:{schema}:{table}', orderItems, { order_id: '1', line: '2' }), 'x:shop:order_items');
  });

  test('a text-only template renders as is', () => {
    assert.equal(render('constant'), 'constant');
  });

  test('single-column pk', () => {
    assert.equal(render('sluice:{table}:{pk}', products, { id: '9223372036854775807' }), 'sluice:products:9223372036854775807');
  });

  test('composite pk is joined with ":" in column order', () => {
    assert.equal(render('{table}:{pk}', orderItems, { order_id: '10', line: '3', note: 'x' }), 'order_items:10:3');
  });

  test('column placeholders read the row', () => {
    assert.equal(render('p:{name}:{id}', products, { id: '7', name: 'Desk Lamp' }), 'p:Desk Lamp:7');
  });

  test('literal braces around placeholders', () => {
    assert.equal(render('order:{{{pk}}}:{name}', products, { id: '42', name: 'n' }), 'order:{42}:n');
  });

  test('timestamptz column is rendered as the UTC ISO string', () => {
    assert.equal(render('{updated_at}', products, { id: '1', updated_at: '2026-11-22 13:11:03.123456+02' }), '2026-11-22T11:11:03.123456Z');
    assert.equal(render('{updated_at}', products, { id: '1', updated_at: '2026-11-22 11:11:03+00' }), '2026-11-22T11:11:03Z');
  });

  test('numeric keeps every digit, as printed', () => {
    assert.equal(render('{price}', products, { id: '1', price: '12345678901234567890.123400' }), '12345678901234567890.123400');
    assert.equal(render('{price}', products, { id: '1', price: 'NaN' }), 'NaN');
  });

  test('other types are rendered as their plain value', () => {
    assert.equal(render('{active}', products, { id: '1', active: 't' }), 'true');
    assert.equal(render('{active}', products, { id: '1', active: 'f' }), 'false');
    assert.equal(render('{meta}', products, { id: '1', meta: '{"a": 1}' }), '{"a": 1}');
    assert.equal(render('{ratio}', products, { id: '1', ratio: '-Infinity' }), '-Infinity');
    assert.equal(render('{tags}', products, { id: '1', tags: '{a,"b c"}' }), '["a","b c"]');
  });

  test('an empty string column renders empty', () => {
    assert.equal(render('[{name}]', products, { id: '1', name: '' }), '[]');
  });

  test('a NULL column is a MessageError', () => {
    assert.match(renderError('{name}', products, { id: '1', name: null }).message, /"name" is NULL/);
  });

  test('a NULL pk column is a MessageError', () => {
    assert.match(renderError('{pk}', orderItems, { order_id: '1', line: null }).message, /"line" is NULL/);
  });

  test('an unchanged TOAST (undefined) column is a MessageError', () => {
    assert.match(renderError('{name}', products, { id: '1', name: undefined }).message, /"name" is not in the row/);
  });

  test('a column the table does not have is a MessageError', () => {
    assert.match(renderError('{nope}').message, /column "nope" is not in table public\.products/);
  });

  test('{pk} of a table without key columns is a MessageError', () => {
    assert.match(renderError('{pk}', noKey, { payload: 'x' }).message, /no primary key/);
  });

  test('a missing column only fails when rendered, not when compiled', () => {
    const fn = compileTemplate(parseTemplate('{nope}'), products);
    assert.throws(() => fn(tuple(products, { id: '1' })), MessageError);
  });
});

describe('templateColumns', () => {
  test('lists the pk and column indexes a template reads', () => {
    assert.deepEqual(templateColumns(parseTemplate('{table}:{pk}:{note}'), orderItems).sort(), [0, 1, 2]);
    assert.deepEqual(templateColumns(parseTemplate('{schema}:{name}:{nope}'), products), [1]);
    assert.deepEqual(templateColumns(parseTemplate('{pk}:{id}'), products), [0]);
  });
});

describe('templatePrefix', () => {
  const prefix = (source: string, t = products) => templatePrefix(parseTemplate(source), t);

  test('text, schema and table up to the first row-dependent placeholder', () => {
    assert.equal(prefix('sluice:{table}:{pk}'), 'sluice:products:');
    assert.equal(prefix('{schema}.{table}:{name}:{pk}'), 'public.products:');
    assert.equal(prefix('order:{{{pk}}}'), 'order:{');
  });

  test('null when the template starts with a row-dependent placeholder', () => {
    assert.equal(prefix('{pk}'), null);
    assert.equal(prefix('{name}:x'), null);
    assert.equal(prefix(''), null);
  });

  test('a text-only template is its own prefix', () => {
    assert.equal(prefix('{table}'), 'products');
  });
});

describe('TemplateCache', () => {
  test('keeps the source and parsed parts', () => {
    const c = new TemplateCache('k:{pk}');
    assert.equal(c.source, 'k:{pk}');
    assert.deepEqual(c.parts, [{ kind: 'text', text: 'k:' }, { kind: 'pk' }]);
  });

  test('the constructor throws on a bad template', () => {
    assert.throws(() => new TemplateCache('k:{pk'), /unclosed/);
  });

  test('compiles per TableInfo object: a new shape of the same table is recompiled', () => {
    const c = new TemplateCache('{table}:{sku}');
    const v1 = table('public', 'products', [['id', T.int4, true], ['name', T.text], ['sku', T.text]]);
    assert.equal(c.render(v1, ['1', 'n', 'A1']), 'products:A1');
    // same cached function for the same object, on another row
    assert.equal(c.render(v1, ['2', 'n', 'B2']), 'products:B2');
    // the table after ALTER TABLE: sku moved to another position
    const v2 = table('public', 'products', [['sku', T.text], ['id', T.int4, true], ['name', T.text]]);
    assert.equal(c.render(v2, ['C3', '3', 'n']), 'products:C3');
    // and after a DROP COLUMN sku: the old shape still renders, the new one fails
    const v3 = table('public', 'products', [['id', T.int4, true], ['name', T.text]]);
    assert.throws(() => c.render(v3, ['4', 'n']), MessageError);
    assert.equal(c.render(v1, ['5', 'n', 'E5']), 'products:E5');
  });

  test('one cache serves different tables', () => {
    const c = new TemplateCache('{schema}:{table}:{pk}');
    assert.equal(c.render(products, tuple(products, { id: '1' })), 'public:products:1');
    assert.equal(c.render(orderItems, tuple(orderItems, { order_id: '2', line: '3' })), 'shop:order_items:2:3');
  });
});

describe('properties', () => {
  const xy = table('public', 't', [['id', T.int4, true], ['x', T.text], ['y', T.varchar]]);
  const cache = new TemplateCache('a:{x}:{y}');

  test('a:{x}:{y} renders as a:${x}:${y} for any text values', () => {
    fc.assert(
      fc.property(anyText(), anyText(), (x, y) => {
        assert.equal(cache.render(xy, ['1', x, y]), `a:${x}:${y}`);
      }),
    );
  });

  test('composite pk renders as the values joined by ":"', () => {
    const t = table('public', 'k', [['a', T.text, true], ['b', T.int8, true], ['c', T.text, true]]);
    const c = new TemplateCache('{pk}');
    fc.assert(
      fc.property(anyText(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), anyText(), (a, b, cc) => {
        assert.equal(c.render(t, [a, String(b), cc]), `${a}:${b}:${cc}`);
      }),
    );
  });

  test('templates made of escaped literal text render that text', () => {
    fc.assert(
      fc.property(anyText(40), (s) => {
        const source = s.replaceAll('{', '{{').replaceAll('}', '}}');
        assert.equal(new TemplateCache(source).render(xy, ['1', 'x', 'y']), s);
      }),
    );
  });
});
