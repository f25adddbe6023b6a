import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { setUpRevocableDocs } from '../support/revocable-docs.js';

interface Health {
  status: string;
  problems: { component: string; reason: string }[];
}

/**
 * An update that leaves a TOASTed column unchanged needs the row read from Postgres. While that
 * read fails, nothing is applied and /health says why (503, component "postgres"); once it
 * works again the stream goes on by itself and /health is 200.
 */
describe('/health when Postgres row lookups fail', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  const health = async (): Promise<{ status: number; body: Health }> => {
    const res = await fetch(`http://127.0.0.1:${env.httpPort}/health`);
    return { status: res.status, body: (await res.json()) as Health };
  };

  before(async () => {
    env = await createSluiceTestEnv();
    await setUpRevocableDocs(env, 1);
    await env.start();
    redis = env.redis.client();
    await eventually(() => redis.hget('doc:1', 'title'), (v) => v === 'first', 20_000, 'the backfilled row');
  });

  after(async () => {
    await env?.stop();
  });

  test('503 naming the lookup while it fails, 200 and the row applied once it works', async () => {
    assert.equal((await health()).status, 200);
    const body = await redis.hget('doc:1', 'body');
    assert.ok(body !== null && body.length > 10_000, 'a TOASTed body');
    await env.pg.query(`revoke select on docs from sluice_r`);
    await env.pg.query(`update docs set title = 'second' where id = 1`);
    const down = await eventually(health, (h) => h.status === 503, 30_000, '503');
    assert.equal(down.body.status, 'unhealthy');
    assert.ok(down.body.problems.some((p) => p.component === 'postgres' && /permission denied/.test(p.reason)), JSON.stringify(down.body));
    assert.equal(await redis.hget('doc:1', 'title'), 'first', 'nothing applied while the row cannot be read');
    await env.pg.query(`grant select on docs to sluice_r`);
    await eventually(() => redis.hget('doc:1', 'title'), (v) => v === 'second', 30_000, 'the update applied');
    assert.equal(await redis.hget('doc:1', 'body'), body, 'the unchanged TOAST value kept');
    await eventually(health, (h) => h.status === 200, 30_000, '200 again');
  });
});
