import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../harness/process.js';

/**
 * sluice/client as an application gets it: the package built (`npm run build:client`) and an
 * application directory whose node_modules holds `sluice` (this checkout) and `ioredis`, so that
 * `import { SluiceClient } from 'sluice/client'` resolves through package.json "exports".
 */
let built = false;

/** Builds dist/client/ from the current sources (once per test process). */
export function buildClientPackage(): void {
  if (built) return;
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-client.mjs')], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run build:client failed:\n${r.stdout}\n${r.stderr}`);
  built = true;
}

export interface ClientApp {
  dir: string;
  /** the path of a copy of test/support/client-worker.mjs inside the application */
  worker: string;
  remove(): void;
}

/** A throwaway application directory that depends on sluice (a symlink to this checkout). */
export function clientApp(): ClientApp {
  buildClientPackage();
  const dir = mkdtempSync(join(tmpdir(), 'sluice-client-app-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(REPO_ROOT, join(dir, 'node_modules', 'sluice'), 'dir');
  symlinkSync(join(REPO_ROOT, 'node_modules', 'ioredis'), join(dir, 'node_modules', 'ioredis'), 'dir');
  const worker = join(dir, 'worker.mjs');
  copyFileSync(join(REPO_ROOT, 'test', 'support', 'client-worker.mjs'), worker);
  return { dir, worker, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
