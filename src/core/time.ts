/** 2000-01-01T00:00:00Z, the Postgres timestamp epoch, in microseconds since the Unix epoch */
export const PG_EPOCH_MICROS = 946_684_800_000_000n;

/** Postgres timestamp (microseconds since 2000-01-01 UTC) → Unix milliseconds. */
export function microsToUnixMs(micros: bigint): number {
  return Number((micros + PG_EPOCH_MICROS) / 1000n);
}

/** Unix milliseconds (e.g. Date.now()) → Postgres timestamp: microseconds since 2000-01-01 UTC. */
export function microsSince2000(dateMs: number): bigint {
  if (!Number.isFinite(dateMs)) throw new RangeError(`not a finite time in milliseconds: ${dateMs}`);
  // whole and fractional milliseconds apart: dateMs * 1000 loses precision past 2^53 (year ~2255),
  // while fractional milliseconds (performance.timeOrigin + now()) keep their microseconds
  const whole = Math.floor(dateMs);
  return BigInt(whole) * 1000n + BigInt(Math.round((dateMs - whole) * 1000)) - PG_EPOCH_MICROS;
}

/** Postgres timestamp (microseconds since 2000-01-01 UTC) → "2026-11-22T13:11:03.123456Z". */
export function microsToIsoUtc(micros: bigint): string {
  const unixMicros = micros + PG_EPOCH_MICROS;
  // floor division, so that times before 1970 keep a positive fraction
  let seconds = unixMicros / 1_000_000n;
  let frac = unixMicros % 1_000_000n;
  if (frac < 0n) {
    frac += 1_000_000n;
    seconds -= 1n;
  }
  const date = new Date(Number(seconds) * 1000);
  if (Number.isNaN(date.getTime())) {
    throw new RangeError(`timestamp out of range: ${micros} microseconds since 2000-01-01`);
  }
  const iso = date.toISOString(); // always ends in ".000Z"
  return `${iso.slice(0, -5)}.${frac.toString().padStart(6, '0')}Z`;
}
