// In-memory rollback (seed 003, VM-μCheckpoint): every epoch keeps the
// pre-images of the pages written in it, so the guest can be put back in place
// to one of its last checkpoints within milliseconds.
//
//   checkpoint k (guest at rest)      epoch k                 checkpoint k+1
//   ── state_k: vCPU, device, gate ──▶ writes fault (COWB) ──▶ undo_k = seal(): the epoch's
//      (CRC over the encoded state)    or were pre-saved      pre-image store, kept natively
//                                      (COWP, Histase)        (no copy); its background job
//                                                             filters, pre-saves, checksums it
//
// Rolling back to checkpoint k from inside epoch n applies the live epoch's
// pre-images, then undo_{n-1} ... undo_k (for a page in several, the oldest
// wins), zeroes memory grown since k, and restores vCPU, device and gate from
// state_k. Two checkpoints are kept (dual checkpoint, seed 003 §3.3): the
// older is the default target, because an error activated shortly before the
// newer one may already be inside it.
import { UnderstudyError, isUnderstudyError } from '../errors.js';
import type { Guest } from '../guest/guest.js';
import { vcpuFromPlain, vcpuToPlain } from '../guest/persist.js';
import { native } from '../native.js';
import type { OutputGate, OutputGateState } from '../output/gate.js';
import { decodePlain, encodePlain } from '../checkpoint/plain-codec.js';
import { createTracker, type PreimageTracker } from '../track/tracker.js';
import { Collector, type CollectOptions } from './collect.js';
import { DENSE_REGION_MIN_PAGES_DEFAULT, HISTASE_ALPHA_DEFAULT, PREIMAGE_BYTES_MAX_DEFAULT } from '../track/uffd.js';
import { assert } from '../util/assert.js';
import { Deadline } from '../util/deadline.js';
import type { PlainObject } from '../util/plain.js';
import type { InputSource } from '../wasi/index.js';

/** COWB: everything protected, the first write saves; COWP: last epoch's pages pre-saved at the start. */
export type CowStrategy = 'cowb' | 'cowp';

/** A host-side check of guest-visible state, run at each epoch boundary: null when it holds, else what failed. */
export type GuestAssertion = (guest: Guest) => string | null;

/** Dual checkpoint (seed 003): the two most recent are kept. */
export const KEPT_CHECKPOINTS = 2;

export interface RollbackOptions {
  epochMs: number;
  strategy?: CowStrategy;
  histase?: boolean;
  histaseAlpha?: number;
  /**
   * COWP's dense regions: a 2 MiB region of which at least this many of its 512 pages were
   * written in an epoch is pre-saved whole for the next (WpSyncTracker.setDenseRegions). Default
   * DENSE_REGION_MIN_PAGES_DEFAULT (64); 0 pre-saves only the pages written (seed 003's H_i).
   */
  denseRegionMinPages?: number;
  /**
   * Where each sealed log's job (compare predicted pages, COWP pre-saving, checksum) runs: on the
   * fault handler's thread beside the guest ('background': the guest's pause is only the seal), or
   * in the pause ('pause': better when no core is free, see docs/benchmarks.md). Default 'pause'.
   */
  jobIn?: 'background' | 'pause';
  /** How write faults are served (TrackerOptions.faults); default 'signal', on the faulting thread. */
  faults?: 'thread' | 'signal';
  preimageBytesMax?: number;
  assertions?: readonly GuestAssertion[];
  /** Where a rolled-back device reads stdin from, positioned at the checkpoint (see ReplayInput). */
  stdinAt?: (consumed: number) => InputSource | undefined;
  /** Count of reactor requests served so far (recorded in each checkpoint). */
  requestIndex?: () => number;
  /** Called when a checkpoint is dropped: inputs before it can be forgotten. */
  onForget?: (oldest: KeptCheckpoint) => void;
  /** Disk checkpoints collected while the guest runs (seed 003's collect). */
  collect?: CollectOptions;
  /** The clock collects are scheduled by (epochs come due by a Deadline). */
  now?: () => number;
}

export interface KeptCheckpoint {
  readonly sequence: number;
  /** encodePlain({vcpu, device, gate}); checked against stateCrc before use. */
  readonly state: Uint8Array;
  readonly stateCrc: number;
  readonly gateMark: number;
  readonly memoryBytes: number;
  readonly stdinConsumed: number;
  readonly requestIndex: number;
  /** Pre-images of the epoch that began here (absent for the newest: that epoch is live). */
  undo?: UndoLog;
}

/** An epoch's undo log: its pre-image store, held natively (PreimageTracker.seal/release). */
export interface UndoLog {
  readonly log: number;
  /** False when the epoch overflowed its store: this log cannot be rolled back. */
  readonly complete: boolean;
}

export interface RollbackEpochStats {
  sequence: number;
  /** Write-protect faults served in the epoch. */
  faults: number;
  /** Pages in the epoch's undo log (pre-images kept; final once the next epoch is sealed, or after finish()). */
  pages: number;
  /** Pages pre-saved for the epoch (COWP). */
  presaved: number;
  /** Time the guest stood still for the checkpoint. */
  pauseMs: number;
  /** The undo log these counts are of (internal). */
  log?: number;
}

export interface RecoveryReport {
  reason: string;
  /** Sequence rolled back to, or null when recovery had to restart the guest. */
  sequence: number | null;
  /** Checkpoints refused on the way, with why. */
  refused: { sequence: number; why: string }[];
  pagesRestored: number;
  recoveryMs: number;
  /** Reactor requests after the checkpoint, to be replayed. */
  requestIndex: number;
  restoreGeneration: number;
}

function crcOf(state: Uint8Array): number {
  return native.crc32c(state, 0);
}

export class RollbackEngine {
  private readonly kept: KeptCheckpoint[] = [];
  private sequence = 0;
  /** Passes when the epoch is over: asked after every request, so a flag, not a clock read (src/util/deadline.ts). */
  private readonly epochDue = Deadline.create();
  private lastFaults = 0;
  private lastPresaved = 0;
  readonly epochs: RollbackEpochStats[] = [];
  /** Disk checkpoints collected while the guest runs (when options.collect is set). */
  readonly collector: Collector | null;
  readonly recoveries: RecoveryReport[] = [];
  private readonly now: () => number;

  private constructor(
    readonly guest: Guest,
    private readonly gate: OutputGate,
    readonly tracker: PreimageTracker,
    private readonly options: RollbackOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.epochDue.arm(options.epochMs);
    this.collector = options.collect ? new Collector(guest, gate, tracker, options.collect) : null;
  }

  /** Attaches to a guest at rest and takes checkpoint 0. The gate starts holding output. */
  static attach(guest: Guest, gate: OutputGate, options: RollbackOptions): RollbackEngine {
    assert(guest.atRest, 'rollback attaches to a guest at rest');
    if (!(options.epochMs > 0)) throw new UnderstudyError('ERR_USAGE', 'epochMs must be positive');
    const tracker = createTracker(guest.memory, 'wp-sync', { preimageBytesMax: options.preimageBytesMax ?? PREIMAGE_BYTES_MAX_DEFAULT, faults: options.faults ?? 'signal' });
    try {
      if (options.histase) tracker.setHistase(true, options.histaseAlpha ?? HISTASE_ALPHA_DEFAULT);
      tracker.setDenseRegions(options.denseRegionMinPages ?? DENSE_REGION_MIN_PAGES_DEFAULT);
      gate.hold();
      const engine = new RollbackEngine(guest, gate, tracker, options);
      engine.kept.push(engine.capture());
      return engine;
    } catch (e) {
      tracker.dispose();
      throw e;
    }
  }

  get strategy(): CowStrategy {
    return this.options.strategy ?? 'cowp';
  }

  /** The kept checkpoints, oldest first (tests corrupt them through this). */
  checkpoints(): readonly KeptCheckpoint[] {
    return this.kept;
  }

  private capture(): KeptCheckpoint {
    const vcpu = this.guest.captureVcpu();
    const gate = this.gate.save();
    const state = encodePlain({ vcpu: vcpuToPlain(vcpu), device: this.guest.wasi.save(), gate });
    return {
      sequence: this.sequence++,
      state,
      stateCrc: crcOf(state),
      gateMark: this.gate.mark(),
      memoryBytes: this.guest.memory.buffer.byteLength,
      stdinConsumed: this.guest.wasi.stdinBytesConsumed,
      requestIndex: this.options.requestIndex?.() ?? 0,
    };
  }

  /** Runs the host-side assertions; throws ERR_GUEST_ASSERTION on the first that fails. */
  check(): void {
    for (const a of this.options.assertions ?? []) {
      const failed = a(this.guest);
      if (failed !== null) throw new UnderstudyError('ERR_GUEST_ASSERTION', `host-side assertion failed: ${failed}`);
    }
  }

  /** A checkpoint if the epoch is over (guest at rest). */
  checkpointIfDue(): RollbackEpochStats | null {
    if (!this.epochDue.passed) return null;
    return this.checkpoint();
  }

  /**
   * Ends the epoch: checks the assertions (a failure is a detection, and no
   * checkpoint is kept of the bad state), seals its pre-images as the undo log
   * of the newest checkpoint (no copy: the native store is the log), takes a
   * new one; with COWP the pages just written are pre-saved for the next epoch
   * by the log's background job. Drops the oldest beyond two and lets its
   * output out. With `collect` (or when one is due) the seal also starts a
   * disk checkpoint of this instant, collected while the guest runs.
   */
  checkpoint(opts: { collect?: boolean } = {}): RollbackEpochStats {
    assert(this.guest.atRest, 'checkpoint at rest');
    this.check();
    const t0 = performance.now();
    this.collector?.poll();
    const collect = this.collector?.due(this.now(), opts.collect === true) ?? false;
    const sealed = this.tracker.seal(this.strategy === 'cowp', collect ? this.collector!.scanTarget() : undefined, this.options.jobIn ?? 'pause');
    if (collect) this.collector!.started(t0);
    const newest = this.kept[this.kept.length - 1]!;
    newest.undo = { log: sealed.log, complete: sealed.complete };
    this.kept.push(this.capture());
    // The previous epoch's log is final now (the seal finished its job): its counts, from the
    // seal itself (asking the tracker would wait for its lock behind the new job).
    const prev = this.epochs[this.epochs.length - 1];
    if (prev?.log !== undefined && prev.log === sealed.finishedLog) {
      prev.pages = sealed.finishedKept;
      prev.log = undefined;
    }
    while (this.kept.length > KEPT_CHECKPOINTS) this.recycle(this.kept.shift()!);
    const oldest = this.kept[0]!;
    this.gate.release(oldest.gateMark);
    this.options.onForget?.(oldest);
    const faults = sealed.faults - this.lastFaults;
    this.lastFaults = sealed.faults;
    // The seal finished the previous log's job, whose pre-saving went into the epoch just sealed.
    const presaved = sealed.presavedPagesTotal - this.lastPresaved;
    this.lastPresaved = sealed.presavedPagesTotal;
    const epoch: RollbackEpochStats = { sequence: newest.sequence, faults, pages: sealed.slots, presaved, pauseMs: performance.now() - t0, log: sealed.log };
    this.epochs.push(epoch);
    this.epochDue.arm(this.options.epochMs);
    return epoch;
  }

  /** Final counts of an epoch whose log's job has finished (or is finished now). */
  private settle(e: RollbackEpochStats): void {
    e.pages = this.tracker.logInfo(e.log!, true).kept;
    e.log = undefined;
  }

  /**
   * The run is over (the guest no longer runs): seals the live epoch for its counts and settles
   * every epoch's (benchmarks). The last epoch, cut short by the end of the run, is included.
   */
  finish(): void {
    const sealed = this.tracker.seal(false);
    const last: RollbackEpochStats = {
      sequence: this.sequence,
      faults: sealed.faults - this.lastFaults,
      pages: sealed.slots,
      presaved: sealed.presavedPagesTotal - this.lastPresaved,
      pauseMs: 0,
      log: sealed.log,
    };
    this.lastFaults = sealed.faults;
    this.lastPresaved = sealed.presavedPagesTotal;
    for (const e of this.epochs) if (e.log !== undefined) this.settle(e);
    this.settle(last);
    this.tracker.release(sealed.log);
    this.epochs.push(last);
  }

  private recycle(cp: KeptCheckpoint): void {
    const u = cp.undo;
    cp.undo = undefined;
    if (!u) return;
    for (const e of this.epochs.slice(-2)) if (e.log === u.log) this.settle(e);
    this.tracker.release(u.log);
  }

  /** The guest finished fault-free: everything held is let out. */
  commitAll(): void {
    this.gate.release(this.gate.mark());
  }

  /**
   * Rolls the guest back in place. Target: the older kept checkpoint (default)
   * or the newest. A checkpoint whose state or undo logs fail their checksums
   * is refused and the next older one tried; when none is left, returns null
   * (the caller restarts the guest) with the refusals in `refusedOut`.
   */
  recover(reason: string, target: 'older' | 'newest' = 'older', refusedOut: { sequence: number; why: string }[] = []): RecoveryReport | null {
    const t0 = performance.now();
    let i = target === 'older' ? 0 : this.kept.length - 1;
    for (; i >= 0; i--) {
      const why = this.verify(i);
      if (why === null) break;
      refusedOut.push({ sequence: this.kept[i]!.sequence, why });
    }
    if (i < 0) return null;
    const cp = this.kept[i]!;
    // Older epochs' undo logs, newest first (the live epoch's pre-images are applied natively before them).
    const logs: number[] = [];
    for (let k = this.kept.length - 2; k >= i; k--) logs.push(this.kept[k]!.undo!.log);
    // A disk checkpoint being collected is of an instant after the error may have struck.
    this.collector?.abandon('a rollback');
    const saved = decodePlain(cp.state) as PlainObject;
    const vcpu = vcpuFromPlain(saved.vcpu!);
    const gateState = saved.gate as OutputGateState;
    let pagesRestored: number;
    try {
      pagesRestored = this.tracker.rollback(logs, cp.memoryBytes);
    } catch (e) {
      if (!isUnderstudyError(e, 'ERR_TRACKER_PREIMAGES_INCOMPLETE')) throw e;
      refusedOut.push({ sequence: cp.sequence, why: `the live epoch's pre-images: ${e.message}` });
      return null;
    }
    this.guest.rollbackVcpu(vcpu);
    this.guest.wasi.load(saved.device!, { stdin: this.options.stdinAt?.(cp.stdinConsumed), output: this.gate });
    this.gate.rollback(cp.gateMark, gateState);
    for (let k = i; k < this.kept.length; k++) this.recycle(this.kept[k]!);
    this.kept.length = i + 1;
    for (const e of this.epochs) e.log = undefined;
    this.epochDue.arm(this.options.epochMs);
    const stats = this.tracker.stats();
    this.lastFaults = stats.faults!;
    this.lastPresaved = stats.presavedPagesTotal!;
    const report: RecoveryReport = {
      reason,
      sequence: cp.sequence,
      refused: refusedOut,
      pagesRestored,
      recoveryMs: performance.now() - t0,
      requestIndex: cp.requestIndex,
      restoreGeneration: this.guest.wasi.restoreGeneration,
    };
    this.recoveries.push(report);
    return report;
  }

  /** null when checkpoint i and the undo logs from it to the live epoch check out; else why not. */
  private verify(i: number): string | null {
    const cp = this.kept[i]!;
    if (crcOf(cp.state) !== cp.stateCrc) return `checkpoint ${cp.sequence}: its state fails its checksum`;
    for (let k = i; k < this.kept.length - 1; k++) {
      const u = this.kept[k]!.undo;
      if (!u) return `checkpoint ${this.kept[k]!.sequence}: its epoch's pre-images are missing`;
      const verdict = this.tracker.verify(u.log);
      if (verdict === 'incomplete') return `checkpoint ${this.kept[k]!.sequence}: its epoch wrote more pages than the pre-image store holds`;
      if (verdict !== 'ok') return `checkpoint ${this.kept[k]!.sequence}: its epoch's pre-images fail their checksum`;
    }
    return null;
  }

  stats(): Record<string, number> {
    return this.tracker.stats();
  }

  /** Waits for a disk checkpoint being collected to be durable. */
  async drainCollect(): Promise<void> {
    await this.collector?.drain();
  }

  /** Stops everything; a collect in progress is abandoned. */
  async close(): Promise<void> {
    try {
      await this.collector?.close();
    } finally {
      this.dispose();
    }
  }

  dispose(): void {
    this.collector?.abandon('disposed');
    this.tracker.dispose();
    this.epochDue.close();
  }
}

