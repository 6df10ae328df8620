// What the load-time rewrite costs: rewrite time and module size, and the run
// time of command guests with Asyncify safe points against the same guest
// rewritten without them (same process, interleaved runs, medians).
//   node dist/bench/rewrite-cost.js [--runs 5]
import { parseArgs } from 'node:util';
import { Guest } from '../src/guest/guest.js';
import { loadGuestModule, type GuestModule } from '../src/guest/module.js';
import { rewriteModule } from '../src/guest/rewrite.js';
import { CollectedOutput, OutputGate } from '../src/output/gate.js';
import { WasiDevice } from '../src/wasi/index.js';
import { guestPath } from '../src/testing/fixtures.js';
import { machine, median, table, timeAsync } from './stats.js';
import fs from 'node:fs';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);

const workloads: { name: string; args: string[] }[] = [
  { name: 'heapwalk', args: ['heapwalk', '32', '40'] },
  { name: 'primes', args: ['primes', '20000000'] },
];

async function runOnce(module: GuestModule, args: string[], yieldEveryMs: number): Promise<number> {
  const gate = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args, env: [], preopens: [], output: gate }), yieldEveryMs });
  const [, ms] = await timeAsync(() => guest.run());
  return ms;
}

const sizeRows: (string | number)[][] = [];
const runRows: (string | number)[][] = [];
for (const w of workloads) {
  const original = new Uint8Array(fs.readFileSync(guestPath(w.name)));
  const r = rewriteModule(original);
  const plain = rewriteModule(original, { safePoints: false });
  sizeRows.push([w.name, (original.length / 1024).toFixed(0), (plain.bytes.length / 1024).toFixed(0), (r.bytes.length / 1024).toFixed(0), r.stats.rewriteMs.toFixed(0)]);
  const base = await loadGuestModule(original, { cacheDir: null, safePoints: false });
  const sp = await loadGuestModule(original, { cacheDir: null });
  const t = { base: [] as number[], noYield: [] as number[], yield10: [] as number[], every: [] as number[] };
  for (let i = 0; i < runs; i++) {
    t.base.push(await runOnce(base, w.args, 1e9));
    t.noYield.push(await runOnce(sp, w.args, 1e9));
    t.yield10.push(await runOnce(sp, w.args, 10));
    t.every.push(await runOnce(sp, w.args, 0));
  }
  const b = median(t.base);
  const cell = (xs: number[]) => `${median(xs).toFixed(0)} (${(median(xs) / b).toFixed(3)}x)`;
  runRows.push([w.name, b.toFixed(0), cell(t.noYield), cell(t.yield10), cell(t.every)]);
}
console.log(`machine: ${machine()}; medians of ${runs} runs\n`);
console.log(table(['guest', 'original KiB', 'rewritten, no safe points KiB', 'rewritten with Asyncify KiB', 'rewrite ms'], sizeRows));
console.log();
console.log(table(['guest', 'no safe points ms', 'safe points, never stopped', 'stopped every 10 ms (default)', 'stopped at every host call'], runRows));
