// Prints the workloads' per-transaction profile (seed 000, Table 2: writes
// and unique pages per transaction at OPT=1 and OPT=5) and their time per
// operation: the TypeScript workloads in-process, and the C guest cdabench
// run by the Guest runtime with no checkpointing (--no-cda, no safe points),
// the unprotected baseline. Runs are interleaved; medians are printed.
//
//   node dist/src/cda/workloads/report.js [ops [runs]]     (default 10000 5)
import { Guest } from '../../guest/guest.js';
import { loadGuestModule } from '../../guest/module.js';
import { CollectedOutput } from '../../output/gate.js';
import { guestPath } from '../../testing/fixtures.js';
import { WasiDevice } from '../../wasi/index.js';
import { WORKLOAD_NAMES, measureWorkload, type WorkloadMeasurement, type WorkloadName } from './index.js';

const RUNS_MAX = 15;
const OPTS = [1, 5] as const;

async function guestNsPerOp(name: WorkloadName, opt: number, ops: number): Promise<number> {
  const module = await loadGuestModule(guestPath('cdabench'), { safePoints: false });
  const out = new CollectedOutput();
  const wasi = WasiDevice.create({ args: ['cdabench', name, '--opt', String(opt), '--ops', String(ops), '--no-cda', '--timing'], env: [], preopens: [], output: out });
  // --no-cda makes no hypercall; the imports must still resolve.
  const none = () => {
    throw new Error('cdabench --no-cda made a hypercall');
  };
  const hypercalls = { cda_register: none, cda_unregister: none, cda_begin: none, cda_end: none, cda_abort: none, cda_recover: none };
  const guest = await Guest.create(module, { wasi, hypercalls });
  const code = await guest.run();
  const m = /ns-per-op=(\d+)/.exec(out.text('stderr'));
  if (code !== 0 || !m) throw new Error(`cdabench ${name} failed (${code}): ${out.text('stderr')}`);
  return Number(m[1]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const ops = Number(process.argv[2] ?? 10_000);
  const runs = Number(process.argv[3] ?? 5);
  if (!Number.isInteger(ops) || ops < 10 || ops % 5 !== 0 || !Number.isInteger(runs) || runs < 1 || runs > RUNS_MAX) {
    throw new Error(`usage: report.js [ops (a multiple of 5)] [runs 1..${RUNS_MAX}]`);
  }
  const profile = new Map<string, WorkloadMeasurement>();
  const ts = new Map<string, number[]>();
  const c = new Map<string, number[]>();
  for (let r = 0; r < runs; r++) {
    for (const name of WORKLOAD_NAMES) {
      for (const opt of OPTS) {
        const key = `${name} ${opt}`;
        const m = measureWorkload(name, { opt, ops, timingRuns: 1 });
        profile.set(key, m);
        ts.set(key, [...(ts.get(key) ?? []), m.nsPerOp]);
        c.set(key, [...(c.get(key) ?? []), await guestNsPerOp(name, opt, ops)]);
      }
    }
  }
  const f = (x: number, d = 1): string => x.toFixed(d);
  console.log(`ops=${ops} runs=${runs} (medians)\n`);
  console.log('| workload | OPT | writes/tx | unique pages/tx | bytes written/tx | page bytes/tx | writes/op | pages/op | bytes/op | TS ns/op | C ns/op | elements at end | arena used |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const name of WORKLOAD_NAMES) {
    for (const opt of OPTS) {
      const key = `${name} ${opt}`;
      const m = profile.get(key)!;
      console.log(
        `| ${name} | ${opt} | ${f(m.writesPerTx)} | ${f(m.pagesPerTx, 2)} | ${f(m.bytesPerTx)} | ${f(m.pageBytesPerTx, 0)} | ${f(m.writesPerOp)} | ${f(m.pagesPerOp, 2)} | ${f(m.bytesPerOp)} | ${f(median(ts.get(key)!), 0)} | ${f(median(c.get(key)!), 0)} | ${m.finalCount} | ${m.arenaUsedBytes} |`,
      );
    }
  }
}

await main();
