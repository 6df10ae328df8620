// The plots the CLI writes, as functions (so programs get the same pictures).
import { AVAILABILITY_DEFAULTS, type AvailabilityParams, availability } from './availability.js';
import { corruptionProbability, percentilePointMs } from './corruption.js';
import { type Series, renderLineChart } from './plot-svg.js';
import { requirePositive } from './validate.js';

/** Points per curve: smooth at 720 px. */
const CURVE_POINTS = 160;

function logSpace(lo: number, hi: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => lo * Math.pow(hi / lo, i / (n - 1)));
}

/** Corruption probability (%, log axis) against the checkpoint interval, single and dual. */
export function corruptionChartSvg(args: { lambdaPerMs: number; intervalMinMs?: number; intervalMaxMs?: number; marks?: readonly number[] }): string {
  const lambda = requirePositive('lambda-per-ms', args.lambdaPerMs);
  const lo = args.intervalMinMs ?? Math.max(1e-3, percentilePointMs(lambda, 0.3));
  const hi = args.intervalMaxMs ?? percentilePointMs(lambda, 0.9999);
  requirePositive('interval-min-ms', lo);
  requirePositive('interval-max-ms', hi - lo);
  const xs = logSpace(lo, hi, CURVE_POINTS);
  const curve = (k: number): [number, number][] => xs.map((x) => [x, 100 * corruptionProbability(x, lambda, k)]);
  const series: Series[] = [
    { name: 'single checkpoint (5)', points: curve(1) },
    { name: 'dual checkpoint (6)', points: curve(2) },
  ];
  if (args.marks && args.marks.length > 0) {
    const marks = args.marks.filter((m) => m >= lo && m <= hi);
    series.push({ name: 'single at marked T_ck', points: marks.map((m) => [m, 100 * corruptionProbability(m, lambda, 1)]), markers: true, dashed: true });
    series.push({ name: 'dual at marked T_ck', points: marks.map((m) => [m, 100 * corruptionProbability(m, lambda, 2)]), markers: true, dashed: true });
  }
  const yMin = Math.max(1e-6, 100 * corruptionProbability(hi, lambda, 2));
  return renderLineChart({
    title: `Checkpoint corruption probability, λ = ${lambda.toPrecision(4)}/ms`,
    xLabel: 'checkpoint interval T_ck (ms)', yLabel: 'P(checkpoint corrupted) (%)',
    xScale: 'log', yScale: 'log', yRange: [Math.pow(10, Math.floor(Math.log10(yMin))), 100], series, legend: 'bottom-left',
  });
}

/**
 * Unavailability (%, log axis — availabilities near 100 % are unreadable on a
 * linear one) against the hypervisor MTTF (years, log axis) for the three
 * schemes, in-memory both single and dual.
 */
export function availabilityChartSvg(params: Partial<AvailabilityParams> = {}): string {
  const full = { ...AVAILABILITY_DEFAULTS, ...params };
  const xs = logSpace(0.05, 20, CURVE_POINTS);
  const curve = (scheme: 'none' | 'disk' | 'memory', extra: Partial<AvailabilityParams> = {}): [number, number][] =>
    xs.map((y) => [y, 100 * availability(scheme, { ...full, ...extra, hypervisorMttfYears: y }).unavailability]);
  const series: Series[] = [
    { name: 'no checkpointing', points: curve('none') },
    { name: `disk-only (every ${full.diskIntervalMinutes} min)`, points: curve('disk') },
    { name: `in-memory, single (T_ck ${full.intervalMs} ms)`, points: curve('memory', { checkpointsKept: 1, corruptionProbability: undefined }) },
    { name: `in-memory, dual (T_ck ${full.intervalMs} ms)`, points: curve('memory', { checkpointsKept: 2, corruptionProbability: undefined }) },
  ];
  if (params.corruptionProbability !== undefined) {
    series.push({ name: `in-memory, pc = ${params.corruptionProbability}`, points: curve('memory'), dashed: true });
  }
  return renderLineChart({
    title: 'Unavailability of the protected VM (CTMC of Figure 5)',
    xLabel: 'hypervisor MTTF (years)', yLabel: 'unavailability = 100 − availability (%)',
    xScale: 'log', yScale: 'log', yRange: [1e-3, 100], series, legend: 'bottom-left',
    hLines: [{ y: 0.02, label: 'availability 99.98 %' }, { y: 1, label: 'availability 99 %' }],
  });
}
