#!/usr/bin/env node
// Runs the test suites with node's own test runner (TypeScript through tsx).
// Usage: node scripts/run-tests.mjs [unit|integration] [extra files...]
//        node scripts/run-tests.mjs --checks   (npm test: the type checks and lint, then every suite)
// Node 20's --test does not expand globs itself, so the files are listed here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

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

/** One run of node's test runner over `files`; its exit status. */
function runTests(files, concurrency) {
  // --no-node-snapshot: isolated-vm (sink functions) needs it on Node 20+.
  const r = spawnSync(
    process.execPath,
    ['--no-node-snapshot', '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
    { stdio: 'inherit' },
  );
  return r.status ?? 1;
}

/**
 * The type checks (server and console) and lint, one after the other in the background, their
 * output kept until they end: they run beside the integration suite, which mostly waits on its
 * servers, instead of before everything (about 100 s on a 2-core machine).
 */
function startChecks() {
  const steps = [
    ['tsc', ['--noEmit', '-p', '.']],
    ['tsc', ['--noEmit', '-p', 'web']],
    ['eslint', ['.']],
  ];
  let output = '';
  const run = (i) =>
    new Promise((resolve) => {
      if (i === steps.length) return resolve(0);
      const [bin, args] = steps[i];
      const child = spawn(join('node_modules', '.bin', bin), args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
      child.on('close', (code) => {
        if (code !== 0) {
          output += `\n${bin} ${args.join(' ')} failed (exit ${code})\n`;
          return resolve(code ?? 1);
        }
        resolve(run(i + 1));
      });
    });
  return run(0).then((code) => ({ code, output }));
}

const args = process.argv.slice(2);
const checks = args[0] === '--checks';
const [which, ...extra] = checks ? args.slice(1) : args;
const suites = which === 'unit' || which === 'integration' ? [which] : ['unit', 'integration'];
const lists = extra.length > 0 ? [[suites.length === 1 ? suites[0] : 'integration', extra]] : suites.map((s) => [s, findTests(join('test', s))]);
if (lists.every(([, files]) => files.length === 0)) {
  console.error('no test files found');
  process.exit(1);
}
let status = 0;
let pendingChecks = null;
for (const [suite, files] of lists) {
  if (files.length === 0) continue;
  if (checks && suite === 'integration') pendingChecks ??= startChecks();
  // Integration tests start their own Postgres and Redis servers; on a 2-core machine they run
  // one file at a time so that timings stay sane. Unit tests run two at a time.
  const code = runTests(files, suite === 'integration' ? 1 : 2);
  if (code !== 0) status = code;
}
if (checks) {
  const { code, output } = await (pendingChecks ?? startChecks());
  console.log('\n==== type checks and lint (tsc -p ., tsc -p web, eslint .) ====');
  if (output.trim() !== '') console.log(output.trimEnd());
  console.log(code === 0 ? 'type checks and lint: clean' : 'type checks and lint: FAILED');
  if (code !== 0) status = code;
}
process.exit(status);
