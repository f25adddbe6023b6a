import { request as httpRequest } from 'node:http';
import type { SluiceConfig } from '../config/schema.js';
import { SluiceError } from '../util/errors.js';

/** An HTTP answer of the API: its status and its JSON body (the text when it is not JSON). */
export interface ApiAnswer<T> {
  readonly status: number;
  readonly ok: boolean;
  readonly body: T;
}

/** How long one request may take before the instance counts as not answering. */
const DEFAULT_TIMEOUT_MS = 10_000;

/** Talks to the running instance's HTTP API, as configured in sluice.yaml. */
export class ApiClient {
  readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  /** http.socket: the instance listens on this Unix socket instead of a port */
  private readonly socket: string | undefined;

  constructor(config: SluiceConfig, opts: { timeoutMs?: number } = {}) {
    if (config.http.port === 0) throw new SluiceError('http_off', 'http.port is 0, so there is no API to ask: set http.port in the config');
    // an instance listening on every interface is asked on the loopback one
    const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host === '::' ? '::1' : config.http.host;
    this.socket = config.http.socket;
    this.base = this.socket !== undefined ? `unix:${this.socket}` : `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}`;
    this.headers = config.http.token ? { authorization: `Bearer ${config.http.token}` } : {};
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** GET that throws unless the answer is 2xx. */
  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** POST that throws unless the answer is 2xx. */
  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  /**
   * Any answer of the instance, whatever its status (a 503 from /health is information, not an
   * error). Throws only when the instance does not answer at all (not running, wrong port, no
   * answer within the timeout), or when it refuses the token (401): one sentence, naming the URL.
   */
  async read<T>(method: string, path: string, body?: unknown): Promise<ApiAnswer<T>> {
    let res: { status: number; ok: boolean; text: () => Promise<string> };
    // a content-type without a body is a 400 from the server (an empty JSON body)
    const headers = body === undefined ? this.headers : { ...this.headers, 'content-type': 'application/json' };
    const payload = body === undefined ? undefined : JSON.stringify(body);
    try {
      res = this.socket !== undefined
        ? await unixRequest(this.socket, method, path, headers, payload, this.timeoutMs)
        : await fetch(`${this.base}${path}`, { method, headers, body: payload, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      throw new SluiceError(
        'not_running',
        timedOut
          ? `Sluice at ${this.base} did not answer ${method} ${path} within ${this.timeoutMs / 1000} s: is it stuck? Check its log, or restart it with sluice start`
          : `no Sluice is answering at ${this.base}: start it with sluice start (with this config), or check ${this.socket !== undefined ? 'http.socket' : 'http.host and http.port'}`,
        { cause: err },
      );
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    if (res.status === 401) {
      throw new SluiceError('unauthorized', `Sluice at ${this.base} needs a token: set http.token in the config to the token the instance was started with`);
    }
    if (res.status === 403 && apiErrorOf(parsed).code === 'forbidden') {
      throw new SluiceError('unauthorized', `Sluice at ${this.base} refused the token: set http.token in the config to the token the instance was started with`);
    }
    return { status: res.status, ok: res.ok, body: parsed as T };
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const answer = await this.read<unknown>(method, path, body);
    if (!answer.ok) throw new SluiceError('api_error', `${method} ${path} failed (${answer.status}): ${apiErrorMessage(answer.body)}`);
    return answer.body as T;
  }
}

/** One request over a Unix socket (fetch cannot use one): the answer's status and text. */
function unixRequest(socketPath: string, method: string, path: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<{ status: number; ok: boolean; text: () => Promise<string> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, method, path, headers: { ...headers, host: 'localhost', ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status, ok: status >= 200 && status < 300, text: () => Promise.resolve(text) });
      });
    });
    req.on('timeout', () => {
      const err = new Error('timed out');
      err.name = 'TimeoutError';
      req.destroy(err);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One mistake in a request body, with its path inside the body (`tables[1]`). */
export interface ApiProblemView {
  path: string;
  message: string;
}

/** An API error body (`{"error": {"code", "message", "problems"?}}`), read defensively. */
export function apiErrorOf(body: unknown): { code: string | null; message: string; problems: ApiProblemView[] } {
  const error = (body as { error?: { code?: unknown; problems?: unknown } } | null)?.error;
  const problems = Array.isArray(error?.problems)
    ? (error.problems as unknown[]).map((p) => {
        const o = (p ?? {}) as { path?: unknown; message?: unknown };
        return { path: typeof o.path === 'string' ? o.path : '', message: typeof o.message === 'string' ? o.message : JSON.stringify(p) };
      })
    : [];
  return { code: typeof error?.code === 'string' ? error.code : null, message: apiErrorMessage(body), problems };
}

/** A path segment: sink names and ids are URL-safe as listed, anything typed by hand may not be. */
export const segment = (s: string): string => encodeURIComponent(s);

/** The message of an API error body (`{"error": {"message": …}}`), else the body as text. */
export function apiErrorMessage(body: unknown): string {
  if (typeof body === 'string') return body;
  const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
  return typeof message === 'string' ? message : JSON.stringify(body);
}
