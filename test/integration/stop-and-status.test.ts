import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { diffMaps, expectedStrings, scanStrings } from '../support/compare.js';
import type { BackfillView } from '../../src/backfill/backfill-manager.js';
import type { HealthView, SinkView, SourceView } from '../../src/cli/status-format.js';
import { DRAIN_TIMEOUT_MS } from '../../src/app.js';

const TOKEN = 'status-test-token';
const BIG_ROWS = 200_000;

interface StatusJson {
  health: HealthView;
  source: SourceView;
  sinks: SinkView[];
}

/**
 * `sluice status` against a running instance (healthy, with a paused sink holding WAL, with its
 * Redis down, and not running), and a stop that stays bounded when Redis dies under a backfill.
 */
describe('sluice status, and a bounded stop while Redis is down', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let base: string;
  let configPath: string;
  let sluice: ManagedProcess;

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown; text: string; ms: number }> => {
    const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const started = Date.now();
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, json, text, ms: Date.now() - started };
  };

  /** runs `sluice status <args> -c sluice.yaml` to its end */
  const status = async (...args: string[]): Promise<{ code: number | null; out: string; err: string }> => {
    const p = spawnSluice(['status', ...args, '-c', configPath]);
    const exit = await p.exited;
    return { code: exit.code, out: p.stdout.join('\n'), err: p.stderr.join('\n') };
  };
  const statusJson = async (): Promise<StatusJson> => {
    const r = await status('--json');
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as StatusJson;
  };
  const backfills = async (sink: string): Promise<BackfillView[]> => {
    const r = await call('GET', `/api/sinks/${sink}/backfills`);
    return r.status === 200 ? (r.json as { backfills: BackfillView[] }).backfills : [];
  };
  /** the config with the http token, the given sinks */
  const writeConfig = (sinksYaml: string): string => {
    const path = env.writeConfig(sinksYaml);
    writeFileSync(path, readFileSync(path, 'utf8').replace(/^http:\n/m, `http:\n  token: ${TOKEN}\n`));
    return path;
  };

  before(async () => {
    env = await createSluiceTestEnv();
    base = `http://127.0.0.1:${env.httpPort}`;
    await env.pg.query(`
      create table users (id int primary key, name text);
      create table events (id int primary key, kind text);
      create table big (id int primary key, v int not null, note text);
      insert into big select g, 0, md5(g::text) from generate_series(1, ${BIG_ROWS}) g;
      analyze big;`);
    configPath = writeConfig(`  - name: users
    type: string
    tables: [users]
    key: "user:{id}"`);
    sluice = await env.start();
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test('shows config and API sinks; a paused sink is shown with the WAL it holds', async () => {
    const created = await call('POST', '/api/sinks', { name: 'events', type: 'list', tables: ['events'], key: 'events:{kind}' });
    assert.equal(created.status, 201, created.text);
    await env.pg.query(`insert into users values (1, 'ann'); insert into events values (1, 'a');`);
    await eventually(() => redis.llen('events:a'), (n) => n === 1, 15_000, 'the API sink writing');

    const text = await status();
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^health {3}ok$/m, text.out);
    assert.match(text.out, /^source {3}slot "sluice" streaming, lag .+ WAL retained /m, text.out);
    assert.match(text.out, /^SINK +TYPE +ORIGIN +STATE +LAG +LAG BYTES +HELD WAL +RATE +FAILED NOW +FAILED TOTAL$/m, text.out);
    assert.match(text.out, /^users +string +config +active +\S+( ms| s) +\S+ \S*B +- +\S+\/s +0 +0$/m, text.out);
    assert.match(text.out, /^events +list +api +active /m, text.out);

    const json = await statusJson();
    assert.equal(json.health.status, 'ok');
    assert.equal(json.source.slot, 'sluice');
    assert.deepEqual(json.sinks.map((s) => [s.name, s.origin, s.state]), [['users', 'config', 'active'], ['events', 'api', 'active']]);

    const paused = await call('POST', '/api/sinks/events/pause');
    assert.equal(paused.status, 200, paused.text);
    for (let i = 2; i <= 200; i++) await env.pg.query(`begin; insert into events values (${i}, 'b'); insert into users values (${i}, 'u${i}'); commit;`);
    await eventually(() => redis.get('user:200'), (v) => v !== null, 15_000, 'the other sink flowing');
    assert.equal(await redis.exists('events:b'), 0, 'the paused sink wrote nothing');
    // the held WAL is measured against the source monitor's snapshot, taken every 5 s
    const held = await eventually(statusJson, (j) => (j.sinks.find((s) => s.name === 'events')?.held_wal_bytes ?? 0) > 0, 20_000, 'held WAL measured');
    const events = held.sinks.find((s) => s.name === 'events')!;
    assert.equal(events.paused, true);
    assert.equal(events.state, 'paused');
    assert.deepEqual(held.health.paused_sinks, ['events']);
    assert.ok(held.source.held_by_paused_sinks?.some((h) => h.sink === 'events' && (h.held_wal_bytes ?? 0) > 0), JSON.stringify(held.source));

    const after = await status('--no-rate');
    assert.equal(after.code, 0, after.err);
    assert.match(after.out, /^health {3}ok \(paused: events\)$/m, after.out);
    assert.match(after.out, /^warning  paused sink "events" holds \d+(\.\d+)? (B|kB|MB) of WAL in slot "sluice"/m, after.out);
    assert.match(after.out, /^events +list +api +paused +- +\d+(\.\d+)? (B|kB|MB) +\d+(\.\d+)? (B|kB|MB) +- +0 +0$/m, after.out);

    assert.equal((await call('POST', '/api/sinks/events/resume')).status, 200);
    await eventually(() => redis.llen('events:b'), (n) => n === 199, 20_000, 'the resumed sink catching up');
  });

  test('while Redis is down: status exits 0 naming the Redis problem, and the API answers at once', async () => {
    await env.redis.kill();
    await eventually(() => call('GET', '/health'), (r) => r.status === 503, 30_000, '/health 503');
    const sinks = await call('GET', '/api/sinks');
    assert.equal(sinks.status, 200, sinks.text);
    assert.ok(sinks.ms < 2500, `GET /api/sinks took ${sinks.ms} ms`);
    const list = (sinks.json as { sinks: SinkView[] }).sinks;
    assert.ok(list.every((s) => typeof s.backfills_error === 'string'), 'backfills cannot be read, and say so');

    const r = await status();
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, /^health {3}unhealthy, \d+ problems?:$/m, r.out);
    assert.doesNotMatch(r.out, /paused/, 'nothing is paused any more');
    assert.match(r.out, /^ {9}- Redis "main" \(sinks users, events\): /m, r.out);
    assert.match(r.out, /^ {2}users: backfills unknown: /m, r.out);
    const json = await statusJson();
    assert.equal(json.health.status, 'unhealthy');
    assert.ok(json.health.problems?.some((p) => p.component === 'redis' && p.redis === 'main'), JSON.stringify(json.health));

    await env.redis.start();
    await eventually(() => call('GET', '/health'), (res) => res.status === 200, 60_000, '/health 200 again');
    const back = await status('--no-rate');
    assert.equal(back.code, 0, back.err);
    assert.match(back.out, /^health {3}ok$/m, back.out);
  });

  test('Redis killed under a backfill: SIGTERM ends Sluice within the drain timeout; restarted on an empty Redis, the sink is backfilled again', async () => {
    // the API sink of the first test goes (404: that test did not run)
    const deleted = await call('DELETE', '/api/sinks/events');
    assert.ok(deleted.status === 200 || deleted.status === 404, deleted.text);
    assert.equal((await sluice.stop(20_000)).code, 0, sluice.tail());
    writeConfig(`  - name: big
    type: string
    tables: [big]
    backfill: true`);

    // not running: one sentence naming the URL and what to do
    const down = await status();
    assert.equal(down.code, 1, down.out);
    assert.equal(down.err.trim().split('\n').length, 1, down.err);
    assert.match(down.err, new RegExp(`no Sluice is answering at http://127\\.0\\.0\\.1:${env.httpPort}: start it with sluice start`));

    sluice = await env.start();
    const copying = await eventually(() => backfills('big'), (b) => b.length === 1 && b[0]!.rows > 0, 60_000, 'the backfill copying');
    assert.equal(copying[0]!.state, 'running', 'the backfill is still running when Redis dies');
    await env.redis.kill();
    // a chunk waits for Redis: the lane retries, so there is something left to drain
    await eventually(() => call('GET', '/api/source'), (r) => (r.json as SourceView).redis?.some((l) => l.state === 'retrying') === true, 30_000, 'writes retrying');
    const during = await status('--no-rate');
    assert.equal(during.code, 0, during.err);
    assert.match(during.out, /^big +string +config +retrying /m, during.out);

    const mark = sluice.mark();
    const stopping = Date.now();
    void sluice.kill('SIGTERM');
    const exit = await Promise.race([sluice.exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000).unref())]);
    const tookMs = Date.now() - stopping;
    assert.ok(exit !== null, `Sluice did not exit within 30 s of SIGTERM; output tail:\n${sluice.tail(40)}`);
    assert.equal(exit.code, 0, sluice.tail(40));
    assert.ok(tookMs >= DRAIN_TIMEOUT_MS - 1000, `it waited for the drain (${tookMs} ms)`);
    const logged = sluice.lines.slice(mark).map((l) => l.line).join('\n');
    assert.match(logged, /drain timed out/);
    assert.match(logged, /sluice stopped/);

    // Redis comes back empty: the data is lost, and Sluice backfills the sink again
    await env.redis.start();
    sluice = await env.start();
    await env.pg.query(`update big set v = 1, note = 'changed' where id in (1, 100000, 200000); delete from big where id = 5`);
    await eventually(() => backfills('big'), (b) => b.length > 0 && b.every((x) => x.state !== 'running'), 120_000, 'the backfill again');
    assert.deepEqual((await backfills('big')).map((b) => b.state), ['done']);
    const expected = await expectedStrings(env.pg, 'big');
    const actual = await eventually(() => scanStrings(redis, 'sluice:big:'), (a) => diffMaps(expected, a).length === 0, 30_000, 'Redis equal to Postgres').catch(() => scanStrings(redis, 'sluice:big:'));
    assert.deepEqual(diffMaps(expected, actual).slice(0, 10), []);
    assert.equal(actual.size, BIG_ROWS - 1);
  });
});
