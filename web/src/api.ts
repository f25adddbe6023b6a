// Typed calls to the Sluice API. The answer types are the server's own (src/http/api-types.ts).
import type {
  ApiBackfill,
  ApiDeliveries,
  ApiErrorBody,
  ApiFailedMessage,
  ApiFailedPage,
  ApiHealth,
  ApiHistory,
  ApiPreview,
  ApiPreviewRequest,
  ApiProblem,
  ApiRedisTest,
  ApiRetryResult,
  ApiSink,
  ApiSinkBlock,
  ApiSinks,
  ApiSource,
} from '../../src/http/api-types.js';

export type * from '../../src/http/api-types.js';

const TOKEN_KEY = 'sluice-token';

/** An answer that is not 2xx, with the API's code, message and (for bodies) each problem. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: readonly ApiProblem[] = [],
  ) {
    super(message);
  }
}

/** The token lives in this tab's sessionStorage only: never in a URL, gone when the tab closes. */
export const auth = {
  /** the server says (a data attribute of its page) whether http.token is set */
  required: document.documentElement.dataset.auth === 'token',
  get token(): string {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(f: () => void): () => void {
  unauthorizedListeners.add(f);
  return () => unauthorizedListeners.delete(f);
}

async function call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown, okStatuses: readonly number[] = []): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, 'unreachable', `Sluice does not answer (${err instanceof Error ? err.message : String(err)})`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  if (res.ok || okStatuses.includes(res.status)) return json as T;
  const error = (json as Partial<ApiErrorBody> | null)?.error;
  // 401: no token sent, 403 `forbidden`: not the token in http.token
  if (res.status === 401 || (res.status === 403 && error?.code === 'forbidden')) for (const f of unauthorizedListeners) f();
  throw new ApiError(res.status, error?.code ?? `http_${res.status}`, error?.message ?? `${method} ${path} answered ${res.status}`, error?.problems ?? []);
}

const sinkPath = (name: string): string => `/api/sinks/${encodeURIComponent(name)}`;
const messagePath = (sink: string, id: string): string => `${sinkPath(sink)}/messages/${encodeURIComponent(id)}`;

export const api = {
  /** 200 or 503: the same body, read either way */
  health: () => call<ApiHealth>('GET', '/health', undefined, [503]),
  source: () => call<ApiSource>('GET', '/api/source'),
  sinks: () => call<ApiSinks>('GET', '/api/sinks'),
  sink: (name: string) => call<ApiSink>('GET', sinkPath(name)),
  history: (since?: number) => call<ApiHistory>('GET', `/api/history${since === undefined ? '' : `?since=${since}`}`),
  create: (block: ApiSinkBlock) => call<{ sink: ApiSink }>('POST', '/api/sinks', block),
  patch: (name: string, patch: Record<string, unknown>) => call<{ sink: ApiSink }>('PATCH', sinkPath(name), patch),
  remove: (name: string) => call<{ deleted: string }>('DELETE', sinkPath(name)),
  pause: (name: string) => call<{ sink: ApiSink }>('POST', `${sinkPath(name)}/pause`),
  resume: (name: string) => call<{ sink: ApiSink }>('POST', `${sinkPath(name)}/resume`),
  preview: (req: ApiPreviewRequest) => call<ApiPreview>('POST', '/api/sinks/preview', req),
  backfills: (name: string) => call<{ backfills: ApiBackfill[] }>('GET', `${sinkPath(name)}/backfills`),
  startBackfill: (name: string, opts: { table?: string; from?: string }) => call<{ backfills: ApiBackfill[] }>('POST', `${sinkPath(name)}/backfills`, opts),
  failed: (name: string, cursor?: string | null, limit = 50) =>
    call<ApiFailedPage>('GET', `${sinkPath(name)}/messages?status=failed&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`),
  failedOne: (name: string, id: string) => call<ApiFailedMessage>('GET', messagePath(name, id)),
  delivered: (name: string, limit = 50) => call<ApiDeliveries>('GET', `${sinkPath(name)}/messages?status=delivered&limit=${limit}`),
  retry: (name: string, id: string) => call<ApiRetryResult>('POST', `${messagePath(name, id)}/retry`),
  discard: (name: string, id: string) => call<{ id: string; discarded: true }>('POST', `${messagePath(name, id)}/discard`),
  testRedis: (name: string) => call<ApiRedisTest>('POST', `/api/redis/${encodeURIComponent(name)}/test`),
};

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
