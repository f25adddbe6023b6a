// Aggregate sinks on real servers: the Lua arithmetic against a BigInt reference, a seeded random
// workload with kill -9 in the middle compared with GROUP BY, a leaderboard, a backfill of an
// existing table under a writer, and `sluice check`/`start` refusing a table without REPLICA
// IDENTITY FULL.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import fc from 'fast-check';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { spawnSluice } from '../harness/process.js';
import { AGGREGATE_APPLY_SCRIPT } from '../../src/sinks/aggregate-scripts.js';
import { aggregateRegistryKeyOf, registryField } from '../../src/sinks/aggregate-sink.js';
import { addDecimalText, decimalTextEquals, formatDecimal } from '../../src/core/decimal.js';

/** A small deterministic PRNG (mulberry32): the workload is the same for a seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnSluice(args);
  const exit = await p.exited;
  return { code: exit.code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

interface Totals {
  count: string;
  sum: string;
}

/** GROUP BY as Postgres computes it: customer → count, exact sum (numeric(12,2): two decimals). */
async function groupBy(env: SluiceTestEnv, table: string, group: string, value: string): Promise<Map<string, Totals>> {
  const r = await env.pg.query(`select ${group}::text as g, count(*)::text as n, coalesce(sum(${value}), 0)::text as s from ${table} where ${group} is not null group by 1`);
  return new Map((r.rows as { g: string; n: string; s: string }[]).map((x) => [x.g, { count: x.n, sum: x.s }]));
}

/** Every key matching `pattern` (SCAN). */
async function keys(redis: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    out.push(...batch);
  } while (cursor !== '0');
  return out.sort();
}

/** The revenue hashes as a map customer → totals (their text as Redis holds it). */
async function revenueHashes(redis: Redis, prefix: string): Promise<Map<string, Totals>> {
  const out = new Map<string, Totals>();
  for (const k of await keys(redis, `${prefix}*`)) {
    const h = await redis.hgetall(k);
    out.set(k.slice(prefix.length), { count: h.orders ?? '(none)', sum: h.revenue ?? '(none)' });
  }
  return out;
}

/** Redis's groups equal GROUP BY's: the same groups, the same counts, the same sums as exact decimals (a sum of only NULLs is 0). */
function assertGroupsEqual(actual: Map<string, Totals>, expected: Map<string, Totals>, what: string): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: the groups`);
  for (const [g, want] of expected) {
    const got = actual.get(g)!;
    assert.equal(got.count, want.count, `${what}: count of ${g}`);
    assert.ok(decimalTextEquals(got.sum, want.sum), `${what}: sum of ${g}: Redis ${got.sum}, Postgres ${want.sum}`);
  }
}

describe('aggregate sinks on real servers', () => {
  let env: SluiceTestEnv;
  let redis: Redis;

  before(async () => {
    env = await createSluiceTestEnv();
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test('the script adds decimal strings exactly: property against BigInt, in Redis', async () => {
    const decimal = fc
      .record({ neg: fc.boolean(), int: fc.bigInt({ min: 0n, max: 10n ** 25n }), scale: fc.integer({ min: 0, max: 8 }), frac: fc.bigInt({ min: 0n, max: 10n ** 8n }) })
      .map(({ neg, int, scale, frac }) => `${neg ? '-' : ''}${int}${scale === 0 ? '' : `.${(frac % 10n ** BigInt(scale)).toString().padStart(scale, '0')}`}`);
    const pairs = fc.sample(fc.tuple(decimal, decimal), { numRuns: 3000, seed: 42 });
    pairs.push(['0.10', '0.20'], ['-1.50', '1.5'], ['99999999999999999999999.99', '0.01'], ['0', '-0.001'], ['-7', '-3']);
    const p = redis.pipeline();
    for (const [a, b] of pairs) p.eval(AGGREGATE_APPLY_SCRIPT, 0, 'add', a, b);
    const replies = (await p.exec())!;
    pairs.forEach(([a, b], i) => {
      const [err, got] = replies[i]!;
      assert.equal(err, null);
      // the reference: BigInt at the larger scale
      const parse = (t: string): [bigint, number] => {
        const [x, y = ''] = t.replace('-', '').split('.') as [string, string?];
        return [BigInt(x + y) * (t.startsWith('-') ? -1n : 1n), y.length];
      };
      const [ua, sa] = parse(a);
      const [ub, sb] = parse(b);
      const s = Math.max(sa, sb);
      const want = formatDecimal({ units: ua * 10n ** BigInt(s - sa) + ub * 10n ** BigInt(s - sb), scale: s });
      assert.equal(got, want, `${a} + ${b}`);
      assert.equal(got, addDecimalText(a, b), 'the same as core/decimal.ts');
    });
    assert.equal(replies[pairs.length - 5]![1], '0.30', '0.10 + 0.20');
  });

  test('a seeded random workload with kill -9 in the middle equals GROUP BY (counts, exact numeric(12,2) sums), hash and leaderboard', async () => {
    await env.pg.query(`create table orders (id int primary key, customer text, amount numeric(12,2));
      alter table orders replica identity full;`);
    const path = env.writeConfig(
      `  - name: revenue
    type: aggregate
    tables: [orders]
    key: "rev:{customer}"
    measures: {orders: count, revenue: sum(amount)}
  - name: board
    type: aggregate
    tables: [orders]
    key: "board"
    into: zset
    member: "{customer}"
    score: sum(amount)
  - name: progress
    type: list
    tables: [orders]
    key: "progress"
    actions: [insert, update, delete]
    value: record`,
      `apply:\n  batch_max_commands: 40\n`,
    );
    const seed = Number(process.env.SLUICE_TEST_SEED ?? 20_261_122);
    const rand = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const customers = ['ann', 'bob', 'cy', 'dee', 'eve', 'fay', 'gus', 'hal'];
    const amount = (): string => formatDecimal({ units: BigInt(Math.floor(rand() * 2_000_000) - 400_000), scale: 2 });
    const live = new Set<number>();
    let nextId = 1;
    /** one transaction of 1–3 changes; returns the changes made */
    const transaction = async (): Promise<number> => {
      const ops: string[] = [];
      const n = 1 + Math.floor(rand() * 3);
      for (let i = 0; i < n; i++) {
        const r = rand();
        const ids = [...live];
        if (ids.length < 5 || r < 0.35) {
          const id = nextId++;
          live.add(id);
          ops.push(`insert into orders values (${id}, ${rand() < 0.05 ? 'null' : `'${pick(customers)}'`}, ${rand() < 0.05 ? 'null' : amount()})`);
        } else if (r < 0.55) ops.push(`update orders set customer = '${pick(customers)}' where id = ${pick(ids)}`);
        else if (r < 0.75) ops.push(`update orders set amount = ${amount()} where id = ${pick(ids)}`);
        else if (r < 0.85) ops.push(`update orders set customer = '${pick(customers)}', amount = ${amount()} where id = ${pick(ids)}`);
        else {
          const id = pick(ids);
          live.delete(id);
          ops.push(`delete from orders where id = ${id}`);
        }
      }
      await env.pg.query(`begin; ${ops.join('; ')}; commit`);
      return ops.length;
    };

    const N = 1200; // changes
    const AHEAD = 120;
    let written = 0;
    let applied = 0;
    let stopWriter = false;
    const progress = (): Promise<number> => redis.llen('progress');
    let sluice = await env.start(path);
    await eventually(() => redis.hget('sluice:backfill:revenue', 'public.orders'), (v) => v !== null && (JSON.parse(v) as { state: string }).state === 'done', 30_000, 'the initial (empty) backfill');
    const writer = (async () => {
      while (written < N && !stopWriter) {
        while (written >= applied + AHEAD && !stopWriter) {
          await new Promise((r) => setTimeout(r, 10));
          applied = await progress();
        }
        written += await transaction();
      }
    })();
    try {
      for (let round = 0; round < 3; round++) {
        const what = `seed ${seed}, round ${round}`;
        if (round > 0) sluice = await env.start(path);
        const start = await progress();
        const target = start + 60 + Math.floor(rand() * 120);
        await eventually(progress, (n) => n >= target, 60_000, `${what}: ${target} changes applied`);
        await redis.call('CLIENT', 'PAUSE', '60000', 'WRITE');
        try {
          const paused = await progress();
          await eventually(async () => written, (w) => w >= paused + 41, 60_000, `${what}: changes committed beyond ${paused}`);
          const exit = await sluice.kill('SIGKILL');
          assert.equal(exit.signal, 'SIGKILL', sluice.tail(20));
        } finally {
          await redis.call('CLIENT', 'UNPAUSE');
        }
      }
      assert.ok(written < N, 'the kills happened while the writer wrote');
      sluice = await env.start(path);
      await writer;
    } catch (err) {
      stopWriter = true;
      await writer.catch(() => undefined);
      throw err;
    }
    await eventually(progress, (n) => n >= written, 60_000, `all ${written} changes applied`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await progress(), written, 'each change exactly once (the progress list)');

    const expected = await groupBy(env, 'orders', 'customer', 'amount');
    assert.ok(expected.size >= 5, 'groups to compare');
    assertGroupsEqual(await revenueHashes(redis, 'rev:'), expected, `the hashes (seed ${seed})`);
    // the leaderboard: the score is the sum, the registry holds it exactly
    const board = await redis.zrange('board', 0, -1, 'WITHSCORES');
    const scores = new Map<string, string>();
    for (let i = 0; i < board.length; i += 2) scores.set(board[i]!, board[i + 1]!);
    assert.deepEqual([...scores.keys()].sort(), [...expected.keys()].sort(), 'one member per group');
    for (const [c, t] of expected) {
      assert.equal(Number(scores.get(c)), Number(t.sum), `score of ${c}`);
      const entry = await redis.hget(aggregateRegistryKeyOf('board', 'board'), registryField({ key: 'board', member: c }));
      const [n, s] = (entry ?? '').split(' ') as [string, string];
      assert.ok(n === t.count && decimalTextEquals(s, t.sum), `exact sum of ${c}: ${entry} vs ${t.count} ${t.sum}`);
    }
    const verify = await run(['verify', 'revenue', '-c', path]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /in sync/);
    const verifyBoard = await run(['verify', 'board', '-c', path]);
    assert.equal(verifyBoard.code, 0, verifyBoard.stdout + verifyBoard.stderr);
    // a group changed behind Sluice's back: verify sees it
    await redis.hset(`rev:${[...expected.keys()][0]!}`, 'revenue', '0.01');
    const stale = await run(['verify', 'revenue', '-c', path]);
    assert.equal(stale.code, 1, stale.stdout);
    assert.match(stale.stdout, /1 stale/);
    await sluice.kill('SIGTERM');
  });

  test('a leaderboard: players move between games, points change, rows go; scores are the sums, empty members leave', async () => {
    await env.pg.query(`create table matches (id int primary key, game text not null, player text not null, points numeric(8,1));
      alter table matches replica identity full;
      insert into matches values (1, 'chess', 'ann', 10.5), (2, 'chess', 'bob', 3.0), (3, 'go', 'ann', 7.2);`);
    const path = env.writeConfig(`  - name: games
    type: aggregate
    tables: [matches]
    key: "board:{game}"
    into: zset
    member: "{player}"
    score: sum(points)
  - name: played
    type: aggregate
    tables: [matches]
    key: "played:{game}"
    into: zset
    member: "{player}"
    score: count`);
    const sluice = await env.start(path);
    try {
      await leaderboard(path);
    } finally {
      await sluice.kill('SIGTERM');
    }
  });

  async function leaderboard(path: string): Promise<void> {
    const board = async (game: string): Promise<[string, string][]> => {
      const flat = await redis.zrevrange(`board:${game}`, 0, -1, 'WITHSCORES');
      const out: [string, string][] = [];
      // a score is a double (Redis may print 3.7 as 3.7000000000000002): read as a number
      for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, String(Number(flat[i + 1]!))]);
      return out;
    };
    // the existing rows come from the backfill's GROUP BY
    await eventually(() => board('chess'), (b) => b.length === 2, 30_000, 'the backfill of the leaderboard');
    assert.deepEqual(await board('chess'), [['ann', '10.5'], ['bob', '3']]);
    await env.pg.query(`begin;
      insert into matches values (4, 'chess', 'bob', 0.1), (5, 'chess', 'bob', 0.2), (6, 'chess', 'cy', 1);
      update matches set game = 'go' where id = 1;
      update matches set points = points + 0.4 where id = 2;
      delete from matches where id = 6;
      commit`);
    await eventually(() => board('chess'), (b) => b.length === 1, 30_000, 'the changes');
    // bob: 3.0 + 0.4 + 0.1 + 0.2 = 3.7 exactly; ann left chess; cy came and went
    assert.deepEqual(await board('chess'), [['bob', '3.7']]);
    assert.deepEqual(await board('go'), [['ann', '17.7']]);
    const reg = await redis.hget(aggregateRegistryKeyOf('games', 'board:chess'), registryField({ key: 'board:chess', member: 'bob' }));
    assert.equal(reg, '3 3.7', 'three rows, their exact sum');
    assert.deepEqual(await redis.zrevrange('played:chess', 0, -1, 'WITHSCORES'), ['bob', '3']);
    assert.deepEqual(await redis.zrevrange('played:go', 0, -1, 'WITHSCORES'), ['ann', '2']);
    await env.pg.query(`delete from matches where game = 'go'`);
    await eventually(() => redis.exists('board:go', 'played:go'), (n) => n === 0, 30_000, 'the last member of go left, and the key with it');
    for (const sink of ['games', 'played']) {
      const v = await run(['verify', sink, '-c', path]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    }
  }

  test('a backfill of an existing table under a writer ends equal to GROUP BY, and removes the groups Redis held that GROUP BY has not', async () => {
    await env.pg.query(`create table comments (id int primary key, post int, likes int8);
      alter table comments replica identity full;
      insert into comments select i, i % 300, (i * 7919) % 1000 - 200 from generate_series(1, 30000) i;`);
    // a group Redis holds from before (a previous life of the sink), which GROUP BY does not have
    await redis.hset('post:ghost', 'comments', '5', 'likes', '12');
    await redis.hset(aggregateRegistryKeyOf('per-post', 'post:ghost'), registryField({ key: 'post:ghost', member: '' }), '5');
    const path = env.writeConfig(`  - name: per-post
    type: aggregate
    tables: [comments]
    key: "post:{post}"
    measures: {comments: count, likes: sum(likes)}`);
    let stop = false;
    let writes = 0;
    const rand = prng(7);
    const writer = (async () => {
      while (!stop) {
        const id = 1 + Math.floor(rand() * 32_000);
        const r = rand();
        if (r < 0.4) await env.pg.query(`insert into comments values ($1, $2, $3) on conflict (id) do update set likes = excluded.likes`, [id, Math.floor(rand() * 320), Math.floor(rand() * 100)]);
        else if (r < 0.8) await env.pg.query(`update comments set post = $2, likes = likes + 1 where id = $1`, [id, Math.floor(rand() * 320)]);
        else await env.pg.query(`delete from comments where id = $1`, [id]);
        writes++;
      }
    })();
    const sluice = await env.start(path).catch(async (err: unknown) => {
      stop = true;
      await writer;
      throw err;
    });
    try {
      await eventually(() => redis.hget('sluice:backfill:per-post', 'public.comments'), (v) => v !== null && (JSON.parse(v) as { state: string }).state === 'done', 60_000, 'the backfill');
      const before = writes;
      await eventually(async () => writes, (w) => w >= before + 200, 30_000, 'writes after the backfill');
    } finally {
      stop = true;
      await writer;
    }
    try {
      assert.ok(writes > 200, `the writer wrote during the backfill (${writes})`);
      const expected = await groupBy(env, 'comments', 'post', 'likes');
      const read = async (): Promise<Map<string, Totals>> => {
        const out = new Map<string, Totals>();
        for (const k of await keys(redis, 'post:*')) {
          const h = await redis.hgetall(k);
          out.set(k.slice('post:'.length), { count: h.comments ?? '(none)', sum: h.likes ?? '(none)' });
        }
        return out;
      };
      await eventually(read, (m) => m.size === expected.size && [...expected].every(([g, t]) => m.get(g)?.count === t.count && m.get(g)?.sum === t.sum), 30_000, 'Redis equal to GROUP BY').catch(() => undefined);
      assertGroupsEqual(await read(), expected, 'after the backfill and the writer');
      assert.equal(await redis.exists('post:ghost'), 0, 'the stale group is gone');
      const v = await run(['verify', 'per-post', '-c', path]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await sluice.kill('SIGTERM');
    }
  });

  test('sluice check and sluice start refuse an aggregate sink whose table is not REPLICA IDENTITY FULL, and say what to run', async () => {
    await env.pg.query(`create table likes (id int primary key, post int, ratio float8)`);
    const path = env.writeConfig(`  - name: like-counts
    type: aggregate
    tables: [likes]
    key: "likes:{post}"
    measures: {likes: count, ratio: sum(ratio)}`);
    const check = await run(['check', '-c', path]);
    assert.equal(check.code, 1, check.stdout + check.stderr);
    assert.match(check.stderr, /^error sinks\[0\]\.tables: table public\.likes is REPLICA IDENTITY DEFAULT, but an aggregate sink needs the whole old row of every update and delete to take its contribution away: run ALTER TABLE public\.likes REPLICA IDENTITY FULL;$/m);
    assert.match(check.stderr, /^error sinks\[0\]\.measures\.ratio: column "ratio" of table public\.likes is double precision: a float cannot be summed exactly/m);
    const start = spawnSluice(['start', '-c', path]);
    const exit = await start.exited;
    assert.equal(exit.code, 1, start.tail(20));
    assert.match(start.stderr.join('\n'), /ALTER TABLE public\.likes REPLICA IDENTITY FULL;/);
    await env.pg.query(`alter table likes replica identity full; alter table likes alter column ratio type numeric`);
    const fixed = await run(['check', '-c', path]);
    assert.doesNotMatch(fixed.stdout + fixed.stderr, /REPLICA IDENTITY|float/, fixed.stdout + fixed.stderr);
  });
});
