// Small numerical routines the models need, hand-written so the package stays
// dependency-free: adaptive Simpson quadrature, the regularised incomplete gamma
// function and its inverse (for exact confidence intervals of an exponential
// rate), the standard normal quantile, and a dense linear solver.
//
// Every loop is bounded; a routine that runs out of its budget says so through
// an assert (that is a bug in how we call it, not bad user input).
import { assert } from '../util/assert.js';

/** Recursion depth bound of adaptiveSimpson: 2^50 subintervals is far beyond any need. */
export const SIMPSON_DEPTH_MAX = 50;

/**
 * Adaptive Simpson quadrature of f over [a, b] to absolute tolerance tol.
 * Classic Richardson-corrected version (Lyness 1969).
 */
export function adaptiveSimpson(f: (x: number) => number, a: number, b: number, tol = 1e-12, depthMax = 30): number {
  assert(Number.isFinite(a) && Number.isFinite(b) && a <= b, 'adaptiveSimpson: finite a <= b');
  assert(depthMax >= 1 && depthMax <= SIMPSON_DEPTH_MAX, 'adaptiveSimpson: depth within bound');
  if (a === b) return 0;
  const fa = f(a);
  const fb = f(b);
  const m = (a + b) / 2;
  const fm = f(m);
  const whole = ((b - a) / 6) * (fa + 4 * fm + fb);
  return simpsonStep(f, a, b, fa, fm, fb, whole, tol, depthMax);
}

function simpsonStep(
  f: (x: number) => number, a: number, b: number,
  fa: number, fm: number, fb: number, whole: number, tol: number, depth: number,
): number {
  const m = (a + b) / 2;
  const lm = (a + m) / 2;
  const rm = (m + b) / 2;
  const flm = f(lm);
  const frm = f(rm);
  const left = ((m - a) / 6) * (fa + 4 * flm + fm);
  const right = ((b - m) / 6) * (fm + 4 * frm + fb);
  const delta = left + right - whole;
  if (depth <= 0 || Math.abs(delta) <= 15 * tol) return left + right + delta / 15;
  return simpsonStep(f, a, m, fa, flm, fm, left, tol / 2, depth - 1) +
    simpsonStep(f, m, b, fm, frm, fb, right, tol / 2, depth - 1);
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; |relative error| < 1e-15). */
export function lnGamma(x: number): number {
  assert(x > 0, 'lnGamma: x > 0');
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  const z = x - 1;
  let s = c[0]!;
  for (let i = 1; i < 9; i++) s += c[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/** Iteration bound of the incomplete-gamma series and continued fraction. */
const GAMMA_ITERATIONS_MAX = 100_000;

/** Regularised lower incomplete gamma P(a, x) = γ(a, x) / Γ(a), a > 0, x >= 0. */
export function gammaP(a: number, x: number): number {
  assert(a > 0 && x >= 0, 'gammaP: a > 0, x >= 0');
  if (x === 0) return 0;
  const lnPrefix = a * Math.log(x) - x - lnGamma(a);
  if (x < a + 1) {
    // Series: γ(a,x) e^x x^-a = Σ x^n / (a (a+1) ... (a+n)).
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < GAMMA_ITERATIONS_MAX; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) return Math.min(1, sum * Math.exp(lnPrefix));
    }
    assert(false, `gammaP series did not converge (a=${a}, x=${x})`);
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < GAMMA_ITERATIONS_MAX; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) return Math.max(0, 1 - Math.exp(lnPrefix) * h);
  }
  assert(false, `gammaP continued fraction did not converge (a=${a}, x=${x})`);
}

/** Standard normal quantile (Acklam's rational approximation, refined by one Halley step). */
export function normalQuantile(p: number): number {
  assert(p > 0 && p < 1, 'normalQuantile: 0 < p < 1');
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const pLow = 0.02425;
  let x: number;
  if (p < pLow) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else if (p <= 1 - pLow) {
    const q = p - 0.5;
    const r = q * q;
    x = (((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  // One Halley step against the error function brings it to ~1e-15.
  const e = 0.5 * erfc(-x / Math.SQRT2) - p;
  const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}

/** Complementary error function through the incomplete gamma: erfc(x) = 1 - P(1/2, x^2) for x >= 0. */
function erfc(x: number): number {
  if (x >= 0) return 1 - gammaP(0.5, x * x);
  return 1 + gammaP(0.5, x * x);
}

/** Bisection steps of gammaQuantile: 200 halvings reach double precision from any bracket. */
const QUANTILE_BISECTIONS_MAX = 200;

/** Quantile of Gamma(shape a, scale 1): the x with P(a, x) = p. */
export function gammaQuantile(a: number, p: number): number {
  assert(a > 0 && p > 0 && p < 1, 'gammaQuantile: a > 0, 0 < p < 1');
  let lo = 0;
  let hi = Math.max(1, a);
  for (let i = 0; i < 2000 && gammaP(a, hi) < p; i++) hi *= 2;
  assert(gammaP(a, hi) >= p, 'gammaQuantile: upper bracket found');
  for (let i = 0; i < QUANTILE_BISECTIONS_MAX; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (gammaP(a, mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * Solves A x = b by Gaussian elimination with partial pivoting. Dense and
 * O(n^3): hand-written because the availability chains have at most a dozen
 * states, where this is exact enough and needs no LAPACK. A is not modified.
 * Returns null when A is singular to working precision.
 */
export function solveLinear(A: readonly (readonly number[])[], b: readonly number[]): number[] | null {
  const n = b.length;
  assert(A.length === n && A.every((row) => row.length === n), 'solveLinear: square system');
  const m = A.map((row, i) => [...row, b[i]!]);
  const scale = Math.max(1e-300, ...A.flat().map(Math.abs));
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r;
    if (Math.abs(m[pivot]![col]!) <= scale * 1e-14) return null;
    [m[col], m[pivot]] = [m[pivot]!, m[col]!];
    const pr = m[col]!;
    for (let r = col + 1; r < n; r++) {
      const row = m[r]!;
      const factor = row[col]! / pr[col]!;
      if (factor === 0) continue;
      for (let k = col; k <= n; k++) row[k] = row[k]! - factor * pr[k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    const row = m[r]!;
    let s = row[n]!;
    for (let k = r + 1; k < n; k++) s -= row[k]! * x[k]!;
    x[r] = s / row[r]!;
  }
  return x;
}
