// Benchmark workloads: example guests driven the same way in every mode, so
// a mode's cost is the difference in run time.
import { Guest } from '../src/guest/guest.js';
import { loadGuestModule, type GuestModule } from '../src/guest/module.js';
import { CollectedOutput, OutputGate } from '../src/output/gate.js';
import { WasiDevice } from '../src/wasi/index.js';
import { guestPath } from '../src/testing/fixtures.js';

export interface Workload {
  name: string;
  /** What it does, for the tables. */
  what: string;
  module(): Promise<GuestModule>;
  /** Builds a fresh guest. */
  create(module: GuestModule): Promise<{ guest: Guest; output: OutputGate }>;
  /** Runs it to the end; `between` is called between reactor requests (a safe point). Returns the
   * milliseconds the guest's thread was busy (running the guest or paused for an epoch): the run
   * time, except for paced workloads, which idle between requests. */
  drive(guest: Guest, between: () => Promise<void>): Promise<number>;
  /** A reactor's request stream, for drivers of their own (bench/interleaved.ts). */
  requests?: { count: number; request(i: number): string };
}

function command(name: string, args: string[], what: string): Workload {
  const file = name.split('-')[0]!;
  return {
    name,
    what,
    module: () => loadGuestModule(guestPath(file)),
    async create(module) {
      const output = new OutputGate(new CollectedOutput());
      const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [file, ...args], env: [], preopens: [], output }) });
      return { guest, output };
    },
    async drive(guest) {
      const t0 = performance.now();
      await guest.run();
      return performance.now() - t0;
    },
  };
}

/** A reactor fed a deterministic request stream; `between` runs after every request. With
 * `perSecond`, requests arrive at that rate (in batches every millisecond) like a service's. */
function reactor(name: string, setup: string[], request: (i: number) => string, count: number, what: string, perSecond?: number): Workload {
  return {
    name,
    what,
    requests: { count, request },
    module: () => loadGuestModule(guestPath(name.split('-')[0]!)),
    async create(module) {
      const output = new OutputGate(new CollectedOutput());
      const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [name], env: [], preopens: [], output }) });
      for (const r of setup) guest.request('handle', Buffer.from(r));
      return { guest, output };
    },
    async drive(guest, between) {
      let busy = 0;
      const start = performance.now();
      for (let i = 0; i < count; i++) {
        if (perSecond) {
          const due = start + (i * 1000) / perSecond;
          const wait = due - performance.now();
          if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        }
        const t0 = performance.now();
        guest.request('handle', Buffer.from(request(i)));
        await between();
        busy += performance.now() - t0;
      }
      return busy;
    },
  };
}

function lcg(i: number): number {
  return (Math.imul(i, 2654435761) >>> 0) % 200000;
}

export const WORKLOADS: Workload[] = [
  command('heapwalk', ['32', '30'], 'C command, 32 MiB pointer-rich heap rewritten every round'),
  command('primes', ['30000000'], 'AssemblyScript command, sieve + growing array'),
  reactor('kvstore', ['FILL 200000 100'], (i) => (i % 4 === 0 ? `GET fill:${lcg(i)}` : `SET fill:${lcg(i)} value-${i}-${'x'.repeat(i % 50)}`), 60000, 'C reactor, 200k keys, random SET/GET'),
  reactor('kvstore-20k', ['FILL 200000 100'], (i) => (i % 4 === 0 ? `GET fill:${lcg(i)}` : `SET fill:${lcg(i)} value-${i}-${'x'.repeat(i % 50)}`), 40000, 'C reactor, 200k keys, 20,000 random SET/GET per second for 2 s', 20000),
  reactor('ledger', ['FILL 50000 0'], (i) => `XFER acct:${lcg(i) % 50000} acct:${lcg(i + 7) % 50000} 1`, 60000, 'AssemblyScript reactor, 50k accounts, random transfers'),
];

/** The same guests doing more work: 3-6 s unprotected, so that 1,000 ms epochs come several to a run. */
export const LONG_WORKLOADS: Workload[] = [
  command('heapwalk-long', ['32', '50'], 'heapwalk, 32 MiB x 50 rounds'),
  command('primes-long', ['150000000'], 'primes below 1.5 x 10^8'),
  reactor('kvstore-long', ['FILL 200000 100'], (i) => (i % 4 === 0 ? `GET fill:${lcg(i)}` : `SET fill:${lcg(i)} value-${i}-${'x'.repeat(i % 50)}`), 1_000_000, 'kvstore, 1,000,000 random SET/GET'),
  reactor('ledger-long', ['FILL 50000 0'], (i) => `XFER acct:${lcg(i) % 50000} acct:${lcg(i + 7) % 50000} 1`, 400_000, 'ledger, 400,000 random transfers'),
];
