import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';

const N = 1500;
/**
 * `apply.batch_max_commands` for this test: a batch holds whole transactions up to this many
 * commands, so one batch never carries more than this many rows (each row is at least one
 * command). That bounds what an in-flight batch can add after a kill.
 */
const BATCH_MAX_COMMANDS = 20;
/** rows committed beyond what Redis holds before a kill: more than one batch can carry */
const NOT_YET = BATCH_MAX_COMMANDS + 1;
/** the writer stays at most this many rows ahead of what Redis holds (so N always outlasts the kills) */
const AHEAD = 3 * NOT_YET;

/** Deterministic "random" progress between kills (rows applied), so a failure can be reproduced. */
function* steps(seed: number): Generator<number> {
  let s = seed;
  for (;;) {
    s = (s * 1_103_515_245 + 12_345) % 2 ** 31;
    yield 30 + (s % 120);
  }
}

describe('exactly once: list and stream sinks under kill -9', () => {
  let env: SluiceTestEnv;
  let redis: Redis;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table burst (id int primary key, note text)`);
    env.writeConfig(
      `  - name: burst-list
    type: list
    tables: [burst]
    key: "burst:list"
    value: record
  - name: burst-stream
    type: stream
    tables: [burst]
    key: "burst:stream"`,
      `apply:\n  batch_max_commands: ${BATCH_MAX_COMMANDS}\n`,
    );
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  // Kills are placed by progress, never by the clock: each lands after Sluice applied some rows
  // since it started, and while rows it has not applied are committed. Sluice is killed while
  // Redis holds its writes back (CLIENT PAUSE WRITE), after the writer committed more rows than
  // one batch can carry: whatever was in flight then (applied after the kill or discarded), some
  // rows are still to come from Postgres at the restart.
  test(`${N} single-row transactions, Sluice SIGKILLed 4 times mid-stream: LLEN and XLEN are exactly ${N}`, async () => {
    const listLength = (): Promise<number> => redis.llen('burst:list');
    let written = 0;
    let applied = 0; // LLEN as last seen by the writer
    let stopWriter = false; // set when the test fails: the writer must not wait for Sluice forever
    // the first start creates the slot: only changes after it are streamed
    let sluice = await env.start();
    // each insert is its own transaction (autocommit); the writer runs ahead of Sluice by at most
    // AHEAD rows, and goes on while Sluice is down
    const writer = (async () => {
      for (; written < N && !stopWriter; written++) {
        while (written >= applied + AHEAD && !stopWriter) {
          await new Promise((r) => setTimeout(r, 10));
          applied = await listLength();
        }
        await env.pg.query(`insert into burst values (${written + 1}, 'n')`);
      }
    })();
    const seed = Number(process.env.SLUICE_TEST_SEED ?? Date.now() % 100_000);
    const step = steps(seed);
    try {
      for (let round = 0; round < 4; round++) {
        const what = `seed ${seed}, round ${round}`;
        if (round > 0) sluice = await env.start();
        const start = await listLength();
        const target = start + (step.next().value as number);
        await eventually(listLength, (n) => n >= target, 60_000, `${what}: LLEN ≥ ${target}`);
        await redis.call('CLIENT', 'PAUSE', '60000', 'WRITE');
        let paused: number;
        let committed: number;
        try {
          paused = await listLength();
          await eventually(async () => written, (w) => w >= paused + NOT_YET, 60_000, `${what}: ${NOT_YET} rows committed beyond LLEN ${paused}`);
          committed = written;
          const exit = await sluice.kill('SIGKILL');
          assert.equal(exit.signal, 'SIGKILL', `${what}: ${sluice.tail(20)}`);
        } finally {
          await redis.call('CLIENT', 'UNPAUSE');
        }
        const after = await listLength();
        if (process.env.SLUICE_TEST_ECHO === '1') console.log(`${what}: started at LLEN ${start}, killed at LLEN ${paused} (${after} after the kill) with ${committed} rows committed`);
        assert.ok(paused >= target && start < paused, `${what}: rows were applied since the start (${start} → ${paused})`);
        assert.ok(after < committed, `${what}: rows were still to apply at the kill (LLEN ${after}, ${committed} committed)`);
      }
      assert.ok(written < N, 'the kills happened while the writer was still writing');
      // the writer waits for Sluice to apply what it wrote: start it before waiting for the writer
      sluice = await env.start();
      await writer;
    } catch (err) {
      stopWriter = true;
      await writer.catch(() => undefined);
      throw err;
    }
    await eventually(() => redis.llen('burst:list'), (n) => n >= N, 60_000, `LLEN ≥ ${N} (seed ${seed})`).catch(() => undefined);
    // give a duplicate, if there were one, the time to show up
    await new Promise((r) => setTimeout(r, 500));
    const [llen, xlen] = await Promise.all([redis.llen('burst:list'), redis.xlen('burst:stream')]);
    assert.equal(llen, N, `LLEN (seed ${seed})\n${sluice.tail(20)}`);
    assert.equal(xlen, N, `XLEN (seed ${seed})`);

    const ids = (await redis.lrange('burst:list', 0, -1)).map((v) => (JSON.parse(v) as { id: number }).id);
    assert.deepEqual(ids, Array.from({ length: N }, (_, i) => i + 1), 'each id exactly once, in commit order');
    const entries = await redis.xrange('burst:stream', '-', '+');
    const streamIds = entries.map(([, f]) => (JSON.parse(f[f.indexOf('record') + 1]!) as { id: number }).id);
    assert.deepEqual(streamIds, Array.from({ length: N }, (_, i) => i + 1), 'each id exactly once in the stream, in commit order');

    const exit = await sluice.kill('SIGTERM');
    assert.equal(exit.code, 0, sluice.tail(20));
  });
});
