import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TableMatcher } from '../../src/plan/table-match.js';
import { T, table } from './support/tables.js';

const t = (schema: string, name: string) => table(schema, name, [['id', T.int4, true]]);
const products = t('public', 'products');
const orders = t('public', 'orders');
const shopOrders = t('shop', 'orders');
const shopItems = t('shop', 'items');

describe('TableMatcher', () => {
  test('exact schema.table', () => {
    const m = new TableMatcher(['public.products', 'shop.orders']);
    assert.equal(m.matches(products), true);
    assert.equal(m.matches(shopOrders), true);
    assert.equal(m.matches(orders), false);
    assert.equal(m.matches(shopItems), false);
  });

  test('schema.* matches every table of that schema only', () => {
    const m = new TableMatcher(['shop.*']);
    assert.equal(m.matches(shopOrders), true);
    assert.equal(m.matches(shopItems), true);
    assert.equal(m.matches(orders), false);
    assert.equal(m.matches(t('shopping', 'orders')), false);
  });

  test('no pattern, no match', () => {
    const m = new TableMatcher([]);
    assert.equal(m.matches(products), false);
  });

  test('no match for similar names', () => {
    const m = new TableMatcher(['public.products']);
    assert.equal(m.matches(t('public', 'product')), false);
    assert.equal(m.matches(t('public', 'products2')), false);
    assert.equal(m.matches(t('other', 'products')), false);
    assert.equal(m.matches(t('public', 'Products')), false, 'names are case-sensitive, as in Postgres');
  });

  test('a bare table name means public.table', () => {
    const m = new TableMatcher(['products']);
    assert.equal(m.matches(products), true);
    assert.equal(m.matches(t('shop', 'products')), false);
  });

  test('mixed patterns', () => {
    const m = new TableMatcher(['products', 'shop.*']);
    assert.deepEqual([products, orders, shopOrders, shopItems].map((x) => m.matches(x)), [true, false, true, true]);
  });

  test('the answer is stable across calls (cached per TableInfo), and a new TableInfo is matched afresh', () => {
    const m = new TableMatcher(['public.products']);
    assert.equal(m.matches(products), true);
    assert.equal(m.matches(products), true);
    assert.equal(m.matches(orders), false);
    assert.equal(m.matches(orders), false);
    assert.equal(m.matches(t('public', 'products')), true);
  });
});
