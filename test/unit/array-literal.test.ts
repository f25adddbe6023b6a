import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { arrayLiteralToJson, parseArrayLiteral } from '../../src/core/array-literal.js';
import type { PgArray } from '../../src/core/array-literal.js';

const quote = (s: string): string => JSON.stringify(s);

/** Formats an array the way Postgres's array_out does. */
function formatArray(value: PgArray, delimiter = ',', opts: { alwaysQuote?: boolean; spaces?: boolean } = {}): string {
  const sp = opts.spaces === true ? ' ' : '';
  const parts = value.map((v) => {
    if (v === null) return 'NULL';
    if (Array.isArray(v)) return formatArray(v, delimiter, opts);
    const needsQuotes =
      opts.alwaysQuote === true ||
      v === '' ||
      v.toUpperCase() === 'NULL' ||
      /["\\{}\s]/.test(v) ||
      v.includes(delimiter);
    return needsQuotes ? '"' + v.replace(/["\\]/g, (c) => '\\' + c) + '"' : v;
  });
  return '{' + sp + parts.join(sp + delimiter + sp) + sp + '}';
}

describe('parseArrayLiteral', () => {
  const cases: [string, PgArray][] = [
    ['{}', []],
    ['{1,2,NULL}', ['1', '2', null]],
    ['{"a b","with \\"quote\\"",NULL,"NULL"}', ['a b', 'with "quote"', null, 'NULL']],
    ['{{1,2},{3,4}}', [['1', '2'], ['3', '4']]],
    ['{{{1},{2}},{{3},{4}}}', [[['1'], ['2']], [['3'], ['4']]]],
    ['[0:1]={1,2}', ['1', '2']],
    ['[1:2][-1:0]={{a,b},{c,d}}', [['a', 'b'], ['c', 'd']]],
    ['{""}', ['']],
    ['{"",""}', ['', '']],
    ['{"\\\\"}', ['\\']],
    ['{"\\\\\\""}', ['\\"']],
    ['{"{","}",","}', ['{', '}', ',']],
    ['{null,Null,"null"}', [null, null, 'null']],
    ['{NULLX,xNULL}', ['NULLX', 'xNULL']],
    ['{"é😀",日本}', ['é😀', '日本']],
    // array_in leniency: whitespace between tokens, backslash escapes outside quotes
    [' { 1 , "a b" , NULL } ', ['1', 'a b', null]],
    ['{ {1,2} , {3,4} }', [['1', '2'], ['3', '4']]],
    ['{a\\,b,c\\ }', ['a,b', 'c ']],
    ['{\\NULL}', ['NULL']],
    ['{a b}', ['a b']],
  ];
  for (const [text, expected] of cases) {
    test(`parses ${text}`, () => {
      assert.deepEqual(parseArrayLiteral(text), expected);
    });
  }

  test('box arrays use ; as delimiter', () => {
    assert.deepEqual(parseArrayLiteral('{(1,1),(0,0);(2,2),(1,1)}', ';'), ['(1,1),(0,0)', '(2,2),(1,1)']);
    assert.deepEqual(parseArrayLiteral('{(1,1),(0,0)}', ';'), ['(1,1),(0,0)']);
  });

  const malformed = [
    '', '1,2', '{', '}', '{1,2', '{1,}', '{,1}', '{1,,2}', '{"a}', '{"a"b}', '{a"b"}', '{1}x', '{{1}',
    '[0:1]{1}', '{a\\}', '{1,{2}', '{{}1}',
  ];
  for (const text of malformed) {
    test(`rejects malformed ${JSON.stringify(text)}`, () => {
      assert.equal(parseArrayLiteral(text), undefined);
    });
  }

  test('arrayLiteralToJson converts elements with the given function and keeps NULL', () => {
    assert.equal(arrayLiteralToJson('{1,NULL,3}', (s) => s), '[1,null,3]');
    assert.equal(arrayLiteralToJson('{{t,f},{NULL,t}}', (s) => (s === 't' ? 'true' : 'false')), '[[true,false],[null,true]]');
    assert.equal(arrayLiteralToJson('{}', quote), '[]');
  });
});

describe('array literal properties', () => {
  const special = fc.constantFrom('NULL', 'null', 'NuLl', '', ' ', '"', '\\', '{', '}', ',', ';', '\\"', 'a b', '\t', '\n');
  const element = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.string({ unit: fc.constantFrom('"', '\\', '{', '}', ',', ' ', 'a', 'N', 'U', 'L', '\t', '\n', 'é', '😀', ';', '[', ']', '=') }),
    special,
  );
  const flat = fc.array(fc.option(element, { nil: null }), { maxLength: 12 });

  test('any array of strings formatted like array_out parses back to the same JSON', () => {
    fc.assert(
      fc.property(flat, (arr) => {
        assert.equal(arrayLiteralToJson(formatArray(arr), quote), JSON.stringify(arr));
      }),
      { numRuns: 2000 },
    );
  });

  test('also when every element is quoted and tokens are spaced out', () => {
    fc.assert(
      fc.property(flat, (arr) => {
        assert.equal(arrayLiteralToJson(formatArray(arr, ',', { alwaysQuote: true, spaces: true }), quote), JSON.stringify(arr));
      }),
      { numRuns: 500 },
    );
  });

  test('with ; as delimiter', () => {
    fc.assert(
      fc.property(flat, (arr) => {
        assert.equal(arrayLiteralToJson(formatArray(arr, ';'), quote, ';'), JSON.stringify(arr));
      }),
      { numRuns: 500 },
    );
  });

  test('two-dimensional arrays, with a dimension decoration or not', () => {
    const matrix = fc
      .tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }))
      .chain(([rows, cols]) =>
        fc.tuple(
          fc.array(fc.array(fc.option(element, { nil: null }), { minLength: cols, maxLength: cols }), {
            minLength: rows,
            maxLength: rows,
          }),
          fc.constant(cols),
        ),
      );
    fc.assert(
      fc.property(matrix, fc.boolean(), ([m, cols], decorate) => {
        const prefix = decorate ? `[0:${m.length - 1}][5:${cols + 4}]=` : '';
        assert.equal(arrayLiteralToJson(prefix + formatArray(m), quote), JSON.stringify(m));
      }),
      { numRuns: 500 },
    );
  });
});
