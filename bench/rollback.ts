// In-memory rollback, measured (docs/benchmarks.md, issue "rollback"):
//   1. faults and checkpoint size per epoch: COWB, COWP, COWB+Histase, COWP+Histase at 50 and
//      1,000 ms (seed 003 Tables 3 and 4), with Histase's recall and precision (seed 002 Fig. 12);
//   2. run-time overhead against the unprotected guest at 50, 200, 600, 1,000 ms (seed 003 Fig. 8);
//   3. recovery time against the number of pages restored.
//   node dist/bench/rollback.js [--runs 3] [--workloads heapwalk,primes,kvstore,ledger] [--parts 1,2,3]
import { parseArgs } from 'node:util';
import type { GuestModule } from '../src/guest/module.js';
import { RollbackEngine, type CowStrategy, type RollbackEpochStats } from '../src/rollback/engine.js';
import { machine, median, table } from './stats.js';
import { WORKLOADS, type Workload } from './workloads.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    workloads: { type: 'string', default: 'heapwalk,primes,kvstore,ledger' },
    parts: { type: 'string', default: '1,2,3' },
  },
});
const runs = Number(values.runs);
const parts = values.parts!.split(',').map(Number);
const workloads = WORKLOADS.filter((w) => values.workloads!.split(',').includes(w.name));

interface Config {
  name: string;
  strategy: CowStrategy;
  histase: boolean;
}
const CONFIGS: Config[] = [
  { name: 'COWB', strategy: 'cowb', histase: false },
  { name: 'COWP', strategy: 'cowp', histase: false },
  { name: 'COWB+Histase', strategy: 'cowb', histase: true },
  { name: 'COWP+Histase', strategy: 'cowp', histase: true },
];

interface Run {
  ms: number;
  epochs: RollbackEpochStats[];
  stats: Record<string, number>;
}

async function runOnce(w: Workload, module: GuestModule, cfg: Config | null, epochMs: number): Promise<Run> {
  const { guest, output } = await w.create(module);
  if (!cfg) return { ms: await w.drive(guest, async () => undefined), epochs: [], stats: {} };
  const engine = RollbackEngine.attach(guest, output, { epochMs, strategy: cfg.strategy, histase: cfg.histase });
  try {
    if (guest.kind === 'command') guest.onSafePoint(() => void engine.checkpointIfDue());
    const ms = await w.drive(guest, async () => void engine.checkpointIfDue());
    // Close the last (partial) epoch for the counts: its faults and pre-images.
    engine.finish();
    return { ms, epochs: engine.epochs, stats: engine.stats() };
  } finally {
    engine.dispose();
  }
}

const avg = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const f1 = (x: number): string => x.toFixed(1);

console.log(`# rollback benchmarks — ${machine()}\n`);
const modules = new Map<string, GuestModule>();
for (const w of workloads) modules.set(w.name, await w.module());

if (parts.includes(1)) {
  const rows: (string | number)[][] = [];
  const hist: (string | number)[][] = [];
  for (const epochMs of [50, 1000]) {
    for (const cfg of CONFIGS) {
      const row: (string | number)[] = [cfg.name, epochMs];
      for (const w of workloads) {
        const r = await runOnce(w, modules.get(w.name)!, cfg, epochMs);
        // Every epoch, the last (cut short by the end of the run) included; and the run's total
        // faults, which compares strategies on the same work (epochs differ in work done when a
        // strategy slows the guest).
        const eps = r.epochs;
        const total = eps.reduce((a, e) => a + e.faults, 0);
        row.push(`${f1(avg(eps.map((e) => e.faults)))} / ${f1(avg(eps.map((e) => e.pages)))} (${eps.length}; ${total})`);
        if (cfg.histase && epochMs === 50) {
          const pw = r.stats.predictedWrittenTotal!, pu = r.stats.predictedUnwrittenTotal!, dirty = r.stats.dirtyPagesTotal!;
          hist.push([cfg.name, w.name, dirty, pw + pu, pw, dirty ? `${((100 * pw) / dirty).toFixed(1)} %` : '-', pw + pu ? `${((100 * pw) / (pw + pu)).toFixed(1)} %` : '-']);
        }
      }
      rows.push(row);
    }
  }
  console.log('## 1. Faults / pages per epoch (epochs; total faults of the run)\n');
  console.log(table(['strategy', 'epoch ms', ...workloads.map((w) => w.name)], rows));
  console.log('\n## 1b. Prediction at 50 ms: recall = predicted and written / written; precision = predicted and written / predicted\n');
  console.log(table(['strategy', 'guest', 'pages written', 'predicted', 'predicted and written', 'recall', 'precision'], hist));
}

if (parts.includes(2)) {
  const epochsMs = [50, 200, 600, 1000];
  const rows: (string | number)[][] = [];
  for (const w of workloads) {
    const module = modules.get(w.name)!;
    const cfgs = [CONFIGS[0]!, CONFIGS[1]!, CONFIGS[3]!];
    const times = new Map<string, number[]>();
    for (let i = 0; i < runs; i++) {
      // Interleaved: every configuration once per round, the baseline first.
      const push = (k: string, ms: number): void => void (times.get(k) ?? times.set(k, []).get(k)!).push(ms);
      push('base', (await runOnce(w, module, null, 0)).ms);
      for (const e of epochsMs) for (const c of cfgs) push(`${c.name}@${e}`, (await runOnce(w, module, c, e)).ms);
    }
    const base = median(times.get('base')!);
    for (const c of cfgs) {
      rows.push([w.name, c.name, f1(base), ...epochsMs.map((e) => `${(100 * (median(times.get(`${c.name}@${e}`)!) / base - 1)).toFixed(1)} %`)]);
    }
  }
  console.log(`\n## 2. Run-time overhead against the unprotected guest (median of ${runs}, interleaved)\n`);
  console.log(table(['guest', 'strategy', 'baseline ms', ...epochsMs.map((e) => `${e} ms`)], rows));
}

if (parts.includes(3)) {
  const w = WORKLOADS.find((x) => x.name === 'kvstore')!;
  const module = modules.get('kvstore') ?? (await w.module());
  const rows: (string | number)[][] = [];
  for (const n of [10, 100, 1000, 4000, 8000]) {
    const ms: number[] = [];
    for (let i = 0; i < Math.max(3, runs); i++) {
      const { guest, output } = await w.create(module);
      const engine = RollbackEngine.attach(guest, output, { epochMs: 1e9, strategy: 'cowb' });
      try {
        const mem = new Uint8Array(guest.memory.buffer);
        const pages = mem.length / 4096;
        if (n > pages) throw new Error(`memory has only ${pages} pages`);
        const stride = Math.floor(pages / n);
        for (let k = 0; k < n; k++) mem[k * stride * 4096 + 100] = mem[k * stride * 4096 + 100]! ^ 0xff;
        const report = engine.recover('bench', 'newest')!;
        if (report.pagesRestored !== n) throw new Error(`restored ${report.pagesRestored}, expected ${n}`);
        ms.push(report.recoveryMs);
      } finally {
        engine.dispose();
      }
    }
    rows.push([n, (median(ms)).toFixed(2), Math.min(...ms).toFixed(2), Math.max(...ms).toFixed(2)]);
  }
  console.log('\n## 3. Recovery time (in-place rollback of memory, vCPU, device) against pages restored, kvstore (35 MiB, 8,880 pages)\n');
  console.log(table(['pages restored', 'median ms', 'min ms', 'max ms'], rows));
}
