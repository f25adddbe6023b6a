import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CopyTextParser, type CopyRow } from '../../src/backfill/copy-text.js';

/** Postgres's COPY text escaping, written independently from the parser. */
function escapeField(v: string | null): string {
  if (v === null) return '\\N';
  return v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\x08/g, '\\b').replace(/\f/g, '\\f').replace(/\v/g, '\\v');
}

function parseAll(text: Buffer, splits: number[] = []): CopyRow[] {
  const p = new CopyTextParser();
  const rows: CopyRow[] = [];
  let prev = 0;
  for (const s of [...splits.filter((x) => x > 0 && x < text.length).sort((a, b) => a - b), text.length]) {
    p.push(text.subarray(prev, s), (r) => rows.push(r));
    prev = s;
  }
  p.end();
  return rows;
}

test('plain rows, NULL, empty strings', () => {
  assert.deepEqual(parseAll(Buffer.from('1\tLamp\t\\N\t\n2\t\t9.50\tx\n')), [
    ['1', 'Lamp', null, ''],
    ['2', '', '9.50', 'x'],
  ]);
});

test('escapes: control characters, backslash, octal and hex bytes forming UTF-8', () => {
  assert.deepEqual(parseAll(Buffer.from('a\\tb\\nc\\\\d\\r\\b\\f\\v\t\\342\\234\\223\t\\xe2\\x9c\\x93\n')), [['a\tb\nc\\d\r\b\f\v', '✓', '✓']]);
});

test('a literal \\N inside a longer value is not NULL', () => {
  assert.deepEqual(parseAll(Buffer.from('\\\\N\tx\\N\n')), [['\\N', 'xN']]);
});

test('incomplete last line is an error', () => {
  const p = new CopyTextParser();
  p.push(Buffer.from('1\t2'), () => undefined);
  assert.throws(() => p.end(), /middle of a row/);
});

test('property: any rows survive escaping and arbitrary chunking', () => {
  const field = fc.option(fc.string({ unit: 'binary' }), { nil: null });
  fc.assert(
    fc.property(fc.array(fc.array(field, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 10 }), fc.array(fc.nat(400)), (rows, splits) => {
      // lone surrogates do not survive UTF-8 at all; Postgres never sends them
      const clean = rows.map((r) => r.map((v) => (v === null ? null : Buffer.from(v, 'utf8').toString('utf8'))));
      const text = Buffer.from(clean.map((r) => r.map(escapeField).join('\t') + '\n').join(''), 'utf8');
      assert.deepEqual(parseAll(text, splits), clean);
    }),
  );
});
