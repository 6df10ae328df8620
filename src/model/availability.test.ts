import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isUnderstudyError } from '../errors.js';
import {
  AVAILABILITY_DEFAULTS, HOURS_PER_YEAR, SCHEMES, availability, buildAvailabilityChain, hypervisorMttfYearsFor,
  sensitivity, solveSteadyState,
} from './availability.js';
import { corruptionDual } from './corruption.js';
import { solveLinear } from './numeric.js';

test('a two-state chain has the textbook availability μ / (λ + μ)', () => {
  const r = solveSteadyState({
    states: ['up', 'down'], up: ['up'],
    transitions: [{ from: 'up', to: 'down', ratePerHour: 0.01, label: 'λ' }, { from: 'down', to: 'up', ratePerHour: 2, label: 'μ' }],
  });
  assert.ok(Math.abs(r.availability - 2 / 2.01) < 1e-14);
});

test('every chain: state probabilities are >= 0, sum to 1, and balance every state (checked independently of the solver)', () => {
  const pos = (lo: number, hi: number): fc.Arbitrary<number> => fc.double({ min: lo, max: hi, noNaN: true });
  fc.assert(fc.property(
    fc.constantFrom(...SCHEMES), pos(0.1, 1e4), pos(1, 1e4), pos(0.01, 100), pos(0.1, 600), pos(0.1, 60), pos(0.01, 100),
    pos(0.1, 600), fc.double({ min: 0, max: 1, noNaN: true }),
    (scheme, pm, sm, hy, hr, sr, cr, rr, pc) => {
      const params = {
        ...AVAILABILITY_DEFAULTS, protectedMttfHours: pm, ckptVmMttfHours: sm, hypervisorMttfYears: hy,
        hypervisorRestartMinutes: hr, ckptVmRestartMinutes: sr, ckptRecoverySeconds: cr, restartRecomputeMinutes: rr,
        corruptionProbability: pc,
      };
      const chain = buildAvailabilityChain(scheme, params);
      const r = solveSteadyState(chain);
      const p = r.probabilities;
      const total = Object.values(p).reduce((a, x) => a + x, 0);
      assert.ok(Math.abs(total - 1) < 1e-12);
      assert.ok(Object.values(p).every((x) => x >= 0));
      const flows = chain.states.map((s) => {
        let inflow = 0;
        let outflow = 0;
        for (const t of chain.transitions) {
          if (t.to === s) inflow += p[t.from]! * t.ratePerHour;
          if (t.from === s) outflow += p[s]! * t.ratePerHour;
        }
        return { s, inflow, outflow };
      });
      // Relative to the largest flow of the chain: a state with a 1e-12 share may carry absolute rounding of that order.
      const scale = Math.max(...flows.map((f) => f.outflow));
      for (const f of flows) assert.ok(Math.abs(f.inflow - f.outflow) <= 1e-10 * scale, `balance at ${f.s}`);
      assert.ok(Math.abs(r.availability + r.unavailability - 1) < 1e-12);
    },
  ), { numRuns: 200 });
});

test('the no-checkpointing chain matches its closed form', () => {
  const lp = 1 / 24;
  const rp = 4;
  const lv = 1 / (1.7 * HOURS_PER_YEAR);
  const rv = 60 / 45;
  // Balance of F_S: π_FS rv = λv (π_1 + π_0) = λv (1 - π_FS).  Balance of 1: π_1 (λp + λv) = π_0 rp.
  const piFs = lv / (lv + rv);
  const pi1 = ((1 - piFs) * rp) / (rp + lp + lv);
  const r = availability('none');
  assert.ok(Math.abs(r.probabilities.F_S! - piFs) < 1e-15);
  assert.ok(Math.abs(r.availability - pi1) < 1e-12, `${r.availability} vs ${pi1}`);
});

test("the defaults reproduce the seed's claim: ~99 % without checkpointing, 99.98 % with in-memory checkpointing at a hypervisor MTTF of 1.7 years", () => {
  assert.equal((100 * availability('none').availability).toFixed(0), '99');
  const mem = availability('memory');
  assert.ok(Math.abs(mem.corruptionProbability - corruptionDual(50, 0.0599)) < 1e-15, 'pc from formula (6) at 50 ms');
  assert.equal((100 * mem.availability).toFixed(2), '99.98');
  // ... and for every more reliable hypervisor, but not for a clearly less reliable one.
  for (const years of [1.7, 2, 5, 50]) assert.equal((100 * availability('memory', { hypervisorMttfYears: years }).availability) >= 99.975, true);
  assert.ok(100 * availability('memory', { hypervisorMttfYears: 1.2 }).availability < 99.975);
  const threshold = hypervisorMttfYearsFor(0.99975, 'memory');
  assert.ok(threshold > 1.5 && threshold <= 1.7, `threshold ${threshold}`);
  assert.ok(Math.abs(availability('memory', { hypervisorMttfYears: threshold }).availability - 0.99975) < 1e-9);
});

test('ordering at the defaults: in-memory dual > disk-only > none, and single in-memory is hurt by its 31.7 % corruption', () => {
  const none = availability('none').availability;
  const disk = availability('disk').availability;
  const dual = availability('memory').availability;
  const single = availability('memory', { checkpointsKept: 1 }).availability;
  assert.ok(dual > disk && disk > none);
  assert.ok(single < dual && single > none);
});

test('limiting cases: pc = 0 and a perfect hypervisor leave only rollback time; pc = 1 behaves like restarting', () => {
  const far = { hypervisorMttfYears: 1e9, ckptVmMttfHours: 1e12 };
  const u0 = availability('memory', { ...far, corruptionProbability: 0 }).unavailability;
  const lp = 1 / 24;
  const rRollback = 3600 / 1;
  assert.ok(Math.abs(u0 - lp / (lp + rRollback)) < 1e-12);
  const u1 = availability('memory', { ...far, corruptionProbability: 1 }).unavailability;
  const uNone = availability('none', far).unavailability;
  assert.ok(Math.abs(u1 - uNone) < 1e-9);
});

test('availability rises with the hypervisor MTTF and falls with the checkpoint corruption probability', () => {
  let last = 0;
  for (const y of [0.1, 0.5, 1, 2, 10]) {
    const a = availability('memory', { hypervisorMttfYears: y }).availability;
    assert.ok(a > last);
    last = a;
  }
  const a = [0, 0.1, 0.5, 1].map((pc) => availability('memory', { corruptionProbability: pc }).availability);
  for (let i = 1; i < a.length; i++) assert.ok(a[i]! < a[i - 1]!);
});

test('sensitivity: signs make sense and unused parameters have no effect', () => {
  const { base, rows } = sensitivity('memory');
  const by = (name: string) => rows.find((r) => r.param === name)!;
  assert.ok(by('protectedMttfHours').elasticity < 0 && by('protectedMttfHours').availabilityAtDouble > base.availability);
  assert.ok(by('restartRecomputeMinutes').elasticity > 0);
  assert.ok(by('intervalMs').elasticity < -1, 'a longer interval (less corruption) helps a lot');
  assert.equal(by('diskIntervalMinutes').elasticity, 0);
  assert.equal(by('diskIntervalMinutes').availabilityAtHalf, base.availability);
});

test('invalid parameters are refused with ERR_MODEL_PARAM', () => {
  const isParam = (e: unknown): boolean => isUnderstudyError(e, 'ERR_MODEL_PARAM');
  assert.throws(() => availability('memory', { hypervisorMttfYears: 0 }), (e: unknown) => isParam(e) && /hypervisorMttfYears/.test((e as Error).message));
  assert.throws(() => availability('none', { protectedMttfHours: -1 }), isParam);
  assert.throws(() => availability('memory', { corruptionProbability: 1.5 }), isParam);
  assert.throws(() => availability('memory', { checkpointsKept: 0 }), isParam);
  assert.throws(() => availability('disk', { diskLoadMinutes: NaN }), isParam);
  assert.throws(() => hypervisorMttfYearsFor(2, 'memory'), isParam);
});

test('solveLinear solves random well-conditioned systems and reports singular ones', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 1e6 }), (n, seed) => {
    let s = seed + 1;
    const rnd = (): number => { s = (s * 16807) % 2147483647; return s / 2147483647 - 0.5; };
    const A = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (__, j) => rnd() + (i === j ? n : 0)));
    const x = Array.from({ length: n }, rnd);
    const b = A.map((row) => row.reduce((a, v, j) => a + v * x[j]!, 0));
    const got = solveLinear(A, b)!;
    got.forEach((v, i) => assert.ok(Math.abs(v - x[i]!) < 1e-10));
  }));
  assert.equal(solveLinear([[1, 2], [2, 4]], [1, 2]), null);
});
