// Who may talk to the HTTP server, and how it fails: the bearer token (401 without it, 403 with
// another one), requests from web pages of other sites (refused when there is no token: no CORS,
// no cross-site requests, no DNS rebinding), the body size limit, every error as the API's error
// JSON, and where the server listens (host:port or a Unix socket, owner only).
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isLoopbackHost, type SluiceConfig } from '../config/schema.js';
import { MayHoldValues, withoutDetail, type Logger } from '../util/log.js';
import { apiError } from './api-error.js';
import { isConsolePath } from './console-route.js';
import { OPENAPI_PATH } from './openapi.js';

type HttpConfig = SluiceConfig['http'];

/** Paths anyone may read: health for load balancers, the OpenAPI document and the console's files hold no data. */
export function isPublicPath(path: string): boolean {
  return path === '/health' || path === OPENAPI_PATH || isConsolePath(path);
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Compares in constant time, whatever the lengths (the digests are always 32 bytes). */
export function tokenMatches(given: string, token: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

/** host and port of a Host header or URL authority, the host lowercased and without brackets */
function hostOnly(authority: string): string {
  const a = authority.toLowerCase();
  if (a.startsWith('[')) return a.slice(1, a.indexOf(']') < 0 ? undefined : a.indexOf(']'));
  const colon = a.indexOf(':');
  return colon >= 0 && a.indexOf(':', colon + 1) < 0 ? a.slice(0, colon) : a;
}

/**
 * Why a request without a token is refused, or null. Without a token the server listens only where
 * this machine alone can reach it (the config refuses anything else), so the remaining threat is a
 * web page in a local browser: its requests carry an Origin of another site (cross-site requests,
 * CSRF), or, after DNS rebinding, a Host that names another site.
 */
function tokenlessRefusal(req: FastifyRequest, http: HttpConfig): { code: string; message: string } | null {
  const host = req.headers.host;
  if (http.socket === undefined && host !== undefined && !isLoopbackHost(hostOnly(host)) && hostOnly(host) !== http.host.toLowerCase()) {
    return { code: 'bad_host', message: `requests must name this machine (localhost or 127.0.0.1) in their Host header, not ${JSON.stringify(host.slice(0, 100))}: set http.token to serve other names` };
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let same = false;
    try {
      same = host !== undefined && new URL(origin).host === host.toLowerCase();
    } catch {
      same = false;
    }
    if (!same) return { code: 'cross_origin', message: `requests from other sites' pages are refused (Origin ${JSON.stringify(origin.slice(0, 100))})` };
  }
  return null;
}

/**
 * The hook every request goes through first. With `http.token`: a request without
 * `Authorization: Bearer …` answers 401 (with WWW-Authenticate), one with another token 403,
 * except the public paths. Without a token: requests from other sites' pages answer 403.
 * No Access-Control-Allow-* header is ever sent, so a preflight (OPTIONS) is refused as well.
 */
export function registerAccessControl(app: FastifyInstance, http: HttpConfig): void {
  const token = http.token;
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (token === undefined) {
      const refused = tokenlessRefusal(req, http);
      return refused === null ? undefined : apiError(reply, 403, refused.code, refused.message);
    }
    if (isPublicPath(req.url.split('?', 1)[0]!)) return undefined;
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (given === undefined) {
      reply.header('WWW-Authenticate', 'Bearer realm="sluice"');
      return apiError(reply, 401, 'unauthorized', 'this API needs the token: send Authorization: Bearer <http.token>');
    }
    if (!tokenMatches(given, token)) return apiError(reply, 403, 'forbidden', 'the bearer token is not http.token');
    return undefined;
  });
}

/**
 * Every error Fastify raises before or around a route (a body over `http.body_limit_bytes`, a
 * body that is not JSON, an unsupported content type, a route that threw) as the API's error
 * JSON. A 500's message may quote row values: the log hides them unless --log-values.
 */
export function registerErrorHandler(app: FastifyInstance, http: HttpConfig, log: Logger): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || status === 413) {
      return apiError(reply, 413, 'body_too_large', `the request body is larger than ${http.body_limit_bytes} bytes (http.body_limit_bytes)`);
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || status === 415) {
      return apiError(reply, 415, 'unsupported_media_type', 'send the body as JSON, with content-type: application/json');
    }
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      return apiError(reply, 400, 'bad_request', 'content-type is application/json but the body is empty: send a JSON body, or no content-type');
    }
    if (err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return apiError(reply, 400, 'bad_request', 'the content-length does not match the body');
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (status === 400 && err instanceof SyntaxError)) return apiError(reply, 400, 'bad_json', 'the body is not valid JSON (or it has a "__proto__" or "constructor.prototype" key, which the API refuses)');
    if (status < 500) return apiError(reply, status, 'bad_request', err.message);
    log.error({ method: req.method, url: req.routeOptions.url ?? '?', err: new MayHoldValues(err.message, withoutDetail(err.message)) }, 'HTTP request failed');
    return apiError(reply, 500, 'internal', err.message);
  });
}

/**
 * Fastify's `frameworkErrors`: a path it cannot decode, or a path parameter longer than the
 * router takes, is refused before any hook runs (so before the token check: nothing is served),
 * with the API's error JSON instead of Fastify's.
 */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') void apiError(reply, 414, 'path_too_long', 'a part of the path is longer than any name the API knows');
  else void apiError(reply, 400, 'bad_url', 'the path is not a valid URL path (a bad percent-encoding?)');
}

/** Where the server listens: `http.socket`, or `http.host`:`http.port`. */
export function listenOptions(http: HttpConfig): { path: string } | { host: string; port: number } {
  return http.socket !== undefined ? { path: http.socket } : { host: http.host, port: http.port };
}

/**
 * Before listening on a Unix socket: a socket file left by a process that is gone is removed;
 * one that still answers is in use (EADDRINUSE when listening, as for a port).
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) return; // listening fails with EADDRINUSE: not ours to remove
  const answers = await new Promise<boolean>((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (!answers) unlinkSync(path);
}

/** After listening on a Unix socket: only its owner may connect (and root). */
export function restrictSocket(path: string): void {
  chmodSync(path, 0o600);
}
