// npm run test:faults -- [--seed N] [--size small|full] [--faults N] [--transactions N]
//                        [--pg 18|15] [--out DIR] [--keep] [--verbose]
//
// One random workload (from the seed) through sinks of every type on four Redis setups, while
// faults of every kind hit Sluice, Postgres, Redis and the network between them at moments set
// by the seed and paced by progress; then an independent checker compares every sink with what
// Postgres committed. Prints a table; exit code 0 only with 0 discrepancies. The run's folder
// (seed, fault timeline, Sluice's and the servers' logs) is kept when something is found, or
// with --keep; `--seed N --size S` replays the same workload and the same faults.
//
// Postgres is 18 with a synchronous standby (postgres-pair.ts), so that a standby taking over is
// one of the faults; `--pg 15` runs the system Postgres 15 alone, without that fault.

import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { check, type CheckResult, type Discrepancy } from './checker.js';
import { faultKinds, notCovered, type FaultKind } from './faults.js';
import { Monitor, lsnOf } from './monitor.js';
import { formatReport, type FaultRecord, type Finding, type RunSummary } from './report.js';
import { Rng } from './rng.js';
import { BEAT_RECOVERY, type IdSpace } from './schema.js';
import { CONNS, beatSpecs, documentedTypes, handlerOf, sinkSpecs, type Conn, type SinkSpec } from './sinks.js';
import { Subscriber } from './subscriber.js';
import { startFaultEnv, writeSluiceConfig, type FaultEnv } from './topology.js';
import { Workload, prepopulateSql } from './workload.js';

export interface SizeProfile {
  /** transactions the writer makes, at least */
  transactions: number;
  /** faults: passes over every kind, each pass in an order drawn from the seed */
  passes: number;
  bigCount: number;
  ids: IdSpace;
  lagBudget: number;
  /** length of timed faults, ms */
  lengthMs: [number, number];
}

export const SIZES: Record<string, SizeProfile> = {
  small: { transactions: 1500, passes: 1, bigCount: 2, ids: { acct: 200, mv: 150, doc: 6, ck: 20, part: 40, groups: 8 }, lagBudget: 300, lengthMs: [300, 1500] },
  full: { transactions: 100_000, passes: 13, bigCount: 6, ids: { acct: 2000, mv: 1000, doc: 12, ck: 100, part: 300, groups: 20 }, lagBudget: 2000, lengthMs: [500, 5000] },
};

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RECOVERY_TIMEOUT_MS = 180_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** how often the probe commits its beat again while waiting (a lost beat must not stall the run) */
const PROBE_REBUMP_MS = 15_000;
let probeRebumps = 0;

/**
 * Commits a beat in Postgres and waits until every Redis shows it (or a later one); returns the
 * ms taken. Every PROBE_REBUMP_MS without it, the beat is committed again: if Sluice lost the
 * first one (the checker reports that from the history sinks), the run goes on.
 */
async function probe(env: FaultEnv, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  const bump = async (): Promise<number> => {
    for (;;) {
      try {
        return Number((await env.pg.query(`update beat set n = n + 1 where id = ${BEAT_RECOVERY} returning n`)).rows[0].n);
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`Postgres did not take the probe within ${timeoutMs} ms: ${(err as Error).message}`);
        await sleep(50);
      }
    }
  };
  const n = await bump();
  let bumpedAt = Date.now();
  const waiting = new Set<Conn>(CONNS);
  while (waiting.size > 0) {
    for (const conn of [...waiting]) {
      const v = await env.views[conn].client.get(`beat:${BEAT_RECOVERY}`).catch(() => null);
      if (v !== null && Number((JSON.parse(v) as { n: number }).n) >= n) waiting.delete(conn);
    }
    if (waiting.size === 0) break;
    if (Date.now() > deadline) throw new Error(`not caught up after ${timeoutMs} ms: Redis ${[...waiting].join(', ')} does not show beat ${n}`);
    if (Date.now() - bumpedAt > PROBE_REBUMP_MS) {
      probeRebumps++;
      env.log(`probe: beat ${n} not shown by ${[...waiting].join(', ')} after ${PROBE_REBUMP_MS} ms; committing another`);
      await bump();
      bumpedAt = Date.now();
    }
    await sleep(20);
  }
  return Date.now() - t0;
}

async function maxSeq(env: FaultEnv): Promise<number> {
  for (;;) {
    try {
      return Number((await env.pg.query('select coalesce(max(seq), 0) as m from audit')).rows[0].m);
    } catch {
      await sleep(100);
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: 'string' },
      size: { type: 'string', default: 'small' },
      faults: { type: 'string' },
      transactions: { type: 'string' },
      pg: { type: 'string', default: '18' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const size = values.size!;
  const profile = SIZES[size];
  if (!profile) throw new Error(`--size must be one of ${Object.keys(SIZES).join(', ')}`);
  const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error('--seed must be a non-negative integer');
  const transactions = values.transactions !== undefined ? Number(values.transactions) : profile.transactions;
  const pgVersion = Number(values.pg);
  if (pgVersion !== 15 && pgVersion !== 18) throw new Error('--pg must be 18 (a primary and a standby) or 15 (one server, no takeover)');
  const kinds: FaultKind[] = faultKinds(pgVersion);
  const faultCount = values.faults !== undefined ? Number(values.faults) : profile.passes * kinds.length;
  const extra = [values.faults !== undefined ? `--faults ${faultCount}` : '', values.transactions !== undefined ? `--transactions ${transactions}` : '', pgVersion !== 18 ? `--pg ${pgVersion}` : ''].filter(Boolean).join(' ');
  const replay = `npm run test:faults -- --seed ${seed} --size ${size}${extra ? ` ${extra}` : ''}`;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = values.out ?? join(REPO_ROOT, 'test', 'faults', 'runs', `seed-${seed}-${size}-${stamp}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'replay.txt'), `${replay}\n`);
  console.log(`fault run: seed ${seed}, size ${size}, ${faultCount} faults, ≥ ${transactions} transactions, Postgres ${pgVersion}${pgVersion >= 17 ? ' with a standby' : ''}`);
  console.log(`replay with: ${replay}`);
  console.log(`run folder: ${relative(process.cwd(), dir) || dir}`);

  const startedAt = new Date();
  const rng = new Rng(seed);
  const documented = documentedTypes(readFileSync(join(REPO_ROOT, 'docs', 'sinks.md'), 'utf8'));
  const skippedSinkTypes = [...new Set(sinkSpecs().filter((s) => !documented.has(s.type)).map((s) => s.type))];
  const specs: SinkSpec[] = [...sinkSpecs().filter((s) => documented.has(s.type)), ...beatSpecs()];
  for (const s of specs) handlerOf(s); // every sink has a checker
  const checked = specs.filter((s) => s.table !== 'beat');
  const faults: FaultRecord[] = [];
  const discrepancies: Discrepancy[] = [];
  const findings: Finding[] = [];
  const lossBoundary: Partial<Record<Conn, number>> = {};
  let result: CheckResult | null = null;

  const env = await startFaultEnv(dir, values.verbose!, pgVersion);
  const log = env.log;
  const subscriber = new Subscriber(env.main.port, Subscriber.patternsOf(specs));
  const monitor = new Monitor(env.views, checked, rng.fork('monitor'), profile.ids);
  const workload = new Workload({
    url: () => env.pg.url,
    rng: rng.fork('workload'),
    ids: profile.ids,
    bigCount: profile.bigCount,
    expectedTransactions: transactions,
    lagBudget: profile.lagBudget,
    progressView: env.views.main,
    log,
  });
  try {
    await env.pg.query(prepopulateSql(profile.ids));
    writeSluiceConfig(env, specs);
    await env.sluice.start();
    log('sluice started; waiting for the initial backfill to reach every Redis');
    await probe(env, RECOVERY_TIMEOUT_MS);
    env.postgres.syncSlotSoon('sluice', log);
    const sinceSeq = await maxSeq(env);
    await subscriber.start();
    monitor.start();
    // where a lost change went: Sluice's position for two main sinks, as it moved
    monitor.tracePositions('main', ['sluice:pos:acct-list', 'sluice:pos:mv-list']);
    workload.start();
    log(`workload started (history sinks are checked from audit seq ${sinceSeq})`);

    // the faults: passes over every kind, each pass shuffled by the seed
    const faultRng = rng.fork('faults');
    const plan: FaultKind[] = [];
    while (plan.length < faultCount) plan.push(...faultRng.shuffle(kinds));
    plan.length = faultCount;
    const perFault = transactions / Math.max(1, faultCount);
    for (const [i, kind] of plan.entries()) {
      // the writer stays within about two faults' share of the transactions ahead of the plan
      // (it writes during faults, and the run makes about the transactions it was asked for)
      workload.allowance = Math.max(workload.committed, Math.round(perFault * (i + 1))) + Math.round(2 * perFault);
      // a random moment, by progress: some transactions committed since the last recovery
      const gap = Math.round(perFault * (0.5 + faultRng.next()));
      await workload.waitCommitted(workload.committed + gap);
      const at = new Date();
      const t0 = Date.now();
      if (kind.lossy) monitor.beginLossy(kind.lossy);
      let detail = '';
      let error: string | undefined;
      try {
        const outcome = await kind.run({ env, rng: faultRng, workload, lengthMs: profile.lengthMs });
        detail = typeof outcome === 'string' ? outcome : outcome.detail;
        if (typeof outcome !== 'string' && outcome.finding) findings.push({ fault: i, kind: kind.name, finding: outcome.finding, at: at.toISOString() });
      } catch (err) {
        error = (err as Error).message.split('\n')[0]!;
        detail = `could not be done: ${error}`;
      }
      const faultMs = Date.now() - t0;
      if (kind.lossy) {
        lossBoundary[kind.lossy] = await maxSeq(env);
        monitor.endLossy(kind.lossy);
      }
      let recoveryMs: number | null = null;
      try {
        recoveryMs = await probe(env, RECOVERY_TIMEOUT_MS);
      } catch (err) {
        discrepancies.push({ sink: '-', conn: '-', kind: 'no recovery', detail: `after fault #${i} ${kind.name} (${detail}): ${(err as Error).message}` });
      }
      const rec: FaultRecord = { index: i, kind: kind.name, target: kind.target, detail, at: at.toISOString(), faultMs, recoveryMs, ...(error ? { error } : {}) };
      faults.push(rec);
      appendFileSync(join(dir, 'faults.jsonl'), `${JSON.stringify(rec)}\n`);
      log(`fault #${i} ${kind.name}: ${detail}; recovered in ${recoveryMs ?? '—'} ms (${workload.committed} transactions committed)`);
      if (!values.verbose) process.stdout.write(`  #${i} ${kind.name}: ${detail}; recovered in ${recoveryMs === null ? 'NEVER' : `${recoveryMs} ms`}\n`);
      if (recoveryMs === null) break;
      if (!env.sluice.running) {
        discrepancies.push({ sink: '-', conn: '-', kind: 'sluice exited', detail: `after fault #${i} ${kind.name}:\n${env.sluice.tail(20)}` });
        break;
      }
    }

    // the rest of the workload, then everything applied
    workload.allowance = Math.max(transactions, workload.committed);
    if (discrepancies.length === 0) await workload.waitCommitted(transactions);
    await workload.stop();
    if (discrepancies.length === 0) await probe(env, RECOVERY_TIMEOUT_MS);
    await monitor.stop();
    log(`workload stopped: ${workload.committed} transactions; checking`);

    // keyed sinks may still be rebuilding (a re-backfill after a data loss): check until clean,
    // for a while
    const deadline = Date.now() + (size === 'small' ? 40_000 : 120_000);
    for (;;) {
      result = await check({ query: (sql, params) => env.pg.query(sql, params), views: env.views, specs: checked, sinceSeq, lossBoundary, received: subscriber.received, monitor: monitor.violations });
      if (result.discrepancies.length === 0 || Date.now() > deadline) break;
      log(`check: ${result.discrepancies.length} discrepancies; checking again in 5 s (re-backfills may still run)`);
      await sleep(5000);
    }
    // each lost transaction: when Sluice's position went past it, and the fault around then
    for (const lostTx of result.lostTransactions) {
      const at = lsnOf(lostTx.lsn)!;
      const passed = monitor.positions.find((p) => (lsnOf(p.value) ?? 0n) > at);
      const when = passed ? Date.parse(passed.at) : undefined;
      const fault = when === undefined ? undefined : [...faults].reverse().find((f) => Date.parse(f.at) <= when);
      const d = result.discrepancies.find((x) => x.kind === 'transaction missing from history sinks' && x.detail.startsWith(`txid ${lostTx.tx} `));
      if (d && passed) {
        d.detail += `; Sluice's position for ${passed.key.slice('sluice:pos:'.length)} went past it at ${passed.at} (to ${passed.value})${fault ? `, ${((when! - Date.parse(fault.at)) / 1000).toFixed(1)} s after fault #${fault.index} ${fault.kind} began` : ''}`;
      }
    }
    // a keyed sink whose backfill failed (Sluice does not retry it) or never finished is wrong for
    // that reason: said with each of its discrepancies, and as a finding
    const incomplete = new Map<string, string>();
    for (const [sink, b] of env.sluice.backfills) {
      if (b.failed > 0) incomplete.set(sink, `a backfill of this sink failed (${b.lastError ?? 'no reason logged'}) and Sluice did not start it again`);
      else if (b.open) incomplete.set(sink, 'a backfill of this sink started and never finished (no "backfill done" or "backfill failed")');
    }
    for (const d of result.discrepancies) {
      const why = incomplete.get(d.sink);
      if (why && /key|value|more/.test(d.kind)) d.explainedBy = why;
    }
    for (const [sink, why] of incomplete) {
      const n = result.sinks.find((x) => x.sink === sink)?.discrepancies ?? 0;
      findings.push({ fault: -1, kind: 'backfill', at: new Date().toISOString(), finding: `sink ${sink}: ${why}${n > 0 ? `; the sink ends with ${n} discrepancies` : ' (the stream repaired what it missed)'}` });
    }
    discrepancies.push(...result.discrepancies);
    subscriber.stop();
    const exit = env.sluice.proc ? await env.sluice.proc.stop(30_000) : undefined;
    if (exit && exit.code !== 0) {
      findings.push({ fault: -1, kind: 'sluice stop', at: new Date().toISOString(), finding: `SIGTERM at the end of the run: Sluice ${env.sluice.proc?.lines.some((l) => /sluice stopped/.test(l.line)) ? 'logged "sluice stopped" but its process did not exit' : 'did not stop'} within 30 s (exit code ${exit.code}, signal ${exit.signal}: it was SIGKILLed)` });
    }
  } catch (err) {
    discrepancies.push({ sink: '-', conn: '-', kind: 'run aborted', detail: (err as Error).stack ?? String(err) });
  } finally {
    await workload.stop().catch(() => undefined);
    await monitor.stop().catch(() => undefined);
    subscriber.stop();
    if (discrepancies.length > 0 || findings.length > 0 || values.keep) {
      try {
        env.postgres.saveLogs(dir);
        writeFileSync(join(dir, 'redis-main.log'), env.main.output.join('\n'));
        writeFileSync(join(dir, 'redis-volatile.log'), env.volatile.output.join('\n'));
        writeFileSync(join(dir, 'positions.log'), monitor.positions.map((p) => `${p.at} ${p.key} ${p.value}`).join('\n'));
      } catch {
        // best effort
      }
    }
    await env.stop();
  }

  const summary: RunSummary = {
    seed,
    size,
    replay,
    dir,
    startedAt: startedAt.toISOString(),
    durationS: (Date.now() - startedAt.getTime()) / 1000,
    faults,
    transactionsCommitted: workload.committed,
    bigTransactions: workload.bigDone,
    writerRetries: workload.retried,
    writerRolledBack: workload.rolledBack,
    check: result,
    monitorSamples: monitor.samples,
    pubsubReceived: subscriber.received.length,
    notable: env.sluice.notable,
    sluiceStarts: env.sluice.starts,
    probeRebumps,
    discrepancies,
    discrepancyCount: discrepancies.filter((d) => d.kind !== 'more').length - (result?.discrepancies.filter((d) => d.kind !== 'more').length ?? 0) + (result?.total ?? 0),
    findings,
    notCovered: notCovered(pgVersion),
    skippedSinkTypes,
  };
  const report = formatReport(summary);
  console.log(`\n${report}`);
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary, null, 2));
  writeFileSync(join(dir, 'report.txt'), `${report}\n`);
  if (discrepancies.length === 0 && findings.length === 0 && !values.keep) {
    rmSync(join(dir, 'sluice.log'), { force: true });
    rmSync(join(dir, 'run.log'), { force: true });
    // the logs of primaries a takeover replaced
    for (const f of readdirSync(dir)) if (/^postgres-primary-\d+\.log$/.test(f)) rmSync(join(dir, f), { force: true });
  }
  return discrepancies.length === 0 ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(2);
    },
  );
}
