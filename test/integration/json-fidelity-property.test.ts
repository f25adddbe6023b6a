import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';

/**
 * Property: random rows over the §3 types arrive in Redis as exactly the JSON §3 prescribes.
 * The expected JSON is computed here from the generated values, independently of Sluice.
 */
const ROWS = 150;

interface Row {
  b: boolean | null;
  i8: bigint | null;
  n: string | null;
  f8: number | null;
  t: string | null;
  jb: unknown;
  tstz: bigint | null; // microseconds since 1970
  d: string | null;
  ta: (string | null)[] | null;
  ia: (number | null)[] | null;
}

const text = fc.string({ unit: 'grapheme', maxLength: 30 }).filter((s) => !s.includes('\u0000'));
const numeric = fc
  .tuple(fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 40n }), fc.option(fc.stringMatching(/^[0-9]{1,20}$/), { nil: null }))
  .map(([neg, int, frac]) => `${neg && (int !== 0n || frac) ? '-' : ''}${int}${frac ? `.${frac}` : ''}`);
const json: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const rowArb: fc.Arbitrary<Row> = fc.record({
  b: fc.option(fc.boolean(), { nil: null }),
  i8: fc.option(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { nil: null }),
  n: fc.option(numeric, { nil: null }),
  f8: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e300, max: 1e300 }), { nil: null }),
  t: fc.option(text, { nil: null }),
  jb: fc.option(json, { nil: null }),
  tstz: fc.option(fc.bigInt({ min: -2_000_000_000_000_000n, max: 4_000_000_000_000_000n }), { nil: null }),
  d: fc.option(fc.date({ min: new Date('1000-01-01'), max: new Date('9999-12-31'), noInvalidDate: true }).map((x) => x.toISOString().slice(0, 10)), { nil: null }),
  ta: fc.option(fc.array(fc.option(text, { nil: null }), { maxLength: 5 }), { nil: null }),
  ia: fc.option(fc.array(fc.option(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { nil: null }), { maxLength: 5 }), { nil: null }),
});

/** ISO 8601 UTC with the fraction Postgres prints (trailing zeros dropped). */
function isoMicros(us: bigint): string {
  const ms = Number(us / 1000n - (us % 1000n < 0n ? 1n : 0n));
  const micros = ((us % 1_000_000n) + 1_000_000n) % 1_000_000n;
  const base = new Date(ms).toISOString().slice(0, 19);
  const frac = micros === 0n ? '' : `.${micros.toString().padStart(6, '0').replace(/0+$/, '')}`;
  return `${base}${frac}Z`;
}

function pgTimestamptz(us: bigint): string {
  return isoMicros(us).replace('T', ' ').replace('Z', '+00');
}

describe('property: random rows arrive as exactly their §3 JSON', () => {
  let env: SluiceTestEnv;
  let redis: Redis;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table r (id int primary key, b bool, i8 int8, n numeric, f8 float8, t text, jb jsonb, tstz timestamptz, d date, ta text[], ia int4[])`);
    env.writeConfig(`  - name: r
    type: string
    tables: [r]`);
    await env.start();
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test(`${ROWS} random rows`, async () => {
    const rows = fc.sample(rowArb, { numRuns: ROWS, seed: 20261123 });
    for (const [i, r] of rows.entries()) {
      await env.pg.query(`insert into r values ($1, $2, $3::int8, $4::numeric, $5::float8, $6, $7::jsonb, $8::timestamptz, $9::date, $10::text[], $11::int4[])`, [
        i,
        r.b,
        r.i8 === null ? null : r.i8.toString(),
        r.n,
        r.f8 === null ? null : String(r.f8),
        r.t,
        r.jb === null ? null : JSON.stringify(r.jb),
        r.tstz === null ? null : pgTimestamptz(r.tstz),
        r.d,
        r.ta,
        r.ia,
      ]);
    }
    await eventually(() => redis.exists(`sluice:r:${ROWS - 1}`), (n) => n === 1, 30_000, 'last row');
    for (const [i, r] of rows.entries()) {
      const raw = (await redis.get(`sluice:r:${i}`))!;
      const got = JSON.parse(raw) as Record<string, unknown>;
      const ctx = `row ${i}: ${raw}`;
      assert.equal(got.b, r.b, ctx);
      // int8 and numeric: every digit, as JSON numbers (checked on the raw text)
      const i8Text = /"i8":(-?\d+|null)/.exec(raw)![1];
      assert.equal(i8Text, r.i8 === null ? 'null' : r.i8.toString(), ctx);
      const nText = /"n":(-?[\d.]+|null)/.exec(raw)![1];
      assert.equal(nText, r.n === null ? 'null' : r.n.replace(/^(-?)0+(\d)/, '$1$2'), ctx);
      assert.equal(got.f8, r.f8 === null ? null : r.f8 === 0 ? 0 : r.f8, ctx);
      assert.equal(got.t, r.t, ctx);
      assert.deepEqual(got.jb, r.jb, ctx);
      assert.equal(got.tstz, r.tstz === null ? null : isoMicros(r.tstz), ctx);
      assert.equal(got.d, r.d, ctx);
      assert.deepEqual(got.ta, r.ta, ctx);
      assert.deepEqual(got.ia, r.ia, ctx);
    }
  });
});
