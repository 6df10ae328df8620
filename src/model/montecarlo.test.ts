import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUnderstudyError } from '../errors.js';
import { createPrng, simulateCorruption } from './montecarlo.js';

test('the PRNG replays from its seed and different seeds differ', () => {
  const a = createPrng(42);
  const b = createPrng(42);
  const c = createPrng(43);
  const sa = Array.from({ length: 8 }, () => a.nextU32());
  assert.deepEqual(sa, Array.from({ length: 8 }, () => b.nextU32()));
  assert.notDeepEqual(sa, Array.from({ length: 8 }, () => c.nextU32()));
});

test('nextFloat is uniform on [0, 1)', () => {
  const rng = createPrng(1);
  const n = 200_000;
  let sum = 0;
  const bins = new Array<number>(10).fill(0);
  for (let i = 0; i < n; i++) {
    const u = rng.nextFloat();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    bins[Math.floor(u * 10)]!++;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.005);
  // χ² with 9 d.o.f.: the 99.9 % point is 27.9.
  const chi2 = bins.reduce((a, o) => a + ((o - n / 10) ** 2) / (n / 10), 0);
  assert.ok(chi2 < 27.9, `chi2 ${chi2}`);
});

test('simulateCorruption replays from its seed and accepts any latency sampler', () => {
  const args = { intervalMs: 50, lambdaPerMs: 0.0599, samples: 10_000, seed: 9 };
  assert.deepEqual(simulateCorruption(args), simulateCorruption(args));
  // Latency always 0.3 T: the latest checkpoint is corrupted for 30 % of the error instants, the older never.
  const [single, dual] = simulateCorruption({ intervalMs: 50, sampleLatencyMs: () => 15, samples: 100_000, seed: 1 });
  assert.ok(Math.abs(single!.estimate - 0.3) < 0.006);
  assert.equal(dual!.corrupted, 0);
});

test('simulateCorruption refuses bad arguments', () => {
  assert.throws(() => simulateCorruption({ intervalMs: 50, samples: 10, seed: 1 }), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_PARAM'));
  assert.throws(() => simulateCorruption({ intervalMs: 50, lambdaPerMs: 1, samples: 0, seed: 1 }), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_PARAM'));
  assert.throws(() => simulateCorruption({ intervalMs: 0, lambdaPerMs: 1, samples: 10, seed: 1 }), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_PARAM'));
});
