// npm run bench -- [--changes N] [--rows N] [--rounds N] [--scenario catch-up,catch-up-cluster,backfill,large-txn,wait,latency,saturation,two-instances,cost] [--profile DIR]
//
// Runs the benchmark scenarios one after the other and prints one JSON object per scenario on
// stdout (progress goes to stderr). See docs/benchmarks.md.

import { runCatchUp } from './catch-up.js';
import { runCatchUpCluster } from './catch-up-cluster.js';
import { runBackfill } from './backfill.js';
import { runLargeTxn } from './large-txn.js';
import { runWait } from './wait.js';
import { runLatency } from './latency.js';
import { runSaturation } from './saturation.js';
import { runTwoInstances } from './two-instances.js';
import { runCost } from './cost.js';
import { parseBenchArgs, progress, type BenchOptions } from './support.js';

/** Scenario name → runner. A scenario starts and stops its own servers. */
const SCENARIOS: Record<string, (opts: BenchOptions) => Promise<Record<string, unknown>>> = {
  'catch-up': runCatchUp,
  'catch-up-cluster': runCatchUpCluster,
  backfill: runBackfill,
  'large-txn': runLargeTxn,
  wait: runWait,
  latency: runLatency,
  saturation: runSaturation,
  'two-instances': runTwoInstances,
  cost: runCost,
};

async function main(): Promise<void> {
  const opts = parseBenchArgs(process.argv.slice(2), process.env, Object.keys(SCENARIOS));
  for (const name of opts.scenarios) {
    const started = performance.now();
    const result = await SCENARIOS[name]!(opts);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    progress(`${name}: finished in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
