import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';
import type { HttpDeps } from './deps.js';
import { History, registerHistoryRoute } from './history.js';
import { registerPreviewRoute } from './preview.js';

/** Where `npm run build:console` (web/, Vite) writes the console: index.html and assets/. */
export const CONSOLE_DIR = fileURLToPath(new URL('../../dist/console/', import.meta.url));

const INDEX_PATHS: readonly string[] = ['/', '/index.html'];
const ASSETS_PREFIX = '/assets/';

/**
 * Paths served without the bearer token: the console's page and its scripts and styles hold no
 * data (the API calls they make send the token).
 */
export function isConsolePath(path: string): boolean {
  return INDEX_PATHS.includes(path) || ASSET_FILE.test(path);
}

/**
 * One file of assets/ as Vite names them (`index-DyN7Fr0j.js`): a single segment of plain
 * characters, never an escape or a dot segment, which the router would resolve elsewhere
 * (`/assets/%2e%2e/api/sinks` is `/api/sinks`) after the token check had let it through.
 */
const ASSET_FILE = /^\/assets\/[\w-]+(?:\.[\w-]+)+$/;

/** The console's own files only; it talks to this server alone, and no other site may frame it. */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

const MISSING_BUILD = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice console: not built</title><link rel="icon" href="data:,"></head>
<body style="font: 15px/1.5 system-ui, sans-serif; max-width: 640px; margin: 60px auto; padding: 0 20px">
<h1>The console is not built</h1>
<p>This Sluice serves its API, but the console's files are missing from <code>dist/console/</code>.
<code>npm ci</code> builds them; to build them again, run:</p>
<pre>npm run build:console</pre>
<p>then reload this page. The API (<code>/api/…</code>, <code>/health</code>, <code>/metrics</code>) works without them.</p>
</body></html>`;

const secure = (reply: FastifyReply): FastifyReply =>
  reply.header('Content-Security-Policy', CONSOLE_CSP).header('X-Content-Type-Options', 'nosniff').header('X-Frame-Options', 'DENY');

/**
 * The console at `/` (a Vite build of web/, served as static files) and the two routes only it
 * needs: `GET /api/history` (a 15-minute history for its charts, sampled from the start) and
 * `POST /api/sinks/preview` (what a sink would write for a few real rows, before it is saved).
 * Without a build, `/` answers 500 with a page that says how to build it.
 */
export async function registerConsoleRoute(app: FastifyInstance, deps: HttpDeps, dir = CONSOLE_DIR): Promise<void> {
  const history = new History(deps);
  history.start();
  app.addHook('onClose', async () => history.stop());
  registerHistoryRoute(app, history);
  registerPreviewRoute(app, deps);

  const index = join(dir, 'index.html');
  for (const path of INDEX_PATHS) {
    app.get(path, async (_req, reply) => {
      secure(reply).header('Cache-Control', 'no-cache').type('text/html; charset=utf-8');
      // read on each request: a rebuild shows without a restart (the page is small)
      if (!existsSync(index)) return reply.code(500).send(MISSING_BUILD);
      const html = readFileSync(index, 'utf8');
      // whether to ask for the token first (the page itself holds no data, the token does not appear)
      return reply.send(deps.config.http.token ? html.replace('<html lang="en">', '<html lang="en" data-auth="token">') : html);
    });
  }
  await app.register(fastifyStatic, {
    root: join(dir, 'assets'),
    prefix: ASSETS_PREFIX,
    // the assets' names carry a hash of their content
    cacheControl: true,
    maxAge: '365d',
    immutable: true,
    index: false,
    list: false,
    dotfiles: 'deny',
    setHeaders: (res) => {
      res.setHeader('Content-Security-Policy', CONSOLE_CSP);
      res.setHeader('X-Content-Type-Options', 'nosniff');
    },
  });
}
