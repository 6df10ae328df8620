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
  /** Runs it to the end; `between` is called between reactor requests (a safe point). */
  drive(guest: Guest, between: () => Promise<void>): Promise<void>;
}

function command(name: string, args: string[], what: string): Workload {
  return {
    name,
    what,
    module: () => loadGuestModule(guestPath(name)),
    async create(module) {
      const output = new OutputGate(new CollectedOutput());
      const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [name, ...args], env: [], preopens: [], output }) });
      return { guest, output };
    },
    async drive(guest) {
      await guest.run();
    },
  };
}

/** A reactor fed a deterministic request stream; `between` runs after every request. */
function reactor(name: string, setup: string[], request: (i: number) => string, count: number, what: string): Workload {
  return {
    name,
    what,
    module: () => loadGuestModule(guestPath(name)),
    async create(module) {
      const output = new OutputGate(new CollectedOutput());
      const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [name], env: [], preopens: [], output }) });
      for (const r of setup) guest.request('handle', Buffer.from(r));
      return { guest, output };
    },
    async drive(guest, between) {
      for (let i = 0; i < count; i++) {
        guest.request('handle', Buffer.from(request(i)));
        await between();
      }
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
  reactor('ledger', ['FILL 50000 0'], (i) => `XFER acct:${lcg(i) % 50000} acct:${lcg(i + 7) % 50000} 1`, 60000, 'AssemblyScript reactor, 50k accounts, random transfers'),
];
