#!/usr/bin/env node
// Builds the console (web/) into dist/console/ with Vite: `npm run build:console`, and the
// `prepare` script that `npm ci` / `npm install` run. Vite is a dev dependency: where it is not
// installed (npm ci --omit=dev), this says so and exits 0, and the server's `/` answers with a
// page that says how to build the console (the API works without it).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
let vite;
try {
  require.resolve('vite/package.json', { paths: [root] });
  vite = await import('vite');
} catch {
  console.warn('sluice: vite is not installed (dev dependencies left out?): the console is not built; `npm install` then `npm run build:console` builds it');
  process.exit(0);
}
if (!existsSync(`${root}web/index.html`)) {
  console.warn('sluice: web/ is missing: the console is not built');
  process.exit(0);
}
const started = Date.now();
await vite.build({ configFile: `${root}web/vite.config.mjs`, logLevel: 'warn' });
console.log(`sluice: console built into dist/console/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
