// Critical data areas: what the application pays at the end of a cycle (the
// hand-over: collect the dirty set, copy it into the staging buffer, post it
// to the commit worker) against the whole commit (until the target holds the
// cycle), for dirty sets of a few sizes, per mode and target. Seed 000, "Data
// Processing Overhead": the main process should pay only for the copy.
// Medians of `--reps` cycles, modes interleaved cycle by cycle.
//   node dist/bench/cda-handover.js [--pages 1,16,256,2048] [--reps 15] [--targets memory,disk,backup] [--dir /tmp]
// backup: a CdaBackupServer in this process on loopback (its work shares this machine's cores).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { CdaBackupServer } from '../src/cda/backup.js';
import { CriticalAreaService, type CdaMode, type CommitStats } from '../src/cda/service.js';
import type { CdaTargetSpec } from '../src/cda/committer.js';
import { probeTrackers } from '../src/track/tracker.js';
import { machine, median, table } from './stats.js';

const { values } = parseArgs({
  options: {
    pages: { type: 'string', default: '1,16,256,2048' },
    reps: { type: 'string', default: '15' },
    targets: { type: 'string', default: 'memory,disk' },
    dir: { type: 'string', default: os.tmpdir() },
  },
});
const PAGE = 4096;
const AREA_BYTES = 16 * 1024 * 1024;
const sizes = values.pages!.split(',').map(Number);
const reps = Number(values.reps);
const supported = (k: string) => probeTrackers().find((p) => p.kind === k)?.supported ?? false;
const modes: CdaMode[] = (['wp-async', 'wp-sync', 'diff', 'emul'] as const).filter((m) => (m === 'wp-async' || m === 'wp-sync' ? supported(m) : true));
const work = fs.mkdtempSync(path.join(values.dir!, 'us-bench-cda-'));

interface Lane {
  mode: CdaMode;
  s: CriticalAreaService;
  u8: Uint8Array;
}

async function lane(mode: CdaMode, target: CdaTargetSpec): Promise<Lane> {
  const memory = new WebAssembly.Memory({ initial: AREA_BYTES / 65536 + 1 });
  const s = new CriticalAreaService({ mode, target });
  s.bindMemory(memory);
  await s.ready;
  s.register(65536, AREA_BYTES);
  const u8 = new Uint8Array(memory.buffer);
  await s.transaction(() => undefined); // the first commit carries the whole new area
  return { mode, s, u8 };
}

const rows: (string | number)[][] = [];
for (const targetName of values.targets!.split(',')) {
  for (const pages of sizes) {
    const lanes: Lane[] = [];
    const servers: CdaBackupServer[] = [];
    for (const mode of modes) {
      let target: CdaTargetSpec = { kind: 'memory' };
      if (targetName === 'disk') target = { kind: 'disk', dir: path.join(work, `${targetName}-${pages}-${mode}`) };
      if (targetName === 'backup') {
        const key = randomBytes(32);
        const server = await CdaBackupServer.start({ listen: { host: '127.0.0.1', port: 0 }, key });
        servers.push(server);
        target = { kind: 'backup', host: '127.0.0.1', port: server.port, key };
      }
      lanes.push(await lane(mode, target));
    }
    const stats = new Map<CdaMode, CommitStats[]>(modes.map((m) => [m, []]));
    let round = 0;
    for (let r = 0; r < reps; r++) {
      for (const l of lanes) {
        // One 8-byte store in each of `pages` pages spread over the area, different bytes every cycle.
        const stride = Math.floor(AREA_BYTES / PAGE / pages) * PAGE;
        const { commit } = await l.s.transaction(() => {
          for (let p = 0; p < pages; p++) {
            const at = 65536 + p * stride + ((round * 8) % (PAGE - 8));
            l.u8.fill((round % 250) + 1, at, at + 8);
            if (l.mode === 'emul') l.s.recordWrite(at, 8);
          }
        });
        stats.get(l.mode)!.push(commit);
      }
      round++;
    }
    for (const l of lanes) {
      const c = stats.get(l.mode)!;
      const hand = median(c.map((x) => x.handoverMs));
      const total = median(c.map((x) => x.totalMs));
      rows.push([
        targetName,
        pages,
        l.mode,
        `${(median(c.map((x) => x.stagedBytes)) / 1024).toFixed(1)} KiB`,
        median(c.map((x) => x.changedBytes)),
        median(c.map((x) => x.storedBytes)),
        hand.toFixed(3),
        total.toFixed(3),
        `${((100 * hand) / total).toFixed(0)} %`,
      ]);
      await l.s.close();
    }
    for (const server of servers) await server.close();
  }
}
fs.rmSync(work, { recursive: true, force: true });
process.stdout.write(`${machine()}; ${new Date().toISOString().slice(0, 10)}; area ${AREA_BYTES / 2 ** 20} MiB, ${reps} cycles per row, medians\n\n`);
process.stdout.write(
  table(['target', 'dirty pages', 'mode', 'handed over', 'bytes committed', 'bytes stored', 'hand-over ms', 'total ms', 'hand-over / total'], rows) + '\n',
);
