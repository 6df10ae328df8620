// Monte-Carlo check of the corruption model, on a timeline rather than on the
// algebra: checkpoints are taken at 0, T, 2T, ...; an error happens at a time
// uniform over a long run of intervals and is detected after a sampled latency.
// The checkpoint k-th from the latest before detection holds the error when at
// least k checkpoint instants fall in (error, detection]. Nothing here uses
// formula (5) or (6), so agreement is evidence that they describe the scheme.
//
// Randomness is a seeded xoshiro128** generator, so every run replays from its seed.
import { assert } from '../util/assert.js';
import { Prng } from '../util/prng.js';
import { CHECKPOINTS_KEPT_MAX } from './corruption.js';
import { requireIntegerInRange, requirePositive } from './validate.js';

export type { Prng } from '../util/prng.js';

/** A seeded generator (src/util/prng.ts): runs replay from their seed. */
export function createPrng(seed: number): Prng {
  assert(Number.isInteger(seed), 'createPrng: integer seed');
  return new Prng(seed);
}

/** Exponential(λ) sample by inversion. */
export function sampleExponential(rng: Prng, lambda: number): number {
  return -Math.log1p(-rng.nextFloat()) / lambda;
}

/** Samples per Monte-Carlo run: bounded so a CLI call cannot hang. */
export const MONTE_CARLO_SAMPLES_MAX = 100_000_000;
/** Intervals the error instant is spread over (the result does not depend on it; it exercises the timeline). */
const TIMELINE_INTERVALS = 1000;

export interface MonteCarloEstimate {
  /** Checkpoints kept (1 = single, 2 = dual). */
  checkpointsKept: number;
  corrupted: number;
  samples: number;
  estimate: number;
  /** Binomial standard error sqrt(p(1-p)/n) of the estimate. */
  stderr: number;
}

export interface MonteCarloArgs {
  intervalMs: number;
  /** Exponential detection latency with this rate, unless sampleLatencyMs is given. */
  lambdaPerMs?: number;
  /** Any other latency distribution (e.g. resampling a measured sample). */
  sampleLatencyMs?: (rng: Prng) => number;
  samples: number;
  seed: number;
  /** Estimates for 1..checkpointsKeptMax checkpoints kept; default 2 (single and dual). */
  checkpointsKeptMax?: number;
}

export function simulateCorruption(args: MonteCarloArgs): MonteCarloEstimate[] {
  const T = requirePositive('interval-ms', args.intervalMs);
  requireIntegerInRange('samples', args.samples, 1, MONTE_CARLO_SAMPLES_MAX);
  requireIntegerInRange('seed', args.seed, 0, 0xffffffff);
  const kMax = requireIntegerInRange('checkpoints kept', args.checkpointsKeptMax ?? 2, 1, CHECKPOINTS_KEPT_MAX);
  let sample = args.sampleLatencyMs;
  if (sample === undefined) {
    const lambda = requirePositive('lambda-per-ms', args.lambdaPerMs ?? NaN);
    sample = (rng) => sampleExponential(rng, lambda);
  }
  const rng = createPrng(args.seed);
  // counts[k-1] = runs with at least k checkpoint instants in (error, detection].
  const counts = new Array<number>(kMax).fill(0);
  for (let i = 0; i < args.samples; i++) {
    const errorMs = rng.nextFloat() * TIMELINE_INTERVALS * T;
    const detectMs = errorMs + sample(rng);
    // Checkpoint instants are jT; those in (errorMs, detectMs] are j = floor(errorMs/T)+1 .. floor(detectMs/T).
    const crossed = Math.floor(detectMs / T) - Math.floor(errorMs / T);
    for (let k = 1; k <= kMax && k <= crossed; k++) counts[k - 1]!++;
  }
  return counts.map((corrupted, i) => {
    const estimate = corrupted / args.samples;
    return {
      checkpointsKept: i + 1, corrupted, samples: args.samples, estimate,
      stderr: Math.sqrt((estimate * (1 - estimate)) / args.samples),
    };
  });
}
