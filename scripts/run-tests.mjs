#!/usr/bin/env node
// Runs the test suites with node's own test runner (TypeScript through tsx).
// Usage: node scripts/run-tests.mjs [unit|integration] [extra files...]
// Node 20's --test does not expand globs itself, so the files are listed here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function findTests(dir) {
  let out = [];
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const [which, ...extra] = process.argv.slice(2);
const suites = which === 'unit' || which === 'integration' ? [which] : ['unit', 'integration'];
const files = extra.length > 0 ? extra : suites.flatMap((s) => findTests(join('test', s)));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
// Integration tests start their own Postgres and Redis servers; on a 2-core machine they run
// one file at a time so that timings stay sane.
const concurrency = suites.includes('integration') ? '1' : '2';
// --no-node-snapshot: isolated-vm (sink functions) needs it on Node 20+.
const r = spawnSync(
  process.execPath,
  ['--no-node-snapshot', '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
