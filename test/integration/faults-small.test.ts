import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnManaged, REPO_ROOT } from '../harness/process.js';
import { FAULT_KINDS } from '../faults/faults.js';
import type { RunSummary } from '../faults/report.js';

/** the seed CI runs; `npm run test:faults -- --seed 11 --size small` runs the same thing by hand */
const SEED = 11;

test('the fault suite imports nothing from src/: its checker knows Sluice only from the docs', () => {
  const dir = join(REPO_ROOT, 'test', 'faults');
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
    const text = readFileSync(join(dir, f), 'utf8');
    assert.doesNotMatch(text, /^\s*(import|export)[^;]*from\s+['"][^'"]*\/src\//m, `${f} imports from src/`);
  }
});

test(`fault suite, small size, seed ${SEED}: every fault kind, 0 discrepancies`, { timeout: 240_000 }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'sluice-faults-'));
  const run = spawnManaged(process.execPath, ['--no-node-snapshot', '--import', 'tsx', join('test', 'faults', 'run.ts'), '--seed', String(SEED), '--size', 'small', '--out', out], {
    cwd: REPO_ROOT,
    name: 'fault suite',
    ...(process.env.SLUICE_TEST_ECHO === '1' ? { onLine: (line: string) => process.stderr.write(`[faults] ${line}\n`) } : {}),
  });
  const exit = await run.exited;
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as RunSummary;
  const report = readFileSync(join(out, 'report.txt'), 'utf8');
  t.diagnostic(report);
  const clean = exit.code === 0 && summary.findings.length === 0;
  if (!clean) t.diagnostic(`the run's folder is kept: ${out}`);
  try {
    // every discrepancy fails, those on a sink whose backfill failed too (a failed backfill is
    // tried again when Postgres or Redis went away: docs/backfills.md)
    assert.deepEqual(summary.discrepancies.slice(0, 10), [], `discrepancies (the run's folder ${out} is kept):\n${report}`);
    assert.equal(exit.code, 0, run.tail(40));
    // one of each kind, each recovered from
    assert.deepEqual([...new Set(summary.faults.map((f) => f.kind))].sort(), FAULT_KINDS.map((k) => k.name).sort());
    assert.deepEqual(summary.faults.filter((f) => f.error || f.recoveryMs === null), []);
    // a takeover by the synchronous standby loses no acknowledged commit (postgres-pair.ts)
    assert.deepEqual(summary.findings.filter((f) => f.kind === 'pg-standby-takeover'), []);
    assert.ok(summary.check && summary.check.entriesChecked > 10_000 && summary.check.keysChecked > 1000, report);
    assert.ok(summary.bigTransactions >= 1, 'a 20,000-row transaction was made');
  } finally {
    if (clean) rmSync(out, { recursive: true, force: true });
  }
});
