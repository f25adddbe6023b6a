import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** What replaces text that may hold row values when `--log-values` is not set. */
export const VALUES_HIDDEN = '[hidden: may hold row values; sluice start --log-values logs them]';

/**
 * Text that may hold row values (a function's error message, a value that is not a number…). A
 * logger made with `values: true` writes `text`; any other writes `redacted`, the same text
 * without the values. JSON.stringify gives `redacted` too, so it never leaks by accident.
 */
export class MayHoldValues {
  constructor(
    readonly text: string,
    readonly redacted: string = VALUES_HIDDEN,
  ) {}

  toJSON(): string {
    return this.redacted;
  }

  toString(): string {
    return this.redacted;
  }
}

/**
 * A message whose lead is Sluice's ("transform threw", "filter returned an unusable value") and
 * whose detail after the first ": " may quote row values: the lead, with the detail hidden.
 */
export function withoutDetail(text: string): string {
  const at = text.indexOf(': ');
  return at < 0 ? text : `${text.slice(0, at)}: ${VALUES_HIDDEN}`;
}

export interface LogOptions {
  /** log row values (`sluice start --log-values`, `log.values: true`); default false */
  values?: boolean;
  /** human-readable lines (pino-pretty); default: `prettyWanted()` for stdout */
  pretty?: boolean;
  /** where lines go (tests); default stdout */
  destination?: DestinationStream;
}

/**
 * Pretty lines only for a person at a terminal: stdout is a TTY, not in CI (`CI` set, as every
 * CI service does), and `SLUICE_LOG_FORMAT` is not `json`. Pipes and files always get JSON.
 */
export function prettyWanted(stdout: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (stdout.isTTY !== true) return false;
  if (env.CI !== undefined && env.CI !== '' && env.CI !== 'false' && env.CI !== '0') return false;
  return env.SLUICE_LOG_FORMAT !== 'json';
}

/** Replaces each MayHoldValues (in the object and its plain objects and arrays) by what may be logged. */
export function revealOrRedact(value: unknown, values: boolean, depth = 0): unknown {
  if (value instanceof MayHoldValues) return values ? value.text : value.redacted;
  if (depth >= 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.some((v) => typeof v === 'object' && v !== null) ? value.map((v) => revealOrRedact(v, values, depth + 1)) : value;
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  let out: Record<string, unknown> | null = null;
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'object' || v === null) continue;
    const r = revealOrRedact(v, values, depth + 1);
    if (r !== v) (out ??= { ...value })[k] = r;
  }
  return out ?? value;
}

/**
 * One logger for the process: one JSON object per line on stdout (pretty at a terminal). Logs
 * keys, tables and positions, never row values (rows may hold personal data), unless `values`.
 */
export function createLogger(level: string = process.env.SLUICE_LOG_LEVEL ?? 'info', opts: LogOptions = {}): Logger {
  const values = opts.values === true;
  const options: LoggerOptions = {
    level,
    base: { svc: 'sluice' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { log: (obj) => revealOrRedact(obj, values) as Record<string, unknown> },
  };
  const pretty = opts.pretty ?? (opts.destination === undefined && prettyWanted());
  if (pretty) return pino(options, prettyStream(opts.destination));
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** pino-pretty, loaded only when a terminal wants it (synchronous: lines are written before exit). */
function prettyStream(destination: DestinationStream | undefined): DestinationStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as (o: Record<string, unknown>) => DestinationStream;
  return pretty({ colorize: destination === undefined, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,svc', ...(destination ? { destination } : {}) });
}
