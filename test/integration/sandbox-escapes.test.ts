// A running Sluice whose transform tries every way out of its sandbox, one row each: each row
// lands in sluice:failed:<sink> with the reason, the rows around it and another sink of the same
// table keep flowing, the process stays healthy, and its logs do not quote the rows.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { failedKey } from '../../src/core/keyspace.js';
import type { ManagedProcess } from '../harness/process.js';

/** each attempt, by the row's `kind`, and the reason its message must fail with (one of several; a RegExp: it must not fail) */
const ATTEMPTS: Record<string, { code: string; reason: string | readonly string[] | RegExp }> = {
  process: { code: 'return process.pid', reason: 'transform threw: ReferenceError: process is not defined' },
  env: { code: 'return process.env.SANDBOX_SECRET', reason: 'transform threw: ReferenceError: process is not defined' },
  fs: { code: 'return require("fs").readFileSync("/etc/passwd", "utf8")', reason: 'transform threw: Error: module loading is not allowed (import or require of "fs")' },
  socket: { code: 'return fetch("http://127.0.0.1:1/")', reason: 'transform threw: ReferenceError: fetch is not defined' },
  timer: { code: 'setTimeout(() => 1, 0); return 1', reason: 'transform threw: ReferenceError: setTimeout is not defined' },
  loop: { code: 'for (;;) {}', reason: 'transform timed out after 50 ms' },
  recursion: { code: 'const f = (n) => f(n + 1) + 1; return f(0)', reason: 'transform threw: RangeError: Maximum call stack size exceeded' },
  // at once: the isolate's heap limit; little by little: the time limit comes first. Filling 160 MB
  // takes time too: on a busy machine the 50 ms limit can stop it first (either stops it;
  // test/unit/functions.test.ts checks the memory limit's own message)
  memory: { code: 'return new Array(2e7).fill(record.id + 0.5).length', reason: ['transform exhausted the sandbox memory (limit 64 MB)', 'transform timed out after 50 ms'] },
  growing: { code: 'const all = []; for (;;) all.push(new Array(100000).fill(record.id));', reason: 'transform timed out after 50 ms' },
  ctor: { code: 'return record.constructor.constructor("return process")().env', reason: 'transform threw: ReferenceError: process is not defined' },
  proto: { code: 'record.__proto__.polluted = "yes"; Object.prototype.key = "hijacked"; return ({}).polluted', reason: /^$/ },
};

describe('sandbox escapes against a running instance', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let sluice: ManagedProcess;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query('create table attempts (id int primary key, kind text, secret text)');
    const cases = Object.entries(ATTEMPTS)
      .map(([kind, a]) => `          case ${JSON.stringify(kind)}: { ${a.code} }`)
      .join('\n');
    env.writeConfig(`  - name: guarded
    type: string
    tables: [attempts]
    transform: |
      function transform(action, record) {
        switch (record.kind) {
${cases}
        }
        return "ok:" + record.id;
      }
  - name: plain
    type: string
    tables: [attempts]
    key: "plain:{id}"`);
    sluice = await env.start();
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test('each attempt fails its own message with the reason; everything else flows', async () => {
    let id = 0;
    const expected = new Map<number, string | readonly string[] | RegExp>();
    for (const [kind, a] of Object.entries(ATTEMPTS)) {
      // an attempt between two ordinary rows, in one transaction, then one alone
      await env.pg.query(`insert into attempts values ($1, 'fine', 'pii-${id + 1}'), ($2, $3, 'pii-${id + 2}'), ($4, 'fine', 'pii-${id + 3}')`, [id + 1, id + 2, kind, id + 3]);
      expected.set(id + 2, a.reason);
      id += 3;
    }
    await env.pg.query(`insert into attempts values ($1, 'fine', 'last')`, [++id]);
    await eventually(() => redis.get(`sluice:attempts:${id}`), (v) => v === `ok:${id}`, 60_000, 'the last row');
    const failed = Object.values(await redis.hgetall(failedKey('guarded'))).map((v) => JSON.parse(v) as { reason: string; message: { record: { id: number } } });
    const byId = new Map(failed.map((f) => [f.message.record.id, f.reason]));
    for (let i = 1; i <= id; i++) {
      const want = expected.get(i);
      assert.equal(await redis.get(`plain:${i}`) !== null, true, `the sink without functions has row ${i}`);
      if (want === undefined) {
        assert.equal(await redis.get(`sluice:attempts:${i}`), `ok:${i}`, `row ${i} went through`);
        assert.equal(byId.has(i), false);
      } else if (typeof want === 'string') {
        assert.equal(byId.get(i), want, `row ${i}`);
        assert.equal(await redis.get(`sluice:attempts:${i}`), null);
      } else if (Array.isArray(want)) {
        assert.ok(want.includes(byId.get(i) ?? ''), `row ${i}: ${byId.get(i)}`);
        assert.equal(await redis.get(`sluice:attempts:${i}`), null);
      }
    }
    // prototype pollution stayed in the isolate: the row's value is what the function saw, nothing leaked
    const protoRow = [...expected.entries()].find(([, r]) => r instanceof RegExp)![0];
    assert.equal(await redis.get(`sluice:attempts:${protoRow}`), 'yes');
    assert.equal(failed.length, [...expected.values()].filter((r) => !(r instanceof RegExp)).length);
    const health = await fetch(`http://127.0.0.1:${env.httpPort}/health`);
    assert.equal(health.status, 200, await health.text());
    assert.equal(sluice.running, true);
  });

  test('the failures are logged without the rows', () => {
    const lines = sluice.stdout.filter((l) => l.includes('message failed'));
    assert.ok(lines.length > 0, 'failures are logged');
    for (const l of sluice.stdout) assert.doesNotMatch(l, /pii-\d+/, `a row value in the log: ${l}`);
  });
});
