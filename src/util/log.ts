import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One logger for the process. Logs keys and positions, never row values: rows may hold
 * personal data.
 */
export function createLogger(level: string = process.env.SLUICE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { svc: 'sluice' }, timestamp: pino.stdTimeFunctions.isoTime });
}

