// A guest running under understudy with its devices, output gate,
// checkpointer and control socket: what `understudy run` and `understudy
// restore` start. Command guests run to their exit; reactor guests serve
// requests (one per input line) until the input ends.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import { Checkpointer, type TakenCheckpoint } from '../checkpoint/checkpointer.js';
import { openCheckpoint, restoreFromCheckpoint, type GuestImage } from '../checkpoint/snapshot.js';
import { deflateAfterRestore } from '../balloon/manager.js';
import { deflateAtNextPoll } from '../balloon/poll.js';
import { EpochCheckpointer, type EpochStats } from '../checkpoint/epochs.js';
import { isChainDir, openChainPoint } from '../checkpoint/chain.js';
import type { CodecName } from '../checkpoint/compress.js';
import type { TrackerKind } from '../track/tracker.js';
import { DENSE_REGION_MIN_PAGES_DEFAULT } from '../track/uffd.js';
import type { Progress } from '../checkpoint/file.js';
import { ControlServer } from '../control/control.js';
import { UnderstudyError } from '../errors.js';
import { Guest } from '../guest/guest.js';
import { loadGuestModule, type GuestModule } from '../guest/module.js';
import { StreamInput } from '../io/input.js';
import { OutputGate, processOutput, type OutputTarget } from '../output/gate.js';
import { WasiDevice, type InputSource } from '../wasi/index.js';
import type { CowStrategy } from '../rollback/engine.js';
import { runWithRollback, type RollbackRunResult, type RunHooks } from '../rollback/runner.js';
import { GuestCda } from '../cda/guest.js';
import type { CdaOptions } from '../cda/service.js';

export interface SessionOptions {
  checkpointDir?: string;
  /** Full checkpoints every this many ms. */
  checkpointEveryMs?: number;
  /** Incremental checkpoints (a chain: base + deltas) every this many ms; takes precedence. */
  epochMs?: number;
  tracker?: TrackerKind | 'auto';
  codec?: CodecName;
  keep?: number;
  controlSocket?: string;
  /** Guest directories copied out to the host when the guest ends: [guestPath, hostDir]. */
  exportDirs?: [string, string][];
  /** Reactor handler export for input lines. */
  handler?: string;
  stdin?: InputSource;
  /** For reactors: where request lines come from. */
  requests?: Readable;
  outputTarget?: OutputTarget;
  yieldEveryMs?: number;
  stackCaptureBytes?: number;
  onCheckpoint?: (taken: TakenCheckpoint) => void;
  onEpoch?: (e: EpochStats) => void;
  /** Progress of long checkpoint writes and restores. */
  onProgress?: Progress;
  /** Log lines about the session (not guest output) go here. */
  log?: (line: string) => void;
  /** Critical data areas (src/cda): the guest's cda_* hypercalls commit to this target. */
  cda?: CdaOptions;
}

export interface StartOptions extends SessionOptions {
  module: GuestModule;
  args: string[];
  env: [string, string][];
  preopens: { guestPath: string; hostPath?: string }[];
}

export interface SessionResult {
  exitCode: number;
  /** Full checkpoints taken (full mode). */
  checkpoints: TakenCheckpoint[];
  /** Epochs made durable (incremental mode). */
  epochs: EpochStats[];
  guest: Guest;
}

export async function startSession(opts: StartOptions): Promise<SessionResult> {
  const output = new OutputGate(opts.outputTarget ?? processOutput);
  const wasi = WasiDevice.create({ args: opts.args, env: opts.env, preopens: opts.preopens, stdin: opts.stdin, output });
  const cda = opts.cda ? await openCda(opts.cda, opts.log) : null;
  try {
    const guest = await Guest.create(opts.module, {
      wasi,
      yieldEveryMs: opts.yieldEveryMs,
      stackCaptureBytes: opts.stackCaptureBytes,
      hypercalls: cda?.hypercalls,
      storeRecorder: cda?.storeRecorder,
    });
    return await drive(guest, output, opts, 1, cda);
  } finally {
    if (cda) {
      await cda.service.whenSettled();
      const s = cda.service.stats();
      const med = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[xs.length >> 1]! : 0);
      opts.log?.(
        `critical data areas: ${s.commits} cycles committed (last ${s.committedCycle}), ${s.aborts} aborted, ${s.failures} failed; hand-over ${med(cda.commits.map((c) => c.handoverMs)).toFixed(3)} ms of ${med(cda.commits.map((c) => c.totalMs)).toFixed(3)} ms per commit (medians)`,
      );
      await cda.close();
    }
  }
}

/** The guest's critical data areas, with the target's last committed state read before the guest runs. */
async function openCda(options: CdaOptions, log?: (line: string) => void): Promise<GuestCda> {
  const cda = new GuestCda(options);
  try {
    await cda.ready;
  } catch (e) {
    await cda.close();
    throw e;
  }
  const s = cda.service.stats();
  log?.(`critical data areas: mode ${s.mode}, target ${s.target}, last committed cycle ${s.committedCycle}${s.logStop ? ` (commit log: ${s.logStop.code}: ${s.logStop.message})` : ''}`);
  return cda;
}

export interface RestoreSessionOptions extends SessionOptions {
  file: string;
  /** The module file; default: the one embedded in the checkpoint. */
  modulePath?: string;
  /** The given stdin is the original input from its start: skip what the guest had consumed. */
  replayStdin?: boolean;
  /** When `file` is a chain directory: the sequence to restore (default the newest). */
  sequence?: number;
}

export async function restoreSession(opts: RestoreSessionOptions): Promise<SessionResult> {
  const opened: GuestImage = isChainDir(opts.file) ? openChainPoint(opts.file, opts.sequence) : openCheckpoint(opts.file);
  try {
    const module = opts.modulePath ? await loadGuestModule(opts.modulePath) : undefined;
    const stdin = opts.stdin ?? new StreamInput(process.stdin, opts.replayStdin ? opened.meta.stdinBytesConsumed : 0);
    const { guest, output } = await restoreFromCheckpoint(opened, {
      module,
      host: { stdin },
      outputTarget: opts.outputTarget ?? processOutput,
      guestOptions: { yieldEveryMs: opts.yieldEveryMs, stackCaptureBytes: opts.stackCaptureBytes },
      onProgress: opts.onProgress,
    });
    // A snapshot taken with the balloon inflated: give the guest its whole memory back.
    deflateAfterRestore(guest);
    deflateAtNextPoll(guest);
    opts.log?.(`restored checkpoint ${opened.meta.sequence} (${guest.kind}, ${(opened.meta.memoryBytes / 2 ** 20).toFixed(1)} MiB memory, restore generation ${guest.wasi.restoreGeneration})`);
    return drive(guest, output, opts, opened.meta.sequence + 1);
  } finally {
    opened.close();
  }
}

/** How a session protects its guest: full checkpoints now and then, or a chain of epochs. */
interface Protection {
  /** A checkpoint now (at the next safe point); what was written. */
  takeNow(): Promise<Record<string, unknown>>;
  /** Reactors, after each request. */
  afterRequest(): Promise<void>;
  close(): Promise<void>;
  count(): number;
  fullCheckpoints(): TakenCheckpoint[];
  epochs(): EpochStats[];
}

async function protect(guest: Guest, output: OutputGate, opts: SessionOptions, firstSequence: number): Promise<Protection | null> {
  if (!opts.checkpointDir) return null;
  if (opts.epochMs !== undefined) {
    if (isChainDir(opts.checkpointDir)) throw new UnderstudyError('ERR_USAGE', `${opts.checkpointDir} already holds a checkpoint chain; give a new --checkpoint-dir`);
    const ep = await EpochCheckpointer.start(guest, output, {
      dir: opts.checkpointDir,
      epochMs: opts.epochMs,
      tracker: opts.tracker,
      codec: opts.codec,
      keep: opts.keep,
      firstSequence,
      onEpoch: opts.onEpoch,
    });
    opts.log?.(`incremental checkpoints every ${opts.epochMs} ms into ${opts.checkpointDir} (tracker ${ep.trackerKind})`);
    return {
      async takeNow() {
        const p = await guest.atSafePoint(() => ep.epoch());
        await ep.flush();
        return { sequence: p.sequence, chain: opts.checkpointDir, pauseMs: p.pauseMs };
      },
      async afterRequest() {
        await ep.epochIfDue();
      },
      close: () => ep.close(),
      count: () => ep.epochs.length,
      fullCheckpoints: () => [],
      epochs: () => ep.epochs,
    };
  }
  const cp = new Checkpointer(guest, output, { dir: opts.checkpointDir, everyMs: opts.checkpointEveryMs, keep: opts.keep, firstSequence, onCheckpoint: opts.onCheckpoint, onProgress: opts.onProgress });
  return {
    async takeNow() {
      const t = await cp.take();
      return { path: t.path, sequence: t.meta.sequence, fileBytes: t.fileBytes, pauseMs: t.pauseMs };
    },
    async afterRequest() {
      cp.takeIfDue();
    },
    close: async () => undefined,
    count: () => cp.taken.length,
    fullCheckpoints: () => cp.taken,
    epochs: () => [],
  };
}

async function drive(guest: Guest, output: OutputGate, opts: SessionOptions, firstSequence: number, cda: GuestCda | null = null): Promise<SessionResult> {
  const protection = await protect(guest, output, opts, firstSequence);
  const control = opts.controlSocket
    ? await ControlServer.listen(opts.controlSocket, async (req) => {
        if (req.op === 'status') return { status: guest.status, kind: guest.kind, checkpoints: protection?.count() ?? 0 };
        if (req.op === 'export') {
          // At a safe point, so the files are as the guest last left them, not half written.
          await guest.atSafePoint((g) => g.wasi.exportTree(req.guestPath, path.resolve(req.hostDir)));
          return { exported: req.guestPath, to: path.resolve(req.hostDir) };
        }
        if (!protection) throw new UnderstudyError('ERR_USAGE', 'this session has no --checkpoint-dir');
        return protection.takeNow();
      })
    : null;
  const onSignal = (): void => {
    if (!protection) return;
    protection.takeNow().then(
      (t) => opts.log?.(`checkpoint ${String(t.sequence)} written on SIGUSR2`),
      (e: unknown) => opts.log?.(`checkpoint on SIGUSR2 failed: ${(e as Error).message}`),
    );
  };
  process.on('SIGUSR2', onSignal);
  try {
    let exitCode: number;
    try {
      if (guest.kind === 'command') exitCode = await guest.run();
      else exitCode = await serveLines(guest, output, opts, protection, cda);
    } finally {
      await protection?.close();
    }
    for (const [guestPath, hostDir] of opts.exportDirs ?? []) guest.wasi.exportTree(guestPath, path.resolve(hostDir));
    return { exitCode, checkpoints: protection?.fullCheckpoints() ?? [], epochs: protection?.epochs() ?? [], guest };
  } finally {
    process.off('SIGUSR2', onSignal);
    await control?.close();
  }
}

/** A reactor served from lines of input: each line is one request, each response one line of output. */
async function serveLines(guest: Guest, output: OutputGate, opts: SessionOptions, protection: Protection | null, cda: GuestCda | null): Promise<number> {
  const handler = opts.handler ?? 'handle';
  const rl = readline.createInterface({ input: opts.requests ?? process.stdin, crlfDelay: Infinity });
  // With critical data areas, a request's response (and any output of the call) is held until
  // the cycle the call ended is durable; a cycle that failed releases nothing.
  if (cda) output.hold();
  let n = 0;
  for await (const line of rl) {
    n++;
    const mark = output.mark();
    const counters = output.save();
    const resp = guest.request(handler, Buffer.from(line, 'utf8'));
    output.write('stdout', Buffer.concat([resp, Buffer.from('\n')]));
    const settled = await cda?.settle();
    if (settled && !settled.ok) {
      output.rollback(mark, counters);
      opts.log?.(`request ${n}: its cycle was not committed (${settled.error.code}: ${settled.error.message}); the areas are as before it, its response is withheld`);
    } else if (cda) output.release(output.mark());
    await protection?.afterRequest();
  }
  return 0;
}

export function ensureDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
}

export interface RollbackSessionOptions {
  module: GuestModule;
  args: string[];
  env: [string, string][];
  preopens: { guestPath: string; hostPath?: string }[];
  epochMs: number;
  strategy?: CowStrategy;
  histase?: boolean;
  /** COWP's dense regions (RollbackOptions.denseRegionMinPages). */
  denseRegionMinPages?: number;
  watchdogMs?: number;
  target?: 'older' | 'newest';
  handler?: string;
  stdin?: InputSource;
  /** Reactors: where request lines come from. */
  requests?: Readable;
  outputTarget?: OutputTarget;
  yieldEveryMs?: number;
  /** Full checkpoints on disk, collected while the guest runs (`--collect-every`, `--checkpoint-dir`, `--keep`). */
  collect?: { dir: string; everyMs: number; keep?: number };
  /** Error injection (tests: `run --inject`). */
  hooks?: RunHooks;
  log?: (line: string) => void;
}

/** `understudy run --protect rollback`: in-memory checkpoints every epoch, in-place recovery on a detected error. */
export async function startRollbackSession(opts: RollbackSessionOptions): Promise<RollbackRunResult> {
  const lines = async function* (): AsyncGenerator<Uint8Array> {
    const rl = readline.createInterface({ input: opts.requests ?? process.stdin, crlfDelay: Infinity });
    for await (const line of rl) yield Buffer.from(line, 'utf8');
  };
  const reactor = opts.module.layout.kind === 'reactor';
  const dense = opts.denseRegionMinPages ?? DENSE_REGION_MIN_PAGES_DEFAULT;
  const cowp = (opts.strategy ?? 'cowp') === 'cowp';
  opts.log?.(`rollback protection: ${opts.strategy ?? 'cowp'}${opts.histase ? '+histase' : ''}${cowp ? (dense ? `, dense regions at ${dense} pages` : ', no dense regions') : ''}, epochs of ${opts.epochMs} ms, two checkpoints kept, target ${opts.target ?? 'older'}${opts.watchdogMs ? `, watchdog ${opts.watchdogMs} ms` : ''}`);
  const result = await runWithRollback({
    module: opts.module,
    args: opts.args,
    env: opts.env,
    preopens: opts.preopens,
    epochMs: opts.epochMs,
    strategy: opts.strategy,
    histase: opts.histase,
    denseRegionMinPages: opts.denseRegionMinPages,
    watchdogMs: opts.watchdogMs,
    target: opts.target,
    handler: opts.handler,
    stdin: reactor ? undefined : opts.stdin,
    requests: reactor ? lines() : undefined,
    outputTarget: opts.outputTarget,
    yieldEveryMs: opts.yieldEveryMs,
    log: opts.log,
    hooks: opts.hooks,
    collect: opts.collect && {
      ...opts.collect,
      onWritten: (c) =>
        opts.log?.(`collect: checkpoint ${c.meta.sequence} of the instant ${c.durableAfterMs.toFixed(0)} ms ago -> ${c.path} (${(c.fileBytes / 2 ** 20).toFixed(1)} MiB; scan ${c.scan.copyMs.toFixed(1)} ms, merge ${c.scan.mergeMs.toFixed(1)} ms over ${c.scan.epochs} epochs, ${c.scan.mergedPages} pages from pre-images; guest paused ${c.startPauseMs.toFixed(2)} ms)`),
      onAbandoned: (why) => opts.log?.(`collect: a checkpoint in progress was given up (${why})`),
    },
  });
  const faults = result.epochs.reduce((a, e) => a + e.faults, 0);
  const pages = result.epochs.reduce((a, e) => a + e.pages, 0);
  const n = Math.max(1, result.epochs.length);
  opts.log?.(`rollback: ${result.epochs.length} epochs, ${(faults / n).toFixed(1)} faults and ${(pages / n).toFixed(1)} pages per epoch; ${result.detections.length} errors detected, ${result.recoveries.length} recoveries (${result.restarts} restarts)${opts.collect ? `; ${result.collected.length} full checkpoints collected` : ''}`);
  return result;
}
