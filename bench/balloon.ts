// Ballooning with the guest's help (seed 004, Table I and Figures 2-5): for configured memories of
// 128 MiB to 1 GiB and four workloads that really use different amounts, checkpoint size,
// checkpoint time and restore time without exclusion (dense), with exclusion, and with exclusion
// + balloon, and the cost of ballooning itself (ask + inflate + deflate). Medians.
//   node --expose-gc dist/bench/balloon.js [--sizes 128,256,512,1024] [--runs 3] [--dir /tmp] [--fast-restore-only]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Guest } from '../src/guest/guest.js';
import { loadGuestModule, type GuestModule } from '../src/guest/module.js';
import { openCheckpoint, restoreFromCheckpoint, writeFullCheckpoint } from '../src/checkpoint/snapshot.js';
import { restoreTuning } from '../src/checkpoint/file.js';
import { CollectedOutput, OutputGate } from '../src/output/gate.js';
import { WasiDevice } from '../src/wasi/index.js';
import { guestPath } from '../src/testing/fixtures.js';
import { native, PAGE_BYTES } from '../src/native.js';
import { checkpointWithBalloon, deflateAfterRestore, readStats } from '../src/balloon/manager.js';
import { machine, median, table, time, timeAsync } from './stats.js';

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '128,256,512,1024' }, runs: { type: 'string', default: '3' }, dir: { type: 'string', default: os.tmpdir() }, 'fast-restore-only': { type: 'boolean', default: false } } });
const sizesMiB = values.sizes!.split(',').map(Number);
const runs = Number(values.runs);
const dir = fs.mkdtempSync(path.join(values.dir!, 'us-bench-balloon-'));
const MiB = 2 ** 20;
const gc = (globalThis as { gc?: () => void }).gc;

interface Workload {
  name: string;
  what: string;
  guest: string;
  fill: () => string[];
}

const WORKLOADS: Workload[] = [
  { name: 'idle', what: 'kvballoon, 4k small keys', guest: 'kvballoon', fill: () => ['FILL 4000 100'] },
  { name: 'compress', what: 'compress: RUN 40 (40 MiB compressed, ~110 MiB peak, all freed) + KEEP 8', guest: 'compress', fill: () => ['RUN 40 1', 'KEEP 8'] },
  {
    name: 'kvstore',
    what: 'kvballoon: 300k keys x 200 B, then every 4th deleted',
    guest: 'kvballoon',
    fill: () => ['FILL 300000 200', ...Array.from({ length: 75000 }, (_, i) => `DEL fill:${i * 4}`)],
  },
  { name: 'docstore', what: 'docstore: 400k records (tag index), then half deleted', guest: 'docstore', fill: () => ['FILL 400000', 'DELRANGE 0 200000'] },
];

const mib = (b: number): string => (b / MiB).toFixed(1);
const ms = (x: number): string => x.toFixed(1);

async function restoreTimed(file: string, module: GuestModule): Promise<{ ms: number; deflateMs: number }> {
  gc?.();
  const [guest, total] = await timeAsync(async () => {
    const opened = openCheckpoint(file);
    try {
      return (await restoreFromCheckpoint(opened, { module, host: {}, outputTarget: new CollectedOutput() })).guest;
    } finally {
      opened.close();
    }
  });
  const [, deflateMs] = time(() => deflateAfterRestore(guest));
  return { ms: total, deflateMs };
}

const rows: (string | number)[][] = [];
const costRows: (string | number)[][] = [];
const modes = ['dense', 'excluded', 'balloon'] as const;
for (const w of WORKLOADS) {
  for (const size of values['fast-restore-only'] ? [] : sizesMiB) {
    const module = await loadGuestModule(guestPath(w.guest));
    const output = new OutputGate(new CollectedOutput());
    const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output }) });
    for (const r of w.fill()) guest.request('handle', Buffer.from(r));
    if (guest.memory.buffer.byteLength > size * MiB) {
      rows.push([w.name, size, `uses ${mib(guest.memory.buffer.byteLength)} MiB: more than configured`]);
      continue;
    }
    guest.memory.grow((size * MiB - guest.memory.buffer.byteLength) / 65536);
    const stats = readStats(guest)!;
    const usedBytes = stats.inUsePages * PAGE_BYTES;
    const presentBytes = native.storedPages(new Uint8Array(guest.memory.buffer)).pages.length * PAGE_BYTES;
    const r: Record<(typeof modes)[number], { bytes: number; ck: number[]; rs: number[] }> = {
      dense: { bytes: 0, ck: [], rs: [] },
      excluded: { bytes: 0, ck: [], rs: [] },
      balloon: { bytes: 0, ck: [], rs: [] },
    };
    const cost = { ask: [] as number[], inflate: [] as number[], deflate: [] as number[], restoreDeflate: [] as number[], total: [] as number[], pages: 0 };
    // Dense and excluded first: a balloon's discards are permanent (freed memory stays non-present).
    for (const mode of modes) {
      for (let i = 0; i < runs; i++) {
        const file = path.join(dir, `${w.name}-${size}-${mode}.usck`);
        const src = { guest, output, sequence: i + 1, denseMemory: mode === 'dense' };
        if (mode === 'balloon') {
          const [b, t] = await timeAsync(() => checkpointWithBalloon(file, src));
          r[mode].ck.push(t);
          r[mode].bytes = b.fileBytes;
          cost.inflate.push(b.inflate!.ms);
          cost.deflate.push(b.deflateMs);
          cost.total.push(b.balloonMs);
          cost.pages = b.inflate!.balloonPages;
        } else {
          const [wr, t] = time(() => writeFullCheckpoint(file, src));
          r[mode].ck.push(t);
          r[mode].bytes = wr.fileBytes;
        }
        const back = await restoreTimed(file, module);
        r[mode].rs.push(back.ms);
        if (mode === 'balloon') cost.restoreDeflate.push(back.deflateMs);
        fs.rmSync(file, { force: true });
      }
    }
    rows.push([
      w.name, size, mib(usedBytes), mib(presentBytes),
      mib(r.dense.bytes), mib(r.excluded.bytes), mib(r.balloon.bytes),
      `${((100 * (r.balloon.bytes - usedBytes)) / usedBytes).toFixed(1)} %`,
      ms(median(r.dense.ck)), ms(median(r.excluded.ck)), ms(median(r.balloon.ck)),
      ms(median(r.dense.rs)), ms(median(r.excluded.rs)), ms(median(r.balloon.rs)),
    ]);
    costRows.push([w.name, size, mib(cost.pages * PAGE_BYTES), ms(median(cost.inflate)), ms(median(cost.deflate)), ms(median(cost.total)), ms(median(cost.restoreDeflate))]);
    console.error(rows[rows.length - 1]!.join(' | '), '||', costRows[costRows.length - 1]!.join(' | '));
  }
}

// The fast-restore goal: 1 GiB configured, ~100 MiB used, with and without pre-faulting.
const fast: (string | number)[][] = [];
if (sizesMiB.includes(1024)) {
  const module = await loadGuestModule(guestPath('kvstore'));
  const output = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output }) });
  guest.request('handle', Buffer.from('FILL 380000 200'));
  guest.memory.grow((1024 * MiB - guest.memory.buffer.byteLength) / 65536);
  const file = path.join(dir, 'fast.usck');
  const w = writeFullCheckpoint(file, { guest, output, sequence: 1 });
  const ways = {
    none: 'read into fresh pages (fault per page)',
    inline: 'MADV_POPULATE_WRITE per extent, then read',
    ahead: 'MADV_POPULATE_WRITE on a thread ahead of the read + CRC',
    'ahead-huge': 'the same, the extents backed by 2 MiB pages (MADV_HUGEPAGE)',
  } as const;
  // Interleaved, so drift on a shared machine hits every way alike.
  const times = new Map<keyof typeof ways, number[]>(Object.keys(ways).map((k) => [k as keyof typeof ways, []]));
  for (let i = 0; i < Math.max(5, runs); i++) {
    for (const way of times.keys()) {
      restoreTuning.populate = way === 'ahead-huge' ? 'ahead' : way;
      restoreTuning.hugePages = way === 'ahead-huge';
      times.get(way)!.push((await restoreTimed(file, module)).ms);
    }
  }
  for (const [way, t] of times) fast.push([ways[way], mib(w.fileBytes), ms(median(t)), ms(Math.min(...t))]);
  restoreTuning.populate = 'ahead';
  restoreTuning.hugePages = false;
}
fs.rmSync(dir, { recursive: true, force: true });

console.log(`machine: ${machine()}; medians of ${runs} runs${gc ? ', garbage collected before each restore' : ''}.`);
console.log('used = pages in use by the guest\'s own account (performance monitor: static data + bytes its allocator holds); present = present non-zero pages before ballooning.');
console.log('checkpoint = (balloon: ask + inflate +) encode + CRC + write + fsync (+ deflate); restore = open, validate, instantiate, grow, read, CRC (module compiled).\n');
console.log(table(['workload', 'configured MiB', 'used MiB', 'present MiB', 'dense MiB', 'excluded MiB', 'excl.+balloon MiB', 'balloon size vs used', 'dense ckpt ms', 'excl. ckpt ms', 'balloon ckpt ms', 'dense restore ms', 'excl. restore ms', 'balloon restore ms'], rows));
console.log('\nCost of ballooning itself:\n');
console.log(table(['workload', 'configured MiB', 'balloon MiB', 'inflate ms', 'deflate ms', 'ask + inflate + deflate ms', 'deflate after restore ms'], costRows));
if (fast.length) {
  console.log('\nRestore of a 1 GiB guest using ~100 MiB (kvstore 380k x 200 B):\n');
  console.log(table(['how', 'file MiB', 'median ms', 'best ms'], fast));
}
