// The console (web/): a Preact app built into dist/console/ (gitignored), which the Sluice server
// serves at / (src/http/console-route.ts). `npm run build:console` builds it; `npm ci` does
// too (the `prepare` script). Everything is bundled: no external resources at run time.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: '/',
  publicDir: false,
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: here('../dist/console'),
    emptyOutDir: true,
    target: 'es2022',
    // no inline script and no data: URLs: the page's CSP allows its own files only
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 400,
  },
});
