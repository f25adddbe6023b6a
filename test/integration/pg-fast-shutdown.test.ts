import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { systemPostgresVersions } from '../harness/postgres.js';
import { lookupUser, type ManagedProcess } from '../../src/util/process.js';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { setUpRevocableDocs } from '../support/revocable-docs.js';

/** pg_ctl's own wait bound: past it pg_ctl gives up and exits 1 ("server does not shut down") */
const PG_CTL_WAIT_S = 60;

/** `pg_ctl stop -m fast -w`, as the user the server runs as: its exit code and output. */
async function pgCtlStopFast(version: number, dataDir: string): Promise<{ code: number; output: string }> {
  const bin = systemPostgresVersions().get(version);
  if (!bin) throw new Error(`no pg_ctl for PostgreSQL ${version}`);
  const ids = process.getuid?.() === 0 ? await lookupUser('postgres') : undefined;
  return new Promise((resolve) => {
    execFile(join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', String(PG_CTL_WAIT_S)], { ...(ids ?? {}), env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/**
 * A fast shutdown of Postgres while Sluice waits for a row lookup (an update that leaves a
 * TOASTed column unchanged, whose row Sluice cannot read). The walsender exits only once the
 * client confirmed the end of the WAL or closed the connection; Sluice, which cannot confirm
 * before the lookup, gives the connection up when the lookups find Postgres shutting down. The
 * transaction comes again from the slot once Postgres is back.
 */
describe('Postgres fast shutdown while a row lookup is retried', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let sluice: ManagedProcess;

  before(async () => {
    env = await createSluiceTestEnv();
    await setUpRevocableDocs(env, 3);
    sluice = await env.start();
    redis = env.redis.client();
    await eventually(() => redis.hget('doc:3', 'title'), (v) => v === 'first', 20_000, 'the backfilled rows');
  });

  after(async () => {
    await env?.stop();
  });

  test('pg_ctl stop -m fast completes; after the restart Redis equals Postgres', async (t) => {
    await env.pg.query(`revoke select on docs from sluice_r`);
    await env.pg.query(`update docs set title = 'second' where id = 1`);
    await env.pg.query(`update docs set title = 'second' where id = 2`);
    // progress, not time: the first failed lookup shows in /health
    await eventually(
      async () => ((await (await fetch(`http://127.0.0.1:${env.httpPort}/health`)).json()) as { problems: { reason: string }[] }).problems,
      (p) => p.some((x) => /permission denied/.test(x.reason)),
      30_000,
      'a failing row lookup',
    );
    assert.equal(await redis.hget('doc:1', 'title'), 'first', 'nothing applied while the row cannot be read');

    const started = Date.now();
    const stop = await pgCtlStopFast(env.pg.version, env.pg.dataDir);
    t.diagnostic(`pg_ctl stop -m fast took ${Date.now() - started} ms`);
    assert.equal(stop.code, 0, `pg_ctl stop -m fast did not finish within ${PG_CTL_WAIT_S} s:\n${stop.output}\n${sluice.tail(20)}`);

    await env.pg.restart();
    await env.pg.query(`grant select on docs to sluice_r`);
    await env.pg.query(`update docs set title = 'third' where id = 3`);
    await env.pg.query(`insert into docs values (4, 'fourth', 'small')`);
    const expected = async (): Promise<string> => JSON.stringify((await env.pg.query(`select id::text, title, body from docs order by id`)).rows.map((r: { id: string; title: string; body: string }) => [r.id, r.title, r.body]));
    const actual = async (): Promise<string> => {
      const keys = (await redis.keys('doc:*')).sort();
      const rows = await Promise.all(keys.map(async (k) => [k.slice('doc:'.length), await redis.hget(k, 'title'), await redis.hget(k, 'body')]));
      return JSON.stringify(rows);
    };
    const want = await expected();
    await eventually(actual, (a) => a === want, 60_000, 'Redis equal to Postgres').catch((err: unknown) => {
      throw new Error(`${String(err)}\n${sluice.tail(20)}`);
    });
  });
});
