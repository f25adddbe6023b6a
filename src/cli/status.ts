import { setTimeout as sleep } from 'node:timers/promises';
import { configPathFrom, loadConfig } from '../config/load.js';
import { ApiClient, apiErrorMessage, type ApiAnswer } from './api-client.js';
import { ratesBetween, renderStatus, type HealthView, type Part, type SinkView, type SourceView } from './status-format.js';

export interface StatusOptions {
  /** print one JSON document `{health, source, sinks}` (the API's answers) instead of the table */
  json?: boolean;
  /** do not measure changes per second (which takes a second read of the sinks, 1 s later) */
  noRate?: boolean;
}

/** How far apart the two reads of /api/sinks are that the rate is measured over. */
const RATE_WINDOW_MS = 1000;

/**
 * `sluice status`: asks the running instance (`GET /health`, `/api/source`, `/api/sinks`) and
 * prints health, source and one row per sink. Exit 0 whenever the instance answered, healthy or
 * not (a 503 from /health is what it has to say, not an error); it throws one sentence (exit 1)
 * only when nothing answers at the configured http.host and http.port, or the token is refused.
 */
export async function runStatus(configArg: string | undefined, opts: StatusOptions = {}): Promise<number> {
  const api = new ApiClient(loadConfig(configPathFrom(configArg)));
  const [health, source, sinks] = await Promise.all([
    api.read<HealthView>('GET', '/health'),
    api.read<SourceView>('GET', '/api/source'),
    api.read<{ sinks: SinkView[] }>('GET', '/api/sinks'),
  ]);
  const firstAt = Date.now();

  if (opts.json) {
    const sinksBody: unknown = sinks.ok ? sinks.body.sinks : sinks.body;
    process.stdout.write(`${JSON.stringify({ health: health.body, source: source.body, sinks: sinksBody }, null, 2)}\n`);
    return 0;
  }

  let rates: Map<string, number | null> | null = null;
  let shown = sinks;
  const firstSinks = sinksPart(sinks);
  if (!opts.noRate && firstSinks.ok) {
    await sleep(Math.max(0, firstAt + RATE_WINDOW_MS - Date.now()));
    // the instance may stop in between: then the first read is shown, without rates
    const again = await api.read<{ sinks: SinkView[] }>('GET', '/api/sinks').catch(() => null);
    const secondSinks = again ? sinksPart(again) : null;
    if (again && secondSinks?.ok) {
      rates = ratesBetween(firstSinks.value, secondSinks.value, Date.now() - firstAt);
      shown = again;
    }
  }
  process.stdout.write(
    renderStatus({
      // 503: unhealthy, each problem named
      health: partOf(health, (b) => typeof b?.status === 'string', [503]),
      source: partOf(source, (b) => typeof b?.slot === 'string'),
      sinks: sinksPart(shown),
      rates,
    }),
  );
  return 0;
}

function failed(answer: ApiAnswer<unknown>): { ok: false; error: string } {
  return { ok: false, error: `the API answered ${answer.status}: ${apiErrorMessage(answer.body)}` };
}

/** The answer's body when it is a 2xx (or one of `alsoOk`) of the expected shape, else why not. */
function partOf<T>(answer: ApiAnswer<T>, looksRight: (body: T | null) => boolean, alsoOk: readonly number[] = []): Part<T> {
  if (!answer.ok && !alsoOk.includes(answer.status)) return failed(answer);
  if (typeof answer.body !== 'object' || answer.body === null || !looksRight(answer.body)) return { ok: false, error: `unexpected answer (${answer.status}): ${String(JSON.stringify(answer.body)).slice(0, 200)}` };
  return { ok: true, value: answer.body };
}

function sinksPart(answer: ApiAnswer<{ sinks: SinkView[] }>): Part<SinkView[]> {
  if (!answer.ok) return failed(answer);
  const list = (answer.body as { sinks?: unknown } | null)?.sinks;
  return Array.isArray(list) ? { ok: true, value: list as SinkView[] } : { ok: false, error: `unexpected answer: ${String(JSON.stringify(answer.body)).slice(0, 200)}` };
}
