// A small dependency-free SVG line-chart writer: axes, ticks, tick labels, axis
// labels, title, legend, linear or log10 axes, optional horizontal reference
// lines. Output is a standalone SVG document any browser opens.
import { assert } from '../util/assert.js';
import { UnderstudyError } from '../errors.js';

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  /** Dashed stroke (e.g. a Monte-Carlo or reference curve). */
  dashed?: boolean;
  /** Draw a marker at every point. */
  markers?: boolean;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  xScale?: 'linear' | 'log';
  yScale?: 'linear' | 'log';
  /** Axis ranges; default: the data's extent. */
  xRange?: readonly [number, number];
  yRange?: readonly [number, number];
  /** Horizontal reference lines. */
  hLines?: readonly { y: number; label: string }[];
  /** Corner of the plot area the legend sits in; default 'top-right'. */
  legend?: 'top-right' | 'top-left' | 'bottom-right' | 'bottom-left';
  widthPx?: number;
  heightPx?: number;
}

/** Points drawn per chart: bounded so a mistaken call cannot produce a gigabyte file. */
export const PLOT_POINTS_MAX = 100_000;
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** "Nice" linear ticks: steps of 1, 2 or 5 × 10^k, about `count` of them. */
export function linearTicks(lo: number, hi: number, count = 6): number[] {
  assert(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi, 'linearTicks: finite lo < hi');
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let i = first; i * step <= hi + step * 1e-9 && ticks.length < 100; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/** Decade ticks of a log10 axis (with 2 and 5 when there are few decades). */
export function logTicks(lo: number, hi: number): number[] {
  assert(lo > 0 && lo < hi, 'logTicks: 0 < lo < hi');
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const mult = b - a <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = a; e <= b && ticks.length < 100; e++) {
    for (const m of mult) {
      const v = Number((m * Math.pow(10, e)).toPrecision(12));
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(v);
    }
  }
  return ticks;
}

export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0).replace('e+', 'e');
  return String(Number(v.toPrecision(6)));
}

export function renderLineChart(chart: LineChart): string {
  const W = chart.widthPx ?? 720;
  const H = chart.heightPx ?? 440;
  const xLog = chart.xScale === 'log';
  const yLog = chart.yScale === 'log';
  const total = chart.series.reduce((a, s) => a + s.points.length, 0);
  if (chart.series.length === 0 || total === 0) throw new UnderstudyError('ERR_MODEL_PARAM', 'a plot needs at least one point');
  if (total > PLOT_POINTS_MAX) throw new UnderstudyError('ERR_MODEL_PARAM', `a plot may have at most ${PLOT_POINTS_MAX} points, got ${total}`);
  const usable = (v: number, log: boolean): boolean => Number.isFinite(v) && (!log || v > 0);
  const pts = chart.series.flatMap((s) => s.points).filter(([x, y]) => usable(x, xLog) && usable(y, yLog));
  if (pts.length === 0) throw new UnderstudyError('ERR_MODEL_PARAM', 'no plottable point (log axes need values > 0)');
  const extent = (vals: number[], given: readonly [number, number] | undefined, log: boolean): [number, number] => {
    let [lo, hi] = given ?? [Math.min(...vals), Math.max(...vals)];
    if (lo === hi) { lo = log ? lo / 2 : lo - 1; hi = log ? hi * 2 : hi + 1; }
    return [lo, hi];
  };
  const [x0, x1] = extent(pts.map((p) => p[0]), chart.xRange, xLog);
  const [y0, y1] = extent(pts.map((p) => p[1]), chart.yRange, yLog);
  const m = { left: 78, right: 20, top: 40, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const fx = (x: number): number => m.left + pw * (xLog ? Math.log10(x / x0) / Math.log10(x1 / x0) : (x - x0) / (x1 - x0));
  const fy = (y: number): number => m.top + ph * (1 - (yLog ? Math.log10(y / y0) / Math.log10(y1 / y0) : (y - y0) / (y1 - y0)));
  const r = (v: number): string => v.toFixed(2);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(chart.title)}</text>`);
  // Grid and ticks.
  const xt = xLog ? logTicks(x0, x1) : linearTicks(x0, x1);
  const yt = yLog ? logTicks(y0, y1) : linearTicks(y0, y1);
  for (const v of xt) {
    const X = r(fx(v));
    out.push(`<line x1="${X}" y1="${m.top}" x2="${X}" y2="${m.top + ph}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${X}" y1="${m.top + ph}" x2="${X}" y2="${m.top + ph + 5}" stroke="black"/>`);
    out.push(`<text x="${X}" y="${m.top + ph + 18}" text-anchor="middle">${escapeXml(formatTick(v))}</text>`);
  }
  for (const v of yt) {
    const Y = r(fy(v));
    out.push(`<line x1="${m.left}" y1="${Y}" x2="${m.left + pw}" y2="${Y}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${m.left - 5}" y1="${Y}" x2="${m.left}" y2="${Y}" stroke="black"/>`);
    out.push(`<text x="${m.left - 8}" y="${Y}" text-anchor="end" dominant-baseline="middle">${escapeXml(formatTick(v))}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle">${escapeXml(chart.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(chart.yLabel)}</text>`);
  out.push(`<clipPath id="plot"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath>`);
  for (const h of chart.hLines ?? []) {
    if (!usable(h.y, yLog) || h.y < Math.min(y0, y1) || h.y > Math.max(y0, y1)) continue;
    const Y = r(fy(h.y));
    out.push(`<line x1="${m.left}" y1="${Y}" x2="${m.left + pw}" y2="${Y}" stroke="#555" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${m.left + pw - 4}" y="${Number(Y) - 4}" text-anchor="end" fill="#555">${escapeXml(h.label)}</text>`);
  }
  // Series.
  chart.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const ok = s.points.filter(([x, y]) => usable(x, xLog) && usable(y, yLog));
    if (ok.length === 0) return;
    const d = ok.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${r(fx(x))} ${r(fy(y))}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} clip-path="url(#plot)"/>`);
    if (s.markers) for (const [x, y] of ok) out.push(`<circle cx="${r(fx(x))}" cy="${r(fy(y))}" r="3" fill="${colour}" clip-path="url(#plot)"/>`);
  });
  // Legend (top right, inside the plot).
  const lw = 14 + 7 * Math.max(...chart.series.map((s) => s.name.length)) + 30;
  const lh = chart.series.length * 18 + 8;
  const corner = chart.legend ?? 'top-right';
  const lx = corner.endsWith('right') ? m.left + pw - lw - 8 : m.left + 8;
  const ly = corner.startsWith('top') ? m.top + 8 : m.top + ph - lh - 8;
  out.push(`<rect x="${lx}" y="${ly}" width="${lw}" height="${lh}" fill="white" fill-opacity="0.9" stroke="#999"/>`);
  chart.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const y = ly + 18 + i * 18;
    out.push(`<line x1="${lx + 8}" y1="${y - 4}" x2="${lx + 32}" y2="${y - 4}" stroke="${colour}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${lx + 38}" y="${y}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
