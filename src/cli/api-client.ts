import type { SluiceConfig } from '../config/schema.js';
import { SluiceError } from '../util/errors.js';

/** Talks to the running instance's HTTP API, as configured in sluice.yaml. */
export class ApiClient {
  readonly base: string;
  private readonly headers: Record<string, string>;

  constructor(config: SluiceConfig) {
    if (config.http.port === 0) throw new SluiceError('http_off', 'http.port is 0, so there is no API to ask: set http.port in the config');
    const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host;
    this.base = `http://${host}:${config.http.port}`;
    this.headers = { 'content-type': 'application/json', ...(config.http.token ? { authorization: `Bearer ${config.http.token}` } : {}) };
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers: this.headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new SluiceError('not_running', `no Sluice is answering at ${this.base}: is sluice start running with this config?`);
    }
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
      } catch {
        // not JSON: keep the text
      }
      throw new SluiceError('api_error', `${method} ${path} failed (${res.status}): ${message}`);
    }
    return JSON.parse(text) as T;
  }
}
