// The faults, one kind per entry: each does its damage, waits as long as the fault is meant to
// last (by the seed), puts things back and returns a short description. What happens while it
// lasts is paced by the workload's progress, never by fixed sleeps, except where the length is
// the point (SIGSTOP for N seconds, a stalled or slow proxy for N seconds, a Redis down for N ms).

import type { Rng } from './rng.js';
import { BEAT_RECOVERY } from './schema.js';
import type { FaultEnv } from './topology.js';
import type { Workload } from './workload.js';
import type { Conn } from './sinks.js';

export interface FaultContext {
  env: FaultEnv;
  rng: Rng;
  workload: Workload;
  /** how long a timed fault lasts, ms */
  lengthMs: [number, number];
}

export interface FaultKind {
  name: string;
  /** what it hits, for the table */
  target: string;
  /** the connection whose Redis may lose acknowledged writes by this fault */
  lossy?: Conn;
  /** needs a standby with Sluice's failover slot (Postgres 17+: not with `--pg 15`) */
  needsStandby?: boolean;
  /** returns a one-line description once things are back (and a finding, if it saw one) */
  run(ctx: FaultContext): Promise<string | FaultOutcome>;
}

export interface FaultOutcome {
  detail: string;
  /** something wrong that is not a difference in the data (a shutdown that hangs, …) */
  finding?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const length = (ctx: FaultContext): number => ctx.rng.between(ctx.lengthMs[0], ctx.lengthMs[1]);

/** while something is down: until the writer committed `n` more transactions (or `maxMs` passed) */
async function writesWhileDown(ctx: FaultContext, n: number, maxMs: number): Promise<number> {
  const from = ctx.workload.committed;
  await Promise.race([ctx.workload.waitCommitted(from + n), sleep(maxMs)]);
  return ctx.workload.committed - from;
}

async function walsenderPid(env: FaultEnv, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await env.pg.query(`select active_pid from pg_replication_slots where slot_name = 'sluice' and active_pid is not null`).catch(() => undefined);
    const pid = r?.rows[0]?.active_pid as number | undefined;
    if (pid) return pid;
    await sleep(50);
  }
  return undefined;
}

/**
 * ms from now until the main Redis shows a beat committed now on the primary (retried while the
 * primary refuses it), or undefined after `timeoutMs`
 */
async function firstChangeApplied(env: FaultEnv, timeoutMs: number): Promise<number | undefined> {
  const t0 = Date.now();
  let n: number | undefined;
  while (n === undefined) {
    if (Date.now() - t0 > timeoutMs) return undefined;
    n = await env.pg.query(`update beat set n = n + 1 where id = ${BEAT_RECOVERY} returning n`).then(
      (r) => Number(r.rows[0].n),
      () => undefined,
    );
    if (n === undefined) await sleep(50);
  }
  for (;;) {
    const v = await env.views.main.client.get(`beat:${BEAT_RECOVERY}`).catch(() => null);
    if (v !== null && Number((JSON.parse(v) as { n: number }).n) >= n) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) return undefined;
    await sleep(20);
  }
}

function proxyFaults(which: 'redis' | 'pg'): FaultKind[] {
  const proxyOf = (env: FaultEnv) => (which === 'redis' ? env.mainProxy : env.pgProxy);
  const target = which === 'redis' ? 'Sluice ↔ Redis main' : 'Sluice ↔ Postgres';
  return [
    {
      name: `${which}-proxy-stall`,
      target,
      async run(ctx) {
        const ms = length(ctx);
        const p = proxyOf(ctx.env);
        p.stall();
        await sleep(ms);
        p.resume();
        return `no byte through for ${ms} ms (${p.stats.open} connections open)`;
      },
    },
    {
      name: `${which}-proxy-cut`,
      target,
      async run(ctx) {
        const refuseMs = ctx.rng.chance(0.5) ? ctx.rng.between(100, ctx.lengthMs[1]) : 0;
        const p = proxyOf(ctx.env);
        const open = p.stats.open;
        p.cut({ refuseMs });
        if (refuseMs > 0) await sleep(refuseMs);
        return `${open} connections reset${refuseMs > 0 ? `, new ones refused for ${refuseMs} ms` : ''}`;
      },
    },
    {
      name: `${which}-proxy-delay`,
      target,
      async run(ctx) {
        const ms = length(ctx);
        const delay = ctx.rng.between(20, 400);
        const p = proxyOf(ctx.env);
        p.delay(delay);
        await sleep(ms);
        p.delay(0);
        return `every chunk ${delay} ms late for ${ms} ms`;
      },
    },
  ];
}

export const FAULT_KINDS: FaultKind[] = [
  {
    name: 'sluice-kill9',
    target: 'Sluice',
    async run(ctx) {
      const pid = ctx.env.sluice.proc?.pid;
      await ctx.env.sluice.kill();
      const n = await writesWhileDown(ctx, ctx.rng.between(0, 200), 3000);
      await ctx.env.sluice.start();
      return `pid ${pid} SIGKILLed, ${n} transactions committed while down`;
    },
  },
  {
    name: 'sluice-sigstop',
    target: 'Sluice',
    async run(ctx) {
      const pid = ctx.env.sluice.proc?.pid;
      if (!pid || !ctx.env.sluice.running) throw new Error('Sluice is not running');
      const ms = length(ctx);
      process.kill(pid, 'SIGSTOP');
      try {
        await sleep(ms);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      return `SIGSTOP for ${ms} ms, then SIGCONT`;
    },
  },
  {
    name: 'walsender-terminated',
    target: 'Postgres',
    async run(ctx) {
      const pid = await walsenderPid(ctx.env, 30_000);
      if (pid === undefined) throw new Error('no active walsender for the slot within 30 s');
      await ctx.env.pg.query('select pg_terminate_backend($1)', [pid]);
      return `pg_terminate_backend(${pid})`;
    },
  },
  {
    name: 'pg-restart-fast',
    target: 'Postgres',
    async run(ctx) {
      const t = Date.now();
      await ctx.env.pg.restart({ mode: 'fast' });
      const ms = Date.now() - t;
      const detail = `fast shutdown and start, ${ms} ms`;
      // the harness waits 30 s for a fast shutdown, then shuts down immediately
      if (ms < 29_000) return detail;
      return { detail: `${detail} (escalated to immediate)`, finding: 'Postgres fast shutdown did not finish within 30 s while Sluice was connected (the harness then shut it down immediately); see postgres.log ("received fast shutdown request") and sluice.log around that time' };
    },
  },
  {
    name: 'pg-restart-immediate',
    target: 'Postgres',
    async run(ctx) {
      const t = Date.now();
      await ctx.env.pg.restart({ mode: 'immediate' });
      return `immediate shutdown (crash recovery at start), ${Date.now() - t} ms`;
    },
  },
  {
    name: 'pg-standby-takeover',
    target: 'Postgres primary → standby',
    needsStandby: true,
    async run(ctx) {
      // postgres-pair.ts: immediate stop, the proxy to the standby, promotion, a new standby;
      // meanwhile, how long until Sluice applied a change committed on the new primary
      let resumed: Promise<number | undefined> = Promise.resolve(undefined);
      const outcome = await ctx.env.postgres.takeover('sluice', {
        moveProxy: (port) => {
          ctx.env.pgProxy.cut();
          ctx.env.pgProxy.retarget(port);
        },
        lastAcknowledged: () => ctx.workload.lastAckedXid,
        promoted: () => {
          resumed = firstChangeApplied(ctx.env, 120_000);
        },
        log: ctx.env.log,
      });
      const ms = await resumed;
      const applied = ms === undefined ? 'Sluice showed no change of the new primary within 120 s' : `Sluice applied a change of the new primary ${ms} ms after its promotion`;
      return { ...outcome, detail: `${outcome.detail}; ${applied}` };
    },
  },
  {
    name: 'redis-aof-kill9',
    target: 'Redis main (AOF, fsync always)',
    async run(ctx) {
      await ctx.env.main.kill('SIGKILL');
      const n = await writesWhileDown(ctx, ctx.rng.between(0, 200), ctx.rng.between(100, ctx.lengthMs[1]));
      await ctx.env.main.start();
      return `SIGKILL, restarted from its AOF; ${n} transactions committed while down`;
    },
  },
  {
    name: 'redis-volatile-restart',
    target: 'Redis volatile (no persistence)',
    lossy: 'volatile',
    async run(ctx) {
      await ctx.env.volatile.kill('SIGKILL');
      const n = await writesWhileDown(ctx, ctx.rng.between(0, 200), ctx.rng.between(100, ctx.lengthMs[1]));
      await ctx.env.volatile.start();
      return `SIGKILL, restarted empty; ${n} transactions committed while down`;
    },
  },
  ...proxyFaults('redis'),
  ...proxyFaults('pg'),
  {
    name: 'cluster-failover',
    target: 'Redis Cluster',
    async run(ctx) {
      const t = await ctx.env.cluster.topology();
      const masters = t.filter((n) => n.role === 'master' && n.slots.length > 0 && t.some((r) => r.masterId === n.id && !r.failed));
      const m = ctx.rng.pick(masters);
      const promoted = await ctx.env.cluster.failover(m.port);
      return `CLUSTER FAILOVER: ${promoted} took over from ${m.port}`;
    },
  },
  {
    name: 'cluster-reshard',
    target: 'Redis Cluster',
    async run(ctx) {
      const t = (await ctx.env.cluster.topology()).filter((n) => n.role === 'master');
      const count = (n: (typeof t)[number]): number => n.slots.reduce((s, [a, b]) => s + b - a + 1, 0);
      const sorted = [...t].sort((a, b) => count(b) - count(a));
      const from = sorted[0]!;
      const to = sorted[sorted.length - 1]!;
      const slots = ctx.rng.between(50, 400);
      await ctx.env.cluster.reshard(from.port, to.port, slots);
      return `${slots} slots moved live from ${from.port} to ${to.port}`;
    },
  },
  {
    name: 'sentinel-failover',
    target: 'Redis Sentinel',
    lossy: 'sentinel',
    async run(ctx) {
      const before = ctx.env.sentinel.master.port;
      await ctx.env.sentinel.failover();
      return `SENTINEL FAILOVER: ${ctx.env.sentinel.master.port} took over from ${before}`;
    },
  },
];

/** the kinds a run on Postgres `pgVersion` can do */
export function faultKinds(pgVersion: number): FaultKind[] {
  return FAULT_KINDS.filter((k) => !k.needsStandby || pgVersion >= 17);
}

/** what the harnesses cannot do, said in the report */
export function notCovered(pgVersion: number): string[] {
  return pgVersion >= 17 ? [] : [`a Postgres standby taking over (pg-standby-takeover): Postgres ${pgVersion} has no failover slots, so the slot would not exist on a promoted standby; run on Postgres 18 (without --pg) for it`];
}
