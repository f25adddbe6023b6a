import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CopyRows, CopyTextParser, parseLine, type CopyRow } from '../../src/backfill/copy-text.js';
import { rowList } from '../../src/core/tuple.js';

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

test('property: a line splits into the same fields as when each field searched for its backslash itself', () => {
  // the split before fields were told apart on the way (the reference: fields by tab, then each decoded)
  const reference = (buf: Buffer): CopyRow => {
    const one = new CopyTextParser();
    const fields: Buffer[] = [];
    let from = 0;
    for (let i = 0; i <= buf.length; i++) {
      if (i === buf.length || buf[i] === 0x09) {
        fields.push(buf.subarray(from, i));
        from = i + 1;
      }
    }
    // each field alone on a line: its decoding does not depend on its neighbours
    return fields.map((f) => {
      let got: CopyRow = [];
      one.push(Buffer.concat([f, Buffer.from('\n')]), (r) => (got = r));
      return got[0] ?? null;
    });
  };
  const byte = fc.constantFrom(0x09, 0x5c, 0x4e, 0x41, 0x30, 0x37, 0x78, 0x66, 0xc3, 0xa9, 0x74);
  fc.assert(
    fc.property(fc.array(byte, { maxLength: 40 }), fc.nat(20), (bytes, pad) => {
      // the line sits inside a larger chunk, with more lines after it
      const line = Buffer.from(bytes);
      const chunk = Buffer.concat([Buffer.alloc(pad, 0x41), line, Buffer.from('\n1\\2\t\\N\n')]);
      assert.deepEqual(parseLine(chunk, pad, pad + line.length), reference(line));
    }),
    { numRuns: 500 },
  );
});

test('property: CopyRows (a chunk kept as its bytes) gives the rows the parser gives, however the bytes come in', () => {
  const field = fc.option(fc.string({ unit: 'binary', maxLength: 300 }), { nil: null });
  fc.assert(
    fc.property(fc.array(fc.array(field, { minLength: 1, maxLength: 5 }), { maxLength: 30 }), fc.array(fc.nat(20_000)), fc.boolean(), (rows, splits, reuse) => {
      const clean = rows.map((r) => r.map((v) => (v === null ? null : Buffer.from(v, 'utf8').toString('utf8'))));
      const text = Buffer.from(clean.map((r) => r.map(escapeField).join('\t') + '\n').join(''), 'utf8');
      if (reuse) {
        // a buffer used before holds stale newlines past what is written: they must not count
        const stale = new CopyRows();
        stale.push(Buffer.alloc(200_000, 0x0a));
        stale.release();
      }
      const got = new CopyRows();
      let prev = 0;
      for (const s of [...splits.filter((x) => x > 0 && x < text.length).sort((a, b) => a - b), text.length]) {
        got.pushRange(text, prev, s);
        prev = s;
      }
      got.end();
      assert.deepEqual(rowList(got), parseAll(text));
      const { buf, ends } = got.lines();
      assert.deepEqual([...ends.subarray(0, got.length)].map((e) => buf[e]), clean.map(() => 0x0a));
      got.release();
      assert.throws(() => got.row(0), clean.length > 0 ? /released/ : /row 0 of 0/);
    }),
    { numRuns: 200 },
  );
});

test('CopyRows: an incomplete last line is an error', () => {
  const rows = new CopyRows();
  rows.push(Buffer.from('1\t2\n3'));
  assert.throws(() => rows.end(), /middle of a row/);
  rows.release();
});
