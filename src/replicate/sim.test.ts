// The simulator's verdicts: 1,000 seeded schedules in CI (more with
// UNDERSTUDY_SIM_SCHEDULES=N, starting at UNDERSTUDY_SIM_SEED=S), determinism
// of a seed, and scripted scenarios. A failing schedule prints seed=N; rerun it
// with replaySchedule(N) (docs/replication.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeFailure, replaySchedule, runSchedule, type ScheduleSpec, type ScriptedFault } from './sim/simulator.js';

const SCHEDULES = Number(process.env.UNDERSTUDY_SIM_SCHEDULES ?? 1000);
const FIRST_SEED = Number(process.env.UNDERSTUDY_SIM_SEED ?? 1);

test(`${SCHEDULES} seeded schedules: all four counts are zero and the invariants hold`, () => {
  const failures: string[] = [];
  const mix = { budget: 0, chaos: 0, frames: 0, crash: 0, pause: 0, partition: 0, oneway: 0, promotions: 0, refused: 0, requests: 0, answered: 0 };
  for (let seed = FIRST_SEED; seed < FIRST_SEED + SCHEDULES; seed++) {
    const r = runSchedule(seed);
    if (!r.ok) failures.push(describeFailure(r));
    mix[r.spec.mode] += 1;
    if (r.spec.wire === 'frames') mix.frames += 1;
    for (const k of ['crash', 'pause', 'partition', 'oneway'] as const) mix[k] += r.stats.faults[k];
    mix.promotions += r.stats.promotions;
    mix.refused += r.stats.framesRefused;
    mix.requests += r.stats.requests;
    mix.answered += r.stats.answered;
  }
  for (const f of failures.slice(0, 10)) console.log(f);
  assert.deepEqual(failures, [], `${failures.length} of ${SCHEDULES} schedules failed`);
  // The mix really exercised what it claims to (a generator that stopped injecting faults would pass vacuously).
  if (SCHEDULES >= 1000) {
    assert.ok(mix.budget > 500 && mix.chaos > 100 && mix.frames > 50, JSON.stringify(mix));
    for (const k of ['crash', 'pause', 'partition', 'oneway', 'promotions', 'refused'] as const) assert.ok(mix[k] > 100, `${k}: ${JSON.stringify(mix)}`);
  }
  console.log(`schedules ${SCHEDULES} from seed ${FIRST_SEED}: ${JSON.stringify(mix)}`);
});

test('one seed replays exactly: identical event traces', () => {
  for (const seed of [3, 42, 977]) {
    const a = replaySchedule(seed);
    const b = replaySchedule(seed);
    assert.ok(a.trace !== null && a.trace.length > 100);
    assert.equal(a.traceHash, b.traceHash);
    assert.deepEqual(a.trace, b.trace);
    assert.equal(runSchedule(seed).traceHash, a.traceHash, 'tracing does not change the run');
  }
  assert.notEqual(replaySchedule(1).traceHash, replaySchedule(2).traceHash);
});

function scenario(script: ScriptedFault[], spec: Partial<ScheduleSpec> = {}) {
  const r = runSchedule(11, {
    spec: { mode: 'budget', wire: 'objects', faultPhaseMs: 1500, lossP: 0.02, dupP: 0.05, reorderP: 0.1, delayMinMs: 1, delayMaxMs: 5, clients: 3, requestsPerClient: 10, config: {}, bootstrapSolo: false, script, ...spec },
  });
  assert.ok(r.ok, describeFailure(r));
  assert.equal(r.stats.answered, 30);
  return r;
}

test('scenario: the primary crashes mid-epoch; the backup takes over and the old primary rejoins as backup', () => {
  const r = scenario([{ atMs: 503, kind: 'crash', who: 'primary', ms: 300 }]);
  assert.equal(r.stats.promotions, 1);
  assert.deepEqual(r.stats.roles[2]!.slice(-2), ['promoted', 'primary']);
  assert.equal(r.stats.roles[1]!.at(-1), 'backup');
});

test('scenario: the backup crashes; the primary resyncs it when it comes back, no failover', () => {
  const r = scenario([{ atMs: 500, kind: 'crash', who: 'backup', ms: 300 }]);
  assert.equal(r.stats.promotions, 0);
  assert.equal(r.stats.roles[1]!.includes('idle'), false);
});

test('scenario: a partition, then heal: one side promotes, the other steps down and rejoins', () => {
  const r = scenario([{ atMs: 500, kind: 'partition', who: 'primary', ms: 700 }]);
  assert.equal(r.stats.promotions, 1);
  assert.ok(r.stats.roles[1]!.includes('deposed'));
  assert.equal(r.stats.roles[1]!.at(-1), 'backup');
});

test('scenario: the primary pauses past the timeout and resumes with a stale view: it must step down', () => {
  const r = scenario([{ atMs: 500, kind: 'pause', who: 'primary', ms: 900 }]);
  assert.equal(r.stats.promotions, 1);
  assert.equal(r.stats.roles[1]!.at(-1), 'backup', JSON.stringify(r.stats.roles));
  assert.ok((r.stats.coverage['role:idle: newer term N'] ?? 0) >= 1);
});

test('scenario: a short pause or one-way loss below the timeout causes no failover', () => {
  const r = scenario([
    { atMs: 400, kind: 'pause', who: 'primary', ms: 80 },
    { atMs: 900, kind: 'oneway', who: 'backup', ms: 60 },
  ]);
  assert.equal(r.stats.promotions, 0);
});

test('scenario: heavy duplication and reordering of acks and epochs, no faults', () => {
  const r = scenario([], { dupP: 0.4, reorderP: 0.5, delayMaxMs: 20 });
  assert.equal(r.stats.promotions, 0);
});

test('scenario: forged, altered and replayed frames on the wire are refused and harmless', () => {
  const r = scenario([{ atMs: 600, kind: 'crash', who: 'primary', ms: 200 }], { wire: 'frames', attackP: 0.2 });
  assert.ok(r.stats.attacks > 50);
  assert.ok(r.stats.framesRefused > 20);
  assert.ok((r.stats.coverage['refused:frame: ERR_REPL_AUTH'] ?? 0) > 0);
  assert.ok((r.stats.coverage['refused:frame: ERR_REPL_REPLAY'] ?? 0) > 0);
});
