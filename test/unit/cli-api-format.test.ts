import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { refusal, renderSinkList, sinkBlocks } from '../../src/cli/sinks.js';
import { describeOutcome, renderDeliveries, renderFailedPage } from '../../src/cli/messages.js';
import { SluiceError } from '../../src/util/errors.js';

describe('sluice sinks and sluice messages: what they print', () => {
  test('a sink block: one mapping, a list of them, or a document with sinks:', () => {
    assert.deepEqual(sinkBlocks('name: a\ntype: list\n', 'f'), [{ name: 'a', type: 'list' }]);
    assert.deepEqual(sinkBlocks('- name: a\n- name: b\n', 'f'), [{ name: 'a' }, { name: 'b' }]);
    assert.deepEqual(sinkBlocks('{"name": "a", "tables": ["t"]}', 'f'), [{ name: 'a', tables: ['t'] }], 'JSON');
    assert.deepEqual(sinkBlocks('source: {url: x}\nsinks:\n  - name: a\n', 'f'), [{ name: 'a' }]);
    assert.throws(() => sinkBlocks('name: [', 'sink.yaml'), (e: unknown) => e instanceof SluiceError && /^sink\.yaml is not valid YAML or JSON at line 1/.test(e.message));
    for (const empty of ['', '42', '[]', '- 1\n']) assert.throws(() => sinkBlocks(empty, 'stdin'), /stdin holds no sink/, JSON.stringify(empty));
  });

  test("a refusal: the API's sentence, or each problem with its path", () => {
    assert.equal(refusal('cannot pause sink "x"', { status: 404, ok: false, body: { error: { code: 'sink_not_found', message: 'no sink named "x"' } } }), 'sluice: cannot pause sink "x": no sink named "x"\n');
    const body = { error: { code: 'invalid_sink', message: 'tables[1]: …', problems: [{ path: 'tables[1]', message: 'must be a string' }, { path: '', message: 'bad' }] } };
    assert.equal(refusal('sink "x" was not created', { status: 400, ok: false, body }), 'sluice: sink "x" was not created: 2 problems in it\n  tables[1]: must be a string\n  (the whole block): bad\n');
    assert.equal(refusal('x', { status: 502, ok: false, body: 'Bad Gateway' }), 'sluice: x: Bad Gateway\n');
  });

  test('tables of sinks, failed messages and deliveries', () => {
    assert.equal(renderSinkList([]), 'no sinks\n');
    assert.equal(
      renderSinkList([{ name: 'users', type: 'string', origin: 'config', state: 'active', redis: 'main', failed_messages: 2, changes_applied: 0, lag_ms: 0, lag_bytes: 0, tables: ['public.users'] }]),
      'SINK   TYPE    ORIGIN  STATE   REDIS  FAILED  TABLES\nusers  string  config  active  main   2       public.users\n',
    );
    assert.equal(renderFailedPage('users', { messages: [], next_cursor: null, total: 0 }), 'sink "users" has no failed messages\n');
    const page = renderFailedPage('users', {
      messages: [{ id: '0-16B3748-1', table: 'public.users', action: 'insert', failed_at: '2026-01-02T03:04:05.200Z', reason: 'column "name"\nis NULL' }],
      next_cursor: '0-16B3748-1',
      total: 3,
    });
    assert.equal(
      page,
      'ID           TABLE         ACTION  FAILED AT             REASON\n0-16B3748-1  public.users  insert  2026-01-02 03:04:05Z  column "name" is NULL\n1 of 3 failed message(s) of sink "users"; next page: sluice messages list users --cursor 0-16B3748-1\n',
    );
    assert.match(renderDeliveries('users', [{ id: '0-1-0', table: 't', action: 'insert', command: 'HSET', key: 'k', commands: 3, applied_at: 'x' }]), /\n0-1-0\s+t\s+insert\s+HSET \(\+2\)\s+k\s+x\n$/);
    assert.equal(describeOutcome('0-1-0', 'row_gone'), '0-1-0: row gone (the row no longer exists: nothing written, the entry is cleared)');
    assert.equal(describeOutcome('0-1-0', 'new_kind'), '0-1-0: new kind');
  });
});
