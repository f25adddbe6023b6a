import pg from 'pg';
import { pgClientConfig } from './connection-config.js';

/**
 * Session settings for every connection that reads row values: the walsender and the normal
 * connections (backfill, TOAST fetch) print values identically, so rows from the WAL and rows
 * from SELECT/COPY encode to the same JSON.
 */
export const VALUE_SESSION_OPTIONS =
  '-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=1 -c standard_conforming_strings=on';

const rawText = (v: string): string => v;

/** A normal connection whose query results are the raw text Postgres printed (no parsing). */
export function createTextClient(url: string, applicationName: string): pg.Client {
  return new pg.Client(
    pgClientConfig(url, {
      application_name: applicationName,
      options: VALUE_SESSION_OPTIONS,
      types: { getTypeParser: () => rawText },
    } as pg.ClientConfig),
  );
}

/** A SQL string literal with a cast: safe for any text, given standard_conforming_strings. */
export function literal(text: string, type: string): string {
  return `'${text.replace(/'/g, "''")}'::${type}`;
}
