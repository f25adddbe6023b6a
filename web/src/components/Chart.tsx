// A time series chart (uPlot) that follows its container's width. The figure carries the
// latest and largest values as text (and data-* attributes), so the numbers are readable
// without the canvas, by a screen reader and by the end-to-end test.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  label: string;
  values: (number | null)[];
}

/** the time axis spans at least this (seconds): a young history is not stretched over the width */
const MIN_SPAN_S = 30;

const COLORS = ['#2f6fde', '#d9822b', '#1f8a4c', '#8e44ad', '#c53030', '#0f8b8d', '#7a5c00', '#5b6478'];

interface Props {
  title: string;
  /** seconds since the epoch, one per sample */
  times: number[];
  series: ChartSeries[];
  format: (v: number) => string;
  height?: number;
  /** the chart's id (for tests and links) */
  id?: string;
  /** draw a line across missing samples (e.g. no batch applied: no latency) */
  spanGaps?: boolean;
}

export function Chart({ title, times, series, format, height = 160, id, spanGaps = false }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const labels = series.map((s) => s.label).join('\u0000');
  const data: uPlot.AlignedData = [times, ...series.map((s) => s.values)];

  // a new chart when the series change (a sink added or removed); new data otherwise
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: series.length > 1 },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: (_u, min, max) => (max - min < MIN_SPAN_S ? [max - MIN_SPAN_S, max] : [min, max]) }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { stroke: '#687085', grid: { stroke: '#eceef3' }, ticks: { stroke: '#e2e5ec' } },
        { stroke: '#687085', grid: { stroke: '#eceef3' }, ticks: { stroke: '#e2e5ec' }, size: 70, values: (_u, vals) => vals.map((v) => format(v)) },
      ],
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps, value: (_u: uPlot, v: number | null) => (v === null ? '–' : format(v)) }))],
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // the chart is rebuilt only when its series or height change; data goes through setData below
  }, [labels, height]);

  useEffect(() => {
    plot.current?.setData(data);
  });

  const latest = series.map((s) => ({ label: s.label, value: [...s.values].reverse().find((v) => v !== null) ?? null }));
  const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  const summary = latest.map((l) => `${l.label}: ${l.value === null ? 'no data' : format(l.value)}`).join(', ');
  return (
    <figure class="chart" id={id} data-points={times.length} data-max={max} data-latest={latest[0]?.value ?? ''}>
      <figcaption>
        <span class="chart-title">{title}</span>
        <span class="chart-now">{times.length === 0 ? 'waiting for the first samples…' : summary}</span>
      </figcaption>
      <div ref={box} class="chart-canvas" role="img" aria-label={`${title}, last 15 minutes. Now: ${summary}`} />
    </figure>
  );
}
