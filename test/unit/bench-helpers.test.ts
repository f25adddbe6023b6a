// The pure helpers of the benchmarks (bench/): percentiles, the SVG chart, reading /metrics and
// pgbench's summary. The scenarios themselves are not run in the test suites.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nearestRank, summarize, tailEpisodes } from '../../bench/stats.js';
import { escapeXml, formatValue, niceCeil, renderChart } from '../../bench/svg-chart.js';
import { instanceYaml, metricSum, windowOf } from '../../bench/instances.js';
import { parseConfig } from '../../src/config/load.js';
import { parsePgbench } from '../../bench/saturation.js';
import { costPoints } from '../../bench/cost.js';

const finite = fc.double({ min: -1e6, max: 1e6, noNaN: true });

describe('nearestRank / summarize', () => {
  test('the nearest-rank percentile: at least p % of the values at or below it, and it is one of them', () => {
    fc.assert(
      fc.property(fc.array(finite, { minLength: 1, maxLength: 200 }), fc.double({ min: 0.01, max: 100, noNaN: true }), (xs, p) => {
        const s = [...xs].sort((a, b) => a - b);
        const v = nearestRank(s, p);
        assert.ok(s.includes(v));
        assert.ok(s.filter((x) => x <= v).length >= (p / 100) * s.length - 1e-9);
        // the smallest such value: strictly fewer than p % lie below it
        assert.ok(s.filter((x) => x < v).length < (p / 100) * s.length + 1e-9);
      }),
    );
  });

  test('known values', () => {
    const ms = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.deepEqual(summarize(ms), { rounds: 100, p50_ms: 50, p90_ms: 90, p99_ms: 99, max_ms: 100, mean_ms: 50.5 });
    assert.equal(summarize([3]).p99_ms, 3);
    assert.ok(Number.isNaN(nearestRank([], 50)));
    assert.equal(summarize([]).rounds, 0);
  });

  test('percentiles are ordered and bounded by the max', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1e5, noNaN: true }), { minLength: 1, maxLength: 300 }), (xs) => {
        const s = summarize(xs);
        assert.ok(s.p50_ms <= s.p90_ms && s.p90_ms <= s.p99_ms && s.p99_ms <= s.max_ms);
      }),
    );
  });
});

describe('svg chart', () => {
  test('niceCeil: the smallest 1/2/5 × 10^k at or above x', () => {
    assert.equal(niceCeil(7), 10);
    assert.equal(niceCeil(10), 10);
    assert.equal(niceCeil(11), 20);
    assert.equal(niceCeil(36_000), 50_000);
    assert.equal(niceCeil(0.3), 0.5);
    assert.equal(niceCeil(0), 1);
    assert.equal(niceCeil(Number.NaN), 1);
    assert.ok(niceCeil(5e-324) > 0);
    assert.ok(Number.isFinite(niceCeil(1e308)));
    fc.assert(
      fc.property(fc.double({ min: 1e-6, max: 1e12, noNaN: true }), (x) => {
        const n = niceCeil(x);
        assert.ok(n >= x * (1 - 1e-9) && n < x * 5.0001);
      }),
    );
  });

  test('formatValue and escapeXml', () => {
    assert.equal(formatValue(36_412), '36.4k');
    assert.equal(formatValue(950), '950');
    assert.equal(formatValue(1.234), '1.23');
    assert.equal(formatValue(Number.NaN), '–');
    assert.equal(escapeXml('a<b & "c">'), 'a&lt;b &amp; &quot;c&quot;&gt;');
  });

  const bars = fc.array(fc.record({ label: fc.string({ maxLength: 12 }), value: fc.oneof(fc.double({ min: 0, max: 1e7, noNaN: true }), fc.constant(Number.NaN), fc.constant(-5)) }), { minLength: 0, maxLength: 6 });

  test('one bar per value, every bar inside its panel, the tallest at most the plot height, no NaN in the output', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.record({ title: fc.string({ maxLength: 20 }), unit: fc.string({ maxLength: 20 }), bars }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 2 }), (rows) => {
        const svg = renderChart({ title: 'T <&>', rows });
        assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
        assert.ok(svg.trimEnd().endsWith('</svg>'));
        // no coordinate is NaN (titles and labels may say NaN themselves)
        assert.ok(!/ (?:x|y|x1|x2|y1|y2|width|height)="[^"]*NaN/.test(svg));
        assert.ok(!/<title>[^<]*: NaN<\/title>/.test(svg) || rows.flat().some((p) => p.bars.some((b) => b.label.includes('NaN'))));
        const rects = [...svg.matchAll(/<rect x="([-0-9.]+)" y="([-0-9.]+)" width="([-0-9.]+)" height="([-0-9.]+)" class="b">/g)];
        assert.equal(rects.length, rows.flat().reduce((n, p) => n + p.bars.length, 0));
        const width = Number(/width="(\d+)"/.exec(svg)![1]);
        const height = Number(/height="(\d+)"/.exec(svg)![1]);
        for (const [, x, y, w, h] of rects) {
          assert.ok(Number(h) >= 0 && Number(w) > 0);
          assert.ok(Number(x) >= 0 && Number(x) + Number(w) <= width);
          assert.ok(Number(y) >= 0 && Number(y) + Number(h) <= height);
        }
        // text is escaped: no raw markup from titles or labels
        assert.ok(svg.includes('T &lt;&amp;&gt;'));
      }),
    );
  });

  test('bar heights are proportional to the values', () => {
    const svg = renderChart({ title: 't', rows: [[{ title: 'p', unit: 'u', bars: [{ label: 'a', value: 10 }, { label: 'b', value: 5 }, { label: 'c', value: 0 }] }]] });
    const heights = [...svg.matchAll(/height="([0-9.]+)" class="b"/g)].map((m) => Number(m[1]));
    assert.equal(heights.length, 3);
    assert.ok(Math.abs(heights[0]! - 2 * heights[1]!) < 0.2);
    assert.equal(heights[2], 0);
  });
});

test('metricSum adds every label set of one metric, not metrics whose name it prefixes', () => {
  const text = [
    '# HELP sluice_changes_total Row changes applied',
    '# TYPE sluice_changes_total counter',
    'sluice_changes_total{sink="a",action="insert"} 10',
    'sluice_changes_total{sink="b",action="delete"} 5',
    'sluice_changes_total_other 99',
    'sluice_confirmed_lsn 123456789',
  ].join('\n');
  assert.equal(metricSum(text, 'sluice_changes_total'), 15);
  assert.equal(metricSum(text, 'sluice_confirmed_lsn'), 123456789);
  assert.equal(metricSum(text, 'sluice_missing'), 0);
});

test('parsePgbench reads the summary, or names what is missing', () => {
  const out = `transaction type: update.sql
scaling factor: 1
number of clients: 4
number of transactions actually processed: 78031
number of failed transactions: 0 (0.000%)
latency average = 0.510 ms
tps = 7842.512345 (without initial connection time)`;
  assert.deepEqual(parsePgbench(out), { transactions: 78031, tps: 7842.512345 });
  assert.throws(() => parsePgbench('pgbench: error: connection refused'), /pgbench: no summary/);
});

test('costPoints: each axis from the base, the base once', () => {
  const points = costPoints();
  assert.equal(points.length, 8);
  assert.equal(new Set(points.map((p) => JSON.stringify(p))).size, 8);
  assert.ok(points.every((p) => [p.row_bytes !== 100, p.txn_rows !== 10, p.sinks !== 1].filter(Boolean).length <= 1));
});

test('instanceYaml: a config Sluice accepts, with the connection name, sinks and state schema given', () => {
  const yaml = instanceYaml({
    pgUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: 'redis://127.0.0.1:6379',
    redisName: 'redis_a',
    slot: 'inst_a',
    publication: 'pub_a',
    stateSchema: 'st_a',
    sinks: [
      { name: 'k0', tables: ['a.items'], key: 's:{schema}:{pk}' },
      { name: 'k1', tables: ['a.items', 'b.items'] },
    ],
  });
  const config = parseConfig(`${yaml}http:\n  port: 0\n`, { file: 'bench.yaml', env: {} });
  assert.equal(config.source.slot, 'inst_a');
  assert.equal(config.source.publication, 'pub_a');
  assert.equal(config.state.schema, 'st_a');
  assert.deepEqual(Object.keys(config.redis), ['redis_a']);
  assert.deepEqual(config.sinks.map((s) => s.name), ['k0', 'k1']);
});

test('windowOf: changes per sink, rate and CPU per 100k changes between two reads', () => {
  const at = (ms: number, changes: number, cpu: number) => ({ at: ms, changes, transactions: 0, confirmedLsn: 0n, lagBytes: 0, cpuSeconds: cpu });
  assert.deepEqual(windowOf(at(1000, 0, 1), at(3000, 40_000, 2), 2, 150), { seconds: 2, changes: 20_000, changes_per_sec: 10_000, cpu_seconds: 1, cpu_seconds_per_100k: 5, peak_rss_mb: 150 });
  assert.equal(windowOf(at(0, 0, 0), at(0, 0, 0), 1, null).changes_per_sec, 0);
});

describe('tailEpisodes', () => {
  test('slow rounds close together are one stall; the gap between stalls is reported', () => {
    const rounds = [
      { at: 0, ms: 0.3 },
      { at: 1000, ms: 9 },
      { at: 1010, ms: 12 },
      { at: 1040, ms: 6 },
      { at: 2000, ms: 0.4 },
      { at: 3000, ms: 20 },
      { at: 5000, ms: 7 },
    ];
    const t = tailEpisodes(rounds, 5);
    assert.equal(t.slow_rounds, 5);
    assert.equal(t.episodes, 3);
    assert.equal(t.median_gap_s, 2);
    assert.deepEqual(t.worst[0], { at_s: 3, span_ms: 0, rounds: 1, worst_ms: 20 });
    assert.deepEqual(t.worst[1], { at_s: 1, span_ms: 40, rounds: 3, worst_ms: 12 });
  });

  test('every slow round is in exactly one episode, whatever the order', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.integer({ min: 0, max: 100_000 }), ms: fc.double({ min: 0, max: 100, noNaN: true }) })), (rounds) => {
        const t = tailEpisodes(rounds, 5);
        assert.equal(t.slow_rounds, rounds.filter((r) => r.ms >= 5).length);
        assert.ok(t.episodes <= t.slow_rounds);
        assert.equal(t.episodes === 0, t.slow_rounds === 0);
      }),
    );
  });
});
