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

/** Slow rounds that came together: when the first one committed, how long it lasted, how many. */
export interface Episode {
  at_s: number;
  span_ms: number;
  rounds: number;
  worst_ms: number;
}

/** Where a latency tail comes from: periodic stalls (a timer, a collector) or scattered waits. */
export interface TailEpisodes {
  threshold_ms: number;
  /** rounds at or over the threshold */
  slow_rounds: number;
  episodes: number;
  /** median time between the starts of consecutive episodes (s); null with fewer than two */
  median_gap_s: number | null;
  /** the longest episodes, worst first (at most 5) */
  worst: Episode[];
}

/**
 * Groups the rounds whose latency reached `thresholdMs` into episodes: slow rounds whose commits
 * lie within `joinMs` of the previous slow one belong to the same stall. `rounds`: commit time
 * (ms, any origin) and latency (ms). A tail made of a few episodes at a steady gap points at
 * something periodic in one process; many one-round episodes at scattered times, at waits for a
 * core.
 */
export function tailEpisodes(rounds: readonly { at: number; ms: number }[], thresholdMs: number, joinMs = 50): TailEpisodes {
  const slow = rounds.filter((r) => r.ms >= thresholdMs).sort((a, b) => a.at - b.at);
  const eps: { start: number; end: number; rounds: number; worst: number }[] = [];
  for (const r of slow) {
    const last = eps[eps.length - 1];
    if (last && r.at - last.end <= joinMs) {
      last.end = r.at;
      last.rounds++;
      last.worst = Math.max(last.worst, r.ms);
    } else {
      eps.push({ start: r.at, end: r.at, rounds: 1, worst: r.ms });
    }
  }
  const gaps = eps.slice(1).map((e, i) => e.start - eps[i]!.start).sort((a, b) => a - b);
  const origin = rounds.reduce((m, r) => Math.min(m, r.at), Infinity);
  return {
    threshold_ms: thresholdMs,
    slow_rounds: slow.length,
    episodes: eps.length,
    median_gap_s: gaps.length === 0 ? null : round(nearestRank(gaps, 50) / 1000, 2),
    worst: [...eps]
      .sort((a, b) => b.worst - a.worst)
      .slice(0, 5)
      .map((e) => ({ at_s: round((e.start - origin) / 1000, 2), span_ms: round(e.end - e.start, 1), rounds: e.rounds, worst_ms: round(e.worst, 2) })),
  };
}
