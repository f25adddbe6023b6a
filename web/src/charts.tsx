// The charts of the overview and of a sink page, from the server's history samples.
import type { ApiHistorySample } from './api.js';
import { Chart } from './components/Chart.js';
import { bytes, ms, rate } from './format.js';

const times = (samples: readonly ApiHistorySample[]): number[] => samples.map((s) => s.t / 1000);

/** Changes applied per second: all sinks, then each sink (up to 6 lines, busiest first). */
export function ThroughputChart({ samples, sinks }: { samples: ApiHistorySample[]; sinks: string[] }) {
  const busiest = [...sinks]
    .map((name) => ({ name, total: samples.reduce((n, s) => n + (s.sinks[name] ?? 0), 0) }))
    .sort((a, b) => b.total - a.total)
    .slice(0, 6)
    .map((x) => x.name)
    .sort();
  const series = [
    { label: 'all sinks', values: samples.map((s) => s.changes_per_s) },
    ...(sinks.length > 1 ? busiest.map((name) => ({ label: name, values: samples.map((s) => s.sinks[name] ?? null) })) : []),
  ];
  return <Chart id="chart-throughput" title="Throughput (changes applied per second)" times={times(samples)} series={series} format={rate} />;
}

export function LatencyChart({ samples }: { samples: ApiHistorySample[] }) {
  return <Chart id="chart-latency" title="Apply latency (mean time per MULTI/EXEC batch)" times={times(samples)} series={[{ label: 'apply', values: samples.map((s) => s.apply_ms) }]} format={ms} spanGaps />;
}

export function LagChart({ samples, allSinks = false }: { samples: ApiHistorySample[]; allSinks?: boolean }) {
  const title = `Replication lag (age of the last applied commit while changes wait${allSinks ? '; the slot, all sinks' : ''})`;
  return <Chart id="chart-lag" title={title} times={times(samples)} series={[{ label: 'lag', values: samples.map((s) => s.lag_ms) }]} format={ms} />;
}

/** One sink: mean time from a transaction's commit to Redis acknowledging it. */
export function SinkLatencyChart({ samples, sink }: { samples: ApiHistorySample[]; sink: string }) {
  return (
    <Chart
      id="chart-sink-latency"
      title={`${sink}: commit → in Redis (mean per transaction)`}
      times={times(samples)}
      series={[{ label: 'commit → in Redis', values: samples.map((s) => s.commit_to_redis_ms?.[sink] ?? null) }]}
      format={ms}
      spanGaps
    />
  );
}

export function WalChart({ samples }: { samples: ApiHistorySample[] }) {
  return (
    <Chart
      id="chart-wal"
      title="Slot lag and retained WAL"
      times={times(samples)}
      series={[
        { label: 'slot lag', values: samples.map((s) => s.lag_bytes) },
        { label: 'retained WAL', values: samples.map((s) => s.retained_wal_bytes) },
      ]}
      format={bytes}
    />
  );
}

/** One sink: its changes and failures per second. */
export function SinkRateChart({ samples, sink }: { samples: ApiHistorySample[]; sink: string }) {
  return (
    <Chart
      id="chart-sink-rate"
      title={`${sink}: changes applied and failed per second`}
      times={times(samples)}
      series={[
        { label: 'applied', values: samples.map((s) => s.sinks[sink] ?? null) },
        { label: 'failed', values: samples.map((s) => s.failed[sink] ?? null) },
      ]}
      format={rate}
    />
  );
}
