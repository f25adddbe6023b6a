import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LATEST_VERSION, MIGRATIONS, validateSchemaName } from '../../src/state/migrations.js';
import { SluiceError } from '../../src/util/errors.js';

test('state schema names: lower-case identifiers are accepted as they are', () => {
  for (const ok of ['sluice', '_sluice', 'sluice_state_2', 'a', 'x'.repeat(63)]) assert.equal(validateSchemaName(ok), ok);
});

test('state schema names: anything that would need quoting, or is reserved, is refused with a clear error', () => {
  for (const bad of ['', 'Sluice', '2sluice', 'sluice-state', 'sl"uice', 'a b', 'public;drop', 'sluice.state', 'x'.repeat(64), 'pg_sluice', 'émile']) {
    assert.throws(
      () => validateSchemaName(bad),
      (err: unknown) => err instanceof SluiceError && err.code === 'state_schema_name' && err.message.includes(JSON.stringify(bad)),
      bad,
    );
  }
});

test('migrations: versions start at 1 and increase by one, LATEST_VERSION is the last', () => {
  MIGRATIONS.forEach((m, i) => assert.equal(m.version, i + 1, m.description));
  assert.equal(LATEST_VERSION, MIGRATIONS.length);
});

test('migrations: every statement is qualified with the schema it is given', () => {
  for (const m of MIGRATIONS) {
    for (const stmt of m.sql('"s_x"')) assert.match(stmt, /"s_x"\./, stmt);
  }
});
