#!/usr/bin/env node
// Builds sluice/client (src/client/ and the src/core/ files it uses) into dist/client/:
// index.js, one ES module bundled with esbuild (ioredis stays an import of the package's own
// dependency), and its type declarations (tsc -p tsconfig.client.json) under dist/client/types/.
// `npm run build:client`, and `npm ci` / `npm install` through `prepare`. TypeScript is a dev
// dependency: where it is not installed (npm ci --omit=dev) the JavaScript is built, the types
// are not, and this says so.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/client`;
const started = Date.now();
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: [`${root}src/client/index.ts`],
  outfile: `${out}/index.js`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});
const tsc = `${root}node_modules/typescript/bin/tsc`;
if (existsSync(tsc)) {
  const r = spawnSync(process.execPath, [tsc, '-p', `${root}tsconfig.client.json`], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('sluice: the type declarations of sluice/client could not be built (tsc -p tsconfig.client.json)');
    process.exit(r.status ?? 1);
  }
} else {
  console.warn('sluice: typescript is not installed (dev dependencies left out?): sluice/client is built without its type declarations');
}
console.log(`sluice: sluice/client built into dist/client/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
