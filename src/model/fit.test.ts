import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUnderstudyError } from '../errors.js';
import { fitExponential, parseLatencies, readLatencyFile } from './fit.js';
import { createPrng, sampleExponential } from './montecarlo.js';
import { gammaP, gammaQuantile, normalQuantile } from './numeric.js';

const expSample = (seed: number, n: number, lambda: number): number[] => {
  const rng = createPrng(seed);
  return Array.from({ length: n }, () => sampleExponential(rng, lambda));
};

test('gamma and normal quantiles match tabulated values', () => {
  // Gamma(1) is Exponential(1).
  assert.ok(Math.abs(gammaQuantile(1, 0.975) - -Math.log(0.025)) < 1e-10);
  // χ²(10) 0.975 point is 20.4832 (tables); χ²(2n)/2 ~ Gamma(n).
  assert.equal((2 * gammaQuantile(5, 0.975)).toFixed(4), '20.4832');
  assert.equal((2 * gammaQuantile(5, 0.025)).toFixed(4), '3.2470');
  assert.equal(normalQuantile(0.975).toFixed(6), '1.959964');
  assert.ok(Math.abs(gammaP(3, gammaQuantile(3, 0.3)) - 0.3) < 1e-12);
});

test('the MLE of λ is n / Σl and its exact 95 % interval covers the true λ about 95 % of the time', () => {
  const fit = fitExponential([10, 20, 30, 40, 50]);
  assert.equal(fit.lambdaPerMs, 5 / 150);
  assert.equal(fit.medianMs, 30);
  let covered = 0;
  const runs = 400;
  for (let i = 0; i < runs; i++) {
    const f = fitExponential(expSample(1000 + i, 30, 0.0599));
    if (f.lambdaLowPerMs <= 0.0599 && 0.0599 <= f.lambdaHighPerMs) covered++;
  }
  // Binomial(400, 0.95): mean 380, s.d. 4.4.
  assert.ok(covered >= 365 && covered <= 395, `covered ${covered}/${runs}`);
});

test('large samples use the Wilson–Hilferty interval and it is consistent with the exact one', () => {
  const sample = expSample(7, 30_000, 0.0599);
  const f = fitExponential(sample);
  assert.ok(f.lambdaLowPerMs < 0.0599 && 0.0599 < f.lambdaHighPerMs);
  const halfWidth = (f.lambdaHighPerMs - f.lambdaLowPerMs) / 2;
  assert.ok(Math.abs(halfWidth / f.lambdaPerMs - 1.96 / Math.sqrt(30_000)) < 1e-3);
});

test("Stephens' KS test: ~5 % false rejections on exponential samples, rejects clearly non-exponential ones", () => {
  let rejected = 0;
  const runs = 1000;
  for (let i = 0; i < runs; i++) if (fitExponential(expSample(5000 + i, 40, 0.06)).ks.rejectedAt5Percent) rejected++;
  // Binomial(1000, 0.05): mean 50, s.d. 6.9. A wrong critical value (e.g. the plain KS 1.36) would give ~0.
  assert.ok(rejected >= 28 && rejected <= 75, `rejected ${rejected}/${runs}`);
  // Latencies that are nearly constant (50 ± 1 ms) are not exponential.
  const rng = createPrng(3);
  const constantish = Array.from({ length: 100 }, () => 49 + 2 * rng.nextFloat());
  const f = fitExponential(constantish);
  assert.equal(f.ks.rejectedAt5Percent, true);
  assert.equal(f.ks.pBand, 'p < 0.01');
});

test('parseLatencies skips comments and blank lines and names the bad line', () => {
  assert.deepEqual(parseLatencies('# from the harness\n12.5\n\n3e1\n  7 \n'), [12.5, 30, 7]);
  assert.throws(() => parseLatencies('1\n2\nabc\n', 'lat.txt'), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_SAMPLE') && /lat\.txt:3/.test((e as Error).message));
  assert.throws(() => parseLatencies('1\n-2\n'), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_SAMPLE'));
  assert.throws(() => parseLatencies('Infinity\n'), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_SAMPLE'));
});

test('fitExponential refuses samples it cannot fit', () => {
  assert.throws(() => fitExponential([1, 2, 3]), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_SAMPLE') && /at least 5/.test((e as Error).message));
  assert.throws(() => fitExponential([0, 0, 0, 0, 0]), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_SAMPLE'));
  assert.throws(() => fitExponential([1, 2, 3, 4, NaN]), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_SAMPLE'));
  assert.throws(() => fitExponential([1, 2, 3, 4, 5], 1), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_PARAM'));
});

test('readLatencyFile reads a file and reports a missing one as ERR_MODEL_IO', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'understudy-model-'));
  try {
    const path = join(dir, 'lat.txt');
    await writeFile(path, '5\n10\n15\n');
    assert.deepEqual(await readLatencyFile(path), [5, 10, 15]);
    await assert.rejects(readLatencyFile(join(dir, 'missing.txt')), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_IO'));
  } finally {
    await rm(dir, { recursive: true });
  }
});
