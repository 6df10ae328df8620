// Full checkpoint and restore throughput against a plain memcpy of the same
// bytes in the same run, for guests of 16 MiB to 1 GiB of memory.
//   node dist/bench/full-checkpoint.js [--sizes 16,64,256,1024] [--runs 5] [--dir /tmp]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Guest } from '../src/guest/guest.js';
import { loadGuestModule } from '../src/guest/module.js';
import { writeFullCheckpoint, openCheckpoint, restoreFromCheckpoint } from '../src/checkpoint/snapshot.js';
import { CollectedOutput, OutputGate } from '../src/output/gate.js';
import { WasiDevice } from '../src/wasi/index.js';
import { guestPath } from '../src/testing/fixtures.js';
import { machine, median, table, time, timeAsync } from './stats.js';

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '16,64,256,1024' }, runs: { type: 'string', default: '5' }, dir: { type: 'string', default: os.tmpdir() } } });
const sizesMiB = values.sizes!.split(',').map(Number);
const runs = Number(values.runs);
const dir = fs.mkdtempSync(path.join(values.dir!, 'us-bench-full-'));

const module = await loadGuestModule(guestPath('kvstore'));
const rows: (string | number)[][] = [];
for (const mib of sizesMiB) {
  const gate = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output: gate }) });
  // Fill the heap through the guest until it reaches the size (real, pointer-rich data), then top up.
  const target = mib * 2 ** 20;
  while (guest.memory.buffer.byteLength < target * 0.9) guest.request('handle', Buffer.from(`FILL ${Math.max(1000, Math.floor((target - guest.memory.buffer.byteLength) / 400))} 200`));
  if (guest.memory.buffer.byteLength < target) guest.memory.grow((target - guest.memory.buffer.byteLength) / 65536);
  const mem = new Uint8Array(guest.memory.buffer);
  const bytes = mem.length;
  const copy = new Uint8Array(bytes);
  const memcpy: number[] = [];
  const ckpt: number[] = [];
  const restore: number[] = [];
  const file = path.join(dir, `full-${mib}.usck`);
  for (let r = 0; r < runs; r++) {
    memcpy.push(time(() => copy.set(mem))[1]);
    ckpt.push(time(() => writeFullCheckpoint(file, { guest, output: gate, sequence: r + 1 }))[1]);
    restore.push(
      (
        await timeAsync(async () => {
          const opened = openCheckpoint(file);
          try {
            await restoreFromCheckpoint(opened, { module, host: {}, outputTarget: new CollectedOutput() });
          } finally {
            opened.file.close();
          }
        })
      )[1],
    );
  }
  const m = median(memcpy);
  const c = median(ckpt);
  const rs = median(restore);
  const gbps = (ms: number) => (bytes / 2 ** 30 / (ms / 1000)).toFixed(2);
  rows.push([`${(bytes / 2 ** 20).toFixed(0)} MiB`, m.toFixed(1), c.toFixed(1), gbps(c), (c / m).toFixed(1), rs.toFixed(1), gbps(rs), (rs / m).toFixed(1)]);
  fs.rmSync(file, { force: true });
}
fs.rmSync(dir, { recursive: true, force: true });
console.log(`machine: ${machine()}; medians of ${runs} runs; checkpoint includes CRC-32C of every section, write and fsync of file and directory; restore includes reading, verifying and instantiating.\n`);
console.log(table(['memory', 'memcpy ms', 'checkpoint ms', 'checkpoint GiB/s', 'checkpoint / memcpy', 'restore ms', 'restore GiB/s', 'restore / memcpy'], rows));
