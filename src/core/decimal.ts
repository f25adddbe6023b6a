/**
 * Exact decimal arithmetic on the text Postgres prints for integer and numeric values
 * (`-12.50`, `7`, `0.001`): what aggregate sinks add and take away. A value is an integer number of
 * units of 10^-scale, held as a BigInt, so 0.10 + 0.20 is 0.30 and no digit is ever lost.
 *
 * The scale of a sum is the larger scale of its terms, as Postgres's own `sum(numeric)` keeps it
 * (0.10 + 0.2 = 0.30); trailing zeros are kept, leading zeros dropped, zero has no sign. The Lua
 * script of the aggregate sinks (sinks/aggregate-scripts.ts) does the same on strings inside Redis.
 */

export interface Decimal {
  /** the value times 10^scale */
  readonly units: bigint;
  readonly scale: number;
}

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?$/;

/** True for text this module reads: an optional sign, digits, an optional fraction (no exponent, no NaN). */
export function isDecimalText(text: string): boolean {
  const m = DECIMAL.exec(text);
  return m !== null && (m[2]!.length > 0 || (m[3] ?? '').length > 0);
}

/** Reads `[+-]digits[.digits]`; throws on anything else (exponents, NaN, Infinity, spaces). */
export function parseDecimal(text: string): Decimal {
  const m = DECIMAL.exec(text);
  const int = m?.[2] ?? '';
  const frac = m?.[3] ?? '';
  if (!m || (int.length === 0 && frac.length === 0)) throw new Error(`${JSON.stringify(text)} is not a decimal number`);
  const digits = BigInt(`${int}${frac}` || '0');
  return { units: m[1] === '-' ? -digits : digits, scale: frac.length };
}

export function formatDecimal(d: Decimal): string {
  const neg = d.units < 0n;
  let digits = (neg ? -d.units : d.units).toString();
  if (d.scale > 0) {
    digits = digits.padStart(d.scale + 1, '0');
    digits = `${digits.slice(0, -d.scale)}.${digits.slice(-d.scale)}`;
  }
  return neg ? `-${digits}` : digits;
}

function rescale(d: Decimal, scale: number): bigint {
  return d.units * 10n ** BigInt(scale - d.scale);
}

export function addDecimals(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) + rescale(b, scale), scale };
}

export function negateDecimal(d: Decimal): Decimal {
  return { units: -d.units, scale: d.scale };
}

/** a + b, on text. */
export function addDecimalText(a: string, b: string): string {
  return formatDecimal(addDecimals(parseDecimal(a), parseDecimal(b)));
}

/** a − b, on text. */
export function subtractDecimalText(a: string, b: string): string {
  return formatDecimal(addDecimals(parseDecimal(a), negateDecimal(parseDecimal(b))));
}

/** -x, on text ("0" stays "0"). */
export function negateDecimalText(x: string): string {
  return formatDecimal(negateDecimal(parseDecimal(x)));
}

export function isZeroDecimalText(x: string): boolean {
  return parseDecimal(x).units === 0n;
}

/** Equal as numbers, whatever their scales ("2.50" and "2.5"). */
export function decimalTextEquals(a: string, b: string): boolean {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  const scale = Math.max(x.scale, y.scale);
  return rescale(x, scale) === rescale(y, scale);
}
