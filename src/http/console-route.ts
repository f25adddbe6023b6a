import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/** Paths served without the bearer token: the console's page holds no data, the API does. */
export const CONSOLE_PATHS: ReadonlySet<string> = new Set(['/', '/index.html']);

/** Inline script and styles only; the page talks to this server alone. */
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/**
 * The console at `/`: one static HTML page (no build step, no external resources) that polls the
 * API. With `http.token` set it asks for the token once and keeps it in sessionStorage.
 */
export function registerConsoleRoute(app: FastifyInstance): void {
  const html = readFileSync(new URL('./console.html', import.meta.url), 'utf8');
  for (const path of CONSOLE_PATHS) {
    app.get(path, async (_req, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .header('Content-Security-Policy', CSP)
        .header('X-Content-Type-Options', 'nosniff')
        .header('Cache-Control', 'no-cache')
        .send(html),
    );
  }
}
