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

// --no-node-snapshot: isolated-vm (sink functions) needs it on Node 20+.
const testArgs = (files, concurrency) => ['--no-node-snapshot', '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files];

/** One run of node's test runner over `files`; its exit status. */
function runTests(files, concurrency) {
  const r = spawnSync(process.execPath, testArgs(files, concurrency), { stdio: 'inherit' });
  return r.status ?? 1;
}

/** The same in the background, its output kept until it ends. */
function startTests(files) {
  return new Promise((resolve) => {
    let output = '';
    const child = spawn(process.execPath, testArgs(files, 1), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

/** The type checks (server and console) and lint, one after the other in the background, their output kept until they end. */
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
let pendingUnit = null;
const unitFiles = lists.find(([suite]) => suite === 'unit')?.[1] ?? [];
const integrationFiles = lists.find(([suite]) => suite === 'integration')?.[1] ?? [];
if (checks && unitFiles.length > 0 && integrationFiles.length > 0) {
  // npm test: the unit suite, the type checks and lint run beside the integration suite (which
  // mostly waits on its servers), their output printed once it ends: about 3 minutes less
  pendingChecks = startChecks();
  pendingUnit = startTests(unitFiles);
  const code = runTests(integrationFiles, 1);
  if (code !== 0) status = code;
  const unit = await pendingUnit;
  console.log('\n==== unit tests (run beside the integration suite) ====');
  console.log(unit.output.trimEnd());
  if (unit.code !== 0) status = unit.code;
} else {
  for (const [suite, files] of lists) {
    if (files.length === 0) continue;
    // Integration tests start their own Postgres and Redis servers; on a 2-core machine they run
    // one file at a time so that timings stay sane. Unit tests run two at a time.
    const code = runTests(files, suite === 'integration' ? 1 : 2);
    if (code !== 0) status = code;
  }
}
if (checks) {
  const { code, output } = await (pendingChecks ?? startChecks());
  console.log('\n==== type checks and lint (tsc -p ., tsc -p web, eslint .) ====');
  if (output.trim() !== '') console.log(output.trimEnd());
  console.log(code === 0 ? 'type checks and lint: clean' : 'type checks and lint: FAILED');
  if (code !== 0) status = code;
}
process.exit(status);
