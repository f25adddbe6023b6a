// Building blocks of the config schemas (schema.ts, redis-schema.ts, sink-schema.ts): strict
// objects whose unknown keys get a "did you mean" message, and the small value schemas they share.
import { z } from 'zod';

/** Levenshtein distance with adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const w = b.length + 1;
  const d = new Array<number>((a.length + 1) * w).fill(0);
  const get = (i: number, j: number): number => d[i * w + j] ?? 0;
  for (let i = 0; i <= a.length; i++) d[i * w] = i;
  for (let j = 0; j <= b.length; j++) d[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(get(i - 1, j) + 1, get(i, j - 1) + 1, get(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, get(i - 2, j - 2) + 1);
      d[i * w + j] = v;
    }
  }
  return get(a.length, b.length);
}

/** The known key closest to `key` when there is an obvious one (edit distance ≤ 2), else undefined. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const dist = k.toLowerCase() === key.toLowerCase() ? 0.5 : editDistance(key, k);
    // short keys: a distance of 2 would make almost anything "close"
    if (dist <= 2 && dist < Math.max(key.length, k.length) / 2 && dist < bestDistance) {
      best = k;
      bestDistance = dist;
    }
  }
  return best;
}

export function unknownKeyMessage(key: string, known: readonly string[], hint?: (key: string) => string | undefined): string {
  const close = closestKey(key, known);
  if (close !== undefined) return `unknown key "${key}"; did you mean "${close}"?`;
  const extra = hint?.(key);
  if (extra !== undefined) return `unknown key "${key}" (${extra})`;
  return `unknown key "${key}" (known keys: ${known.join(', ')})`;
}

/**
 * A strict object: unknown keys are errors. zod reports all unknown keys of an object in one
 * issue; the message holds one line per key, in the order of `issue.keys` (issues.ts splits it).
 */
export function strict<T extends z.ZodRawShape>(shape: T, hint?: (key: string) => string | undefined) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) =>
      iss.code === 'unrecognized_keys' ? iss.keys.map((k) => unknownKeyMessage(k, known, hint)).join('\n') : undefined,
  });
}

export const positiveInt = () => z.int().positive();
export const nonEmptyString = () => z.string().min(1, { error: 'must not be empty' });

// Identifiers: Postgres-style names as they are stored in the catalog (case-sensitive).
export const IDENT = '[\\p{L}_][\\p{L}\\p{N}_$]*';
export const IDENT_RE = new RegExp(`^${IDENT}$`, 'u');

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseUrl(s: string): URL | undefined {
  try {
    return new URL(s);
  } catch {
    return undefined;
  }
}
