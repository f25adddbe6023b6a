import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { diffMaps, expectedStrings, scanStrings } from '../support/compare.js';

/** Many small transactions of inserts, updates and deletes over a few hundred rows. */
async function writeBurst(env: SluiceTestEnv, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    const id = i % 300;
    await env.pg.query(
      `begin;
       insert into kv values (${id}, ${i}, md5('${i}')) on conflict (id) do update set v = excluded.v, s = excluded.s;
       update kv set v = v + 1 where id = ${(id * 7) % 300};
       delete from kv where id = ${(id * 13) % 300} and v % 5 = 0;
       commit;`,
    );
  }
}

describe('kill -9 in the middle of a stream of transactions', () => {
  let env: SluiceTestEnv;
  let redis: Redis;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`create table kv (id int primary key, v int, s text)`);
    env.writeConfig(`  - name: kv
    type: string
    tables: [kv]`);
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test('restart after SIGKILL: Redis equals Postgres, nothing lost', async () => {
    let next = 0;
    for (let round = 0; round < 3; round++) {
      const sluice = await env.start();
      // write while it streams, kill it at a point that varies by round
      const burst = writeBurst(env, next, 400);
      next += 400;
      await new Promise((r) => setTimeout(r, 150 + round * 200));
      const exit = await sluice.kill('SIGKILL');
      assert.equal(exit.signal, 'SIGKILL', `round ${round}: ${JSON.stringify(exit)}\n${sluice.tail(30)}`);
      await burst;
      // changes made while Sluice is down
      await writeBurst(env, next, 200);
      next += 200;
    }
    const sluice = await env.start();
    const expected = await expectedStrings(env.pg, 'kv');
    assert.ok(expected.size > 50);
    const actual = await eventually(() => scanStrings(redis, 'sluice:kv:'), (a) => diffMaps(expected, a).length === 0, 30_000, 'Redis equal to Postgres').catch(async () => scanStrings(redis, 'sluice:kv:'));
    assert.deepEqual(diffMaps(expected, actual).slice(0, 10), [], sluice.tail(30));
    const exit = await sluice.kill('SIGTERM');
    assert.equal(exit.code, 0, sluice.tail(30));
  });
});
