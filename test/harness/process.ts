// Child processes for the integration tests (Sluice itself, for kill -9 tests, or tools such as
// pg_recvlogical). Output is captured line by line; the children are SIGKILLed if the test
// process exits while they still run.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnManaged } from '../../src/util/process.js';
import type { ManagedProcess, SpawnManagedOptions } from '../../src/util/process.js';

export { spawnManaged, onProcessExit, settlesWithin } from '../../src/util/process.js';
export type { ExitInfo, ManagedProcess, OutputLine, SpawnManagedOptions, WaitForLineOptions } from '../../src/util/process.js';

/** the repository root */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Runs `bin/sluice <args>` (e.g. ['start', '-c', configFile]) from the repository root.
 * Set SLUICE_TEST_ECHO=1 to see its output while the tests run.
 */
export function spawnSluice(args: readonly string[], opts: SpawnManagedOptions = {}): ManagedProcess {
  const echo = process.env.SLUICE_TEST_ECHO === '1';
  return spawnManaged(join(REPO_ROOT, 'bin', 'sluice'), args, {
    cwd: REPO_ROOT,
    name: `sluice ${args.join(' ')}`,
    ...(echo ? { onLine: (line: string, stream: 'stdout' | 'stderr') => process.stderr.write(`[sluice ${stream}] ${line}\n`) } : {}),
    ...opts,
  });
}
