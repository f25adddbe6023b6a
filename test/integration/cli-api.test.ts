import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { REPO_ROOT } from '../harness/process.js';
import { freePort } from '../../src/util/free-port.js';

const TOKEN = 'cli-test-token';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** `sluice sinks …` and `sluice messages …` against a running instance, as a user types them. */
describe('sluice sinks and sluice messages wrap the API', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let configPath: string;

  /** runs bin/sluice to its end, with `input` on stdin (stdin is a pipe, never a terminal) */
  const sluice = (args: readonly string[], input = '', config: string | null = configPath): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(join(REPO_ROOT, 'bin', 'sluice'), [...args, ...(config === null ? [] : ['-c', config])], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out, err }));
      child.stdin.end(input);
    });
  const ok = async (args: readonly string[], input?: string): Promise<string> => {
    const r = await sluice(args, input);
    assert.equal(r.code, 0, `sluice ${args.join(' ')}: ${r.err}${r.out}`);
    return r.out;
  };
  /** exit 1 with one sentence on stderr (and, for a refused body, a line per problem) */
  const refused = async (args: readonly string[], input?: string): Promise<string> => {
    const r = await sluice(args, input);
    assert.equal(r.code, 1, `sluice ${args.join(' ')} should fail: ${r.out}`);
    assert.match(r.err, /^sluice: /);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
    return r.err;
  };
  /** `--json` prints the API's answer as it is: `{"sinks": […]}` */
  const sinkJson = async (): Promise<{ name: string; origin: string; state: string; paused: boolean }[]> =>
    (JSON.parse(await ok(['sinks', 'list', '--json'])) as { sinks: { name: string; origin: string; state: string; paused: boolean }[] }).sinks;

  before(async () => {
    env = await createSluiceTestEnv();
    await env.pg.query(`
      create table users (id int primary key, name text);
      create table orders (id int primary key, customer int not null, total numeric);`);
    configPath = env.writeConfig(`  - name: users
    type: string
    tables: [users]
    actions: [insert]
    key: "user:{name}"`);
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(/^http:\n/m, `http:\n  token: ${TOKEN}\n`));
    await env.start();
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test('every command answers --help', async () => {
    for (const cmd of ['sinks', 'messages']) {
      const r = await sluice([cmd, '--help'], '', null);
      assert.equal(r.code, 0);
      assert.match(r.out, new RegExp(`^Usage: sluice ${cmd} `));
    }
    assert.match((await sluice(['--help'], '', null)).out, /sinks .*\n.*messages /);
  });

  test('sinks list, add (file, stdin, problems with their paths), pause, resume, rm', async () => {
    const table = await ok(['sinks', 'list']);
    assert.match(table, /^SINK\s+TYPE\s+ORIGIN\s+STATE\s+REDIS\s+FAILED\s+TABLES\n/);
    assert.match(table, /\nusers\s+string\s+config\s+active\s+main\s+0\s+public\.users\n/);

    // a block with mistakes: each with its path, nothing created
    const bad = join(env.dir, 'bad.yaml');
    writeFileSync(bad, 'name: feed\ntype: list\ntables: [orders, 7]\nkey: "feed:{customer}"\nmax_lenght: 10\n');
    const err = await refused(['sinks', 'add', '-f', bad]);
    assert.match(err, /^sluice: sink "feed" was not created: 2 problems in it\n/);
    assert.match(err, /\n {2}tables\[1\]: .+/);
    assert.match(err, /\n {2}max_lenght: .*max_length/);
    assert.equal((await sinkJson()).length, 1, 'nothing created');
    assert.match(await refused(['sinks', 'add', '-f', join(env.dir, 'missing.yaml')]), /^sluice: cannot read .*missing\.yaml: no such file\n$/);
    assert.match(await refused(['sinks', 'add'], 'name: [unclosed'), /^sluice: stdin is not valid YAML or JSON/);

    // a YAML block on stdin, as under sinks: in the file
    const created = await ok(['sinks', 'add'], '- name: feed\n  type: list\n  tables: [orders]\n  key: "feed:{customer}"\n');
    assert.match(created, /^created sink "feed" \(list, public\.orders, Redis "main"\)/);
    await env.pg.query(`insert into orders values (1, 7, 10.5)`);
    await eventually(() => redis.llen('feed:7'), (n) => n === 1);

    // JSON from a file, --json prints the API's answer
    const json = join(env.dir, 'sink.json');
    writeFileSync(json, JSON.stringify({ name: 'totals', type: 'zset', tables: ['orders'], key: 'totals', member: '{id}', score: 'total' }));
    const answer = JSON.parse(await ok(['sinks', 'add', '-f', json, '--json'])) as { sink: { name: string; origin: string } };
    assert.deepEqual([answer.sink.name, answer.sink.origin], ['totals', 'api']);
    assert.match(await refused(['sinks', 'add', '-f', json]), /^sluice: sink "totals" was not created: .*(exists|already)/i);

    assert.match(await ok(['sinks', 'pause', 'feed']), /^paused sink "feed": .*sluice sinks resume feed/);
    assert.equal((await sinkJson()).find((s) => s.name === 'feed')?.paused, true);
    await env.pg.query(`insert into orders values (2, 7, 1)`);
    assert.match(await ok(['sinks', 'resume', 'feed']), /^resumed sink "feed"/);
    await eventually(() => redis.llen('feed:7'), (n) => n === 2, 15_000, 'the change made while paused');

    assert.match(await refused(['sinks', 'pause', 'nope']), /^sluice: cannot pause sink "nope": no sink named "nope"\n$/);
    assert.match(await refused(['sinks', 'rm', 'users', '--yes']), /^sluice: cannot delete sink "users": .*sluice\.yaml/);
    // no terminal to ask on: --yes is needed
    assert.match(await refused(['sinks', 'rm', 'feed']), /^sluice: sluice sinks rm deletes sink "feed": add --yes to confirm/);
    assert.match(await ok(['sinks', 'rm', 'feed', '--yes']), /^deleted sink "feed": what it wrote stays in Redis/);
    assert.match(await ok(['sinks', 'rm', 'totals', '-y']), /^deleted sink "totals"/);
    assert.deepEqual((await sinkJson()).map((s) => s.name), ['users']);
    assert.equal(await redis.llen('feed:7'), 2, 'its data stays');
    assert.match(await refused(['sinks', 'frobnicate']), /^sluice: unknown subcommand "sinks frobnicate": /);
  });

  test('messages list, retry and discard by the id as listed, and --all', async () => {
    assert.match(await ok(['messages', 'list', 'users']), /^sink "users" has no failed messages\n$/);
    await env.pg.query(`insert into users values (1, null), (2, null), (3, null)`);
    await eventually(async () => (JSON.parse(await ok(['messages', 'list', 'users', '--json'])) as { total: number }).total, (n) => n === 3);

    const listed = await ok(['messages', 'list', 'users', '--limit', '2']);
    const lines = listed.split('\n');
    assert.match(lines[0]!, /^ID\s+TABLE\s+ACTION\s+FAILED AT\s+REASON$/);
    assert.match(lines[1]!, /^[0-9A-F]+-[0-9A-F]+-\d+\s+public\.users\s+insert\s+\S+ \S+Z\s+.*column "name" is NULL/);
    const next = /; next page: sluice messages list users --cursor (\S+)\n$/.exec(listed)?.[1];
    assert.ok(next, listed);
    assert.match(await ok(['messages', 'list', 'users', '--cursor', next]), /\n1 of 3 failed message\(s\) of sink "users"\n$/);
    const newest = lines[1]!.split(/\s+/)[0]!;

    // the row is fixed in Postgres, then retried by the id as listed
    await env.pg.query(`update users set name = 'carol' where id = 3`);
    assert.match(await ok(['messages', 'retry', 'users', newest]), new RegExp(`^${newest}: applied \\(the row as it is now was written\\)\\n$`));
    assert.equal(await redis.get('user:carol'), '{"id":3,"name":"carol"}');
    assert.match(await refused(['messages', 'retry', 'users', newest]), new RegExp(`^sluice: retry of ${newest} refused: sink "users" has no failed message ${newest}`));

    // --all: one fixed, one still bad (exit 1, its reason printed)
    await env.pg.query(`update users set name = 'dave' where id = 2`);
    const all = await sluice(['messages', 'retry', 'users', '--all']);
    assert.equal(all.code, 1, all.err);
    assert.match(all.out, /: applied \(/);
    assert.match(all.out, /: failed again: column "name" is NULL/);
    assert.match(all.out, /\nretried 1 of 2: 1 applied, 1 failed again\n$/);
    assert.equal(await redis.get('user:dave'), '{"id":2,"name":"dave"}');

    assert.match(await refused(['messages', 'discard', 'users', '--all']), /add --yes to confirm/);
    assert.match(await ok(['messages', 'discard', 'users', '--all', '--yes']), /\ndiscarded 1 of 1: 1 discarded\n$/);
    assert.match(await ok(['messages', 'list', 'users']), /has no failed messages/);
    assert.match(await ok(['messages', 'retry', 'users', '--all']), /has no failed messages/);

    const delivered = await ok(['messages', 'list', 'users', '--delivered']);
    assert.match(delivered, /^ID\s+TABLE\s+ACTION\s+COMMAND\s+KEY\s+APPLIED AT\n[0-9A-F]+-[0-9A-F]+-\d+\s+public\.users\s+/);
    assert.match(await refused(['messages', 'discard', 'nope', '0-0-0']), /^sluice: cannot discard 0-0-0: no sink named "nope"\n$/);
    assert.match(await refused(['messages', 'retry', 'users']), /needs a message id as listed by sluice messages list users, or --all/);
  });

  test('errors are one sentence: nothing answering, a wrong token, the API off', async () => {
    const write = (name: string, edit: (text: string) => string): string => {
      const path = join(env.dir, name);
      writeFileSync(path, edit(readFileSync(configPath, 'utf8')));
      return path;
    };
    const unused = await freePort();
    const silent = write('silent.yaml', (t) => t.replace(`port: ${env.httpPort}`, `port: ${unused}`));
    const wrongToken = write('token.yaml', (t) => t.replace(TOKEN, 'nope'));
    const off = write('off.yaml', (t) => t.replace(`port: ${env.httpPort}`, 'port: 0'));

    const r1 = await sluice(['sinks', 'list'], '', silent);
    assert.equal(r1.code, 1);
    assert.match(r1.err, /^sluice: no Sluice is answering at http:\/\/127\.0\.0\.1:\d+: start it/);
    assert.equal(r1.err.trim().split('\n').length, 1);
    assert.match((await sluice(['messages', 'list', 'users'], '', wrongToken)).err, /^sluice: Sluice at .* refused the token/);
    assert.match((await sluice(['sinks', 'list'], '', off)).err, /^sluice: http\.port is 0, so there is no API to ask/);

    // verify --repair says what to turn on before comparing anything
    const v1 = await sluice(['verify', 'users', '--repair'], '', off);
    assert.equal(v1.code, 2);
    assert.equal(v1.out, '', 'nothing compared');
    assert.match(v1.err, /^sluice verify --repair asks the running instance to repair, and its HTTP API is off \(http\.port: 0\): set http\.port .*\n$/);
    const v2 = await sluice(['verify', 'users', '--repair'], '', silent);
    assert.equal(v2.code, 2);
    assert.match(v2.err, /^sluice verify --repair asks the running instance to repair, and nothing answers at http:\/\/127\.0\.0\.1:\d+: start it .*\n$/);
    assert.equal(v2.err.trim().split('\n').length, 1);
  });
});
