// /metrics and the logs of a running `sluice start`: apply latency, backfill rows and progress,
// paused sinks, Redis series, failed messages; every stdout line one JSON object (a pipe is never
// pretty); a row value a failure quotes is hidden, and logged only with --log-values.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';

const SECRET = 'carol.secret@example.com';
const ROWS = 500;

/** the value of one series of the Prometheus text, e.g. `sluice_sink_paused{sink="users"}` (labels in any order) */
function valueOf(text: string, series: string): number | undefined {
  const parse = (s: string): [string, string] => {
    const m = /^([a-z_:]+)(?:\{(.*)\})?$/.exec(s)!;
    return [m[1]!, (m[2] ?? '').split(',').filter((x) => x !== '').sort().join(',')];
  };
  const [name, labels] = parse(series);
  for (const line of text.split('\n')) {
    const at = line.lastIndexOf(' ');
    if (line.startsWith('#') || at < 0) continue;
    const [n, l] = parse(line.slice(0, at));
    if (n === name && l === labels) return Number(line.slice(at + 1));
  }
  return undefined;
}

describe('metrics and logs of a running instance', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let configPath: string;
  let base: string;
  const metrics = async (): Promise<string> => (await fetch(`${base}/metrics`)).text();

  before(async () => {
    env = await createSluiceTestEnv();
    base = `http://127.0.0.1:${env.httpPort}`;
    await env.pg.query(`create table users (id int primary key, email text);
      insert into users select g, 'user' || g || '@example.com' from generate_series(1, ${ROWS}) g; analyze users;`);
    configPath = env.writeConfig(`  - name: users
    type: string
    tables: [users]
    key: "user:{id}"
    backfill: true
  - name: ranks
    type: zset
    tables: [users]
    key: ranks
    member: "{id}"
    score: email
    actions: [update]
  - name: shout
    type: string
    tables: [users]
    key: "shout:{id}"
    actions: [update]
    transform: |
      function transform(action, record) { if (record.email.includes("secret")) throw new Error("refusing " + record.email); return record.email }`);
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  let sluice: ManagedProcess;

  test('metrics: apply latency, backfill rows and progress, paused sinks, Redis series, failed messages', async () => {
    sluice = await env.start(configPath);
    await eventually(() => redis.get(`user:${ROWS}`), (v) => v !== null, 30_000, 'the initial backfill');
    const done = await eventually(metrics, (t) => valueOf(t, 'sluice_backfill_progress_ratio{sink="users",table="public.users"}') === 1, 15_000, 'backfill progress 1');
    assert.equal(valueOf(done, 'sluice_backfill_rows_total{sink="users",table="public.users"}'), ROWS);

    await env.pg.query(`insert into users values (${ROWS + 1}, 'new@example.com')`);
    await env.pg.query(`update users set email = '${SECRET}' where id = 1`);
    await eventually(() => redis.get('user:1'), (v) => v?.includes(SECRET) === true, 15_000, 'the update');
    const text = await eventually(metrics, (t) => (valueOf(t, 'sluice_failed_messages_total{sink="shout"}') ?? 0) >= 1, 15_000, 'failed messages counted');
    assert.ok((valueOf(text, 'sluice_apply_latency_seconds_count{sink="users"}') ?? 0) >= 2, 'apply latency observed per transaction');
    assert.ok(valueOf(text, 'sluice_apply_latency_seconds_bucket{le="+Inf",sink="users"}') !== undefined);
    assert.equal(valueOf(text, 'sluice_failed_messages_total{sink="ranks"}'), 1, 'the zset score that is not a number');
    assert.equal(valueOf(text, 'sluice_changes_total{sink="users",action="insert"}'), 1);
    assert.equal(valueOf(text, 'sluice_changes_total{sink="users",action="read"}'), ROWS);
    assert.equal(valueOf(text, 'sluice_redis_errors_total{redis="main"}'), 0);
    assert.equal(valueOf(text, 'sluice_redis_reconnects_total{redis="main"}'), 0);
    assert.equal(valueOf(text, 'sluice_sink_paused{sink="users"}'), 0);

    const paused = await fetch(`${base}/api/sinks/ranks/pause`, { method: 'POST' });
    assert.equal(paused.status, 200, await paused.text());
    const after = await metrics();
    assert.equal(valueOf(after, 'sluice_sink_paused{sink="ranks"}'), 1);
    assert.equal(valueOf(after, 'sluice_sink_paused{sink="users"}'), 0);
    assert.equal((await fetch(`${base}/api/sinks/ranks/resume`, { method: 'POST' })).status, 200);
  });

  test('logs: one JSON object per stdout line, no row value in them', async () => {
    await eventually(async () => sluice.stdout.filter((l) => l.includes('"message failed"')).length, (n) => n >= 2, 10_000, 'two failures logged');
    for (const line of sluice.stdout) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
    assert.equal(sluice.stdout.filter((l) => l.includes(SECRET)).length, 0, sluice.stdout.filter((l) => l.includes(SECRET)).join('\n'));
    const failures = sluice.stdout.map((l) => JSON.parse(l) as { msg: string; sink?: string; reason?: string }).filter((l) => l.msg === 'message failed');
    assert.match(failures.find((l) => l.sink === 'shout')!.reason!, /^transform threw: \[hidden: may hold row values/);
    assert.equal(failures.find((l) => l.sink === 'ranks')!.reason, 'the score column "email" is not a number; a sorted set needs a number');
    // the failed message keeps the whole reason
    const stored = await redis.hvals('sluice:failed:shout');
    assert.ok(stored.some((v) => v.includes(`refusing ${SECRET}`)));
    await sluice.stop(5000);
  });

  test('--log-values: the values are logged', async () => {
    const p = spawnSluice(['start', '-c', configPath, '--log-values']);
    try {
      await p.waitForLine(/sluice started/, 30_000);
      await env.pg.query(`update users set email = '2-${SECRET}' where id = 2`);
      const line = await p.waitForLine(/"message failed".*"sink":"shout"|"sink":"shout".*"message failed"/, 15_000);
      assert.match(line, new RegExp(`refusing 2-${SECRET.replace(/\./g, '\\.')}`));
    } finally {
      await p.stop(5000);
    }
  });
});
