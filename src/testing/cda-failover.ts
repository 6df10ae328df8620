// Failover of critical data areas with real processes, for the e2e test and
// its longer seeded campaign (bench/cda-failover.ts): a CDA backup in its own
// process (`understudy cda-backup`), a primary running a data-structure
// workload with --cda-target backup:<host:port> — the cdabench guest under
// `understudy run`, or the same workload as a Node program
// (src/cda/workloads/primary.ts) — killed with SIGKILL at a seeded cycle.
// Then what must hold:
//   held     the backup's areas equal runReference(workload, {opt, cycles: N})
//            byte for byte, N its last acknowledged cycle
//   bounds   P <= N <= P + 1, P the last cycle the primary printed as
//            committed (a cycle may be acknowledged and its line not yet
//            printed; none can be printed and not acknowledged)
//   resumed  the same command started again recovers cycle N and finishes
//            with the digest of an uninterrupted run
// Every choice (mode, OPT, the kill's cycle) is a function of the seed.
//
// `inProcess`: the backup is a CdaBackupServer in this process and the
// restart runs here too (startSession, `understudy run`'s machinery, or
// runCdaPrimary) — the primary killed is still a real child process. It
// spares two process starts (~0.7 s each here, mostly loading Binaryen) per
// trial, which is what lets the suite run one kill per workload and form.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CdaBackupServer } from '../cda/backup.js';
import type { CdaTargetSpec } from '../cda/committer.js';
import { fetchCdaAreas, startCdaBackupProcess } from '../cda/index.js';
import type { CdaMode } from '../cda/service.js';
import { digest, runReference, type WorkloadName } from '../cda/workloads/index.js';
import { runCdaPrimary } from '../cda/workloads/primary.js';
import { loadGuestModule } from '../guest/module.js';
import { CollectedOutput } from '../output/gate.js';
import { startSession } from '../runtime/session.js';
import { Prng } from '../util/prng.js';
import { CLI_PATH, guestPath, tempDir } from './fixtures.js';

export type PrimaryForm = 'guest' | 'node';
export const PRIMARY_FORMS: readonly PrimaryForm[] = ['guest', 'node'];

/** The Node-program primary (compiled beside this file's tree). */
export const NODE_PRIMARY_PATH = fileURLToPath(new URL('../cda/workloads/primary-main.js', import.meta.url));

/** A primary (killed or restarted) must be done within this long. */
export const PRIMARY_RUN_MS_MAX = 60_000;

export interface CdaTrialOptions {
  workload: WorkloadName;
  form: PrimaryForm;
  seed: number;
  /** Tracking modes to draw from (default all but hash, whose per-cycle compare of the whole arena is slow). */
  modes?: readonly CdaMode[];
  /** Force a mode or OPT instead of drawing them. */
  mode?: CdaMode;
  opt?: 1 | 5;
  /** Transactions in the whole run (default 1,500); the kill comes at a drawn cycle in [killCycleMin, killCycleMax]. */
  cycles?: number;
  killCycleMin?: number;
  killCycleMax?: number;
  /** Backup and restart in this process (default false: both are processes too). */
  inProcess?: boolean;
}

export interface CdaTrialResult {
  workload: WorkloadName;
  form: PrimaryForm;
  seed: number;
  mode: CdaMode;
  opt: number;
  cycles: number;
  /** The cycle whose progress line triggered the kill. */
  killAt: number;
  /** The primary printed "done" before the kill landed (nothing was checked but the digest). */
  finishedFirst: boolean;
  /** P: the last cycle the primary printed as committed. */
  printed: number;
  /** N: the backup's last acknowledged cycle. */
  acked: number;
  /** The backup's areas equal runReference(cycles: N) byte for byte. */
  heldExact: boolean;
  /** The restart said it recovered this cycle (N when all is well). */
  recovered: number | null;
  digest: string | null;
  expectedDigest: string;
  /** Whatever failed, in words; empty when the trial passed. */
  failures: string[];
  ms: number;
  /** Where the time went: backup start, the primary until it was gone, the fetch, the restart. */
  phasesMs: { backup: number; primary: number; fetch: number; restart: number };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function workloadArgs(o: { workload: WorkloadName; opt: number; ops: number }): string[] {
  return [o.workload, '--opt', String(o.opt), '--ops', String(o.ops), '--progress', '1'];
}

function primaryArgs(o: { form: PrimaryForm; workload: WorkloadName; mode: CdaMode; opt: number; ops: number; port: number; keyFile: string }): string[] {
  const cda = ['--cda-mode', o.mode, '--cda-target', `backup:127.0.0.1:${o.port}`, '--key-file', o.keyFile];
  if (o.form === 'guest') return [CLI_PATH, 'run', guestPath('cdabench'), '-q', ...cda, '--', ...workloadArgs(o)];
  return [NODE_PRIMARY_PATH, ...workloadArgs(o), ...cda];
}

/** The restart, in this process: the guest through startSession (what `understudy run` does), or runCdaPrimary. */
async function restartHere(o: { form: PrimaryForm; workload: WorkloadName; mode: CdaMode; opt: number; ops: number; target: CdaTargetSpec }): Promise<Exit> {
  if (o.form === 'node') {
    const lines: string[] = [];
    try {
      await runCdaPrimary({ workload: o.workload, opt: o.opt, ops: o.ops, progress: 1, cda: { mode: o.mode, target: o.target } }, (l) => lines.push(l));
      return { code: 0, signal: null, stdout: lines.join('\n') + '\n', stderr: '' };
    } catch (e) {
      return { code: 1, signal: null, stdout: lines.join('\n') + '\n', stderr: (e as Error).message };
    }
  }
  const module = await loadGuestModule(guestPath('cdabench'), { cdaStores: o.mode === 'emul' });
  const out = new CollectedOutput();
  try {
    const r = await startSession({ module, args: ['cdabench', ...workloadArgs(o)], env: [], preopens: [], outputTarget: out, cda: { mode: o.mode, target: o.target } });
    return { code: r.exitCode, signal: null, stdout: out.text('stdout'), stderr: out.text('stderr') };
  } catch (e) {
    return { code: 1, signal: null, stdout: out.text('stdout'), stderr: (e as Error).message };
  }
}

/** Runs a primary; with `killAt`, SIGKILLs it as soon as it prints that cycle as committed. */
function runPrimary(args: string[], killAt: number | null): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let scanned = 0;
    let killed = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), PRIMARY_RUN_MS_MAX);
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (killAt === null || killed) return;
      // Only whole lines: a cut "progress cycle=1" must not read as cycle 1 of 12.
      const end = stdout.lastIndexOf('\n') + 1;
      const fresh = stdout.slice(scanned, end);
      scanned = end;
      for (const m of fresh.matchAll(/^progress cycle=(\d+)/gm)) {
        if (Number(m[1]) >= killAt) {
          killed = true;
          child.kill('SIGKILL');
          break;
        }
      }
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    // 'close': the pipes are drained, so stdout holds every line the primary wrote.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function lastProgress(stdout: string): number {
  let last = 0;
  for (const m of stdout.matchAll(/^progress cycle=(\d+)/gm)) last = Number(m[1]);
  return last;
}

const hex = (n: number) => n.toString(16).padStart(8, '0');

export async function runCdaFailoverTrial(o: CdaTrialOptions): Promise<CdaTrialResult> {
  const t0 = performance.now();
  const rng = new Prng(o.seed);
  const mode = o.mode ?? rng.pick(o.modes ?? (['wp-async', 'wp-sync', 'diff', 'emul'] as const));
  const opt = o.opt ?? rng.pick([1, 5] as const);
  const cycles = o.cycles ?? 1500;
  const killAt = rng.int(o.killCycleMin ?? 10, Math.min(o.killCycleMax ?? Math.floor(cycles / 3), cycles - 1));
  const ops = cycles * opt;
  const dir = tempDir('cda-failover');
  const keyFile = path.join(dir, 'key');
  const key = crypto.randomBytes(32);
  fs.writeFileSync(keyFile, key.toString('hex'));
  const expectedDigest = hex(digest(runReference(o.workload, { opt, cycles })));
  const failures: string[] = [];
  const result: CdaTrialResult = {
    workload: o.workload, form: o.form, seed: o.seed, mode, opt, cycles, killAt,
    finishedFirst: false, printed: 0, acked: -1, heldExact: false, recovered: null, digest: null, expectedDigest, failures, ms: 0,
    phasesMs: { backup: 0, primary: 0, fetch: 0, restart: 0 },
  };
  let lap = performance.now();
  const phase = (name: keyof CdaTrialResult['phasesMs']) => {
    const now = performance.now();
    result.phasesMs[name] = now - lap;
    lap = now;
  };
  const server = o.inProcess ? await CdaBackupServer.start({ listen: { host: '127.0.0.1', port: 0 }, key }) : null;
  const backup = server ? { host: '127.0.0.1', port: server.port, stop: () => server.close() } : await startCdaBackupProcess({ keyFile });
  phase('backup');
  try {
    const args = primaryArgs({ form: o.form, workload: o.workload, mode, opt, ops, port: backup.port, keyFile });
    const first = await runPrimary(args, killAt);
    result.printed = lastProgress(first.stdout);
    result.finishedFirst = /^done /m.test(first.stdout);
    if (first.signal !== 'SIGKILL' && !result.finishedFirst) failures.push(`the primary ended (${first.code ?? first.signal}) before the kill: ${first.stderr.trim()}`);

    phase('primary');
    const held = await fetchCdaAreas({ host: backup.host, port: backup.port, key });
    const n = held.cycle;
    result.acked = n;
    if (held.areas.length !== 1) failures.push(`the backup holds ${held.areas.length} areas, not 1`);
    else {
      const want = runReference(o.workload, { opt, cycles: n });
      const got = held.areas[0]!.bytes;
      result.heldExact = got.length === want.length && Buffer.compare(Buffer.from(got), Buffer.from(want.buffer, want.byteOffset, want.byteLength)) === 0;
      if (!result.heldExact) failures.push(`the backup's area at cycle ${n} differs from the reference run's`);
    }
    if (!result.finishedFirst && (n < result.printed || n > result.printed + 1)) {
      failures.push(`the backup acknowledged cycle ${n}; the primary printed ${result.printed} as committed (expected ${result.printed} or ${result.printed + 1})`);
    }

    phase('fetch');
    const again = o.inProcess
      ? await restartHere({ form: o.form, workload: o.workload, mode, opt, ops, target: { kind: 'backup', host: backup.host, port: backup.port, key } })
      : await runPrimary(args, null);
    const rec = /^recovered cycle=(\d+)/m.exec(again.stdout);
    phase('restart');
    result.recovered = rec ? Number(rec[1]) : null;
    result.digest = /^done .* digest=([0-9a-f]{8})$/m.exec(again.stdout)?.[1] ?? null;
    if (again.code !== 0) failures.push(`the restart exited ${again.code ?? again.signal}: ${again.stderr.trim()}`);
    if (n > 0 && result.recovered !== n) failures.push(`the restart recovered cycle ${result.recovered}, not the backup's ${n}`);
    if (result.digest !== expectedDigest) failures.push(`the restart ended with digest ${result.digest}, an uninterrupted run with ${expectedDigest}`);
  } finally {
    await backup.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  result.ms = performance.now() - t0;
  return result;
}
