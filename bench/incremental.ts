// Incremental checkpoints, measured (docs/benchmarks.md, issue "kernel-assisted
// dirty-page tracking"):
//   1. tracking overhead: run time with no tracking, and with each tracker
//      collecting every epoch (no copying), and the whole epoch pipeline;
//   3. bytes per epoch: full pages vs byte-run diff vs diff + compression;
//   4. epoch-length sensitivity: slowdown and delta size at 20..200 ms.
//   node dist/bench/incremental.js [--runs 3] [--workloads heapwalk,kvstore] [--epochs 20,50,100,200]
//                                  [--hot 256,0]   wp-async hot-region thresholds compared (0 = exact)
//                                  [--trackers wp-async,wp-sync,hash]   (default: every supported one)
//                                  [--modes track,epochs]   tracking alone, the whole pipeline (parts 3 and 4 need epochs)
//                                  [--aa]   a second untracked run per round, measured like the others:
//                                           the spread an A/A comparison shows is the noise floor
//                                  [--due timer-thread,clock]   how a tracked run asks whether a collect is
//                                           due after each request: the product's flag (default), or a
//                                           clock read each time (the cost that flag removes)
// With node --expose-gc, the previous run's guest is collected before each run (otherwise a
// garbage collection inside some later run may unmap its memory, and that run pays for it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EpochCheckpointer, type EpochStats } from '../src/checkpoint/epochs.js';
import type { GuestModule } from '../src/guest/module.js';
import { createTracker, probeTrackers, type TrackerKind } from '../src/track/tracker.js';
import { HOT_WRITTEN_MIN_PAGES_DEFAULT } from '../src/track/uffd.js';
import { Deadline, type DeadlinePath } from '../src/util/deadline.js';
import { append, balancedOrders, machine, median, quartiles, table, threadCpuMs } from './stats.js';
import { LONG_WORKLOADS, WORKLOADS, type Workload } from './workloads.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    workloads: { type: 'string', default: WORKLOADS.map((w) => w.name).join(',') },
    epochs: { type: 'string', default: '20,50,100,200' },
    'epoch-ms': { type: 'string', default: '20' },
    hot: { type: 'string', default: `${HOT_WRITTEN_MIN_PAGES_DEFAULT},0` },
    trackers: { type: 'string', default: '' },
    modes: { type: 'string', default: 'track,epochs' },
    aa: { type: 'boolean', default: false },
    due: { type: 'string', default: 'timer-thread' },
  },
});
const runs = Number(values.runs);
const epochMs = Number(values['epoch-ms']);
const sensitivity = values.epochs!.split(',').map(Number);
const wanted = values.trackers ? values.trackers.split(',') : null;
const kinds = probeTrackers()
  .filter((p) => p.supported && (!wanted || wanted.includes(p.kind)))
  .map((p) => p.kind);
// The long variants (several seconds each) are there to be named: a steadier measure of small overheads.
const workloads = [...WORKLOADS, ...LONG_WORKLOADS].filter((w) => values.workloads!.split(',').includes(w.name));

const hots = values.hot!.split(',').map(Number);
const dues = values.due!.split(',') as DeadlinePath[];
for (const d of dues) if (d !== 'timer-thread' && d !== 'clock') throw new Error(`--due: ${d} is neither timer-thread nor clock`);
const withTrack = values.modes!.split(',').includes('track');
const withEpochs = values.modes!.split(',').includes('epochs');
/** `hot`: the wp-async hot-region threshold (undefined: the default, for other trackers). */
type Mode = { kind: 'none'; again?: true } | { kind: 'track'; tracker: TrackerKind; hot?: number; due: DeadlinePath } | { kind: 'epochs'; tracker: TrackerKind; epochMs: number; hot?: number };

interface Result {
  /** Guest-thread busy time (the run time for unpaced workloads). */
  ms: number;
  /** The guest thread's time on a CPU over the run (threadCpuMs). */
  cpuMs: number;
  epochs: EpochStats[];
  collects: number;
  /** The process's minor page faults during the run: the tracker's write faults, and the rest of the process's. */
  minorFaults: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

async function runOnce(w: Workload, module: GuestModule, mode: Mode): Promise<Result> {
  gc?.();
  const { guest, output } = await w.create(module);
  let between = async () => {};
  let collects = 0;
  let ep: EpochCheckpointer | null = null;
  let dispose = () => {};
  let dir = '';
  if (mode.kind === 'track' || mode.kind === 'none') {
    // The untracked run asks too, a deadline armed for never, so both run the same driver code:
    // with a no-op between for the untracked run, the JIT inlined differently in the two, and
    // kvstore-long's tracked runs read ~3 points slower for it (docs/benchmarks.md). What the asking
    // costs alone: bench/due-check.ts.
    const tracker = mode.kind === 'track' ? createTracker(guest.memory, mode.tracker, { preimageBytesMax: 0, hotWrittenMinPages: mode.hot }) : null;
    // Asked after every request, as EpochCheckpointer asks: the way it is asked costs a fast reactor more than its collects.
    const due = Deadline.create(mode.kind === 'track' ? mode.due : dues[0]);
    const periodMs = tracker ? epochMs : Infinity;
    due.arm(periodMs);
    const tick = () => {
      if (due.passed) {
        tracker!.collect();
        collects++;
        due.arm(periodMs);
      }
    };
    if (guest.kind === 'command') guest.onSafePoint(tick);
    between = async () => tick();
    dispose = () => {
      tracker?.dispose();
      due.close();
    };
  } else if (mode.kind === 'epochs') {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'us-bench-inc-'));
    ep = await EpochCheckpointer.start(guest, output, { dir, epochMs: mode.epochMs, tracker: mode.tracker, hotWrittenMinPages: mode.hot });
    between = async () => {
      await ep!.epochIfDue();
    };
  }
  const faults0 = process.resourceUsage().minorPageFault;
  const cpu0 = threadCpuMs();
  const ms = await w.drive(guest, between);
  const cpuMs = threadCpuMs() - cpu0;
  const minorFaults = process.resourceUsage().minorPageFault - faults0;
  await ep?.close();
  dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  return { ms, cpuMs, epochs: ep?.epochs ?? [], collects, minorFaults };
}

/** The untracked run every other run of its round is compared with. */
const isBase = (m: Mode) => m.kind === 'none' && !m.again;

function label(m: Mode): string {
  const hot = m.kind === 'none' || m.hot === undefined || hots.length < 2 ? '' : m.hot === 0 ? ' exact' : ` hot≥${m.hot}`;
  return m.kind === 'none' ? (m.again ? 'none (A/A)' : 'none') : m.kind === 'track' ? `track ${m.tracker}${hot}${dues.length > 1 ? ` due:${m.due}` : ''}` : `epochs ${m.tracker}${hot} @${m.epochMs}ms`;
}

/** One mode per tracker, and per hot threshold for wp-async (the first threshold is the reference). */
function variants<M extends Mode>(make: (k: TrackerKind, hot?: number) => M): M[] {
  return kinds.flatMap((k) => (k === 'wp-async' ? hots.map((h) => make(k, h)) : [make(k)]));
}

const overheadRows: (string | number)[][] = [];
const bytesRows: (string | number)[][] = [];
const sensRows: (string | number)[][] = [];
const mib = (n: number) => (n / 2 ** 20).toFixed(2);
for (const w of workloads) {
  const module = await w.module();
  const modes: Mode[] = [
    { kind: 'none' },
    ...(values.aa ? [{ kind: 'none' as const, again: true as const }] : []),
    ...(withTrack ? dues.flatMap((due) => variants((tracker, hot) => ({ kind: 'track' as const, tracker, hot, due }))) : []),
    ...(withEpochs ? variants((tracker, hot) => ({ kind: 'epochs' as const, tracker, epochMs, hot })) : []),
  ];
  const refHot = kinds[0] === 'wp-async' ? hots[0] : undefined;
  if (withEpochs) for (const e of sensitivity) if (e !== epochMs) modes.push({ kind: 'epochs', tracker: kinds[0]!, epochMs: e, hot: refHot });
  const times = new Map<string, number[]>();
  // Each run against the baseline of its own round: drift between rounds cancels.
  const paired = new Map<string, number[]>();
  const cpuTimes = new Map<string, number[]>();
  const cpuPaired = new Map<string, number[]>();
  const faults = new Map<string, number[]>();
  const last = new Map<string, Result>();
  // Interleave modes within each round so drift on a shared machine hits all alike, in balanced
  // orders so that no mode runs first, or right after a given other, more often than the rest.
  const orders = balancedOrders(modes.length);
  for (let r = 0; r < runs; r++) {
    const round = orders[r % orders.length]!.map((i) => modes[i]!);
    const results = new Map<Mode, Result>();
    for (const m of round) results.set(m, await runOnce(w, module, m));
    const base = results.get(modes[0]!)!;
    for (const m of modes) {
      const res = results.get(m)!;
      append(times, label(m), res.ms);
      append(paired, label(m), res.ms / base.ms - 1);
      append(cpuTimes, label(m), res.cpuMs);
      append(cpuPaired, label(m), res.cpuMs / base.cpuMs - 1);
      append(faults, label(m), res.minorFaults);
      last.set(label(m), res);
    }
  }
  const base = median(times.get('none')!);
  for (const m of modes.filter((m) => m.kind !== 'epochs' || m.epochMs === epochMs)) {
    const t = median(times.get(label(m))!);
    const res = last.get(label(m))!;
    const pauses = res.epochs.map((e) => e.pauseMs);
    const q = quartiles(paired.get(label(m))!).map((x) => (100 * x).toFixed(1));
    const qc = quartiles(cpuPaired.get(label(m))!).map((x) => (100 * x).toFixed(1));
    overheadRows.push([
      w.name,
      label(m),
      t.toFixed(0),
      `${(((t - base) / base) * 100).toFixed(1)} %`,
      isBase(m) ? '' : `${q[1]} % (${q[0]} … ${q[2]})`,
      median(cpuTimes.get(label(m))!).toFixed(0),
      isBase(m) ? '' : `${qc[1]} % (${qc[0]} … ${qc[2]})`,
      m.kind === 'none' ? '' : String(m.kind === 'track' ? res.collects : res.epochs.length),
      pauses.length ? median(pauses).toFixed(2) : '',
      median(faults.get(label(m))!).toFixed(0),
    ]);
  }
  if (!withEpochs) continue;
  const ref = last.get(label({ kind: 'epochs', tracker: kinds[0]!, epochMs, hot: refHot }))!;
  const sum = (f: (e: EpochStats) => number) => ref.epochs.reduce((n, e) => n + f(e), 0) / Math.max(1, ref.epochs.length);
  const full = sum((e) => e.listedPages * 4096);
  const changed = sum((e) => (e.listedPages - e.counts.unchanged) * 4096);
  const diff = sum((e) => e.counts.bytes);
  const stored = sum((e) => e.storedBytes);
  bytesRows.push([w.name, String(ref.epochs.length), mib(full), mib(changed), mib(diff), mib(stored), `${(full / Math.max(1, stored)).toFixed(1)}x`]);
  for (const e of sensitivity) {
    const m: Mode = { kind: 'epochs', tracker: kinds[0]!, epochMs: e, hot: refHot };
    const t = median(times.get(label(m))!);
    const res = last.get(label(m))!;
    const per = res.epochs.reduce((n, x) => n + x.storedBytes, 0) / Math.max(1, res.epochs.length);
    const total = res.epochs.reduce((n, x) => n + x.storedBytes, 0);
    sensRows.push([w.name, e, t.toFixed(0), `${(((t - base) / base) * 100).toFixed(1)} %`, res.epochs.length, mib(per), mib(total)]);
  }
}
console.log(`machine: ${machine()}; medians of ${runs} interleaved rounds in balanced orders${gc ? ', garbage collected before each run' : ''}; epoch ${epochMs} ms unless stated; trackers: ${kinds.join(', ')}\n`);
console.log('### 1. Tracking overhead\n');
console.log(table(['guest', 'mode', 'busy ms', 'slowdown', 'paired slowdown, median (quartiles)', 'guest-thread CPU ms', 'paired CPU-time slowdown, median (quartiles)', 'epochs', 'median pause ms', 'minor faults (process)'], overheadRows));
if (!withEpochs) process.exit(0);
console.log('\n### 3. Bytes per epoch (mean)\n');
console.log(table(['guest', 'epochs', 'dirty pages MiB', 'changed pages MiB', 'byte-run diff MiB', 'diff + compression MiB', 'full / stored'], bytesRows));
console.log(`\n### 4. Epoch-length sensitivity (${kinds[0]})\n`);
console.log(table(['guest', 'epoch ms', 'busy ms', 'slowdown', 'epochs', 'stored MiB per epoch', 'stored MiB total'], sensRows));
