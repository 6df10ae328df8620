// Fitting the exponential detection-latency rate λ to a measured sample (from
// the error-injection harness, or any file with one latency per line, in ms).
//
// - Estimate: the maximum-likelihood estimate λ̂ = n / Σ l_i.
// - Confidence interval: exact. 2λ Σ l_i ~ χ²(2n), i.e. λ Σ l_i ~ Gamma(n, 1), so
//   λ ∈ [G⁻¹(α/2; n), G⁻¹(1 - α/2; n)] / Σ l_i.
// - Goodness of fit: the Kolmogorov–Smirnov distance D between the sample and
//   Exponential(λ̂). Because λ is estimated from the same sample, the ordinary
//   KS p-values are far too lenient; we use Stephens' modified statistic for the
//   exponential with estimated mean, D* = (D - 0.2/n)(√n + 0.26 + 0.5/√n), and
//   his upper percentage points (D'Agostino & Stephens 1986, Table 4.14). A test
//   checks the 5 % point by simulation.
import { readFile, stat } from 'node:fs/promises';
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';
import { gammaQuantile, normalQuantile } from './numeric.js';
import { requireOpenUnit } from './validate.js';

/** Latency file size checked before reading: 64 MiB is millions of latencies, far beyond an injection campaign. */
export const LATENCY_FILE_BYTES_MAX = 64 * 1024 * 1024;
/** Values per sample. */
export const LATENCY_SAMPLES_MAX = 10_000_000;
/** Fewer than this and neither the interval nor the KS verdict means anything. */
export const LATENCY_SAMPLES_MIN = 5;
/** Above this many values the Gamma quantiles come from the Wilson–Hilferty approximation (relative error < 1e-6 there). */
const EXACT_GAMMA_SAMPLES_MAX = 20_000;

/** Stephens' upper-tail points of D* for the exponential with estimated mean. */
export const KS_EXPONENTIAL_CRITICAL: readonly { alpha: number; critical: number }[] = [
  { alpha: 0.15, critical: 0.926 },
  { alpha: 0.10, critical: 0.990 },
  { alpha: 0.05, critical: 1.094 },
  { alpha: 0.025, critical: 1.190 },
  { alpha: 0.01, critical: 1.308 },
];

export interface ExponentialFit {
  n: number;
  meanMs: number;
  medianMs: number;
  maxMs: number;
  lambdaPerMs: number;
  confidence: number;
  lambdaLowPerMs: number;
  lambdaHighPerMs: number;
  ks: {
    /** sup |F_n - F| against Exponential(λ̂). */
    d: number;
    /** Stephens' modified statistic D*. */
    modified: number;
    /** Significance band of D*, e.g. "p > 0.15" or "0.01 < p < 0.025". */
    pBand: string;
    /** True when the exponential model is rejected at the 5 % level. */
    rejectedAt5Percent: boolean;
  };
}

/** Parses one latency (ms) per line; blank lines and lines starting with '#' are skipped. */
export function parseLatencies(text: string, source = 'latency sample'): number[] {
  const values: number[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const v = Number(line);
    if (!/^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(line) || !Number.isFinite(v)) {
      throw new UnderstudyError('ERR_MODEL_SAMPLE', `${source}:${i + 1}: expected a latency in ms (a number >= 0), got '${line.slice(0, 40)}'`);
    }
    if (values.length >= LATENCY_SAMPLES_MAX) {
      throw new UnderstudyError('ERR_MODEL_SAMPLE', `${source}: more than ${LATENCY_SAMPLES_MAX} latencies`);
    }
    values.push(v);
  }
  return values;
}

/** Reads a latency file (size checked before reading). */
export async function readLatencyFile(path: string): Promise<number[]> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    throw new UnderstudyError('ERR_MODEL_IO', `cannot read latency file '${path}': ${(e as Error).message}`, { cause: e });
  }
  if (size > LATENCY_FILE_BYTES_MAX) {
    throw new UnderstudyError('ERR_MODEL_SAMPLE', `latency file '${path}' is ${size} bytes, more than the ${LATENCY_FILE_BYTES_MAX} allowed`);
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UnderstudyError('ERR_MODEL_IO', `cannot read latency file '${path}': ${(e as Error).message}`, { cause: e });
  }
  return parseLatencies(text, path);
}

function gammaQuantileAny(shape: number, p: number): number {
  if (shape <= EXACT_GAMMA_SAMPLES_MAX) return gammaQuantile(shape, p);
  // Wilson–Hilferty: (X/a)^(1/3) ≈ Normal(1 - 1/(9a), 1/(9a)).
  const z = normalQuantile(p);
  const v = 1 / (9 * shape);
  return shape * Math.pow(1 - v + z * Math.sqrt(v), 3);
}

/** Maximum-likelihood fit of Exponential(λ) with an exact confidence interval and a KS goodness-of-fit check. */
export function fitExponential(latenciesMs: readonly number[], confidence = 0.95): ExponentialFit {
  requireOpenUnit('confidence', confidence);
  const n = latenciesMs.length;
  if (n < LATENCY_SAMPLES_MIN) {
    throw new UnderstudyError('ERR_MODEL_SAMPLE', `need at least ${LATENCY_SAMPLES_MIN} latencies to fit λ, got ${n}`);
  }
  let sum = 0;
  for (const l of latenciesMs) {
    if (!Number.isFinite(l) || l < 0) throw new UnderstudyError('ERR_MODEL_SAMPLE', `latencies must be finite and >= 0 ms, got ${l}`);
    sum += l;
  }
  if (sum <= 0) throw new UnderstudyError('ERR_MODEL_SAMPLE', 'all latencies are 0 ms: λ would be infinite');
  const lambda = n / sum;
  const alpha = 1 - confidence;
  const lambdaLow = gammaQuantileAny(n, alpha / 2) / sum;
  const lambdaHigh = gammaQuantileAny(n, 1 - alpha / 2) / sum;
  assert(lambdaLow < lambda && lambda < lambdaHigh, 'the MLE lies inside its confidence interval');

  const sorted = [...latenciesMs].sort((a, b) => a - b);
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = -Math.expm1(-lambda * sorted[i]!);
    d = Math.max(d, (i + 1) / n - f, f - i / n);
  }
  const sqrtN = Math.sqrt(n);
  const modified = (d - 0.2 / n) * (sqrtN + 0.26 + 0.5 / sqrtN);
  const mid = Math.floor(n / 2);
  return {
    n, meanMs: sum / n,
    medianMs: n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2,
    maxMs: sorted[n - 1]!,
    lambdaPerMs: lambda, confidence, lambdaLowPerMs: lambdaLow, lambdaHighPerMs: lambdaHigh,
    ks: { d, modified, pBand: ksBand(modified), rejectedAt5Percent: modified > 1.094 },
  };
}

function ksBand(modified: number): string {
  const points = KS_EXPONENTIAL_CRITICAL;
  if (modified <= points[0]!.critical) return `p > ${points[0]!.alpha}`;
  for (let i = 1; i < points.length; i++) {
    if (modified <= points[i]!.critical) return `${points[i]!.alpha} < p < ${points[i - 1]!.alpha}`;
  }
  return `p < ${points[points.length - 1]!.alpha}`;
}
