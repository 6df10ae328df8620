// Pause per epoch against the physical limit: the time the guest is stopped
// (collect the dirty set, copy those pages, capture vCPU and device state)
// divided by the time to memcpy the same dirty set once, at 1,000 and 10,000
// dirty pages. Goal: at most 1.5x + 0.2 ms.
//   node dist/bench/pause.js [--samples 30] [--warmup 30] [--memory-mib 256] [--busy-ms 15]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EpochCheckpointer } from '../src/checkpoint/epochs.js';
import { Guest } from '../src/guest/guest.js';
import { loadGuestModule } from '../src/guest/module.js';
import { native, PAGE_BYTES } from '../src/native.js';
import { CollectedOutput, OutputGate } from '../src/output/gate.js';
import { probeTrackers, type TrackerKind } from '../src/track/tracker.js';
import { WasiDevice } from '../src/wasi/index.js';
import { guestPath } from '../src/testing/fixtures.js';
import { machine, median, table } from './stats.js';

const { values } = parseArgs({
  options: { samples: { type: 'string', default: '30' }, warmup: { type: 'string', default: '30' }, 'memory-mib': { type: 'string', default: '256' }, 'busy-ms': { type: 'string', default: '15' }, 'parallel-copy-min': { type: 'string' } },
});
const samples = Number(values.samples);
// A guest checkpointing every 20 ms runs 50 epochs a second: the pause's JavaScript is optimized
// within its first second. The warm-up epochs stand for that second and are not counted.
const warmup = Number(values.warmup);
const busyMs = Number(values['busy-ms']);
let spin = 0;
const memoryBytes = Number(values['memory-mib']) * 2 ** 20;
const kinds = probeTrackers().filter((p) => p.supported).map((p) => p.kind);

const module = await loadGuestModule(guestPath('kvstore'));
const rows: (string | number)[][] = [];
for (const kind of kinds) {
  for (const dirty of [1000, 10000]) {
    const output = new OutputGate(new CollectedOutput());
    const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output }) });
    guest.memory.grow((memoryBytes - guest.memory.buffer.byteLength) / 65536);
    new Uint8Array(guest.memory.buffer).fill(1); // populate every page, as a running guest's would be
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'us-bench-pause-'));
    const ep = await EpochCheckpointer.start(guest, output, { dir, tracker: kind as TrackerKind, fsync: false, parallelCopyMinPages: values['parallel-copy-min'] === undefined ? undefined : Number(values['parallel-copy-min']) });
    const totalPages = memoryBytes / PAGE_BYTES;
    const stride = Math.floor(totalPages / dirty);
    const pages = Uint32Array.from({ length: dirty }, (_, i) => i * stride + 1);
    // The baseline copies into one of four buffers in turn, as the pause copies into one of four
    // staging slots: neither destination is warm in the cache.
    const packed = Array.from({ length: 4 }, () => new Uint8Array(dirty * PAGE_BYTES).fill(1));
    const pauses: number[] = [];
    const copies: number[] = [];
    for (let s = 0; s < samples + warmup; s++) {
      // The guest runs between epochs: the thread is busy when the pause starts, as in a run,
      // not waking from idle (a vCPU woken from halt here runs its first ~0.2 ms measurably slower).
      const busyUntil = performance.now() + busyMs;
      while (performance.now() < busyUntil) spin = (spin * 31 + 7) >>> 0;
      await ep.flush();
      const mem = new Uint8Array(guest.memory.buffer);
      for (const p of pages) mem[p * PAGE_BYTES + (s % 4096)] = s & 0xff;
      const t0 = performance.now();
      native.gatherPages(mem, pages, packed[s % 4]!);
      const copy = performance.now() - t0;
      const pause = await ep.epoch();
      if (s >= warmup) {
        copies.push(copy);
        pauses.push(pause.pauseMs);
        if (process.env.PAUSE_DEBUG) console.error(kind, dirty, pause.collectMs.toFixed(3), pause.copyMs.toFixed(3), pause.stateMs.toFixed(3));
      }
    }
    await ep.flush();
    await ep.close();
    fs.rmSync(dir, { recursive: true, force: true });
    const p = median(pauses);
    const c = median(copies);
    rows.push([kind, dirty, c.toFixed(3), p.toFixed(3), (p / c).toFixed(2), (p - 1.5 * c).toFixed(3), p <= 1.5 * c + 0.2 ? 'yes' : 'no']);
  }
}
console.log(`machine: ${machine()}; ${values['memory-mib']} MiB guest memory, every page populated; medians of ${samples} epochs after ${warmup} warm-up epochs, the thread busy ${busyMs} ms between epochs\n`);
console.log(table(['tracker', 'dirty pages', 'memcpy ms', 'pause ms', 'pause / memcpy', 'pause - 1.5 x memcpy (ms)', 'within 1.5x + 0.2 ms'], rows));
