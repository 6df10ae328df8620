// Disk checkpoints of a guest under rollback without stopping it: seed 003's
// `collect` (§3.1). At an epoch boundary the engine seals the epoch with a
// scan: a native thread copies memory as the guest keeps running, then merges
// the pre-images of every epoch since that instant over the copy (the oldest
// pre-image of a page wins), which yields memory exactly as it was at the
// boundary (the argument is in native/src/uffd.c). The vCPU, device and output
// state of that instant are captured at the boundary, so the file is
// byte-identical to a checkpoint of the guest stopped there, and `understudy
// restore` reads it like any other. Writing (CRC, write, fsync, rename) runs
// on a worker thread.
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { UnderstudyError } from '../errors.js';
import type { Guest } from '../guest/guest.js';
import type { OutputGate } from '../output/gate.js';
import { checkpointFileName, listCheckpoints, KEEP_DEFAULT } from '../checkpoint/checkpointer.js';
import { encodeGuestState, guestMeta, writeCheckpointParts, type CheckpointMeta, type CheckpointParts } from '../checkpoint/snapshot.js';
import type { PreimageTracker, ScanResult } from '../track/tracker.js';
import { assert } from '../util/assert.js';
import { COLLECT_STATUS_BYTES, STATUS_WRITING, STATUS_WRITTEN, statusViews } from './collect-status.js';
import type { CollectWriteRequest } from './collect-worker.js';

/** Epochs a scan may span before it is given up (each pins one undo log in memory). */
export const COLLECT_EPOCHS_MAX = 40;

export interface CollectOptions {
  dir: string;
  /** Start a collect every this many ms (at the next epoch boundary after the previous one is durable). */
  everyMs: number;
  /** Files kept (oldest deleted first). */
  keep?: number;
  /** Called when a collected checkpoint is durable. */
  onWritten?: (c: CollectedCheckpoint) => void;
  /** Called when a collect is given up (rollback, failure). */
  onAbandoned?: (why: string) => void;
  /** Write on the calling thread instead of a worker (tests). */
  inline?: boolean;
  /** Creation time recorded in META (tests fix it to compare files byte for byte). */
  createdAtMs?: () => number;
}

export interface CollectedCheckpoint {
  path: string;
  meta: CheckpointMeta;
  fileBytes: number;
  scan: ScanResult;
  /** From the boundary the image is of to the file being durable. */
  durableAfterMs: number;
  writeMs: number;
  /** What the collect adds to the boundary's pause: capturing vCPU, device and output state (the seal is the epoch's own). */
  startPauseMs: number;
}

type Phase =
  | { kind: 'idle' }
  | { kind: 'scanning'; image: Uint8Array; parts: Omit<CheckpointParts, 'memory' | 'storedPages'>; sequence: number; startedAtMs: number; startPauseMs: number; epochs: number }
  | { kind: 'writing'; done: Promise<void>; status: SharedArrayBuffer; settle: () => void };

export class Collector {
  private phase: Phase = { kind: 'idle' };
  private sequence = 1;
  private lastStartMs = performance.now();
  private worker: Worker | null = null;
  /** The image buffer, reused while the memory size stays (a fresh one costs a first-touch fault per page). */
  private image: Uint8Array | null = null;
  readonly written: CollectedCheckpoint[] = [];
  readonly abandoned: string[] = [];
  private failure: UnderstudyError | null = null;
  /** The worker's message for the last failed write. */
  private lastFailure: string | null = null;

  constructor(
    private readonly guest: Guest,
    private readonly gate: OutputGate,
    private readonly tracker: PreimageTracker,
    private readonly options: CollectOptions,
  ) {
    if (!(options.everyMs >= 0)) throw new UnderstudyError('ERR_USAGE', '--collect-every must be a non-negative number of milliseconds');
    const keep = options.keep ?? KEEP_DEFAULT;
    if (!Number.isInteger(keep) || keep < 1) throw new UnderstudyError('ERR_USAGE', '--keep must be a positive integer');
    fs.mkdirSync(options.dir, { recursive: true });
    this.sequence = (listCheckpoints(options.dir).length ? lastSequence(options.dir) : 0) + 1;
    // Started now: loading the checkpoint code in a new thread takes a while, better spent before the first collect.
    // It holds the process open only while it writes (ref/unref around each write).
    if (!options.inline) {
      this.worker = new Worker(new URL('./collect-worker.js', import.meta.url));
      this.worker.unref();
      this.worker.on('message', (m: { type: 'written' } | { type: 'failed'; code: string; message: string }) => {
        if (m.type === 'failed') this.lastFailure = m.message;
        if (this.phase.kind === 'writing') this.phase.settle();
      });
    }
  }

  /** Whether a collect should start at this boundary (`force`: whenever none is in progress). */
  due(now: number, force = false): boolean {
    return this.phase.kind === 'idle' && (force || now - this.lastStartMs >= this.options.everyMs);
  }

  /** The scan argument of the seal that starts a collect. */
  scanTarget(): { image: Uint8Array; bytes: number } {
    const bytes = this.guest.memory.buffer.byteLength;
    if (!this.image || this.image.byteLength !== bytes) this.image = new Uint8Array(new SharedArrayBuffer(bytes));
    return { image: this.image, bytes };
  }

  /** Right after the seal that started a scan, guest still at rest: the rest of the state of that instant. */
  started(sealStartedAtMs: number): void {
    assert(this.guest.atRest, 'collect starts at rest');
    const t0 = performance.now();
    const meta = guestMeta(this.guest, this.gate, this.sequence, this.options.createdAtMs?.());
    const { vcpu, devices } = encodeGuestState(this.guest, this.gate);
    this.phase = {
      kind: 'scanning',
      image: this.image!,
      parts: { meta, module: this.guest.module.original, vcpu, devices },
      sequence: this.sequence++,
      startedAtMs: sealStartedAtMs,
      startPauseMs: performance.now() - t0,
      epochs: 0,
    };
    this.lastStartMs = sealStartedAtMs;
  }

  private giveUp(p: Extract<Phase, { kind: 'scanning' }>, why: string): void {
    this.phase = { kind: 'idle' };
    // The number goes to the next one: files are numbered without gaps.
    this.sequence = p.sequence;
    this.abandoned.push(why);
    this.options.onAbandoned?.(why);
  }

  /** At an epoch boundary (`epochEnded`) or between: hands a finished scan to the writer. */
  poll(epochEnded = true): void {
    if (this.phase.kind === 'writing') this.phase.settle();
    if (this.failure) throw this.failure;
    if (this.phase.kind !== 'scanning') return;
    const p = this.phase;
    if (epochEnded && ++p.epochs > COLLECT_EPOCHS_MAX) {
      this.abandon(`the scan spanned more than ${COLLECT_EPOCHS_MAX} epochs`);
      return;
    }
    const state = this.tracker.scanPoll();
    if (state !== 'done' && state !== 'failed') return;
    let scan: ScanResult;
    try {
      scan = this.tracker.scanEnd();
    } catch (e) {
      this.giveUp(p, (e as Error).message);
      return;
    }
    this.write(p, scan);
  }

  /** A rollback is coming: the scan (if any) is stopped; its instant may hold the error being recovered from. */
  abandon(why: string): void {
    if (this.phase.kind !== 'scanning') return;
    this.tracker.scanAbort();
    this.giveUp(this.phase, why);
  }

  private write(p: Extract<Phase, { kind: 'scanning' }>, scan: ScanResult): void {
    const file = path.join(this.options.dir, checkpointFileName(p.sequence));
    const parts: CheckpointParts = { ...p.parts, memory: p.image, storedPages: scan.storedPages };
    const finish = (fileBytes: number, writeMs: number): void => {
      this.prune();
      const c: CollectedCheckpoint = { path: file, meta: p.parts.meta, fileBytes, scan, durableAfterMs: performance.now() - p.startedAtMs, writeMs, startPauseMs: p.startPauseMs };
      this.written.push(c);
      this.options.onWritten?.(c);
    };
    if (this.options.inline) {
      const t0 = performance.now();
      finish(writeCheckpointParts(file, parts), performance.now() - t0);
      this.phase = { kind: 'idle' };
      return;
    }
    const worker = this.worker!;
    worker.ref();
    const status = new SharedArrayBuffer(COLLECT_STATUS_BYTES);
    const { flag, numbers } = statusViews(status);
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    this.lastFailure = null;
    // Whichever comes first: the reply (event loop), or the status block read at an epoch boundary.
    const settle = (): void => {
      const state = Atomics.load(flag, 0);
      if (state === STATUS_WRITING || this.phase.kind !== 'writing' || this.phase.status !== status) return;
      worker.unref();
      this.phase = { kind: 'idle' };
      if (state === STATUS_WRITTEN) finish(numbers[0]!, numbers[1]!);
      else this.failure = new UnderstudyError('ERR_CKPT_IO', `writing the collected checkpoint ${file}: ${this.lastFailure ?? 'failed'}`);
      resolveDone();
    };
    const request: CollectWriteRequest = { path: file, parts, status };
    worker.postMessage(request);
    this.phase = { kind: 'writing', done, status, settle };
  }

  private prune(): void {
    const all = listCheckpoints(this.options.dir);
    for (const old of all.slice(0, Math.max(0, all.length - (this.options.keep ?? KEEP_DEFAULT)))) fs.rmSync(old, { force: true });
  }

  /** Waits for a collect in progress to be durable (bounded by waitMsMax). */
  async drain(waitMsMax = 60_000): Promise<void> {
    const until = performance.now() + waitMsMax;
    while (this.phase.kind === 'scanning' && performance.now() < until) {
      const state = this.tracker.scanPoll();
      if (state === 'done' || state === 'failed') {
        this.poll(false);
        break;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    if (this.phase.kind === 'scanning') this.abandon('the run ended before the scan finished');
    if (this.phase.kind === 'writing') await this.phase.done;
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    if (this.phase.kind === 'scanning') this.abandon('closed');
    if (this.phase.kind === 'writing') await this.phase.done;
    await this.worker?.terminate();
    this.worker = null;
  }
}

function lastSequence(dir: string): number {
  const last = path.basename(listCheckpoints(dir).at(-1)!);
  return Number(/^ckpt-(\d+)\.usck$/.exec(last)![1]);
}
