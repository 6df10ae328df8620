// Tracking overhead of a reactor, measured inside one process: an untracked guest, a second
// untracked guest (the A/A pair: the noise floor) and a tracked one serve the same request stream,
// block by block. Each block of requests is served by every guest in turn (balanced orders), so
// the guests do identical work within ~50 ms of each other: the machine's noise, the guest's own
// garbage collections and the state of its data weigh on them alike. Separate runs differ by
// 10-20 points in their quartiles (each builds its memory on different physical pages); here a
// block's guests are compared with each other, and a run's sums with each other.
//
// The tracked guest collects every `--epoch-ms` of its own run time, asked after each request as
// EpochCheckpointer asks (Deadline): the deadline is re-armed with what is left of the epoch
// whenever its block starts, so interleaving does not make its epochs shorter.
// What this leaves out: the cost of attaching falls in the first blocks and is included; anything
// the tracker costs the rest of the process would weigh on every guest alike and not show (an
// earlier check, phases of collecting and not collecting, found none).
//   node dist/bench/interleaved.js [--workloads kvstore-long,ledger-long] [--runs 3] [--block 5000]
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
  },
});
const runs = Number(values.runs);
const blockRequests = Number(values.block);
const epochMs = Number(values['epoch-ms']);
const hot = Number(values.hot);

type Role = 'none' | 'none (A/A)' | 'track wp-async';
const ROLES: Role[] = ['none', 'none (A/A)', 'track wp-async'];
const orders = balancedOrders(ROLES.length);

interface Served {
  role: Role;
  guest: Guest;
  tracker: DirtyTracker | null;
  deadline: Deadline | null;
  /** The tracked guest's own run time since its deadline was last armed for a whole epoch. */
  epochUsedMs: number;
  collects: number;
  cpuMs: number;
}

const rows: (string | number)[][] = [];
for (const name of values.workloads!.split(',')) {
  const reactors = [...WORKLOADS, ...LONG_WORKLOADS].filter((x) => x.requests);
  const w = reactors.find((x) => x.name === name);
  if (!w?.requests) throw new Error(`${name} is not a reactor workload (${reactors.map((x) => x.name).join(', ')})`);
  const { count, request } = w.requests;
  const module = await w.module();
  const ratios = new Map<Role, number[]>(ROLES.map((r) => [r, []]));
  const sums = new Map<Role, number>(ROLES.map((r) => [r, 0]));
  let collects = 0;
  for (let run = 0; run < runs; run++) {
    const served: Served[] = [];
    for (const role of ROLES) {
      const { guest } = await w.create(module);
      const tracked = role.startsWith('track');
      const tracker = tracked ? createTracker(guest.memory, 'wp-async', { preimageBytesMax: 0, hotWrittenMinPages: hot }) : null;
      served.push({ role, guest, tracker, deadline: tracked ? Deadline.create() : null, epochUsedMs: 0, collects: 0, cpuMs: 0 });
    }
    for (let start = 0, block = 0; start < count; start += blockRequests, block++) {
      const end = Math.min(count, start + blockRequests);
      const blockMs = new Map<Role, number>();
      for (const i of orders[block % orders.length]!) {
        const s = served[i]!;
        const t0 = threadCpuMs();
        if (s.deadline) {
          s.deadline.arm(epochMs - s.epochUsedMs);
          let armedAt = t0;
          for (let r = start; r < end; r++) {
            s.guest.request('handle', Buffer.from(request(r)));
            await null; // the microtask turn every driver takes between requests
            if (s.deadline.passed) {
              s.tracker!.collect();
              s.collects++;
              s.deadline.arm(epochMs);
              s.epochUsedMs = 0;
              armedAt = threadCpuMs();
            }
          }
          s.epochUsedMs += threadCpuMs() - armedAt;
        } else {
          for (let r = start; r < end; r++) {
            s.guest.request('handle', Buffer.from(request(r)));
            await null;
          }
        }
        const ms = threadCpuMs() - t0;
        blockMs.set(s.role, ms);
        s.cpuMs += ms;
      }
      for (const role of ROLES) ratios.get(role)!.push(blockMs.get(role)! / blockMs.get('none')! - 1);
    }
    for (const s of served) {
      sums.set(s.role, sums.get(s.role)! + s.cpuMs);
      collects += s.collects;
      s.tracker?.dispose();
      s.deadline?.close();
    }
  }
  for (const role of ROLES) {
    const q = quartiles(ratios.get(role)!).map((r) => (100 * r).toFixed(1));
    rows.push([
      name,
      role,
      sums.get(role)!.toFixed(0),
      role === 'none' ? '' : `${(100 * (sums.get(role)! / sums.get('none')! - 1)).toFixed(2)} %`,
      role === 'none' ? '' : `${(100 * median(ratios.get(role)!)).toFixed(2)} % (${q[0]} … ${q[2]})`,
      role.startsWith('track') ? String(Math.round(collects / runs)) : '',
    ]);
  }
}

console.log(`machine: ${machine()}; ${runs} runs of each guest, blocks of ${blockRequests} requests in balanced orders, epochs of ${epochMs} ms of the tracked guest's run time, hot >= ${hot}`);
console.log(table(['guest', 'guest', 'guest-thread CPU ms (all runs)', 'against none: sums', 'median of blocks (quartiles)', 'collects per run'], rows));
