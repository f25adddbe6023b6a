// Pure helpers of the benchmarks' figures: latency percentiles.

import { round } from './support.js';

export interface Latencies {
  rounds: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  mean_ms: number;
}

/**
 * The p-th percentile by the nearest-rank method: the smallest value with at least p % of the
 * values at or below it (p in (0, 100]). `sorted` ascending; NaN when empty.
 */
export function nearestRank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** p50/p90/p99/max/mean of durations in ms (rounded to 0.01 ms). */
export function summarize(ms: readonly number[]): Latencies {
  const s = [...ms].sort((a, b) => a - b);
  return {
    rounds: s.length,
    p50_ms: round(nearestRank(s, 50), 2),
    p90_ms: round(nearestRank(s, 90), 2),
    p99_ms: round(nearestRank(s, 99), 2),
    max_ms: round(s[s.length - 1] ?? NaN, 2),
    mean_ms: round(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length), 2),
  };
}
