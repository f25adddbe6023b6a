// A small SVG bar-chart writer for the bench's figures (docs/perf-cost.svg).
//
// Written by hand on purpose: the chart is a grid of plain bar panels, and the charting
// libraries that render SVG in Node either need a DOM (d3 with jsdom, Chart.js with a canvas
// shim) or bring a large dependency tree (vega) for what is about a hundred lines of string
// building. The output is deterministic (same figures, same bytes), so the file in docs/ only
// changes when the figures do.

export interface Bar {
  label: string;
  value: number;
}

export interface Panel {
  title: string;
  /** the unit of the values, shown above the axis */
  unit: string;
  bars: Bar[];
}

export interface Chart {
  title: string;
  /** a line under the title (what was measured, where) */
  subtitle?: string;
  /** rows of panels, drawn left to right, top to bottom */
  rows: Panel[][];
}

const PANEL_W = 300;
const PANEL_H = 220;
const MARGIN = { top: 56, right: 16, bottom: 38, left: 56 };
const HEADER = 56;

/** Escapes text for SVG content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The smallest "nice" number (1, 2 or 5 times a power of ten) at or above `x`; 1 for x ≤ 0 or not finite. */
export function niceCeil(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  // at the ends of the double range the power of ten underflows to 0 or overflows: x itself
  if (!(p > 0) || !Number.isFinite(10 * p)) return x;
  for (const m of [1, 2, 5, 10]) if (m * p >= x * (1 - 1e-12)) return m * p;
  return 10 * p;
}

/** A value as the chart prints it: thousands as k, at most three significant digits. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1000) return `${Number((v / 1000).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

const num = (x: number): string => String(Math.round(x * 10) / 10);

function panelSvg(p: Panel, x0: number, y0: number): string {
  const plotW = PANEL_W - MARGIN.left - MARGIN.right;
  const plotH = PANEL_H - MARGIN.top - MARGIN.bottom;
  const values = p.bars.map((b) => (Number.isFinite(b.value) && b.value > 0 ? b.value : 0));
  const top = niceCeil(Math.max(0, ...values));
  const out: string[] = [];
  const left = x0 + MARGIN.left;
  const base = y0 + MARGIN.top + plotH;
  out.push(`<text x="${num(x0 + PANEL_W / 2)}" y="${num(y0 + 18)}" text-anchor="middle" class="t">${escapeXml(p.title)}</text>`);
  out.push(`<text x="${num(left)}" y="${num(y0 + 36)}" class="u">${escapeXml(p.unit)}</text>`);
  // axis and four gridlines
  for (let i = 0; i <= 4; i++) {
    const y = base - (plotH * i) / 4;
    out.push(`<line x1="${num(left)}" x2="${num(left + plotW)}" y1="${num(y)}" y2="${num(y)}" class="${i === 0 ? 'a' : 'g'}"/>`);
    out.push(`<text x="${num(left - 6)}" y="${num(y + 4)}" text-anchor="end" class="s">${escapeXml(formatValue((top * i) / 4))}</text>`);
  }
  const slot = plotW / Math.max(1, p.bars.length);
  const barW = Math.min(48, slot * 0.6);
  p.bars.forEach((b, i) => {
    const h = (plotH * values[i]!) / top;
    const cx = left + slot * (i + 0.5);
    out.push(`<rect x="${num(cx - barW / 2)}" y="${num(base - h)}" width="${num(barW)}" height="${num(h)}" class="b"><title>${escapeXml(`${b.label}: ${Number.isFinite(b.value) ? b.value : '–'}`)}</title></rect>`);
    out.push(`<text x="${num(cx)}" y="${num(base - h - 4)}" text-anchor="middle" class="s">${escapeXml(formatValue(b.value))}</text>`);
    out.push(`<text x="${num(cx)}" y="${num(base + 16)}" text-anchor="middle" class="s">${escapeXml(b.label)}</text>`);
  });
  return out.join('\n');
}

/** The whole chart as an SVG document. */
export function renderChart(c: Chart): string {
  const cols = Math.max(1, ...c.rows.map((r) => r.length));
  const width = cols * PANEL_W;
  const height = HEADER + c.rows.length * PANEL_H;
  const body: string[] = [];
  c.rows.forEach((row, r) => row.forEach((p, i) => body.push(panelSvg(p, i * PANEL_W, HEADER + r * PANEL_H))));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    '<style>.t{font-size:14px;font-weight:bold}.u{font-size:11px;fill:#555}.s{font-size:11px;fill:#333}.a{stroke:#333}.g{stroke:#ddd}.b{fill:#4c78a8}</style>',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${num(width / 2)}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(c.title)}</text>`,
    c.subtitle !== undefined ? `<text x="${num(width / 2)}" y="42" text-anchor="middle" class="u">${escapeXml(c.subtitle)}</text>` : '',
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
