// In-memory rollback (seed 003, VM-μCheckpoint): every epoch keeps the
// pre-images of the pages written in it, so the guest can be put back in place
// to one of its last checkpoints within milliseconds.
//
//   checkpoint k (guest at rest)      epoch k                 checkpoint k+1
//   ── state_k: vCPU, device, gate ──▶ writes fault (COWB) ──▶ undo_k = pre-images of epoch k
//      (CRC over the encoded state)    or were pre-saved      (CRC over pages + data)
//                                      (COWP, Histase)
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
import { HISTASE_ALPHA_DEFAULT, PREIMAGE_BYTES_MAX_DEFAULT } from '../track/uffd.js';
import { assert } from '../util/assert.js';
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
  preimageBytesMax?: number;
  assertions?: readonly GuestAssertion[];
  /** Where a rolled-back device reads stdin from, positioned at the checkpoint (see ReplayInput). */
  stdinAt?: (consumed: number) => InputSource | undefined;
  /** Count of reactor requests served so far (recorded in each checkpoint). */
  requestIndex?: () => number;
  /** Called when a checkpoint is dropped: inputs before it can be forgotten. */
  onForget?: (oldest: KeptCheckpoint) => void;
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

export interface UndoLog {
  readonly pages: Uint32Array;
  readonly data: Uint8Array;
  readonly crc: number;
}

export interface RollbackEpochStats {
  sequence: number;
  /** Write-protect faults served in the epoch. */
  faults: number;
  /** Pages in the epoch's checkpoint (pre-images kept). */
  pages: number;
  /** Pages pre-saved at the epoch's start (COWP). */
  presaved: number;
  /** Time the guest stood still for the checkpoint. */
  pauseMs: number;
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

function crcOf(...parts: ArrayBufferView[]): number {
  let crc = 0;
  for (const p of parts) crc = native.crc32c(p, crc);
  return crc;
}

export class RollbackEngine {
  private readonly kept: KeptCheckpoint[] = [];
  private sequence = 0;
  private lastEpochAtMs: number;
  private lastFaults = 0;
  readonly epochs: RollbackEpochStats[] = [];
  readonly recoveries: RecoveryReport[] = [];
  private readonly now: () => number;
  /**
   * Buffers of dropped undo logs, reused for the next epochs' pre-images: a fresh buffer costs a
   * kernel first-touch fault per page (as the epoch pipeline's staging slots found). At most
   * KEPT_CHECKPOINTS + 1 are ever alive.
   */
  private readonly pool: Uint8Array[] = [];

  private constructor(
    readonly guest: Guest,
    private readonly gate: OutputGate,
    readonly tracker: PreimageTracker,
    private readonly options: RollbackOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.lastEpochAtMs = this.now();
  }

  /** Attaches to a guest at rest and takes checkpoint 0. The gate starts holding output. */
  static attach(guest: Guest, gate: OutputGate, options: RollbackOptions): RollbackEngine {
    assert(guest.atRest, 'rollback attaches to a guest at rest');
    if (!(options.epochMs > 0)) throw new UnderstudyError('ERR_USAGE', 'epochMs must be positive');
    const tracker = createTracker(guest.memory, 'wp-sync', { preimageBytesMax: options.preimageBytesMax ?? PREIMAGE_BYTES_MAX_DEFAULT });
    try {
      if (options.histase) tracker.setHistase(true, options.histaseAlpha ?? HISTASE_ALPHA_DEFAULT);
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
    if (this.now() - this.lastEpochAtMs < this.options.epochMs) return null;
    return this.checkpoint();
  }

  /**
   * Ends the epoch: checks the assertions (a failure is a detection, and no
   * checkpoint is kept of the bad state), keeps its pre-images as the undo log
   * of the newest checkpoint, takes a new one, and with COWP pre-saves the
   * pages just written. Drops the oldest beyond two and lets its output out.
   */
  checkpoint(): RollbackEpochStats {
    assert(this.guest.atRest, 'checkpoint at rest');
    this.check();
    const t0 = performance.now();
    const pre = this.tracker.takePreimages(this.pool.pop());
    const dirty = this.tracker.collect();
    const presaved = this.strategy === 'cowp' ? this.tracker.presave(dirty) : 0;
    const newest = this.kept[this.kept.length - 1]!;
    newest.undo = { pages: pre.pages, data: pre.data, crc: crcOf(pre.pages, pre.data) };
    this.kept.push(this.capture());
    while (this.kept.length > KEPT_CHECKPOINTS) this.recycle(this.kept.shift()!);
    const oldest = this.kept[0]!;
    this.gate.release(oldest.gateMark);
    this.options.onForget?.(oldest);
    const stats = this.tracker.stats();
    const faults = stats.faults! - this.lastFaults;
    this.lastFaults = stats.faults!;
    const epoch = { sequence: newest.sequence, faults, pages: pre.pages.length, presaved, pauseMs: performance.now() - t0 };
    this.epochs.push(epoch);
    this.lastEpochAtMs = this.now();
    return epoch;
  }

  private recycle(cp: KeptCheckpoint): void {
    const u = cp.undo;
    cp.undo = undefined;
    if (!u || this.pool.length >= KEPT_CHECKPOINTS) return;
    const whole = new Uint8Array(u.data.buffer, 0, u.data.buffer.byteLength);
    // Largest first, so the next take finds room.
    this.pool.push(whole);
    this.pool.sort((a, b) => a.byteLength - b.byteLength);
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
    // Older epochs' pre-images, newest first (the live epoch's are applied natively before them).
    const logs: UndoLog[] = [];
    for (let k = this.kept.length - 2; k >= i; k--) logs.push(this.kept[k]!.undo!);
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
    this.lastEpochAtMs = this.now();
    const stats = this.tracker.stats();
    this.lastFaults = stats.faults!;
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
      if (crcOf(u.pages, u.data) !== u.crc) return `checkpoint ${this.kept[k]!.sequence}: its epoch's pre-images fail their checksum`;
    }
    return null;
  }

  stats(): Record<string, number> {
    return this.tracker.stats();
  }

  dispose(): void {
    this.tracker.dispose();
  }
}

