// Memory exclusion without the guest's help (seed 004, Table I): checkpoint size, checkpoint time
// and restore time for configured memories of 128 MiB to 1 GiB and workloads that really use
// different amounts, with exclusion (the sparse MemoryPages writer) and without (the dense 1.0
// writer), medians of the same run.
//   node --expose-gc dist/bench/exclusion.js [--sizes 128,256,512,1024] [--runs 5] [--dir /tmp]
// (--expose-gc: earlier restored guests are collected before each timed restore, so one
// restore does not pay for freeing the last one's memory.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Guest } from '../src/guest/guest.js';
import { loadGuestModule, type GuestModule } from '../src/guest/module.js';
import { openCheckpoint, restoreFromCheckpoint, writeFullCheckpoint } from '../src/checkpoint/snapshot.js';
import { CollectedOutput, OutputGate } from '../src/output/gate.js';
import { WasiDevice } from '../src/wasi/index.js';
import { guestPath } from '../src/testing/fixtures.js';
import { native, PAGE_BYTES } from '../src/native.js';
import { SectionKind } from '../src/checkpoint/format.js';
import { machine, median, table, time, timeAsync } from './stats.js';

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '128,256,512,1024' }, runs: { type: 'string', default: '5' }, dir: { type: 'string', default: os.tmpdir() } } });
const sizesMiB = values.sizes!.split(',').map(Number);
const runs = Number(values.runs);
const dir = fs.mkdtempSync(path.join(values.dir!, 'us-bench-excl-'));
const MiB = 2 ** 20;

interface Driver {
  name: string;
  what: string;
  guest: string;
  /** Requests that make the guest really use memory (run once, before memory is raised to the configured size). */
  fill: string[];
}

const DRIVERS: Driver[] = [
  { name: 'idle', what: 'kvstore reactor, 4k small keys (~1 MiB touched)', guest: 'kvstore', fill: ['FILL 4000 100'] },
  { name: 'ledger', what: 'ledger reactor (AssemblyScript), 200k accounts', guest: 'ledger', fill: ['FILL 200000 0'] },
  { name: 'kvstore', what: 'kvstore reactor, 380k keys x 200 B (~100 MiB)', guest: 'kvstore', fill: ['FILL 380000 200'] },
];

const mib = (b: number): string => (b / MiB).toFixed(1);
const ms = (x: number): string => x.toFixed(1);

const gc = (globalThis as { gc?: () => void }).gc;

function memorySectionBytes(file: string): number {
  const opened = openCheckpoint(file);
  try {
    return opened.file.entry(SectionKind.MemoryPages)?.length ?? opened.file.require(SectionKind.Memory).length;
  } finally {
    opened.close();
  }
}

async function restoreTimed(file: string, module: GuestModule): Promise<{ totalMs: number; fillMs: number }> {
  gc?.();
  let fillMs = 0;
  const [, totalMs] = await timeAsync(async () => {
    const opened = openCheckpoint(file);
    try {
      const fill = opened.fillMemory;
      opened.fillMemory = (memory, progress) => {
        fillMs = time(() => fill(memory, progress))[1];
      };
      await restoreFromCheckpoint(opened, { module, host: {}, outputTarget: new CollectedOutput() });
    } finally {
      opened.close();
    }
  });
  return { totalMs, fillMs };
}

const rows: (string | number)[][] = [];
const sizeRows: (string | number)[][] = [];
let method = '';
for (const d of DRIVERS) {
  const module = await loadGuestModule(guestPath(d.guest));
  const gate = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output: gate }) });
  for (const r of d.fill) guest.request('handle', Buffer.from(r));
  for (const size of sizesMiB) {
    const target = size * MiB;
    if (guest.memory.buffer.byteLength > target) {
      rows.push([d.name, `${size}`, `uses ${mib(guest.memory.buffer.byteLength)} MiB: more than configured`, '', '', '', '', '', '', '', '']);
      continue;
    }
    guest.memory.grow((target - guest.memory.buffer.byteLength) / 65536);
    const scan = time(() => native.storedPages(new Uint8Array(guest.memory.buffer)));
    method = scan[0].method;
    const used = scan[0].pages.length * PAGE_BYTES;
    const files = { sparse: path.join(dir, `${d.name}-${size}-sparse.usck`), dense: path.join(dir, `${d.name}-${size}-dense.usck`) };
    const ck = { sparse: [] as number[], dense: [] as number[] };
    const rs = { sparse: [] as number[], dense: [] as number[] };
    const fill = { sparse: [] as number[], dense: [] as number[] };
    const bytes = { sparse: 0, dense: 0 };
    let sectionBytes = 0;
    for (let r = 0; r < runs; r++) {
      for (const form of ['sparse', 'dense'] as const) {
        const [w, t] = time(() => writeFullCheckpoint(files[form], { guest, output: gate, sequence: r + 1, denseMemory: form === 'dense' }));
        ck[form].push(t);
        bytes[form] = w.fileBytes;
        if (form === 'sparse') sectionBytes = memorySectionBytes(files.sparse);
        const back = await restoreTimed(files[form], module);
        rs[form].push(back.totalMs);
        fill[form].push(back.fillMs);
      }
    }
    for (const f of Object.values(files)) fs.rmSync(f, { force: true });
    rows.push([
      d.name,
      `${size}`,
      mib(used),
      mib(bytes.dense),
      mib(bytes.sparse),
      `${((100 * (sectionBytes - used)) / used).toFixed(2)} %`,
      ms(median(ck.dense)),
      ms(median(ck.sparse)),
      ms(median(rs.dense)),
      ms(median(rs.sparse)),
      ms(median(fill.sparse)),
    ]);
    sizeRows.push([d.name, `${size}`, mib(used), ms(scan[1])]);
    console.error(rows[rows.length - 1]!.join(' | '));
  }
}
fs.rmSync(dir, { recursive: true, force: true });
console.log(`machine: ${machine()}; present pages found by ${method}; medians of ${runs} runs, sparse and dense alternating in the same run${gc ? ', garbage collected before each restore' : ''}.`);
console.log('checkpoint = encode + CRC + write + fsync of file and directory; restore = open and validate + instantiate + grow + read + CRC (module already compiled); "load" is the memory part of restore.\n');
console.log(
  table(
    ['workload', 'configured MiB', 'really used MiB', 'dense size MiB', 'excluded size MiB', 'excluded memory section vs used', 'dense ckpt ms', 'excluded ckpt ms', 'dense restore ms', 'excluded restore ms', 'excluded load ms'],
    rows,
  ),
);
console.log('\nFinding the stored pages (page-table scan + zero check of present pages):\n');
console.log(table(['workload', 'configured MiB', 'used MiB', 'storedPages ms'], sizeRows));
