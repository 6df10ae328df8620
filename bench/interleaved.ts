// Tracking overhead of a reactor, measured inside one process: an untracked guest, a second
// untracked guest (the A/A pair: the noise floor), a tracked one and a calibration guest serve the
// same request stream, block by block. Each block of requests is served by every guest in turn
// (balanced orders), so the guests do identical work within ~50 ms of each other: the machine's
// noise, the guest's own garbage collections and the state of its data weigh on them alike.
// Separate runs differ by 10-20 points in their quartiles (each builds its memory on different
// physical pages); here a block's guests are compared with each other, and a run's sums with each
// other.
//
// The tracked guest collects every `--epoch-ms` of its own run time, asked after each request as
// EpochCheckpointer asks (Deadline): the deadline is re-armed with what is left of the epoch
// whenever its block starts, so interleaving does not make its epochs shorter.
//
// Run time alone still varies by a few points between runs of the same guest, so the tracker's
// cost is also accounted from what it does, which varies far less: the guest-thread CPU time of
// its collects, plus its extra minor faults times what a fault costs this guest. That price comes
// from the calibration guest, tracked with hot regions off ("exact"): every page it writes in an
// epoch faults, a few hundred thousand faults a run, so its extra run time less its collects,
// divided by its extra faults, is the cost of one write-protect fault here, with whatever the
// fault leaves behind (cache and TLB misses) included. Faults are the process's minor faults while
// a guest's block runs (a garbage-collector thread's faults fall on whichever guest is running,
// alike for all).
// What this leaves out: the cost of attaching falls in the first blocks and is included; anything
// the tracker costs the rest of the process would weigh on every guest alike and not show (an
// earlier check, phases of collecting and not collecting, found none).
//   node --expose-gc dist/bench/interleaved.js [--workloads kvstore-long,ledger-long] [--runs 3] [--block 5000] [--no-calibrate]
import { parseArgs } from 'node:util';
import type { Guest } from '../src/guest/guest.js';
import { createTracker, type DirtyTracker } from '../src/track/tracker.js';
import { HOT_WRITTEN_MIN_PAGES_DEFAULT } from '../src/track/uffd.js';
import { Deadline } from '../src/util/deadline.js';
import { balancedOrders, machine, median, quartiles, table, threadCpuMs } from './stats.js';
import { LONG_WORKLOADS, WORKLOADS } from './workloads.js';

const { values } = parseArgs({
  options: {
    workloads: { type: 'string', default: 'kvstore-long,ledger-long' },
    runs: { type: 'string', default: '3' },
    block: { type: 'string', default: '5000' },
    'epoch-ms': { type: 'string', default: '20' },
    hot: { type: 'string', default: String(HOT_WRITTEN_MIN_PAGES_DEFAULT) },
    'no-calibrate': { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const blockRequests = Number(values.block);
const epochMs = Number(values['epoch-ms']);
const hot = Number(values.hot);

type Role = 'none' | 'none (A/A)' | 'track wp-async' | 'track exact';
const ROLES: Role[] = values['no-calibrate'] ? ['none', 'none (A/A)', 'track wp-async'] : ['none', 'none (A/A)', 'track wp-async', 'track exact'];
const orders = balancedOrders(ROLES.length);

function minorFaults(): number {
  return process.resourceUsage().minorPageFault;
}

function percent(x: number, digits = 2): string {
  return `${(100 * x).toFixed(digits)} %`;
}

interface Served {
  role: Role;
  guest: Guest;
  tracker: DirtyTracker | null;
  deadline: Deadline;
  /** The tracked guest's own run time since its deadline was last armed for a whole epoch. */
  epochUsedMs: number;
  collects: number;
  cpuMs: number;
  collectCpuMs: number;
  faults: number;
}

/** A role's totals over all runs. */
interface Totals {
  cpuMs: number;
  collectCpuMs: number;
  faults: number;
  collects: number;
  /** Each run's CPU time against the same run's untracked guest. */
  perRun: number[];
}

const rows: (string | number)[][] = [];
for (const name of values.workloads!.split(',')) {
  const reactors = [...WORKLOADS, ...LONG_WORKLOADS].filter((x) => x.requests);
  const w = reactors.find((x) => x.name === name);
  if (!w?.requests) throw new Error(`${name} is not a reactor workload (${reactors.map((x) => x.name).join(', ')})`);
  const { count, request } = w.requests;
  const module = await w.module();
  const ratios = new Map<Role, number[]>(ROLES.map((r) => [r, []]));
  const totals = new Map<Role, Totals>(ROLES.map((r) => [r, { cpuMs: 0, collectCpuMs: 0, faults: 0, collects: 0, perRun: [] }]));
  for (let run = 0; run < runs; run++) {
    // The previous run's guests (and their memories) go before this run's are built.
    (globalThis as { gc?: () => void }).gc?.();
    const served: Served[] = [];
    for (const role of ROLES) {
      const { guest } = await w.create(module);
      const tracked = role.startsWith('track');
      const hotWrittenMinPages = role === 'track exact' ? 0 : hot;
      const tracker = tracked ? createTracker(guest.memory, 'wp-async', { preimageBytesMax: 0, hotWrittenMinPages }) : null;
      served.push({ role, guest, tracker, deadline: Deadline.create(), epochUsedMs: 0, collects: 0, cpuMs: 0, collectCpuMs: 0, faults: 0 });
    }
    for (let start = 0, block = 0; start < count; start += blockRequests, block++) {
      const end = Math.min(count, start + blockRequests);
      const blockMs = new Map<Role, number>();
      for (const i of orders[block % orders.length]!) {
        const s = served[i]!;
        const faults0 = minorFaults();
        const t0 = threadCpuMs();
        // One loop for every guest, so the JIT compiles the same driver code for all of them: an
        // untracked guest's deadline is armed for never, and it asks the flag all the same. (With
        // a loop of its own per kind of guest, the JIT inlined differently in the two, which a perf
        // profile split by block showed, and the tracked guest read 1.5-3 points slower for it.)
        s.deadline.arm(s.tracker ? epochMs - s.epochUsedMs : Infinity);
        let armedAt = t0;
        for (let r = start; r < end; r++) {
          s.guest.request('handle', Buffer.from(request(r)));
          await null; // the microtask turn every driver takes between requests
          if (s.deadline.passed) {
            const c0 = threadCpuMs();
            s.tracker!.collect();
            s.collectCpuMs += threadCpuMs() - c0;
            s.collects++;
            s.deadline.arm(epochMs);
            s.epochUsedMs = 0;
            armedAt = threadCpuMs();
          }
        }
        if (s.tracker) s.epochUsedMs += threadCpuMs() - armedAt;
        const ms = threadCpuMs() - t0;
        s.faults += minorFaults() - faults0;
        blockMs.set(s.role, ms);
        s.cpuMs += ms;
      }
      for (const role of ROLES) ratios.get(role)!.push(blockMs.get(role)! / blockMs.get('none')! - 1);
    }
    const untracked = served.find((s) => s.role === 'none')!;
    for (const s of served) {
      const t = totals.get(s.role)!;
      t.cpuMs += s.cpuMs;
      t.collectCpuMs += s.collectCpuMs;
      t.faults += s.faults;
      t.collects += s.collects;
      t.perRun.push(s.cpuMs / untracked.cpuMs - 1);
      s.tracker?.dispose();
      s.deadline.close();
    }
  }
  const none = totals.get('none')!;
  // The faults of an untracked guest: both untracked guests' mean (which of them runs first in a
  // block, when V8's heap grows, moves a few thousand faults a run between them).
  const untrackedFaults = (none.faults + totals.get('none (A/A)')!.faults) / 2;
  const exact = totals.get('track exact');
  // One write-protect fault's cost to this guest, from the calibration guest (see the top).
  const faultUs = exact ? ((exact.cpuMs - none.cpuMs - exact.collectCpuMs) * 1000) / (exact.faults - untrackedFaults) : NaN;
  for (const role of ROLES) {
    const t = totals.get(role)!;
    const q = quartiles(ratios.get(role)!).map((r) => (100 * r).toFixed(1));
    const tracked = role.startsWith('track');
    const accounted = (t.collectCpuMs + ((t.faults - untrackedFaults) * faultUs) / 1000) / none.cpuMs;
    rows.push([
      name,
      role,
      t.cpuMs.toFixed(0),
      role === 'none' ? '' : percent(t.cpuMs / none.cpuMs - 1),
      role === 'none' ? '' : `${percent(median(ratios.get(role)!))} (${q[0]} … ${q[2]})`,
      role === 'none' ? '' : t.perRun.map((r) => (100 * r).toFixed(1)).join(', '),
      tracked ? String(Math.round(t.collects / runs)) : '',
      tracked ? (t.collectCpuMs / runs).toFixed(1) : '',
      String(Math.round(t.faults / runs)),
      role === 'track wp-async' && exact ? `${percent(accounted)} (${faultUs.toFixed(2)} µs a fault)` : role === 'track exact' ? 'the calibration' : '',
    ]);
  }
}

console.log(
  `machine: ${machine()}; ${runs} runs of each guest, blocks of ${blockRequests} requests in balanced orders, epochs of ${epochMs} ms of the tracked guest's run time, hot >= ${hot}`,
);
console.log(
  table(
    [
      'guest',
      'guest',
      'guest-thread CPU ms (all runs)',
      'against none: sums',
      'median of blocks (quartiles)',
      'each run, %',
      'collects per run',
      'collect CPU ms per run',
      'minor faults per run',
      'accounted: collects + extra faults',
    ],
    rows,
  ),
);
