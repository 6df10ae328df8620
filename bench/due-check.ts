// What asking "is an epoch due?" costs a fast reactor. A reactor is asked after every request;
// kvstore-long answers ~450,000 a second. One untracked guest serves its request stream in blocks,
// and the blocks take turns (balanced orders) between three ways of asking: not at all, a clock
// read (Deadline's portable path, performance.now()), and the flag of the native timer thread
// (Deadline's default). Each way's CPU time against the not-asking blocks of the same cycle: the
// guest's state and the machine's noise are alike within a cycle of blocks ~30 ms apart.
// Not ledger-long: its own garbage collector runs in bursts every few thousand requests, which
// fall on one way more than another and swing its blocks by +-40 %.
//   node dist/bench/due-check.js [--workloads kvstore-long] [--runs 3] [--block 10000]
import { parseArgs } from 'node:util';
import { Deadline } from '../src/util/deadline.js';
import { balancedOrders, machine, median, quartiles, table, threadCpuMs } from './stats.js';
import { LONG_WORKLOADS, WORKLOADS } from './workloads.js';

const { values } = parseArgs({
  options: {
    workloads: { type: 'string', default: 'kvstore-long' },
    runs: { type: 'string', default: '3' },
    block: { type: 'string', default: '10000' },
    'epoch-ms': { type: 'string', default: '20' },
  },
});
const runs = Number(values.runs);
const blockRequests = Number(values.block);
const epochMs = Number(values['epoch-ms']);
const workloads = [...WORKLOADS, ...LONG_WORKLOADS].filter((w) => values.workloads!.split(',').includes(w.name));

type Way = 'not asked' | 'clock' | 'timer-thread';
const WAYS: Way[] = ['not asked', 'clock', 'timer-thread'];
const orders = balancedOrders(WAYS.length);

const rows: (string | number)[][] = [];
for (const w of workloads) {
  const module = await w.module();
  const cpuMs = new Map<Way, number>(WAYS.map((x) => [x, 0]));
  const checks = new Map<Way, number>(WAYS.map((x) => [x, 0]));
  const ratios = new Map<Way, number[]>(WAYS.map((x) => [x, []]));
  const epochs = new Map<Way, number>(WAYS.map((x) => [x, 0]));
  for (let run = 0; run < runs; run++) {
    const { guest } = await w.create(module);
    const deadlines = { clock: Deadline.create('clock'), 'timer-thread': Deadline.create('timer-thread') };
    for (const d of Object.values(deadlines)) d.arm(epochMs);
    // The same bookkeeping runs after every request whichever way is in turn; only `ask` differs.
    let cycle = 0;
    let slot = 0;
    let inBlock = 0;
    let way: Way = WAYS[orders[0]![0]!]!;
    let blockStartMs = threadCpuMs();
    const cycleMs = new Map<Way, number>();
    const askDeadline = (x: 'clock' | 'timer-thread') => () => {
      if (deadlines[x].passed) {
        epochs.set(x, epochs.get(x)! + 1);
        deadlines[x].arm(epochMs);
      }
    };
    const ask = { 'not asked': () => {}, clock: askDeadline('clock'), 'timer-thread': askDeadline('timer-thread') };
    let askNow = ask[way];
    await w.drive(guest, async () => {
      askNow();
      if (++inBlock < blockRequests) return;
      const now = threadCpuMs();
      cycleMs.set(way, now - blockStartMs);
      cpuMs.set(way, cpuMs.get(way)! + now - blockStartMs);
      checks.set(way, checks.get(way)! + inBlock);
      inBlock = 0;
      if (++slot === WAYS.length) {
        const base = cycleMs.get('not asked')!;
        for (const x of WAYS) ratios.get(x)!.push(cycleMs.get(x)! / base - 1);
        slot = 0;
        cycle++;
      }
      way = WAYS[orders[cycle % orders.length]![slot]!]!;
      askNow = ask[way];
      blockStartMs = threadCpuMs();
    });
    for (const d of Object.values(deadlines)) d.close();
  }
  const base = cpuMs.get('not asked')! / checks.get('not asked')!;
  for (const x of WAYS) {
    const perCheck = cpuMs.get(x)! / checks.get(x)!;
    const q = quartiles(ratios.get(x)!).map((r) => (100 * r).toFixed(1));
    rows.push([
      w.name,
      x,
      String(checks.get(x)),
      cpuMs.get(x)!.toFixed(0),
      `${(100 * (perCheck / base - 1)).toFixed(2)} %`,
      `${(100 * median(ratios.get(x)!)).toFixed(2)} % (${q[0]} … ${q[2]})`,
      ((perCheck - base) * 1e6).toFixed(0),
      String(epochs.get(x) || ''),
    ]);
  }
}

console.log(`machine: ${machine()}; ${runs} runs, blocks of ${blockRequests} requests, epochs of ${epochMs} ms`);
console.log(
  table(['guest', 'asked by', 'requests', 'guest-thread CPU ms', 'per request vs not asked', 'median of cycles (quartiles)', 'extra ns per request', 'epochs due'], rows),
);
