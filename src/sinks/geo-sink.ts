import { memberSink } from './member-sink.js';
import type { Change } from '../core/change.js';
import { MessageError, TemplateCache } from '../core/template.js';
import type { Sink } from './sink.js';
import { Placement } from './placement.js';
import { ColumnValue, quoteValue } from './column-value.js';

export interface GeoSinkOptions {
  name: string;
  key: string;
  member: string;
  /** the columns holding the place's longitude and latitude (degrees, WGS84) */
  longitude: string;
  latitude: string;
  expireMs?: number | undefined;
}

/** What GEOADD accepts (Redis's GEO_LONG_MIN/MAX, GEO_LAT_MIN/MAX: the Web Mercator square). */
export const GEO_LONGITUDE_LIMIT = 180;
export const GEO_LATITUDE_LIMIT = 85.05112878;

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * `GEOADD key longitude latitude member` (then `PEXPIRE`); delete: `ZREM key member` (a geo set is a
 * sorted set). A row whose key or member changes is removed from its old place in the same
 * transaction, as in set and zset sinks; new coordinates alone need nothing more (GEOADD moves the
 * member). Coordinates that are NULL, not numbers, or outside what Redis can index (longitude
 * ±180, latitude ±85.05112878) are a failed message with the reason. A transform's value is the
 * member; a route may give `key` and `member`.
 */
export function createGeoSink(opts: GeoSinkOptions): Sink {
  const key = new TemplateCache(opts.key);
  const placement = new Placement({ sinkName: opts.name, key, member: new TemplateCache(opts.member), memberName: 'member', remove: 'ZREM' });
  const lon = new ColumnValue(opts.longitude, 'longitude');
  const lat = new ColumnValue(opts.latitude, 'latitude');
  return memberSink({
    name: opts.name,
    type: 'geo',
    key,
    placement,
    expireMs: opts.expireMs,
    write: (place, change, _route) => {
      const longitude = coordinate(lon, change, GEO_LONGITUDE_LIMIT);
      const latitude = coordinate(lat, change, GEO_LATITUDE_LIMIT);
      return [['GEOADD', place.key, longitude, latitude, place.member]];
    },
  });
}

/** A coordinate as GEOADD takes it (the column's text), or a MessageError saying what is wrong. */
function coordinate(column: ColumnValue, change: Change, limit: number): string {
  const what = `${column.option} column "${column.column}"`;
  const v = column.read(change.table, change.row);
  if (v === null) throw new MessageError(`the ${what} is NULL; a geo sink needs a number`);
  if (!NUMBER.test(v)) {
    throw new MessageError(`the ${what} is ${quoteValue(v)}, not a number; a geo sink needs a number`, `the ${what} is not a number; a geo sink needs a number`);
  }
  const n = Number(v);
  if (!(n >= -limit && n <= limit)) {
    const range = `Redis indexes ${column.option}s from -${limit} to ${limit}`;
    throw new MessageError(`the ${what} is ${quoteValue(v)}, out of range: ${range}`, `the ${what} is out of range: ${range}`);
  }
  return v;
}

/**
 * The sorted-set score GEOADD gives a place: its 52-bit geohash (Redis's geohashEncodeWGS84, 26
 * steps: latitude bits at even positions, longitude bits at odd ones), for `sluice verify`.
 */
export function geohashScore(longitude: number, latitude: number): number {
  const step = 2 ** 26;
  const latBits = Math.trunc(((latitude + GEO_LATITUDE_LIMIT) / (2 * GEO_LATITUDE_LIMIT)) * step);
  const lonBits = Math.trunc(((longitude + GEO_LONGITUDE_LIMIT) / (2 * GEO_LONGITUDE_LIMIT)) * step);
  let score = 0;
  let weight = 1;
  for (let i = 0; i < 27; i++) {
    // bit 26 is set only at the upper edge (offset 1.0), as in Redis's uint32 interleave
    score += ((Math.floor(latBits / 2 ** i) % 2) + (Math.floor(lonBits / 2 ** i) % 2) * 2) * weight;
    weight *= 4;
  }
  return score;
}
