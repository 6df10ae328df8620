// Checkpoint-corruption model of seed paper 003 (VM-μCheckpoint, Section 4).
//
// An unmasked error happens at offset a after the checkpoint preceding it,
// a ~ Uniform[0, T) where T is the checkpoint interval, and is detected after a
// latency l ~ Exponential(λ), independent of a. Every checkpoint taken in
// (error, detection] holds the error. Keeping the k most recent checkpoints and
// rolling back to the oldest, recovery fails when at least k checkpoints were
// taken before detection, i.e. when a + l > kT:
//
//   P_k(T, λ) = P{a + l > kT} = (1/T) ∫_0^T e^{-λ(kT - x)} dx
//             = e^{-(k-1)λT} (1 - e^{-λT}) / (λT)
//             = ∫_{k-1}^{k} e^{-λT t} dt                      (x = λT)
//
// k = 1 is the paper's formula (5) (single checkpoint, the latest one is
// corrupted), k = 2 its formula (6) (dual checkpoint, the older one is
// corrupted). The last line shows P_k is strictly decreasing in x = λT, goes to
// 1 as x → 0 (λ → 0: never detected; T → 0: a checkpoint is always in
// between) and to 0 as x → ∞. We evaluate (1 - e^{-x})/x as -expm1(-x)/x, which
// keeps full precision for tiny x where 1 - e^{-x} would cancel.
import { assert } from '../util/assert.js';
import { UnderstudyError } from '../errors.js';
import { adaptiveSimpson } from './numeric.js';
import { requireIntegerInRange, requireOpenUnit, requirePositive } from './validate.js';

/** The seed's λ (1/ms): 95 % of Linux kernel crashes detected within 50 ms [Gu et al.], rounded as printed. */
export const SEED_LAMBDA_PER_MS = 0.0599;

/** Checkpoints kept: 1 = single (formula 5), 2 = dual (formula 6). More is the natural generalisation. */
export type CheckpointsKept = number;
/** Bound on checkpoints kept: beyond a few the memory cost dominates and P_k underflows anyway. */
export const CHECKPOINTS_KEPT_MAX = 64;

/** λ such that a fraction `percentile` of errors is detected within `withinMs`: 1 - e^{-λ T_B} = p. */
export function lambdaFromPercentile(percentile: number, withinMs: number): number {
  requireOpenUnit('percentile', percentile);
  requirePositive('within-ms', withinMs);
  return -Math.log1p(-percentile) / withinMs;
}

/** The p-percentile point T_B of Exponential(λ) latency: T_B = -ln(1 - p) / λ. */
export function percentilePointMs(lambdaPerMs: number, percentile: number): number {
  requirePositive('lambda-per-ms', lambdaPerMs);
  requireOpenUnit('percentile', percentile);
  return -Math.log1p(-percentile) / lambdaPerMs;
}

/** P_k as a function of the dimensionless x = λT >= 0 (x = Infinity allowed: the limit 0). */
export function corruptionOfProduct(x: number, checkpointsKept: CheckpointsKept = 1): number {
  if (typeof x !== 'number' || Number.isNaN(x) || x < 0) {
    throw new UnderstudyError('ERR_MODEL_PARAM', `λ·T_ck must be a number >= 0, got ${String(x)}`);
  }
  requireIntegerInRange('checkpoints kept', checkpointsKept, 1, CHECKPOINTS_KEPT_MAX);
  if (x === 0) return 1;
  const single = x === Infinity ? 0 : -Math.expm1(-x) / x;
  const p = checkpointsKept === 1 ? single : Math.exp(-(checkpointsKept - 1) * x) * single;
  assert(p >= 0 && p <= 1, 'corruption probability within [0, 1]');
  return p;
}

/**
 * Probability that the checkpoint rolled back to holds the error: formula (5)
 * for checkpointsKept = 1, formula (6) for 2.
 */
export function corruptionProbability(intervalMs: number, lambdaPerMs: number, checkpointsKept: CheckpointsKept = 1): number {
  requirePositive('interval-ms', intervalMs);
  requirePositive('lambda-per-ms', lambdaPerMs);
  requireIntegerInRange('checkpoints kept', checkpointsKept, 1, CHECKPOINTS_KEPT_MAX);
  return corruptionOfProduct(lambdaPerMs * intervalMs, checkpointsKept);
}

/** Formula (5): single checkpoint, the latest one is corrupted. */
export function corruptionSingle(intervalMs: number, lambdaPerMs: number): number {
  return corruptionProbability(intervalMs, lambdaPerMs, 1);
}

/** Formula (6): dual checkpoint, the older one is corrupted. */
export function corruptionDual(intervalMs: number, lambdaPerMs: number): number {
  return corruptionProbability(intervalMs, lambdaPerMs, 2);
}

/**
 * The same probability by direct two-dimensional quadrature of the joint
 * density f(x) g(y) over the region x + y > kT, x ∈ [0, T), y ≥ 0 — no use of
 * the closed form. The inner integral over y runs from kT - x to kT - x + 60/λ
 * (the exponential tail beyond that is e^-60 ≈ 1e-26).
 */
export function corruptionProbabilityNumeric(intervalMs: number, lambdaPerMs: number, checkpointsKept: CheckpointsKept = 1, tol = 1e-10): number {
  requirePositive('interval-ms', intervalMs);
  requirePositive('lambda-per-ms', lambdaPerMs);
  requireIntegerInRange('checkpoints kept', checkpointsKept, 1, CHECKPOINTS_KEPT_MAX);
  const T = intervalMs;
  const tailMs = 60 / lambdaPerMs;
  const g = (y: number): number => lambdaPerMs * Math.exp(-lambdaPerMs * y);
  const inner = (x: number): number => {
    const from = checkpointsKept * T - x;
    // Split the inner range so that the quadrature sees the bulk of the mass (near `from`) at fine resolution.
    let s = 0;
    let lo = from;
    for (let w = 1 / lambdaPerMs; lo < from + tailMs; w *= 2) {
      const hi = Math.min(from + tailMs, lo + w);
      s += adaptiveSimpson(g, lo, hi, tol / 64, 30);
      lo = hi;
    }
    return s;
  };
  const p = adaptiveSimpson((x) => inner(x) / T, 0, T, tol, 30);
  return Math.min(1, Math.max(0, p));
}

/**
 * Non-parametric version for a measured latency sample (no exponential
 * assumption): the average over the sample of P{a + l > kT | l}, which for a
 * fixed l is the fraction of offsets a ∈ [0, T) with a > kT - l, i.e.
 * clamp((l - (k-1)T) / T, 0, 1).
 */
export function corruptionProbabilityEmpirical(intervalMs: number, latenciesMs: readonly number[], checkpointsKept: CheckpointsKept = 1): number {
  requirePositive('interval-ms', intervalMs);
  requireIntegerInRange('checkpoints kept', checkpointsKept, 1, CHECKPOINTS_KEPT_MAX);
  if (latenciesMs.length === 0) throw new UnderstudyError('ERR_MODEL_SAMPLE', 'latency sample is empty');
  let s = 0;
  for (const l of latenciesMs) s += Math.min(1, Math.max(0, (l - (checkpointsKept - 1) * intervalMs) / intervalMs));
  return s / latenciesMs.length;
}

/** Bisection steps to invert P_k: 300 halvings in log(x) reach double precision from [1e-300, 1e300]. */
const INVERT_STEPS_MAX = 300;

/** The smallest interval T with P_k(T, λ) <= target (P_k is strictly decreasing in T). */
export function intervalForCorruptionMs(lambdaPerMs: number, target: number, checkpointsKept: CheckpointsKept = 1): number {
  requirePositive('lambda-per-ms', lambdaPerMs);
  requireOpenUnit('target', target);
  requireIntegerInRange('checkpoints kept', checkpointsKept, 1, CHECKPOINTS_KEPT_MAX);
  // Bracket in log x. P_k(x) <= 1/x for every k, so x = 2/target meets the target with room to spare.
  let lo = Math.log(1e-300);
  let hi = Math.log(2 / target);
  assert(corruptionOfProduct(Math.exp(hi), checkpointsKept) <= target, 'upper bracket meets target');
  for (let i = 0; i < INVERT_STEPS_MAX; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (corruptionOfProduct(Math.exp(mid), checkpointsKept) > target) lo = mid;
    else hi = mid;
  }
  return Math.exp(hi) / lambdaPerMs;
}

/**
 * Default longest acceptable interval for a recommendation: the seed targets
 * "tens of milliseconds to seconds"; under output commit every output waits up
 * to one interval, so beyond one second the checkpointing stops being
 * high-frequency.
 */
export const RECOMMEND_INTERVAL_MAX_MS_DEFAULT = 1000;

export interface IntervalRecommendation {
  lambdaPerMs: number;
  target: number;
  intervalMaxMs: number;
  /** Shortest interval meeting the target with a single checkpoint (formula 5). */
  singleIntervalMs: number;
  /** Shortest interval meeting the target with dual checkpoint (formula 6). */
  dualIntervalMs: number;
  /** 'single' if single checkpoint meets the target within intervalMaxMs; 'dual' if only dual does; else 'unattainable'. */
  scheme: 'single' | 'dual' | 'unattainable';
  dualNeeded: boolean;
  /** The recommended interval (the shortest meeting the target with `scheme`), or intervalMaxMs when unattainable. */
  intervalMs: number;
  /** Corruption probability at the recommendation. */
  corruption: number;
  /** When unattainable: checkpoints that would have to be kept at intervalMaxMs to meet the target. */
  checkpointsNeededAtMax: number;
  reason: string;
}

/**
 * Recommends a checkpoint interval for a target corruption probability.
 * Shorter intervals lose less work and hold outputs for less time, so we
 * recommend the shortest interval that meets the target; dual checkpoint is
 * "needed" when a single checkpoint can only meet it with an interval longer
 * than intervalMaxMs.
 */
export function recommendInterval(args: { lambdaPerMs: number; target: number; intervalMaxMs?: number }): IntervalRecommendation {
  const { lambdaPerMs, target } = args;
  const intervalMaxMs = args.intervalMaxMs ?? RECOMMEND_INTERVAL_MAX_MS_DEFAULT;
  requirePositive('interval-max-ms', intervalMaxMs);
  const singleIntervalMs = intervalForCorruptionMs(lambdaPerMs, target, 1);
  const dualIntervalMs = intervalForCorruptionMs(lambdaPerMs, target, 2);
  assert(dualIntervalMs <= singleIntervalMs, 'dual checkpoint never needs a longer interval than single');
  const base = { lambdaPerMs, target, intervalMaxMs, singleIntervalMs, dualIntervalMs };
  if (singleIntervalMs <= intervalMaxMs) {
    return {
      ...base, scheme: 'single', dualNeeded: false, intervalMs: singleIntervalMs,
      corruption: corruptionOfProduct(lambdaPerMs * singleIntervalMs, 1), checkpointsNeededAtMax: 1,
      reason: `a single checkpoint meets ${fmtP(target)} at ${fmtMs(singleIntervalMs)} <= ${fmtMs(intervalMaxMs)}` +
        ` (dual checkpoint would allow ${fmtMs(dualIntervalMs)})`,
    };
  }
  if (dualIntervalMs <= intervalMaxMs) {
    return {
      ...base, scheme: 'dual', dualNeeded: true, intervalMs: dualIntervalMs,
      corruption: corruptionOfProduct(lambdaPerMs * dualIntervalMs, 2), checkpointsNeededAtMax: 2,
      reason: `a single checkpoint needs ${fmtMs(singleIntervalMs)} > ${fmtMs(intervalMaxMs)} to meet ${fmtP(target)};` +
        ` dual checkpoint meets it at ${fmtMs(dualIntervalMs)}`,
    };
  }
  const x = lambdaPerMs * intervalMaxMs;
  // P_k(x) = e^{-(k-1)x} P_1(x) <= target  <=>  k - 1 >= ln(P_1(x)/target) / x.
  const checkpointsNeededAtMax = 1 + Math.max(1, Math.ceil(Math.log(corruptionOfProduct(x, 1) / target) / x));
  return {
    ...base, scheme: 'unattainable', dualNeeded: true, intervalMs: intervalMaxMs,
    corruption: corruptionOfProduct(x, 2), checkpointsNeededAtMax,
    reason: `even dual checkpoint needs ${fmtMs(dualIntervalMs)} > ${fmtMs(intervalMaxMs)} to meet ${fmtP(target)};` +
      ` at ${fmtMs(intervalMaxMs)} you would have to keep ${checkpointsNeededAtMax} checkpoints`,
  };
}

function fmtMs(ms: number): string {
  return `${ms.toPrecision(4)} ms`;
}
function fmtP(p: number): string {
  return `${(p * 100).toPrecision(3)} %`;
}

export interface CorruptionRow {
  /** Latency percentile p in (0, 1). */
  percentile: number;
  /** The p-percentile point of the latency, unrounded. */
  percentilePointMs: number;
  /** The interval the probabilities are computed at (rounded to whole ms when asked, as the seed prints). */
  intervalMs: number;
  single: number;
  dual: number;
}

/** Table 1 of the seed: for each percentile p, T_ck := p-percentile point, and formulas (5) and (6) there. */
export function corruptionTable(lambdaPerMs: number, percentiles: readonly number[], opts: { roundIntervalToMs?: boolean } = {}): CorruptionRow[] {
  requirePositive('lambda-per-ms', lambdaPerMs);
  return percentiles.map((percentile) => {
    const point = percentilePointMs(lambdaPerMs, percentile);
    const intervalMs = opts.roundIntervalToMs ? Math.max(1, Math.round(point)) : point;
    return {
      percentile, percentilePointMs: point, intervalMs,
      single: corruptionSingle(intervalMs, lambdaPerMs),
      dual: corruptionDual(intervalMs, lambdaPerMs),
    };
  });
}

/** Table 1 exactly as the seed prints it (strings, so the printed precision is kept). */
export const SEED_TABLE_1: readonly { percentile: number; intervalMs: string; single: string; dual: string }[] = [
  { percentile: 0.70, intervalMs: '20', single: '58.3', dual: '17.6' },
  { percentile: 0.90, intervalMs: '38', single: '39.1', dual: '4.05' },
  { percentile: 0.95, intervalMs: '50', single: '31.7', dual: '1.59' },
  { percentile: 0.99, intervalMs: '77', single: '21.5', dual: '0.21' },
  { percentile: 0.999, intervalMs: '115', single: '14.5', dual: '0.015' },
];

/** Formats a probability as a percentage with as many decimals as `printed` (a seed cell) has. */
export function formatLikePrinted(probability: number, printed: string): string {
  const dot = printed.indexOf('.');
  const decimals = dot < 0 ? 0 : printed.length - dot - 1;
  return (probability * 100).toFixed(decimals);
}

export interface Table1Cell {
  /** As the seed prints it (percent). */
  seed: string;
  /** Ours at the printed (whole-ms) interval, with as many decimals as the seed prints. */
  oursAtPrintedInterval: string;
  /** Ours at the unrounded percentile point. */
  oursAtExactInterval: string;
  /** Does the seed's cell equal ours at the printed interval? */
  matches: boolean;
}

export interface Table1Row {
  percentile: number;
  seedIntervalMs: string;
  /** Our p-percentile point at λ = 0.0599/ms, unrounded and rounded to whole ms. */
  intervalExactMs: number;
  intervalRoundedMs: number;
  single: Table1Cell;
  dual: Table1Cell;
}

/**
 * Reproduces the seed's Table 1: λ = 0.0599/ms, T_ck = the p-percentile point
 * rounded to whole ms (as the seed's second column prints it), formulas (5) and
 * (6) there. Every cell matches at the printed precision except single at 90 %:
 * the seed's 39.1 % is formula (5) at the unrounded 38.44 ms, while at the
 * printed 38 ms it is 39.4 % (and the same row's dual 4.05 % is at 38 ms).
 */
export function reproduceTable1(): Table1Row[] {
  return SEED_TABLE_1.map((seedRow) => {
    const exact = percentilePointMs(SEED_LAMBDA_PER_MS, seedRow.percentile);
    const rounded = Math.round(exact);
    const cell = (printed: string, k: number): Table1Cell => {
      const atPrinted = formatLikePrinted(corruptionProbability(rounded, SEED_LAMBDA_PER_MS, k), printed);
      return {
        seed: printed,
        oursAtPrintedInterval: atPrinted,
        oursAtExactInterval: formatLikePrinted(corruptionProbability(exact, SEED_LAMBDA_PER_MS, k), printed),
        matches: atPrinted === printed,
      };
    };
    return {
      percentile: seedRow.percentile, seedIntervalMs: seedRow.intervalMs,
      intervalExactMs: exact, intervalRoundedMs: rounded,
      single: cell(seedRow.single, 1), dual: cell(seedRow.dual, 2),
    };
  });
}
