import { configPathFrom, loadConfig } from '../config/load.js';
import { SluiceError } from '../util/errors.js';

interface SinkView {
  name: string;
  type: string;
  state: string;
  changes_applied: number;
  failed_messages: number;
  lag_ms: number;
  lag_bytes: number | null;
  backfills?: { table: string; state: string; rows: number; estimated_total: number | null; percent: number | null; rate: number; eta_seconds: number | null; error?: string }[];
}

/** `sluice status`: asks the running instance's API and prints one line per sink. */
export async function runStatus(configArg: string | undefined): Promise<number> {
  const config = loadConfig(configPathFrom(configArg));
  if (config.http.port === 0) throw new SluiceError('http_off', 'http.port is 0, so there is no API to ask: set http.port in the config');
  const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host;
  const base = `http://${host}:${config.http.port}`;
  const headers: Record<string, string> = config.http.token ? { authorization: `Bearer ${config.http.token}` } : {};
  const get = async <T>(path: string): Promise<T> => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { headers });
    } catch {
      throw new SluiceError('not_running', `no Sluice is answering at ${base}: is sluice start running with this config?`);
    }
    if (!res.ok) throw new SluiceError('api_error', `${base}${path} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as T;
  };
  const source = await get<{ slot: string; state: string; confirmed_lsn: string; lag_bytes: number | null; lag_ms: number; retained_wal_bytes: number | null; last_error: string | null }>('/api/source');
  const { sinks } = await get<{ sinks: SinkView[] }>('/api/sinks');
  const out: string[] = [];
  out.push(`source   slot ${source.slot}  ${source.state}  confirmed ${source.confirmed_lsn}  lag ${source.lag_bytes ?? '?'} bytes / ${source.lag_ms} ms  WAL retained ${source.retained_wal_bytes ?? '?'} bytes`);
  if (source.last_error) out.push(`         last error: ${source.last_error}`);
  for (const s of sinks) {
    out.push(`sink     ${s.name} (${s.type})  ${s.state}  ${s.changes_applied} changes applied  ${s.failed_messages} failed  lag ${s.lag_ms} ms`);
    for (const b of s.backfills ?? []) {
      const pct = b.percent === null ? '' : ` (${b.percent}%)`;
      const eta = b.eta_seconds === null ? '' : `, ETA ${b.eta_seconds}s`;
      out.push(`backfill   ${b.table}: ${b.state} ${b.rows}/${b.estimated_total ?? '?'} rows${pct}, ${b.rate} rows/s${eta}${b.error ? ` — ${b.error}` : ''}`);
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
