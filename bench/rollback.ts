// In-memory rollback, measured (docs/benchmarks.md, issue "rollback"):
//   1. faults and checkpoint size per epoch: COWB, COWP, COWB+Histase, COWP+Histase at 50 and
//      1,000 ms (seed 003 Tables 3 and 4), with Histase's recall and precision (seed 002 Fig. 12);
//   2. run-time overhead against the unprotected guest at 50, 200, 600, 1,000 ms (seed 003 Fig. 8),
//      with the faults and the pause per epoch that explain it;
//   3. recovery time against the number of pages restored;
//   4. where the log's job runs (in the pause or beside the guest), COWP at 50 ms;
//   5. collect: full checkpoints written while the guest runs (seed 003 §3.1), against stopping it;
//   6. unit costs on this machine, for the arithmetic of what an epoch must cost.
//   node dist/bench/rollback.js [--runs 3] [--workloads heapwalk-long,...] [--parts 1,2,3,4,5] [--epochs 50,200,600,1000]
//                               [--configs COWP+dense,...]   (part 2's strategies; default the five)
// The default workloads are the long ones (bench/workloads.ts), so that 1,000 ms epochs come
// several to a run.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { GuestModule } from '../src/guest/module.js';
import { writeFullCheckpoint } from '../src/checkpoint/snapshot.js';
import { RollbackEngine, type CowStrategy, type RollbackEpochStats, type RollbackOptions } from '../src/rollback/engine.js';
import { tempDir } from '../src/testing/fixtures.js';
import { createTracker } from '../src/track/tracker.js';
import { DENSE_REGION_MIN_PAGES_DEFAULT } from '../src/track/uffd.js';
import { append, machine, median, quartiles, table } from './stats.js';
import { LONG_WORKLOADS, WORKLOADS, type Workload } from './workloads.js';

const ALL = [...LONG_WORKLOADS, ...WORKLOADS];
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    workloads: { type: 'string', default: LONG_WORKLOADS.map((w) => w.name).join(',') },
    parts: { type: 'string', default: '1,2,3,4,5,6' },
    epochs: { type: 'string', default: '50,200,600,1000' },
    configs: { type: 'string', default: 'COWB,COWP,COWP+Histase,COWP+dense,COWP+Histase+dense' },
  },
});
const runs = Number(values.runs);
const parts = values.parts!.split(',').map(Number);
const epochList = values.epochs!.split(',').map(Number);
const workloads = values.workloads!.split(',').map((n) => {
  const w = ALL.find((x) => x.name === n);
  if (!w) throw new Error(`no workload ${n}; have ${ALL.map((x) => x.name).join(', ')}`);
  return w;
});

interface Config {
  name: string;
  strategy: CowStrategy;
  histase: boolean;
  /** RollbackOptions.denseRegionMinPages: 0 is the seeds' prediction alone. */
  dense: number;
}
// The seeds' four (COWP predicts exactly the pages written last epoch, H_i), then COWP with dense
// regions (the default: a region of which 64+ pages were written is pre-saved whole).
const CONFIGS: Config[] = [
  { name: 'COWB', strategy: 'cowb', histase: false, dense: 0 },
  { name: 'COWP', strategy: 'cowp', histase: false, dense: 0 },
  { name: 'COWB+Histase', strategy: 'cowb', histase: true, dense: 0 },
  { name: 'COWP+Histase', strategy: 'cowp', histase: true, dense: 0 },
  { name: 'COWP+dense', strategy: 'cowp', histase: false, dense: DENSE_REGION_MIN_PAGES_DEFAULT },
  { name: 'COWP+Histase+dense', strategy: 'cowp', histase: true, dense: DENSE_REGION_MIN_PAGES_DEFAULT },
];
function config(name: string): Config {
  const c = CONFIGS.find((x) => x.name === name);
  if (!c) throw new Error(`no configuration ${name}; have ${CONFIGS.map((x) => x.name).join(', ')}`);
  return c;
}

interface Run {
  ms: number;
  /** CPU time of the whole process (every thread: guest, fault handler, GC) during the run. */
  cpuMs: number;
  epochs: RollbackEpochStats[];
  stats: Record<string, number>;
}

/** Runs `drive` and measures the process's CPU time (all threads) alongside. */
async function timed(drive: () => Promise<number>): Promise<{ ms: number; cpuMs: number }> {
  const c0 = process.cpuUsage();
  const ms = await drive();
  const c = process.cpuUsage(c0);
  return { ms, cpuMs: (c.user + c.system) / 1000 };
}

async function runOnce(w: Workload, module: GuestModule, cfg: Config | null, epochMs: number, extra: Partial<RollbackOptions> = {}): Promise<Run> {
  const { guest, output } = await w.create(module);
  if (!cfg) return { ...(await timed(() => w.drive(guest, async () => undefined))), epochs: [], stats: {} };
  const engine = RollbackEngine.attach(guest, output, { epochMs, strategy: cfg.strategy, histase: cfg.histase, denseRegionMinPages: cfg.dense, ...extra });
  try {
    if (guest.kind === 'command') guest.onSafePoint(() => void engine.checkpointIfDue());
    const t = await timed(() => w.drive(guest, async () => void engine.checkpointIfDue()));
    // Close the last (partial) epoch for the counts: its faults and pre-images.
    engine.finish();
    return { ...t, epochs: engine.epochs, stats: engine.stats() };
  } finally {
    await engine.close();
  }
}

const avg = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const f1 = (x: number): string => x.toFixed(1);
const pct = (x: number, base: number): string => `${(100 * (x / base - 1)).toFixed(1)} %`;

console.log(`# rollback benchmarks — ${machine()}, load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')} at the start\n`);
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
  const rows: (string | number)[][] = [];
  const pairedRows: (string | number)[][] = [];
  const detail: (string | number)[][] = [];
  for (const w of workloads) {
    const module = modules.get(w.name)!;
    const cfgs = values.configs!.split(',').map(config);
    const times = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    // Each run against its own round's baseline: the machine's drift between rounds cancels.
    const paired = new Map<string, number[]>();
    const seen = new Map<string, { faults: number[]; pause: number[]; pauseTotal: number[]; epochs: number[] }>();
    for (let i = 0; i < runs; i++) {
      // Interleaved: every configuration once per round, the baseline first.
      const push = (k: string, r: Run): void => {
        append(times, k, r.ms);
        append(cpu, k, r.cpuMs);
      };
      const base = await runOnce(w, module, null, 0);
      push('base', base);
      for (const e of epochList) {
        for (const c of cfgs) {
          const r = await runOnce(w, module, c, e);
          const key = `${c.name}@${e}`;
          push(key, r);
          append(paired, key, r.ms / base.ms - 1);
          const d = seen.get(key) ?? seen.set(key, { faults: [], pause: [], pauseTotal: [], epochs: [] }).get(key)!;
          const eps = r.epochs.slice(0, -1); // whole epochs (the last is cut short and takes no pause)
          d.faults.push(avg(r.epochs.map((x) => x.faults)));
          d.pause.push(median(eps.length ? eps.map((x) => x.pauseMs) : [0]));
          d.pauseTotal.push(eps.reduce((a, x) => a + x.pauseMs, 0));
          d.epochs.push(r.epochs.length);
        }
      }
    }
    const base = median(times.get('base')!);
    const baseCpu = median(cpu.get('base')!);
    for (const c of cfgs) {
      rows.push([w.name, c.name, f1(base), ...epochList.map((e) => pct(median(times.get(`${c.name}@${e}`)!), base))]);
      for (const e of epochList) {
        const q = quartiles(paired.get(`${c.name}@${e}`)!);
        pairedRows.push([w.name, c.name, e, `${(100 * q[1]).toFixed(1)} %`, `${(100 * q[0]).toFixed(1)} … ${(100 * q[2]).toFixed(1)} %`]);
        const d = seen.get(`${c.name}@${e}`)!;
        detail.push([
          w.name,
          c.name,
          e,
          median(d.epochs),
          f1(median(d.faults)),
          median(d.pause).toFixed(2),
          // The part of the overhead measured directly, with little noise: the guest stopped in pauses.
          `${f1((100 * median(d.pauseTotal)) / base)} %`,
          pct(median(times.get(`${c.name}@${e}`)!), base),
          pct(median(cpu.get(`${c.name}@${e}`)!), baseCpu),
        ]);
      }
    }
  }
  console.log(`\n## 2. Run-time overhead against the unprotected guest (median of ${runs}, interleaved)\n`);
  console.log(table(['guest', 'strategy', 'baseline ms', ...epochList.map((e) => `${e} ms`)], rows));
  console.log('\n## 2b. What explains it: epochs, faults per epoch, median pause per epoch (medians over the runs)\n');
  console.log(table(['guest', 'strategy', 'epoch ms', 'epochs', 'faults / epoch', 'pause ms', 'all pauses / baseline', 'overhead (run time)', 'overhead (CPU time, all threads)'], detail));
  console.log(`\n## 2c. Paired: each run against the baseline of its own round (${runs} rounds), median and quartiles\n`);
  console.log(table(['guest', 'strategy', 'epoch ms', 'overhead, median', 'quartiles'], pairedRows));
}

if (parts.includes(3)) {
  const w = WORKLOADS.find((x) => x.name === 'kvstore')!;
  const module = await w.module();
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
    rows.push([n, median(ms).toFixed(2), Math.min(...ms).toFixed(2), Math.max(...ms).toFixed(2)]);
  }
  console.log('\n## 3. Recovery time (in-place rollback of memory, vCPU, device) against pages restored, kvstore (35 MiB, 8,880 pages)\n');
  console.log(table(['pages restored', 'median ms', 'min ms', 'max ms'], rows));
}

if (parts.includes(4)) {
  const rows: (string | number)[][] = [];
  for (const w of workloads) {
    const module = modules.get(w.name)!;
    const t = { base: [] as Run[], pause: [] as Run[], background: [] as Run[] };
    for (let i = 0; i < runs; i++) {
      t.base.push(await runOnce(w, module, null, 0));
      t.pause.push(await runOnce(w, module, config('COWP+dense'), 50, { jobIn: 'pause' }));
      t.background.push(await runOnce(w, module, config('COWP+dense'), 50, { jobIn: 'background' }));
    }
    const base = median(t.base.map((r) => r.ms));
    const baseCpu = median(t.base.map((r) => r.cpuMs));
    for (const where of ['pause', 'background'] as const) {
      const rs = t[where];
      const eps = rs.map((r) => r.epochs.slice(0, -1));
      rows.push([
        w.name,
        where,
        pct(median(rs.map((r) => r.ms)), base),
        pct(median(rs.map((r) => r.cpuMs)), baseCpu),
        f1(median(rs.map((r) => avg(r.epochs.map((e) => e.faults))))),
        median(eps.map((e) => median(e.length ? e.map((x) => x.pauseMs) : [0]))).toFixed(2),
        f1(median(rs.map((r) => r.stats.jobNsTotal! / 1e6 / Math.max(1, r.epochs.length)))),
        f1(median(rs.map((r) => r.stats.jobChases! / Math.max(1, r.epochs.length)))),
      ]);
    }
  }
  console.log(`\n## 4. Where the log's job runs, COWP at 50 ms (median of ${runs}, interleaved)\n`);
  console.log(table(['guest', 'job runs in', 'overhead (run time)', 'overhead (CPU time)', 'faults / epoch', 'pause ms', 'job ms / epoch', 'chases / epoch'], rows));
}

if (parts.includes(5)) {
  const rows: (string | number)[][] = [];
  for (const w of workloads) {
    const module = modules.get(w.name)!;
    const dir = tempDir('bench-collect');
    const t = { plain: [] as number[], collect: [] as number[] };
    let last: import('../src/rollback/collect.js').CollectedCheckpoint[] = [];
    let stopped: { pauseMs: number } | null = null;
    for (let i = 0; i < runs; i++) {
      t.plain.push((await runOnce(w, module, config('COWP+dense'), 50)).ms);
      const { guest, output } = await w.create(module);
      const engine = RollbackEngine.attach(guest, output, { epochMs: 50, strategy: 'cowp', collect: { dir: path.join(dir, String(i)), everyMs: 1000, keep: 2 } });
      try {
        if (guest.kind === 'command') guest.onSafePoint(() => void engine.checkpointIfDue());
        t.collect.push(await w.drive(guest, async () => void engine.checkpointIfDue()));
        await engine.drainCollect();
        last = engine.collector!.written;
      } finally {
        await engine.close();
      }
      if (i === 0) {
        // The same guest stopped for a full checkpoint once, 1,000 ms in (what collect avoids).
        const { guest: g2, output: o2 } = await w.create(module);
        const started = performance.now();
        const once = (): void => {
          if (stopped || performance.now() - started < 1000) return;
          const t0 = performance.now();
          writeFullCheckpoint(path.join(dir, 'stopped.usck'), { guest: g2, output: o2, sequence: 1 });
          stopped = { pauseMs: performance.now() - t0 };
        };
        if (g2.kind === 'command') g2.onSafePoint(once);
        await w.drive(g2, async () => once());
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
    rows.push([
      w.name,
      last.length,
      f1(median(last.map((c) => c.fileBytes / 2 ** 20))),
      median(last.map((c) => c.startPauseMs)).toFixed(2),
      f1(median(last.map((c) => c.scan.copyMs))),
      f1(median(last.map((c) => c.scan.mergeMs))),
      median(last.map((c) => c.scan.epochs)),
      median(last.map((c) => c.scan.mergedPages)),
      f1(median(last.map((c) => c.writeMs))),
      f1(median(last.map((c) => c.durableAfterMs))),
      pct(median(t.collect), median(t.plain)),
      stopped ? f1((stopped as { pauseMs: number }).pauseMs) : '-',
    ]);
  }
  console.log(`\n## 5. collect: a full checkpoint every 1,000 ms while the guest runs (COWP, 50 ms epochs; medians over the collects of the last of ${runs} runs)\n`);
  console.log(table(['guest', 'collects', 'file MiB', 'pause added ms', 'scan copy ms', 'merge ms', 'epochs spanned', 'pages merged', 'write ms (worker)', 'instant to durable ms', 'run time against COWP alone', 'stopped-guest checkpoint: pause ms'], rows));
}

if (parts.includes(6)) {
  // A 35 MiB memory, every page present; N = 8,000 pages written once each, one byte per page.
  const memory = new WebAssembly.Memory({ initial: 560 });
  const mem = new Uint8Array(memory.buffer);
  const pages = mem.length / 4096;
  for (let p = 0; p < pages; p++) mem[p * 4096] = 1;
  const n = 8000;
  const perWrite = (f: () => void): number => {
    const t0 = performance.now();
    f();
    return (1000 * (performance.now() - t0)) / n;
  };
  const rows: (string | number)[][] = [];
  const samples = (k: number, f: () => number): number => median(Array.from({ length: k }, f));
  rows.push(['a first write, no tracking', samples(5, () => perWrite(() => { for (let p = 0; p < n; p++) mem[p * 4096 + 1]! ^= 1; })).toFixed(3)]);
  for (const [kind, faults] of [['wp-async', 'thread'], ['wp-sync', 'thread'], ['wp-sync', 'signal']] as const) {
    // wp-async without hot regions: the unit is one kernel-resolved fault per page.
    const t = createTracker(memory, kind, { faults, hotWrittenMinPages: 0 });
    try {
      let unprotect = 0;
      const us = samples(5, () => {
        const s0 = t.stats();
        const r = perWrite(() => { for (let p = 0; p < n; p++) mem[p * 4096 + 2]! ^= 1; });
        const s1 = t.stats();
        if (kind === 'wp-sync') unprotect = (s1.faultUnprotectNsTotal! - s0.faultUnprotectNsTotal!) / 1000 / n;
        t.collect();
        return r;
      });
      const how = kind === 'wp-async' ? 'fault resolved in the kernel' : faults === 'thread' ? 'fault served by the handler thread, pre-image copied' : 'fault served by a SIGBUS handler on the writing thread, pre-image copied';
      rows.push([`a first write, ${kind} (${how})`, us.toFixed(2)]);
      if (kind === 'wp-sync') rows.push(['  of which the un-protect ioctl', unprotect.toFixed(2)]);
    } finally {
      t.dispose();
    }
  }
  const store = new Uint8Array(n * 4096);
  rows.push(['copy 4 KiB (memory to a reused buffer)', samples(5, () => perWrite(() => { for (let p = 0; p < n; p++) store.set(mem.subarray(p * 4096, p * 4096 + 4096), p * 4096); })).toFixed(2)]);
  const t = createTracker(memory, 'wp-sync', { faults: 'signal' });
  try {
    for (const [label, stride] of [['contiguous', 1], ['scattered (stride 3)', 3]] as const) {
      const k = Math.floor(pages / stride);
      const v = samples(5, () => {
        for (let i = 0; i < k; i++) mem[i * stride * 4096 + 3]! ^= 1;
        const s0 = t.stats();
        const sealed = t.seal(false, undefined, 'pause');
        const s1 = t.stats();
        t.release(sealed.log);
        return (s1.sealProtectNsTotal! - s0.sealProtectNsTotal!) / 1000 / k;
      });
      rows.push([`seal: re-protect per page written, ${label}, ${k} pages`, v.toFixed(2)]);
    }
    for (const [label, stride] of [['contiguous', 1], ['scattered (stride 3)', 3]] as const) {
      const k = Math.floor(pages / stride);
      let prev: number | null = null;
      const v = samples(5, () => {
        for (let i = 0; i < k; i++) mem[i * stride * 4096 + 4]! ^= 1;
        const s0 = t.stats();
        const sealed = t.seal(true, undefined, 'pause');
        const s1 = t.stats();
        if (prev !== null) t.release(prev);
        prev = sealed.log;
        return (s1.jobNsTotal! - s0.jobNsTotal!) / 1000 / k;
      });
      rows.push([`COWP job in the pause per page (in place: compare, copy on two threads; nothing to protect), ${label}`, v.toFixed(2)]);
    }
  } finally {
    t.dispose();
  }
  console.log('\n## 6. Unit costs on this machine (µs, median of 5; 35 MiB memory, 8,000 pages)\n');
  console.log(table(['operation', 'µs per page'], rows));
}
