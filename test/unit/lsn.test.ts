import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatLsn, maxLsn, parseLsn, ZERO_LSN } from '../../src/core/lsn.js';

const U64_MAX = 2n ** 64n - 1n;

describe('LSN', () => {
  test('parses Postgres notation', () => {
    assert.equal(parseLsn('0/0'), 0n);
    assert.equal(parseLsn('0/16B3748'), 0x16b3748n);
    assert.equal(parseLsn('16/B374D848'), 0x16_b374d848n);
    assert.equal(parseLsn('16/b374d848'), 0x16_b374d848n, 'lower case');
    assert.equal(parseLsn('FFFFFFFF/FFFFFFFF'), U64_MAX);
    assert.equal(parseLsn('00000001/00000000'), 1n << 32n, 'zero-padded halves');
    assert.equal(parseLsn('  1/2\n'), (1n << 32n) | 2n, 'surrounding whitespace');
  });

  test('formats in Postgres notation (upper case, no padding)', () => {
    assert.equal(formatLsn(ZERO_LSN), '0/0');
    assert.equal(formatLsn(0x16_b374d848n), '16/B374D848');
    assert.equal(formatLsn(0x16b3748n), '0/16B3748');
    assert.equal(formatLsn(U64_MAX), 'FFFFFFFF/FFFFFFFF');
    assert.equal(formatLsn(1n << 32n), '1/0');
  });

  test('bad inputs throw', () => {
    for (const bad of [
      '',
      ' ',
      '0',
      '0/',
      '/0',
      '0//0',
      '0/0/0',
      '123456789/0',
      '0/123456789',
      'G/0',
      '-1/0',
      '+1/0',
      '0x1/0',
      '1 /0',
      '1/ 0',
      '１/0', // full-width digit
      '1.5/0',
    ]) {
      assert.throws(() => parseLsn(bad), /not an LSN/, JSON.stringify(bad));
    }
  });

  test('property: format then parse is the identity on 0..2^64-1', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: U64_MAX }), (lsn) => {
        assert.equal(parseLsn(formatLsn(lsn)), lsn);
      }),
      { numRuns: 2000 },
    );
  });

  test('property: parse then format normalises (upper case, no leading zeros)', () => {
    const half = fc.integer({ min: 0, max: 0xffffffff });
    fc.assert(
      fc.property(half, half, fc.boolean(), (hi, lo, lower) => {
        let text = `${hi.toString(16)}/${lo.toString(16).padStart(8, '0')}`;
        text = lower ? text.toLowerCase() : text.toUpperCase();
        assert.equal(formatLsn(parseLsn(text)), `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`);
      }),
    );
  });

  test('property: LSN order equals bigint order', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: U64_MAX }), fc.bigInt({ min: 0n, max: U64_MAX }), (a, b) => {
        const max = maxLsn(a, b);
        assert.equal(max, a > b ? a : b);
        assert.ok(max >= a && max >= b);
        assert.equal(maxLsn(b, a), max);
      }),
    );
  });
});
