// The CDA failover campaign: per workload and form of primary (the cdabench
// guest under `understudy run`, the Node program over criticalArea), N seeded
// trials, each a primary killed with SIGKILL at a drawn cycle while it commits
// to an `understudy cda-backup` process, then the checks of
// src/testing/cda-failover.ts (the backup's areas against the reference run
// at its last acknowledged cycle, the printed-cycle bounds, a restarted
// `understudy run` / Node primary finishing with an uninterrupted run's
// digest). The mode (wp-async, wp-sync, diff, emul) and OPT (1 or 5) are
// drawn from the seed. Everything runs as processes.
//   node dist/bench/cda-failover.js [--trials 10] [--first-seed 1] [--cycles 400] [--concurrency 2]
import { parseArgs } from 'node:util';
import { WORKLOAD_NAMES } from '../src/cda/workloads/index.js';
import { PRIMARY_FORMS, runCdaFailoverTrial, type CdaTrialOptions, type CdaTrialResult } from '../src/testing/cda-failover.js';
import { probeTrackers } from '../src/track/tracker.js';
import { machine, median, table } from './stats.js';

const TRIALS_MAX = 1000;
const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '10' },
    'first-seed': { type: 'string', default: '1' },
    cycles: { type: 'string', default: '400' },
    concurrency: { type: 'string', default: '2' },
  },
});
const trials = Number(values.trials);
const firstSeed = Number(values['first-seed']);
const cycles = Number(values.cycles);
const concurrency = Number(values.concurrency);
if (!Number.isInteger(trials) || trials < 1 || trials > TRIALS_MAX || !Number.isInteger(cycles) || cycles < 20 || !Number.isInteger(concurrency) || concurrency < 1 || concurrency > 8) {
  throw new Error(`usage: cda-failover.js [--trials 1..${TRIALS_MAX}] [--first-seed N] [--cycles >=20] [--concurrency 1..8]`);
}
const supported = (k: string) => probeTrackers().find((p) => p.kind === k)?.supported ?? false;
const modes = (['wp-async', 'wp-sync', 'diff', 'emul'] as const).filter((m) => (m === 'wp-async' || m === 'wp-sync' ? supported(m) : true));

const jobs: CdaTrialOptions[] = [];
for (let i = 0; i < trials; i++) {
  for (const workload of WORKLOAD_NAMES) {
    for (const form of PRIMARY_FORMS) {
      jobs.push({ workload, form, seed: firstSeed + jobs.length, modes, cycles, killCycleMin: 5, killCycleMax: Math.floor(cycles / 2) });
    }
  }
}
const results: CdaTrialResult[] = [];
const started = performance.now();
async function worker(): Promise<void> {
  for (let job = jobs.shift(); job; job = jobs.shift()) {
    const r = await runCdaFailoverTrial(job);
    results.push(r);
    process.stdout.write(
      `seed ${r.seed} ${r.form} ${r.workload} ${r.mode} OPT=${r.opt} kill@${r.killAt} printed ${r.printed} acked ${r.acked} recovered ${r.recovered} ${r.digest === r.expectedDigest ? 'digest ok' : `digest ${r.digest} != ${r.expectedDigest}`}${r.failures.length ? ` FAIL: ${r.failures.join('; ')}` : ''}\n`,
    );
  }
}
await Promise.all(Array.from({ length: concurrency }, () => worker()));

const rows: (string | number)[][] = [];
for (const workload of WORKLOAD_NAMES) {
  for (const form of PRIMARY_FORMS) {
    const rs = results.filter((r) => r.workload === workload && r.form === form);
    rows.push([
      workload,
      form,
      rs.length,
      rs.filter((r) => !r.finishedFirst).length,
      rs.filter((r) => r.heldExact).length,
      rs.filter((r) => !r.finishedFirst && r.acked === r.printed).length,
      rs.filter((r) => !r.finishedFirst && r.acked === r.printed + 1).length,
      rs.filter((r) => r.recovered === r.acked).length,
      rs.filter((r) => r.digest === r.expectedDigest).length,
      rs.filter((r) => r.failures.length > 0).length,
      [...new Set(rs.map((r) => r.mode))].sort().join(', '),
      `${rs.filter((r) => r.opt === 1).length}/${rs.filter((r) => r.opt === 5).length}`,
      median(rs.map((r) => r.killAt)).toFixed(0),
    ]);
  }
}
process.stdout.write(`\n${machine()}; ${new Date().toISOString().slice(0, 10)}; ${results.length} trials, ${cycles} cycles per run, ${((performance.now() - started) / 1000).toFixed(0)} s\n\n`);
process.stdout.write(
  table(['workload', 'primary', 'trials', 'killed mid-run', 'backup = reference(N)', 'N = P', 'N = P + 1', 'restart recovered N', 'final digest = uninterrupted', 'failed', 'modes', 'OPT 1/5', 'median kill cycle'], rows) + '\n',
);
process.exitCode = results.some((r) => r.failures.length > 0) ? 1 : 0;
