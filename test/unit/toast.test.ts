import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Change } from '../../src/core/change.js';
import { fillUnchangedToast, hasUnchangedToast } from '../../src/core/toast.js';
import type { Tuple } from '../../src/pg/pgoutput/types.js';
import { T, insertChange, table } from './support/tables.js';

const docs = table('public', 'docs', [
  ['id', T.int4, true],
  ['title', T.text],
  ['body', T.text],
  ['data', T.jsonb],
], { replicaIdentity: 'f' });

function update(row: Tuple, oldRow: Tuple | null, oldKind: 'K' | 'O' | null): Change {
  return { action: 'update', table: docs, row, oldRow, oldKind, idx: 3 };
}

describe('fillUnchangedToast', () => {
  test("fills unchanged TOASTed values from the whole old row ('O')", () => {
    const change = update(['1', 'New title', undefined, undefined], ['1', 'Old title', 'long body', '{"big": true}'], 'O');
    const filled = fillUnchangedToast(change);
    assert.deepEqual(filled.row, ['1', 'New title', 'long body', '{"big": true}']);
    assert.equal(hasUnchangedToast(filled), false);
    // the rest of the change is kept
    assert.equal(filled.action, 'update');
    assert.equal(filled.table, docs);
    assert.equal(filled.idx, 3);
    assert.equal(filled.oldKind, 'O');
    assert.deepEqual(filled.oldRow, change.oldRow);
    // and the input is not mutated
    assert.deepEqual(change.row, ['1', 'New title', undefined, undefined]);
  });

  test('a NULL old value fills as NULL', () => {
    assert.deepEqual(fillUnchangedToast(update(['1', 't', undefined, null], ['1', 't', null, null], 'O')).row, ['1', 't', null, null]);
  });

  test("values that were sent are not replaced by the old row's", () => {
    assert.deepEqual(fillUnchangedToast(update(['1', 'new', null, undefined], ['1', 'old', 'b', 'd'], 'O')).row, ['1', 'new', null, 'd']);
  });

  test("an identity-only old row ('K') leaves them unchanged", () => {
    const change = update(['2', 't', undefined, null], ['1', null, null, null], 'K');
    const out = fillUnchangedToast(change);
    assert.equal(out, change);
    assert.equal(hasUnchangedToast(out), true);
  });

  test('no old row leaves them unchanged', () => {
    const change = update(['1', 't', undefined, null], null, null);
    assert.equal(fillUnchangedToast(change), change);
  });

  test('a change without unchanged values is returned as is', () => {
    const change = update(['1', 't', 'b', null], ['1', 'x', 'b', null], 'O');
    assert.equal(fillUnchangedToast(change), change);
  });

  test('only updates are filled', () => {
    const insert = insertChange(docs, { id: '1', body: undefined });
    assert.equal(fillUnchangedToast(insert), insert);
    const del: Change = { action: 'delete', table: docs, row: ['1', null, undefined, null], oldRow: ['1', 'x', 'y', null], oldKind: 'O', idx: 0 };
    assert.equal(fillUnchangedToast(del), del);
  });

  test('property: with an O old row, the result is the new value where sent, else the old one', () => {
    const value = fc.option(fc.string({ maxLength: 5 }), { nil: undefined, freq: 3 }).chain((v) => (v === undefined ? fc.constant<string | null | undefined>(undefined) : fc.option(fc.constant(v))));
    fc.assert(
      fc.property(fc.array(fc.tuple(value, fc.option(fc.string({ maxLength: 5 }))), { maxLength: 8 }), (pairs) => {
        const row = pairs.map(([n]) => n);
        const old = pairs.map(([, o]) => o);
        const out = fillUnchangedToast({ action: 'update', table: docs, row, oldRow: old, oldKind: 'O', idx: 0 });
        assert.deepEqual(out.row, pairs.map(([n, o]) => (n === undefined ? o : n)));
        assert.equal(hasUnchangedToast(out), false);
      }),
      { numRuns: 100 },
    );
  });
});

describe('hasUnchangedToast', () => {
  test('true when some value is undefined', () => {
    assert.equal(hasUnchangedToast(update(['1', undefined, 'b', null], null, null)), true);
    assert.equal(hasUnchangedToast(update(['1', null, 'b', null], null, null)), false);
  });
});
