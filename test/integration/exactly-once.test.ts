import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';

const N = 1500;

/** Deterministic "random" kill points, so a failure can be reproduced. */
function* delays(seed: number): Generator<number> {
  let s = seed;
  for (;;) {
    s = (s * 1_103_515_245 + 12_345) % 2 ** 31;
    yield 100 + (s % 700);
  }
}

describe('exactly once: list and stream sinks under kill -9', () => {
  let env: SluiceTestEnv;
  let redis: Redis;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table burst (id int primary key, note text)`);
    env.writeConfig(`  - name: burst-list
    type: list
    tables: [burst]
    key: "burst:list"
    value: record
  - name: burst-stream
    type: stream
    tables: [burst]
    key: "burst:stream"`);
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test(`${N} single-row transactions, Sluice SIGKILLed 4 times: LLEN and XLEN are exactly ${N}`, async () => {
    let written = 0;
    // the first start creates the slot: only changes after it are streamed
    let sluice = await env.start();
    // each insert is its own transaction (autocommit); paced so that the writes span every kill,
    // and the writer never waits for Sluice
    const writer = (async () => {
      for (; written < N; written++) {
        await env.pg.query(`insert into burst values (${written + 1}, 'n')`);
        if (written % 10 === 9) await new Promise((r) => setTimeout(r, 40));
      }
    })();
    const seed = Number(process.env.SLUICE_TEST_SEED ?? Date.now() % 100_000);
    const wait = delays(seed);
    for (let round = 0; round < 4; round++) {
      if (round > 0) sluice = await env.start();
      await new Promise((r) => setTimeout(r, wait.next().value as number));
      const exit = await sluice.kill('SIGKILL');
      assert.equal(exit.signal, 'SIGKILL', `seed ${seed}, round ${round}: ${sluice.tail(20)}`);
      if (process.env.SLUICE_TEST_ECHO === '1') console.log(`round ${round}: killed after ${written} inserts, LLEN ${await redis.llen('burst:list')}`);
    }
    assert.ok(written < N, 'the kills happened while the writer was still writing');
    await writer;
    sluice = await env.start();
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
