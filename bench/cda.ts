// Critical data areas on the data-structure workloads (seed 000/001: Table 2,
// Figures 11-18). Every workload (list add/delete, AVL tree insert, hash
// insert/update, queue) at OPT=1 and OPT=5, `--ops` operations, in two forms:
//   node   the TypeScript workload over criticalArea(memory) (the arena is the
//          memory), a transaction = begin, opt steps, endCycle, end, await
//   guest  the cdabench C guest under the Guest runtime with GuestCda's
//          hypercalls (a command suspends in cda_end until its cycle is
//          committed), the store-instrumented module for emul
// and per tracking mode (wp-async ~ PTxen, wp-sync ~ PT, diff ~ PT with
// difference computation, emul ~ Emul), against an unprotected lane in the
// same run: the same workload with no tracking and no commit (the guest's
// cda_* calls answer at once). Lanes are interleaved: each runs a block of
// cycles in turn (`--rounds` blocks per lane), so load from other jobs falls
// on all of them alike. Per cycle (the first, which commits the whole new
// area, is left out):
//   ops       begin .. the last step and endCycle (tracking faults and store
//             recording land here)
//   hand-over the end call: collect the dirty set, copy it into the staging
//             buffer, post it to the commit worker (the application's share)
//   app       ops + hand-over: what the application pays (seed 000 Fig. 17:
//             the operations and the copy to the helper)
//   commit    the whole commit, from the end call until the target holds it
//   wall      begin .. the commit answered (the application waits for it here)
// Medians per cycle, divided by OPT for per-operation numbers. A sweep runs
// one workload at larger OPTs to find where page tracking overtakes word-level
// tracking (seed 000: Emul wins with few writes per transaction). The target row
// set runs one workload against memory, disk (write + fsync) and a backup in
// its own process (`understudy cda-backup`) to show what a target costs.
//
//   node dist/bench/cda.js [--ops 10000] [--workloads list,tree,hash,queue] [--opts 1,5]
//        [--modes wp-async,wp-sync,diff,emul] [--forms node,guest] [--rounds 10]
//        [--sweep-workload tree] [--sweep-opts 25,125,625]
//        [--target-workload hash] [--target-ops 1000] [--targets disk,backup] [--json file] [--from-json file]
// --json keeps the measurements; --from-json renders saved ones again without measuring.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { criticalArea, startCdaBackupProcess, type CdaBackupProcess } from '../src/cda/index.js';
import { GuestCda } from '../src/cda/guest.js';
import type { CdaTargetSpec } from '../src/cda/committer.js';
import type { CdaMode, CommitStats, CriticalAreaService } from '../src/cda/service.js';
import { ArenaView, createWorkload, ARENA_BYTES_DEFAULT, WORKLOAD_NAMES, type Workload, type WorkloadName } from '../src/cda/workloads/index.js';
import { Guest, type Hypercalls } from '../src/guest/guest.js';
import { loadGuestModule, type GuestModule } from '../src/guest/module.js';
import { CollectedOutput } from '../src/output/gate.js';
import { guestPath } from '../src/testing/fixtures.js';
import { probeTrackers } from '../src/track/tracker.js';
import { WasiDevice } from '../src/wasi/index.js';
import { machine, median, table } from './stats.js';

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '10000' },
    workloads: { type: 'string', default: WORKLOAD_NAMES.join(',') },
    opts: { type: 'string', default: '1,5' },
    modes: { type: 'string', default: 'wp-async,wp-sync,diff,emul' },
    forms: { type: 'string', default: 'node,guest' },
    rounds: { type: 'string', default: '10' },
    'target-workload': { type: 'string', default: 'hash' },
    'sweep-workload': { type: 'string', default: 'tree' },
    'sweep-opts': { type: 'string', default: '25,125,625' },
    'target-ops': { type: 'string', default: '1000' },
    targets: { type: 'string', default: 'disk,backup' },
    json: { type: 'string' },
    'from-json': { type: 'string' },
  },
});
const ROUNDS_MAX = 100;
const ops = Number(values.ops);
const rounds = Number(values.rounds);
const opts = values.opts!.split(',').map(Number);
const workloads = values.workloads!.split(',') as WorkloadName[];
const forms = values.forms!.split(',').filter(Boolean) as Form[];
const targetOps = Number(values['target-ops']);
const targetKinds = values.targets!.split(',').filter(Boolean) as ('disk' | 'backup')[];
const supported = (k: string) => probeTrackers().find((p) => p.kind === k)?.supported ?? false;
const modes = (values.modes!.split(',') as CdaMode[]).filter((m) => (m === 'wp-async' || m === 'wp-sync' ? supported(m) : true));
if (!Number.isInteger(rounds) || rounds < 1 || rounds > ROUNDS_MAX) throw new Error(`--rounds 1..${ROUNDS_MAX}`);
for (const opt of opts) if (!Number.isInteger(opt) || opt < 1 || ops % opt !== 0 || targetOps % opt !== 0) throw new Error(`--ops and --target-ops must be multiples of every OPT (${opt})`);
const sweepOpts = values['sweep-opts']!.split(',').filter(Boolean).map(Number);
for (const opt of sweepOpts) if (!Number.isInteger(opt) || opt < 1 || ops % opt !== 0) throw new Error(`--ops must be a multiple of every sweep OPT (${opt})`);
for (const w of [...workloads, values['target-workload']!, values['sweep-workload']!]) if (!WORKLOAD_NAMES.includes(w as WorkloadName)) throw new Error(`unknown workload ${w}`);

type Form = 'node' | 'guest';
type LaneMode = CdaMode | 'none';
const ARENA_BYTES = ARENA_BYTES_DEFAULT;
/** Disk targets' directories and key files (made by measure()). */
let work = '';

/** Per-cycle measurements of one lane (the first cycle left out). */
interface CycleLog {
  beginMs: number[];
  opsMs: number[];
  handoverMs: number[];
  wallMs: number[];
  commits: CommitStats[];
}
const newLog = (): CycleLog => ({ beginMs: [], opsMs: [], handoverMs: [], wallMs: [], commits: [] });

interface LaneResult {
  form: Form;
  workload: WorkloadName;
  opt: number;
  mode: LaneMode;
  target: 'memory' | 'disk' | 'backup';
  cycles: number;
  /** Medians per cycle, ms: begin (it collects changes made since the last end), the steps, ... */
  beginMs: number;
  opsMs: number;
  handoverMs: number;
  appMs: number;
  wallMs: number;
  commitMs: number;
  collectMs: number;
  copyMs: number;
  /** The hand-over's post to the commit worker (hand-over - collect - copy). */
  postMs: number;
  /** Means per cycle. */
  pages: number;
  stores: number | null;
  stagedBytes: number;
  changedBytes: number;
  storedBytes: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

function summarise(form: Form, workload: WorkloadName, opt: number, mode: LaneMode, target: LaneResult['target'], log: CycleLog): LaneResult {
  const c = log.commits;
  const app = log.opsMs.map((o, i) => log.beginMs[i]! + o + log.handoverMs[i]!);
  return {
    form, workload, opt, mode, target, cycles: log.opsMs.length,
    beginMs: median(log.beginMs),
    opsMs: median(log.opsMs),
    handoverMs: mode === 'none' ? 0 : median(log.handoverMs),
    appMs: median(app),
    wallMs: median(log.wallMs),
    commitMs: c.length ? median(c.map((x) => x.totalMs)) : 0,
    collectMs: c.length ? median(c.map((x) => x.collectMs)) : 0,
    copyMs: c.length ? median(c.map((x) => x.copyMs)) : 0,
    postMs: c.length ? median(c.map((x) => x.handoverMs - x.collectMs - x.copyMs)) : 0,
    pages: mode === 'emul' || mode === 'none' ? NaN : mean(c.map((x) => x.units)),
    stores: mode === 'emul' ? mean(c.map((x) => x.stores ?? 0)) : null,
    stagedBytes: mean(c.map((x) => x.stagedBytes)),
    changedBytes: mean(c.map((x) => x.changedBytes)),
    storedBytes: mean(c.map((x) => x.storedBytes)),
  };
}

// ---- targets ---------------------------------------------------------------

const backups: CdaBackupProcess[] = [];
async function targetSpec(kind: LaneResult['target'], tag: string): Promise<CdaTargetSpec> {
  if (kind === 'memory') return { kind: 'memory' };
  if (kind === 'disk') return { kind: 'disk', dir: path.join(work, `disk-${tag}`) };
  const key = crypto.randomBytes(32);
  const keyFile = path.join(work, `key-${tag}`);
  fs.writeFileSync(keyFile, key.toString('hex'));
  const b = await startCdaBackupProcess({ keyFile });
  backups.push(b);
  return { kind: 'backup', host: b.host, port: b.port, key };
}

// ---- the Node-program form ---------------------------------------------------

interface NodeLane {
  mode: LaneMode;
  target: LaneResult['target'];
  s: CriticalAreaService | null;
  w: Workload;
  log: CycleLog;
  done: number;
}

async function nodeLane(workload: WorkloadName, mode: LaneMode, target: LaneResult['target'], tag: string): Promise<NodeLane> {
  const memory = criticalArea.arena(ARENA_BYTES);
  const s = mode === 'none' ? null : criticalArea(memory, { mode, target: await targetSpec(target, tag) });
  if (s) {
    await s.ready;
    s.register(0, ARENA_BYTES);
  }
  // Emul: the accessor reports every store, as an instrumented program would.
  const view = new ArenaView(memory, 0, ARENA_BYTES, { onWrite: s?.mode === 'emul' ? s.recordStore : null });
  const w = createWorkload(workload, view);
  w.init();
  return { mode, target, s, w, log: newLog(), done: 0 };
}

async function nodeCycles(l: NodeLane, opt: number, n: number): Promise<void> {
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    l.s?.begin();
    const tb = performance.now();
    for (let i = 0; i < opt; i++) l.w.step();
    l.w.endCycle();
    const t1 = performance.now();
    let t2 = t1;
    let t3 = t1;
    let stats: CommitStats | null = null;
    if (l.s) {
      const { done } = l.s.end();
      t2 = performance.now();
      stats = await done;
      t3 = performance.now();
    }
    if (l.done++ === 0) continue; // the first cycle commits the whole new area
    l.log.beginMs.push(tb - t0);
    l.log.opsMs.push(t1 - tb);
    l.log.handoverMs.push(t2 - t1);
    l.log.wallMs.push(t3 - t0);
    if (stats) l.log.commits.push(stats);
  }
}

async function runNode(workload: WorkloadName, opt: number, laneModes: LaneMode[], targets: LaneResult['target'][], totalOps: number): Promise<LaneResult[]> {
  const lanes: NodeLane[] = [];
  for (const target of targets) for (const mode of laneModes) if (mode !== 'none' || target === targets[0]) lanes.push(await nodeLane(workload, mode, target, `${workload}-${opt}-${mode}-${target}`));
  const cycles = totalOps / opt;
  const block = Math.ceil(cycles / rounds);
  for (let r = 0; r * block < cycles; r++) {
    const n = Math.min(block, cycles - r * block);
    // Rotated, so no lane always follows the same one.
    for (let i = 0; i < lanes.length; i++) await nodeCycles(lanes[(i + r) % lanes.length]!, opt, n);
  }
  for (const l of lanes) await l.s?.close();
  for (const b of backups.splice(0)) await b.stop();
  return lanes.map((l) => summarise('node', workload, opt, l.mode, l.target, l.log));
}

// ---- the guest form -----------------------------------------------------------

/** One lane runs its block of cycles while the others wait for their turn at a cda_begin (suspended). */
class Baton {
  private holder = 0;
  private readonly waiting = new Map<number, () => void>();
  private readonly finished = new Set<number>();
  constructor(private readonly lanes: number) {}
  turn(i: number): Promise<void> {
    if (this.holder === i) return Promise.resolve();
    return new Promise((resolve) => this.waiting.set(i, resolve));
  }
  pass(from: number, finished = false): void {
    if (finished) this.finished.add(from);
    if (this.holder !== from) return;
    for (let k = 1; k <= this.lanes; k++) {
      const next = (from + k) % this.lanes;
      if (this.finished.has(next)) continue;
      this.holder = next;
      const w = this.waiting.get(next);
      this.waiting.delete(next);
      w?.();
      return;
    }
  }
}

let modules: { plain: GuestModule; emul: GuestModule } | null = null;

async function runGuests(workload: WorkloadName, opt: number, laneModes: LaneMode[]): Promise<LaneResult[]> {
  modules ??= {
    plain: await loadGuestModule(guestPath('cdabench'), {}),
    emul: await loadGuestModule(guestPath('cdabench'), { cdaStores: true }),
  };
  const cycles = ops / opt;
  const block = Math.ceil(cycles / rounds);
  const baton = new Baton(laneModes.length);
  const runs = laneModes.map(async (mode, lane) => {
    const log = newLog();
    const cda = mode === 'none' ? null : new GuestCda({ mode, target: { kind: 'memory' } });
    await cda?.ready;
    let tBegin = 0;
    let tBeginStart = 0;
    let beginMs = 0;
    let ended = 0;
    let rerun = false;
    let waitedAt = -1;
    let cycle = 0;
    const real: Hypercalls = cda?.hypercalls ?? {
      cda_register: () => 1,
      cda_unregister: () => 0,
      cda_begin: () => 0,
      cda_end: () => BigInt(++cycle),
      cda_abort: () => 0,
      cda_recover: () => 0n,
    };
    const hypercalls: Hypercalls = {
      ...real,
      cda_begin: (g: Guest) => {
        if (ended > 0 && ended % block === 0 && waitedAt !== ended) {
          // The end of this lane's block: hand the turn on and wait for it (the call runs again after).
          waitedAt = ended;
          baton.pass(lane);
          if (g.suspendHostCall(baton.turn(lane))) return 0;
        }
        tBeginStart = performance.now();
        const r = real.cda_begin!(g);
        tBegin = performance.now();
        beginMs = tBegin - tBeginStart;
        return r;
      },
      cda_end: (g: Guest) => {
        if (rerun) {
          // The re-run after the rewind: the commit is answered.
          rerun = false;
          if (ended > 1) log.wallMs.push(performance.now() - tBeginStart);
          return real.cda_end!(g);
        }
        const t1 = performance.now();
        const r = real.cda_end!(g);
        const t2 = performance.now();
        ended++;
        if (ended > 1) {
          log.beginMs.push(beginMs);
          log.opsMs.push(t1 - tBegin);
          log.handoverMs.push(t2 - t1);
          if (!cda) log.wallMs.push(t2 - tBeginStart);
        }
        rerun = cda !== null;
        return r;
      },
    };
    await baton.turn(lane);
    const out = new CollectedOutput();
    const wasi = WasiDevice.create({ args: ['cdabench', workload, '--opt', String(opt), '--ops', String(ops)], env: [], preopens: [], output: out });
    const guest = await Guest.create(mode === 'emul' ? modules!.emul : modules!.plain, { wasi, hypercalls, storeRecorder: cda?.storeRecorder, yieldEveryMs: 1e9 });
    let code: number;
    try {
      code = await guest.run();
    } finally {
      baton.pass(lane, true);
      await cda?.close();
    }
    if (code !== 0) throw new Error(`cdabench ${workload} ${mode}: exit ${code}: ${out.text('stderr')}`);
    log.commits = (cda?.commits ?? []).slice(1);
    return summarise('guest', workload, opt, mode, 'memory', log);
  });
  return Promise.all(runs);
}

// ---- tables --------------------------------------------------------------------

const us = (ms: number) => (ms * 1000).toFixed(1);
const nsOp = (ms: number, opt: number) => ((ms * 1e6) / opt).toFixed(0);
const mib = (b: number) => (b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 0);
const kib = (b: number) => (b / 1024).toFixed(b < 10240 ? 2 : 1);
const find = (rs: LaneResult[], form: Form, w: WorkloadName, opt: number, mode: LaneMode, target: LaneResult['target'] = 'memory') =>
  rs.find((r) => r.form === form && r.workload === w && r.opt === opt && r.mode === mode && r.target === target);

// ---- run ---------------------------------------------------------------------

/** Everything a report is made of (--json writes it, --from-json renders it again). */
interface Run {
  machine: string;
  date: string;
  load: [number, number];
  seconds: number;
  ops: number;
  rounds: number;
  arenaBytes: number;
  forms: Form[];
  workloads: WorkloadName[];
  opts: number[];
  modes: CdaMode[];
  sweepWorkload: WorkloadName;
  sweepOpts: number[];
  targetWorkload: WorkloadName;
  targetOps: number;
  targetKinds: ('disk' | 'backup')[];
  results: LaneResult[];
  sweepResults: LaneResult[];
  targetResults: LaneResult[];
}

async function measure(): Promise<Run> {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'us-bench-cda-'));
  const load0 = os.loadavg();
  const started = performance.now();
  const results: LaneResult[] = [];
  const lanesOf: LaneMode[] = ['none', ...modes];
  for (const workload of workloads) {
    for (const opt of opts) {
      for (const form of forms) {
        const t = performance.now();
        const rs = form === 'node' ? await runNode(workload, opt, lanesOf, ['memory'], ops) : await runGuests(workload, opt, lanesOf);
        results.push(...rs);
        process.stderr.write(`${form} ${workload} OPT=${opt}: ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
      }
    }
  }
  const sweepResults: LaneResult[] = [];
  if (sweepOpts.length) {
    const workload = values['sweep-workload'] as WorkloadName;
    for (const opt of sweepOpts) {
      for (const form of forms) {
        const t = performance.now();
        sweepResults.push(...(form === 'node' ? await runNode(workload, opt, lanesOf, ['memory'], ops) : await runGuests(workload, opt, lanesOf)));
        process.stderr.write(`sweep ${form} ${workload} OPT=${opt}: ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
      }
    }
  }
  const targetResults: LaneResult[] = [];
  if (targetKinds.length) {
    const workload = values['target-workload'] as WorkloadName;
    for (const opt of opts) {
      const t = performance.now();
      targetResults.push(...(await runNode(workload, opt, lanesOf, ['memory', ...targetKinds], targetOps)));
      process.stderr.write(`targets ${workload} OPT=${opt}: ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
    }
  }
  fs.rmSync(work, { recursive: true, force: true });
  const load1 = os.loadavg();
  const seconds = (performance.now() - started) / 1000;
  return {
    machine: machine(), date: new Date().toISOString().slice(0, 10), load: [load0[0]!, load1[0]!], seconds, ops, rounds, arenaBytes: ARENA_BYTES,
    forms, workloads, opts, modes, sweepWorkload: values['sweep-workload'] as WorkloadName, sweepOpts,
    targetWorkload: values['target-workload'] as WorkloadName, targetOps, targetKinds, results, sweepResults, targetResults,
  };
}

function render(run: Run): string {
  const { results, sweepResults, targetResults, forms, workloads, opts, modes, ops, rounds, sweepOpts, targetKinds, targetOps } = run;
  const lanesOf: LaneMode[] = ['none', ...modes];
  const out: string[] = [];
  out.push(`${run.machine}; ${run.date}; ${ops} operations per run, ${rounds} interleaved blocks per lane, arena ${run.arenaBytes / 2 ** 20} MiB; load average ${run.load[0].toFixed(1)} at the start, ${run.load[1].toFixed(1)} at the end; ${run.seconds.toFixed(0)} s`);
  out.push('');
  out.push('Per transaction (means; the guest counts its own wasm stores, the Node program its ArenaView stores):');
  out.push('');
  {
    const rows: (string | number)[][] = [];
    for (const form of forms) {
      for (const w of workloads) {
        for (const opt of opts) {
          const e = find(results, form, w, opt, 'emul');
          const a = find(results, form, w, opt, 'wp-async');
          const s = find(results, form, w, opt, 'wp-sync');
          const d = find(results, form, w, opt, 'diff');
          rows.push([
            form, w, opt,
            e?.stores?.toFixed(1) ?? '-',
            a ? a.pages.toFixed(2) : '-',
            s ? s.pages.toFixed(2) : '-',
            a ? kib(a.changedBytes) : '-',
            d ? kib(d.changedBytes) : '-',
            e ? kib(e.changedBytes) : '-',
            a && e ? (a.changedBytes / e.changedBytes).toFixed(0) : '-',
            // Seed 000 Figs. 15-16: what each technique processes over the whole run.
            a ? mib(a.changedBytes * (ops / opt)) : '-',
            e ? mib(e.changedBytes * (ops / opt)) : '-',
          ]);
        }
      }
    }
    out.push(table(['form', 'workload', 'OPT', 'writes/tx (emul stores)', 'unique pages/tx (wp-async)', 'pages/tx (wp-sync)', 'KiB committed/tx: page', 'diff', 'emul', 'page / emul', `MiB per ${ops} ops: page`, 'emul'], rows));
  }
  out.push('');
  out.push('Time (medians per cycle; ns per operation = the cycle / OPT; "none" is the unprotected lane). begin collects what changed since the last end; the hand-over = collect + copy + post to the commit worker; app = begin + steps + hand-over; commit = from the end call until the target holds the cycle; wall = begin until the commit is answered:');
  out.push('');
  {
    const rows: (string | number)[][] = [];
    for (const form of forms) {
      for (const w of workloads) {
        for (const opt of opts) {
          const base = find(results, form, w, opt, 'none')!;
          for (const mode of lanesOf) {
            const r = find(results, form, w, opt, mode);
            if (!r) continue;
            const none = mode === 'none';
            rows.push([
              form, w, opt, mode,
              nsOp(r.opsMs, opt),
              none ? '-' : us(r.beginMs),
              none ? '-' : us(r.collectMs),
              none ? '-' : us(r.copyMs),
              none ? '-' : us(r.postMs),
              nsOp(r.appMs, opt),
              none ? '-' : nsOp(r.appMs - base.appMs, opt),
              none ? '-' : us(r.commitMs),
              nsOp(r.wallMs, opt),
            ]);
          }
        }
      }
    }
    out.push(table(['form', 'workload', 'OPT', 'mode', 'steps ns/op', 'begin µs', 'collect µs', 'copy µs', 'post µs', 'app ns/op', 'overhead ns/op', 'commit µs/tx', 'wall ns/op'], rows));
  }
  out.push('');
  out.push('Kernel-assisted (wp-async) over fault-based (wp-sync) tracking, per transaction: tracking = begin + the steps over the unprotected lane\'s (the faults) + collect; app overhead = app over the unprotected lane\'s (tracking + copy + post) (seed 000: PTxen over PT up to 13x, Emulxen over Emul up to 4x; Fig. 18, with the copy: ~8x and ~4x):');
  out.push('');
  const speedups: { form: Form; w: WorkloadName; opt: number; fault: number; tracking: number; app: number; wall: number }[] = [];
  {
    const rows: (string | number)[][] = [];
    for (const form of forms) {
      for (const w of workloads) {
        for (const opt of opts) {
          const base = find(results, form, w, opt, 'none');
          const a = find(results, form, w, opt, 'wp-async');
          const s = find(results, form, w, opt, 'wp-sync');
          if (!base || !a || !s) continue;
          const track = (r: LaneResult) => r.beginMs + Math.max(r.opsMs - base.opsMs, 0) + r.collectMs;
          const app = (r: LaneResult) => Math.max(r.appMs - base.appMs, 1e-6);
          // The primitive: what a page's first write in a cycle costs (the steps over the unprotected lane's, per page).
          const fault = (r: LaneResult) => Math.max(r.opsMs - base.opsMs, 0) / r.pages;
          const sp = { form, w, opt, fault: fault(s) / Math.max(fault(a), 1e-9), tracking: track(s) / Math.max(track(a), 1e-6), app: app(s) / app(a), wall: s.wallMs / a.wallMs };
          speedups.push(sp);
          rows.push([form, w, opt, us(fault(s)), us(fault(a)), sp.fault.toFixed(1), us(track(s)), us(track(a)), sp.tracking.toFixed(1), us(app(s)), us(app(a)), sp.app.toFixed(1), sp.wall.toFixed(2)]);
        }
      }
    }
    out.push(table(['form', 'workload', 'OPT', 'fault µs/page wp-sync', 'wp-async', 'speedup', 'tracking µs/tx wp-sync', 'wp-async', 'speedup', 'app overhead µs/tx wp-sync', 'wp-async', 'speedup', 'wall ratio'], rows));
  }
  out.push('');
  out.push(`Seed 000 Figs. 17-18: the whole run as the seed counts it — ${ops} operations with tracking and the copy to the helper (begin + steps + collect + copy, medians per cycle × cycles), in ms; then with the post to the commit worker (all the application pays); the unprotected run beside:`);
  out.push('');
  {
    const rows: (string | number)[][] = [];
    const ms = (x: number) => x.toFixed(x < 100 ? 1 : 0);
    for (const form of forms) {
      for (const w of workloads) {
        for (const opt of opts) {
          const base = find(results, form, w, opt, 'none');
          const a = find(results, form, w, opt, 'wp-async');
          const s = find(results, form, w, opt, 'wp-sync');
          const e = find(results, form, w, opt, 'emul');
          if (!base || !a || !s || !e) continue;
          const cycles = ops / opt;
          const seedTotal = (r: LaneResult) => (r.beginMs + r.opsMs + r.collectMs + r.copyMs) * cycles;
          const all = (r: LaneResult) => r.appMs * cycles;
          rows.push([
            form, w, opt, ms(base.opsMs * cycles),
            ms(seedTotal(s)), ms(seedTotal(a)), ms(seedTotal(e)), (seedTotal(s) / seedTotal(a)).toFixed(1),
            ms(all(s)), ms(all(a)), ms(all(e)), (all(s) / all(a)).toFixed(1),
          ]);
        }
      }
    }
    out.push(table(['form', 'workload', 'OPT', 'unprotected ms', 'ops+tracking+copy ms: wp-sync', 'wp-async', 'emul', 'wp-sync / wp-async', 'with the post ms: wp-sync', 'wp-async', 'emul', 'wp-sync / wp-async'], rows));
  }
  out.push('');
  out.push('Which mode costs the application least: app overhead over the unprotected lane, every mode, least first; and the least wall time (with the wait for the commit):');
  out.push('');
  {
    const rows: (string | number)[][] = [];
    for (const form of forms) {
      for (const w of workloads) {
        for (const opt of opts) {
          const base = find(results, form, w, opt, 'none');
          if (!base) continue;
          const ranked = modes
            .map((m) => find(results, form, w, opt, m))
            .filter((r): r is LaneResult => !!r)
            .map((r) => ({ mode: r.mode, over: r.appMs - base.appMs, wall: r.wallMs }))
            .sort((x, y) => x.over - y.over);
          const byWall = [...ranked].sort((x, y) => x.wall - y.wall);
          const e = find(results, form, w, opt, 'emul');
          const a = find(results, form, w, opt, 'wp-async');
          rows.push([
            form, w, opt,
            e?.stores?.toFixed(0) ?? '-',
            a ? a.pages.toFixed(1) : '-',
            ranked.map((r) => `${r.mode} ${nsOp(r.over, opt)}`).join(' < '),
            byWall[0]?.mode ?? '-',
          ]);
        }
      }
    }
    out.push(table(['form', 'workload', 'OPT', 'writes/tx', 'pages/tx', 'app overhead ns/op, least first', 'least wall'], rows));
  }
  if (sweepResults.length) {
    const w = run.sweepWorkload;
    const all = [...results, ...sweepResults];
    const sweepAll = [...new Set([...opts, ...sweepOpts])].sort((a, b) => a - b);
    out.push('');
    out.push(`Where page tracking overtakes word-level tracking: ${w}, ${ops} operations, OPT from ${sweepAll[0]} to ${sweepAll.at(-1)} (app overhead over the unprotected lane, ns per operation; OPT 1 and 5 from the tables above):`);
    out.push('');
    const rows: (string | number)[][] = [];
    for (const form of forms) {
      for (const opt of sweepAll) {
        const base = find(all, form, w, opt, 'none');
        if (!base) continue;
        const e = find(all, form, w, opt, 'emul');
        const a = find(all, form, w, opt, 'wp-async');
        const over = modes.map((m) => {
          const r = find(all, form, w, opt, m);
          return r ? r.appMs - base.appMs : NaN;
        });
        const best = modes[over.indexOf(Math.min(...over.filter((x) => !Number.isNaN(x))))];
        rows.push([form, opt, e?.stores?.toFixed(0) ?? '-', a ? a.pages.toFixed(1) : '-', ...over.map((x) => (Number.isNaN(x) ? '-' : nsOp(x, opt))), best ?? '-']);
      }
    }
    out.push(table(['form', 'OPT', 'writes/tx', 'pages/tx', ...modes, 'least'], rows));
  }
  if (targetResults.length) {
    out.push('');
    out.push(`Targets: ${run.targetWorkload} as a Node program, ${targetOps} operations, lanes of all targets interleaved (the backup is an \`understudy cda-backup\` process on loopback):`);
    out.push('');
    const rows: (string | number)[][] = [];
    for (const opt of opts) {
      const base = targetResults.find((r) => r.opt === opt && r.mode === 'none')!;
      for (const target of ['memory', ...targetKinds] as LaneResult['target'][]) {
        for (const mode of modes) {
          const r = targetResults.find((x) => x.opt === opt && x.mode === mode && x.target === target);
          if (!r) continue;
          rows.push([target, opt, mode, kib(r.stagedBytes), kib(r.changedBytes), kib(r.storedBytes), us(r.handoverMs), nsOp(r.appMs - base.appMs, opt), us(r.commitMs), nsOp(r.wallMs, opt)]);
        }
      }
    }
    out.push(table(['target', 'OPT', 'mode', 'KiB handed over/tx', 'KiB committed/tx', 'KiB stored/tx', 'hand-over µs/tx', 'app overhead ns/op', 'commit µs/tx', 'wall ns/op'], rows));
  }
  void speedups;
  return out.join('\n') + '\n';
}

const run: Run = values['from-json'] ? (JSON.parse(fs.readFileSync(values['from-json'], 'utf8')) as Run) : await measure();
if (values.json) fs.writeFileSync(values.json, JSON.stringify(run, null, 1));
process.stdout.write(render(run));
