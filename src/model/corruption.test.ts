import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isUnderstudyError } from '../errors.js';
import {
  SEED_LAMBDA_PER_MS, SEED_TABLE_1, corruptionDual, corruptionOfProduct, corruptionProbability,
  corruptionProbabilityEmpirical, corruptionProbabilityNumeric, corruptionSingle, formatLikePrinted,
  intervalForCorruptionMs, lambdaFromPercentile, percentilePointMs, recommendInterval, reproduceTable1,
} from './corruption.js';
import { createPrng, sampleExponential, simulateCorruption } from './montecarlo.js';

const isParamError = (e: unknown): boolean => isUnderstudyError(e, 'ERR_MODEL_PARAM');

test('the seed derives λ = 0.0599/ms from "95 % of errors within 50 ms"', () => {
  assert.equal(lambdaFromPercentile(0.95, 50).toFixed(4), '0.0599');
});

test('Table 1: every cell, computed at the printed whole-ms interval, equals the seed at its printed precision — except 90 % single', () => {
  for (const row of SEED_TABLE_1) {
    const point = percentilePointMs(SEED_LAMBDA_PER_MS, row.percentile);
    assert.equal(String(Math.round(point)), row.intervalMs, `T_ck for ${row.percentile}`);
    const t = Number(row.intervalMs);
    assert.equal(formatLikePrinted(corruptionDual(t, SEED_LAMBDA_PER_MS), row.dual), row.dual, `dual at ${row.percentile}`);
    if (row.percentile === 0.9) continue;
    assert.equal(formatLikePrinted(corruptionSingle(t, SEED_LAMBDA_PER_MS), row.single), row.single, `single at ${row.percentile}`);
  }
});

test('Table 1 quirk: the seed\'s 90 % single (39.1 %) is formula (5) at the unrounded 38.44 ms; at the printed 38 ms it is 39.4 %', () => {
  const exact = percentilePointMs(SEED_LAMBDA_PER_MS, 0.9);
  assert.equal(exact.toFixed(2), '38.44');
  assert.equal(formatLikePrinted(corruptionSingle(exact, SEED_LAMBDA_PER_MS), '39.1'), '39.1');
  assert.equal(formatLikePrinted(corruptionSingle(38, SEED_LAMBDA_PER_MS), '39.1'), '39.4');
  // reproduceTable1 reports exactly that one mismatch.
  const mismatches = reproduceTable1().flatMap((r) => [r.single, r.dual].filter((c) => !c.matches).map((c) => [r.percentile, c.seed]));
  assert.deepEqual(mismatches, [[0.9, '39.1']]);
});

test('the numbers quoted in the seed\'s text: 31.7 % at 50 ms, 77 ms covers 99 %, 21.5 %, 1.59 %, 14.5 % at 115 ms, 17.6 % dual at 20 ms', () => {
  const l = SEED_LAMBDA_PER_MS;
  assert.equal((100 * corruptionSingle(50, l)).toFixed(1), '31.7');
  assert.equal(Math.round(percentilePointMs(l, 0.99)), 77);
  assert.equal((100 * corruptionSingle(77, l)).toFixed(1), '21.5');
  assert.equal((100 * corruptionDual(50, l)).toFixed(2), '1.59');
  assert.equal((100 * corruptionSingle(115, l)).toFixed(1), '14.5');
  assert.equal((100 * corruptionDual(20, l)).toFixed(1), '17.6');
});

test('closed forms (5) and (6) agree with 2-D numerical integration of the joint density', () => {
  for (const [t, l] of [[20, 0.0599], [50, 0.0599], [115, 0.0599], [0.5, 0.01], [1000, 0.002], [3, 5]] as const) {
    for (const k of [1, 2, 3]) {
      const closed = corruptionProbability(t, l, k);
      const numeric = corruptionProbabilityNumeric(t, l, k);
      assert.ok(Math.abs(closed - numeric) < 1e-8 + 1e-7 * closed, `T=${t} λ=${l} k=${k}: ${closed} vs ${numeric}`);
    }
  }
});

test('closed forms agree with a Monte-Carlo simulation of the checkpoint timeline (within 4.5 standard errors)', () => {
  for (const [t, seed] of [[20, 11], [50, 12], [77, 13]] as const) {
    const [single, dual] = simulateCorruption({ intervalMs: t, lambdaPerMs: SEED_LAMBDA_PER_MS, samples: 400_000, seed });
    const ps = corruptionSingle(t, SEED_LAMBDA_PER_MS);
    const pd = corruptionDual(t, SEED_LAMBDA_PER_MS);
    const se = (p: number): number => Math.sqrt((p * (1 - p)) / 400_000);
    assert.ok(Math.abs(single!.estimate - ps) < 4.5 * se(ps), `single at ${t}: ${single!.estimate} vs ${ps}`);
    assert.ok(Math.abs(dual!.estimate - pd) < 4.5 * se(pd), `dual at ${t}: ${dual!.estimate} vs ${pd}`);
  }
});

test('a wrong formula would be caught: the simulation separates (5) from the naive e^{-λT}', () => {
  const [single] = simulateCorruption({ intervalMs: 50, lambdaPerMs: SEED_LAMBDA_PER_MS, samples: 200_000, seed: 5 });
  const naive = Math.exp(-SEED_LAMBDA_PER_MS * 50); // P{l > T}: ignores the uniform error instant
  assert.ok(Math.abs(single!.estimate - naive) > 0.2);
});

test('limits: λ → 0 and T_ck → 0 give certain corruption, λ → ∞ none', () => {
  for (const k of [1, 2]) {
    assert.ok(corruptionProbability(50, 1e-12, k) > 1 - 1e-9, 'λ → 0');
    assert.ok(corruptionProbability(1e-12, 0.0599, k) > 1 - 1e-9, 'T → 0');
    assert.ok(corruptionProbability(50, 1e12, k) < 1e-9, 'λ → ∞');
    assert.ok(corruptionProbability(1e12, 0.0599, k) < 1e-9, 'T → ∞');
    assert.equal(corruptionOfProduct(0, k), 1);
    assert.equal(corruptionOfProduct(Infinity, k), 0);
  }
  // Small x keeps precision (no 1 - e^{-x} cancellation): P_1 ≈ 1 - x/2.
  assert.ok(Math.abs(corruptionOfProduct(1e-10, 1) - (1 - 5e-11)) < 1e-15);
});

test('properties: P in [0, 1], decreasing in T_ck and in λ, dual <= single, a function of λT only', () => {
  const pos = fc.double({ min: 1e-6, max: 1e6, noNaN: true });
  fc.assert(fc.property(pos, pos, pos, (t, l, f) => {
    const s = corruptionSingle(t, l);
    const d = corruptionDual(t, l);
    assert.ok(s >= 0 && s <= 1 && d >= 0 && d <= 1);
    assert.ok(d <= s);
    const grow = 1 + Math.min(f, 10);
    // Non-increasing up to a few units in the last place (floating-point rounding of expm1 and the division).
    const ulps = (p: number): number => p * (1 + 8 * Number.EPSILON);
    assert.ok(corruptionSingle(t * grow, l) <= ulps(s) && corruptionDual(t * grow, l) <= ulps(d), 'decreasing in T');
    assert.ok(corruptionSingle(t, l * grow) <= ulps(s), 'decreasing in λ');
    const sc = corruptionSingle(t * grow, l / grow);
    assert.ok(Math.abs(sc - s) <= 1e-12 + 1e-9 * s, 'depends on λT only');
  }), { numRuns: 300 });
});

test('the empirical (non-parametric) probability matches the closed form on a large exponential sample and is exact for a point mass', () => {
  const rng = createPrng(99);
  const sample = Array.from({ length: 200_000 }, () => sampleExponential(rng, SEED_LAMBDA_PER_MS));
  assert.ok(Math.abs(corruptionProbabilityEmpirical(50, sample, 1) - corruptionSingle(50, SEED_LAMBDA_PER_MS)) < 0.004);
  assert.ok(Math.abs(corruptionProbabilityEmpirical(50, sample, 2) - corruptionDual(50, SEED_LAMBDA_PER_MS)) < 0.002);
  // Every error detected after exactly 30 ms, T = 50: the latest checkpoint is corrupted iff a > 20, p = 30/50; never two.
  assert.equal(corruptionProbabilityEmpirical(50, [30, 30], 1), 0.6);
  assert.equal(corruptionProbabilityEmpirical(50, [30], 2), 0);
  assert.equal(corruptionProbabilityEmpirical(50, [75], 2), 0.5);
});

test('intervalForCorruptionMs inverts the formulas', () => {
  for (const target of [0.5, 0.1, 0.02, 1e-3, 1e-6]) {
    for (const k of [1, 2]) {
      const t = intervalForCorruptionMs(SEED_LAMBDA_PER_MS, target, k);
      const p = corruptionProbability(t, SEED_LAMBDA_PER_MS, k);
      assert.ok(p <= target && p > target * (1 - 1e-9), `k=${k} target=${target}: P(${t}) = ${p}`);
    }
  }
});

test('recommendInterval: single when it fits the interval limit, dual when only dual does, else unattainable', () => {
  const single = recommendInterval({ lambdaPerMs: SEED_LAMBDA_PER_MS, target: 0.35, intervalMaxMs: 100 });
  assert.equal(single.scheme, 'single');
  assert.equal(single.dualNeeded, false);
  assert.ok(single.intervalMs < 50 && corruptionSingle(single.intervalMs, SEED_LAMBDA_PER_MS) <= 0.35);

  // The seed's setting: 2 % with intervals of at most 100 ms needs dual checkpoint (about 47 ms).
  const dual = recommendInterval({ lambdaPerMs: SEED_LAMBDA_PER_MS, target: 0.02, intervalMaxMs: 100 });
  assert.equal(dual.scheme, 'dual');
  assert.equal(dual.dualNeeded, true);
  assert.ok(dual.singleIntervalMs > 100 && dual.intervalMs > 40 && dual.intervalMs < 50);

  const none = recommendInterval({ lambdaPerMs: SEED_LAMBDA_PER_MS, target: 1e-6, intervalMaxMs: 100 });
  assert.equal(none.scheme, 'unattainable');
  const k = none.checkpointsNeededAtMax;
  assert.ok(corruptionProbability(100, SEED_LAMBDA_PER_MS, k) <= 1e-6 && corruptionProbability(100, SEED_LAMBDA_PER_MS, k - 1) > 1e-6);
});

test('invalid parameters are refused with ERR_MODEL_PARAM and a message naming the parameter', () => {
  assert.throws(() => corruptionSingle(-3, 0.06), (e: unknown) => isParamError(e) && /interval-ms.*-3/.test((e as Error).message));
  assert.throws(() => corruptionDual(50, NaN), (e: unknown) => isParamError(e) && /lambda-per-ms/.test((e as Error).message));
  assert.throws(() => corruptionSingle(Infinity, 0.06), isParamError);
  assert.throws(() => corruptionProbability(50, 0.06, 0), isParamError);
  assert.throws(() => corruptionProbability(50, 0.06, 1.5), isParamError);
  assert.throws(() => lambdaFromPercentile(1, 50), (e: unknown) => isParamError(e) && /percentile/.test((e as Error).message));
  assert.throws(() => lambdaFromPercentile(0.95, 0), isParamError);
  assert.throws(() => recommendInterval({ lambdaPerMs: 0.06, target: 0 }), (e: unknown) => isParamError(e) && /target/.test((e as Error).message));
  assert.throws(() => recommendInterval({ lambdaPerMs: 0.06, target: 0.1, intervalMaxMs: -1 }), isParamError);
});
