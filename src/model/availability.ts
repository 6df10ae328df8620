// Availability model of seed paper 003 (VM-μCheckpoint, Section 5, Figure 5):
// a continuous-time Markov chain over the joint state (k, j) of the protected VM
// (k) and the checkpointing VM (j), plus the hypervisor-down state F_S.
//
// Figure 5 itself is not in the text we have, only its description, so the
// state space below is our reading of it (docs/models.md discusses it):
//   k = 1  protected VM up                 k = 0  protected VM down
//   j = 1  checkpointing VM up and holding a usable checkpoint of the protected VM
//   j = 0  checkpointing VM up, no usable checkpoint (corrupted or lost)
//   j = F  checkpointing VM failed, being restarted
// which matches every transition the text names: (1,1) → F_S → (0,F) after a
// hypervisor or permanent failure, then (0,F) → (0,0) → (1,1) ("the
// checkpointing VM and the protected VM are recovered in turn").
//
//   (1,1) --λp(1-pc)--> (0,1) --r'p--> (1,1)     transient failure, rollback to checkpoint
//   (1,1) --λp·pc-----> (0,0) --rp---> (1,1)     checkpoint corrupted: restart, re-execute jobs
//   (1,1) --λs--------> (1,F) --rs---> (1,1)     checkpointing VM fails; protected VM keeps running
//   (1,F) --λp--------> (0,F) --rs---> (0,0)     protected VM fails meanwhile: ckpt VM first, then restart
//   (0,1),(0,0) --λs--> (0,F)                     checkpointing VM fails during a recovery
//   any   --λv--------> F_S   --rv---> (0,F)     hypervisor or permanent failure; restart (maybe elsewhere)
//
// Available = protected VM up = (1,1) or (1,F).
//
// Two variants the paper mentions but does not print, built the same way:
//  - 'none': no checkpointing VM. (1) --λp--> (0) --rp--> (1); any --λv--> F_S --rv--> (0).
//  - 'disk': checkpoints only on disk every diskIntervalMinutes (Section 3.1).
//    Rollback restores the disk image (r_d: load it, then re-execute the work
//    since it, on average half an interval) and, because the disk image survives
//    the node, hypervisor failures and a failed checkpointing VM also end in a
//    rollback instead of a full re-computation: (0,F) --rs--> (0,1) w.p. 1-pc, (0,0) w.p. pc.
//
// The steady state solves πQ = 0, Σπ = 1 (the paper's "input flow = output
// flow" equations, solved there with CLAPACK) with our own dense Gaussian
// elimination — the chains have at most six states.
import { assert } from '../util/assert.js';
import { UnderstudyError } from '../errors.js';
import { CHECKPOINTS_KEPT_MAX, corruptionProbability } from './corruption.js';
import { solveLinear } from './numeric.js';
import { requireIntegerInRange, requirePositive, requireUnit } from './validate.js';

export const HOURS_PER_YEAR = 365.25 * 24;
/** States of a chain we are willing to solve densely. */
export const CTMC_STATES_MAX = 64;

export interface Ctmc {
  states: readonly string[];
  transitions: readonly { from: string; to: string; ratePerHour: number; label: string }[];
  /** States in which the service is available. */
  up: readonly string[];
}

export interface SteadyState {
  probabilities: Record<string, number>;
  availability: number;
  unavailability: number;
  downtimeMinutesPerYear: number;
}

/** Steady state of an irreducible CTMC: πQ = 0 with one balance equation replaced by Σπ = 1. */
export function solveSteadyState(chain: Ctmc): SteadyState {
  const n = chain.states.length;
  assert(n >= 1 && n <= CTMC_STATES_MAX, 'chain size within bound');
  const index = new Map(chain.states.map((s, i) => [s, i]));
  assert(index.size === n, 'state names are unique');
  // Generator Q: Q[i][j] = rate i→j, Q[i][i] = -Σ_j Q[i][j].
  const Q = chain.states.map(() => new Array<number>(n).fill(0));
  for (const t of chain.transitions) {
    const i = index.get(t.from);
    const j = index.get(t.to);
    assert(i !== undefined && j !== undefined && i !== j, `transition ${t.from} → ${t.to} joins two distinct known states`);
    assert(Number.isFinite(t.ratePerHour) && t.ratePerHour >= 0, 'rates are finite and >= 0');
    Q[i]![j]! += t.ratePerHour;
    Q[i]![i]! -= t.ratePerHour;
  }
  // Balance equations are the columns of Q: Σ_i π_i Q[i][j] = 0, i.e. Qᵀ π = 0. Replace the last by Σ π = 1.
  const A = chain.states.map((_, j) => chain.states.map((__, i) => (j === n - 1 ? 1 : Q[i]![j]!)));
  const b = chain.states.map((_, j) => (j === n - 1 ? 1 : 0));
  const pi = solveLinear(A, b);
  if (pi === null) {
    throw new UnderstudyError('ERR_MODEL_PARAM', 'the availability chain has no unique steady state (a rate is 0 that must not be)');
  }
  // Post-conditions: a distribution, and balanced.
  const scaleMax = Math.max(...Q.map((row, i) => Math.abs(row[i]!)));
  for (let j = 0; j < n; j++) {
    let flow = 0;
    for (let i = 0; i < n; i++) flow += pi[i]! * Q[i]![j]!;
    assert(Math.abs(flow) <= 1e-9 * scaleMax, `balance holds at ${chain.states[j]}`);
  }
  assert(pi.every((p) => p > -1e-12), 'probabilities are >= 0');
  const clamped = pi.map((p) => Math.max(0, p));
  const total = clamped.reduce((a, p) => a + p, 0);
  assert(Math.abs(total - 1) < 1e-9, 'probabilities sum to 1');
  const probabilities: Record<string, number> = {};
  chain.states.forEach((s, i) => { probabilities[s] = clamped[i]! / total; });
  let unavailability = 0;
  for (const s of chain.states) if (!chain.up.includes(s)) unavailability += probabilities[s]!;
  const availability = chain.up.reduce((a, s) => a + (probabilities[s] ?? 0), 0);
  return { probabilities, availability, unavailability, downtimeMinutesPerYear: unavailability * HOURS_PER_YEAR * 60 };
}

export type Scheme = 'none' | 'disk' | 'memory';
export const SCHEMES: readonly Scheme[] = ['none', 'disk', 'memory'];

/**
 * Parameters, each a mean time in the unit its name ends with (the paper's
 * rates are their inverses). Defaults and their reasons: AVAILABILITY_DEFAULTS.
 */
export interface AvailabilityParams {
  /** 1/λp: mean time between transient failures of the protected VM (or its application). */
  protectedMttfHours: number;
  /** 1/λs: mean time between failures of the checkpointing VM alone. */
  ckptVmMttfHours: number;
  /** 1/λv: mean time between hypervisor software failures and permanent failures. */
  hypervisorMttfYears: number;
  /** 1/rv: mean time to get a hypervisor running again (reboot, or boot on another node). */
  hypervisorRestartMinutes: number;
  /** 1/rs: mean time to restart the checkpointing VM, including saving the first checkpoint. */
  ckptVmRestartMinutes: number;
  /** 1/r'p: mean time of a rollback to the in-memory checkpoint, detection to running. */
  ckptRecoverySeconds: number;
  /** 1/rp: mean time to restart the protected VM and re-execute the interrupted jobs. */
  restartRecomputeMinutes: number;
  /** λ of the exponential detection latency (Section 4), for pc. */
  latencyLambdaPerMs: number;
  /** In-memory checkpoint interval T_ck, for pc. */
  intervalMs: number;
  /** 1 = single, 2 = dual checkpoint, for pc. */
  checkpointsKept: number;
  /** pc: overrides the value computed from latencyLambdaPerMs, intervalMs and checkpointsKept. */
  corruptionProbability?: number;
  /** Disk-only scheme: interval between disk checkpoints. */
  diskIntervalMinutes: number;
  /** Disk-only scheme: time to load a disk checkpoint into a VM. */
  diskLoadMinutes: number;
}

/**
 * Defaults, chosen so the paper's claims come out (docs/models.md has the
 * reasoning and the sensitivity of the result to each):
 *  - without checkpointing the VM is ~99 % available: one transient failure a
 *    day costing a 15-minute restart and re-computation (15/1440 ≈ 1.04 %);
 *  - with in-memory dual checkpointing at the paper's 50 ms interval and
 *    λ = 0.0599/ms (pc = 1.59 %, Table 1), availability reaches 99.98 % once the
 *    hypervisor MTTF is about 1.7 years (>= 99.975 %, which prints as 99.98 %,
 *    from 1.66 years on); the hypervisor restart time is the free parameter
 *    that places that threshold: 45 min, a mixture of quick reboots and moving
 *    to another node after a permanent failure.
 */
export const AVAILABILITY_DEFAULTS: Readonly<AvailabilityParams> = Object.freeze({
  protectedMttfHours: 24,
  ckptVmMttfHours: 7 * 24,
  hypervisorMttfYears: 1.7,
  hypervisorRestartMinutes: 45,
  ckptVmRestartMinutes: 2,
  ckptRecoverySeconds: 1,
  restartRecomputeMinutes: 15,
  latencyLambdaPerMs: 0.0599,
  intervalMs: 50,
  checkpointsKept: 2,
  diskIntervalMinutes: 10,
  diskLoadMinutes: 1,
});

/** Parameters that are numbers a user can vary (for the sensitivity table and the CLI). */
export const AVAILABILITY_PARAM_NAMES = [
  'protectedMttfHours', 'ckptVmMttfHours', 'hypervisorMttfYears', 'hypervisorRestartMinutes',
  'ckptVmRestartMinutes', 'ckptRecoverySeconds', 'restartRecomputeMinutes', 'latencyLambdaPerMs',
  'intervalMs', 'diskIntervalMinutes', 'diskLoadMinutes',
] as const satisfies readonly (keyof AvailabilityParams)[];
export type AvailabilityParamName = (typeof AVAILABILITY_PARAM_NAMES)[number];

export function validateAvailabilityParams(p: AvailabilityParams): void {
  for (const name of AVAILABILITY_PARAM_NAMES) requirePositive(name, p[name]);
  requireIntegerInRange('checkpointsKept', p.checkpointsKept, 1, CHECKPOINTS_KEPT_MAX);
  if (p.corruptionProbability !== undefined) requireUnit('corruptionProbability', p.corruptionProbability);
}

/** pc of the in-memory scheme: the override, or formula (5)/(6) at the configured interval. */
export function memoryCorruptionProbability(p: AvailabilityParams): number {
  return p.corruptionProbability ?? corruptionProbability(p.intervalMs, p.latencyLambdaPerMs, p.checkpointsKept);
}

/** pc of the disk scheme: one disk checkpoint kept, formula (5) at the disk interval. */
export function diskCorruptionProbability(p: AvailabilityParams): number {
  return corruptionProbability(p.diskIntervalMinutes * 60_000, p.latencyLambdaPerMs, 1);
}

export function buildAvailabilityChain(scheme: Scheme, params: AvailabilityParams): Ctmc {
  validateAvailabilityParams(params);
  const lp = 1 / params.protectedMttfHours;
  const ls = 1 / params.ckptVmMttfHours;
  const lv = 1 / (params.hypervisorMttfYears * HOURS_PER_YEAR);
  const rv = 60 / params.hypervisorRestartMinutes;
  const rs = 60 / params.ckptVmRestartMinutes;
  const rp = 60 / params.restartRecomputeMinutes;
  type T = Ctmc['transitions'][number];
  const t = (from: string, to: string, ratePerHour: number, label: string): T => ({ from, to, ratePerHour, label });

  if (scheme === 'none') {
    return {
      states: ['1', '0', 'F_S'],
      up: ['1'],
      transitions: [
        t('1', '0', lp, 'λp'), t('0', '1', rp, 'rp'),
        t('1', 'F_S', lv, 'λv'), t('0', 'F_S', lv, 'λv'), t('F_S', '0', rv, 'rv'),
      ],
    };
  }
  const pc = scheme === 'memory' ? memoryCorruptionProbability(params) : diskCorruptionProbability(params);
  // r'p for memory; for disk, load the image and re-execute half an interval of work on average.
  const rRollback = scheme === 'memory'
    ? 3600 / params.ckptRecoverySeconds
    : 60 / (params.diskLoadMinutes + params.diskIntervalMinutes / 2);
  const transitions: T[] = [
    t('(1,1)', '(0,1)', lp * (1 - pc), 'λp(1-pc)'),
    t('(1,1)', '(0,0)', lp * pc, 'λp·pc'),
    t('(0,1)', '(1,1)', rRollback, scheme === 'memory' ? "r'p" : 'rd'),
    t('(0,0)', '(1,1)', rp, 'rp'),
    t('(1,1)', '(1,F)', ls, 'λs'),
    t('(1,F)', '(1,1)', rs, 'rs'),
    t('(1,F)', '(0,F)', lp, 'λp'),
    t('(0,1)', '(0,F)', ls, 'λs'),
    t('(0,0)', '(0,F)', ls, 'λs'),
    t('F_S', '(0,F)', rv, 'rv'),
  ];
  if (scheme === 'memory') {
    transitions.push(t('(0,F)', '(0,0)', rs, 'rs'));
  } else {
    transitions.push(t('(0,F)', '(0,1)', rs * (1 - pc), 'rs(1-pc)'), t('(0,F)', '(0,0)', rs * pc, 'rs·pc'));
  }
  const states = ['(1,1)', '(0,1)', '(0,0)', '(1,F)', '(0,F)', 'F_S'];
  for (const s of states) if (s !== 'F_S') transitions.push(t(s, 'F_S', lv, 'λv'));
  return { states, up: ['(1,1)', '(1,F)'], transitions: transitions.filter((x) => x.ratePerHour > 0) };
}

export interface AvailabilityResult extends SteadyState {
  scheme: Scheme;
  /** Corruption probability used (0 for 'none'). */
  corruptionProbability: number;
}

export function availability(scheme: Scheme, params: Partial<AvailabilityParams> = {}): AvailabilityResult {
  const full: AvailabilityParams = { ...AVAILABILITY_DEFAULTS, ...params };
  const steady = solveSteadyState(buildAvailabilityChain(scheme, full));
  const pc = scheme === 'none' ? 0 : scheme === 'memory' ? memoryCorruptionProbability(full) : diskCorruptionProbability(full);
  return { ...steady, scheme, corruptionProbability: pc };
}

export interface SensitivityRow {
  param: AvailabilityParamName;
  value: number;
  /** Availability with the parameter halved and doubled (others at their values). */
  availabilityAtHalf: number;
  availabilityAtDouble: number;
  /** d ln(unavailability) / d ln(param): +1 means unavailability grows in proportion. */
  elasticity: number;
}

/** One-at-a-time sensitivity of the availability of `scheme` to every numeric parameter. */
export function sensitivity(scheme: Scheme, params: Partial<AvailabilityParams> = {}): { base: AvailabilityResult; rows: SensitivityRow[] } {
  const full: AvailabilityParams = { ...AVAILABILITY_DEFAULTS, ...params };
  const base = availability(scheme, full);
  const h = 1.01;
  const rows = AVAILABILITY_PARAM_NAMES.map((param) => {
    const at = (factor: number): AvailabilityResult => availability(scheme, { ...full, [param]: full[param] * factor });
    const up = at(h).unavailability;
    const down = at(1 / h).unavailability;
    const elasticity = up > 0 && down > 0 ? Math.log(up / down) / (2 * Math.log(h)) : 0;
    return {
      param, value: full[param],
      availabilityAtHalf: at(0.5).availability,
      availabilityAtDouble: at(2).availability,
      elasticity: Math.abs(elasticity) < 1e-9 ? 0 : elasticity,
    };
  });
  return { base, rows };
}

/** Bisection steps on log(MTTF): 200 is far more than double precision needs. */
const MTTF_SEARCH_STEPS_MAX = 200;

/**
 * The smallest hypervisor MTTF (years) at which `scheme` reaches `target`
 * availability, or Infinity when even a perfect hypervisor does not get there.
 * Availability rises monotonically with the hypervisor MTTF.
 */
export function hypervisorMttfYearsFor(target: number, scheme: Scheme, params: Partial<AvailabilityParams> = {}): number {
  requireUnit('target', target);
  const at = (years: number): number => availability(scheme, { ...params, hypervisorMttfYears: years }).availability;
  let lo = Math.log(1e-6);
  let hi = Math.log(1e9);
  if (at(Math.exp(hi)) < target) return Infinity;
  if (at(Math.exp(lo)) >= target) return Math.exp(lo);
  for (let i = 0; i < MTTF_SEARCH_STEPS_MAX && hi - lo > 1e-12; i++) {
    const mid = (lo + hi) / 2;
    if (at(Math.exp(mid)) < target) lo = mid;
    else hi = mid;
  }
  return Math.exp(hi);
}
