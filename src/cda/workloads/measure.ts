// The seed's per-transaction numbers for one workload, measured in-process
// through ArenaView's write hook (Table 2: writes and unique pages per
// transaction; Figs. 15-16: data a page tracker commits vs. what a
// word-level (emulation) tracker commits), and the time per operation with
// no hook installed.
import { performance } from 'node:perf_hooks';
import { UnderstudyError } from '../../errors.js';
import { ArenaView } from './arena.js';
import { ARENA_BYTES_DEFAULT, ARENA_PAGE_BYTES, type WorkloadName } from './layout.js';
import { createWorkload, checkArenaBytes } from './factory.js';

/** Timing runs are repeated this many times at most (the median is reported). */
export const TIMING_RUNS_MAX = 15;

export interface MeasureOptions {
  /** Operations per transaction. */
  opt: number;
  /** Operations in all; a multiple of opt. */
  ops: number;
  seed?: number;
  arenaBytes?: number;
  /** Timed runs without the hook (default 3); the median is reported. */
  timingRuns?: number;
}

export interface WorkloadMeasurement {
  workload: WorkloadName;
  opt: number;
  ops: number;
  transactions: number;
  /** Store calls per transaction (a value copy is one store), the cycle counter included. */
  writesPerTx: number;
  /** Bytes stored per transaction: what a word-level (emul) tracker commits, at most. */
  bytesPerTx: number;
  /** Distinct 4 KiB arena pages stored to per transaction. */
  pagesPerTx: number;
  /** pagesPerTx in bytes: what a page tracker commits. */
  pageBytesPerTx: number;
  writesPerOp: number;
  bytesPerOp: number;
  pagesPerOp: number;
  /** Median wall time per operation without a hook, in nanoseconds. */
  nsPerOp: number;
  /** Elements in the structure at the end. */
  finalCount: number;
  /** Arena bytes the allocator had handed out at the end. */
  arenaUsedBytes: number;
}

export function measureWorkload(name: WorkloadName, options: MeasureOptions): WorkloadMeasurement {
  const { opt, ops } = options;
  const arenaBytes = options.arenaBytes ?? ARENA_BYTES_DEFAULT;
  checkArenaBytes(arenaBytes);
  if (!Number.isInteger(opt) || opt < 1 || !Number.isInteger(ops) || ops < opt || ops % opt !== 0) {
    throw new UnderstudyError('ERR_CDA_WORKLOAD_OPTIONS', `operations ${ops} must be a positive multiple of operations per transaction ${opt}`);
  }
  const timingRuns = options.timingRuns ?? 3;
  if (!Number.isInteger(timingRuns) || timingRuns < 1 || timingRuns > TIMING_RUNS_MAX) {
    throw new UnderstudyError('ERR_CDA_WORKLOAD_OPTIONS', `timing runs ${timingRuns} is not in [1, ${TIMING_RUNS_MAX}]`);
  }
  const seedOption = options.seed === undefined ? {} : { seed: options.seed };
  const transactions = ops / opt;

  // Counting run: a page's stamp is the last transaction that stored to it.
  const stamps = new Int32Array(arenaBytes / ARENA_PAGE_BYTES).fill(-1);
  let tx = 0;
  let pages = 0;
  const arena = ArenaView.allocate(arenaBytes, {
    onWrite: (offset, length) => {
      const last = Math.floor((offset + length - 1) / ARENA_PAGE_BYTES);
      for (let p = Math.floor(offset / ARENA_PAGE_BYTES); p <= last; p++) {
        if (stamps[p] !== tx) {
          stamps[p] = tx;
          pages++;
        }
      }
    },
  });
  const w = createWorkload(name, arena, seedOption);
  w.init();
  arena.resetCounters();
  for (tx = 0; tx < transactions; tx++) {
    for (let i = 0; i < opt; i++) w.step();
    w.endCycle();
  }
  const finalCount = w.count;
  const arenaUsedBytes = w.header().bump;

  const times: number[] = [];
  for (let r = 0; r < timingRuns; r++) {
    const plain = ArenaView.allocate(arenaBytes);
    const t = createWorkload(name, plain, seedOption);
    t.init();
    const start = performance.now();
    for (let c = 0; c < transactions; c++) {
      for (let i = 0; i < opt; i++) t.step();
      t.endCycle();
    }
    times.push(((performance.now() - start) * 1e6) / ops);
  }
  times.sort((x, y) => x - y);

  return {
    workload: name,
    opt,
    ops,
    transactions,
    writesPerTx: arena.writes / transactions,
    bytesPerTx: arena.bytesWritten / transactions,
    pagesPerTx: pages / transactions,
    pageBytesPerTx: (pages * ARENA_PAGE_BYTES) / transactions,
    writesPerOp: arena.writes / ops,
    bytesPerOp: arena.bytesWritten / ops,
    pagesPerOp: pages / ops,
    nsPerOp: times[Math.floor(times.length / 2)]!,
    finalCount,
    arenaUsedBytes,
  };
}
