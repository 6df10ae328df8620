// Incremental checkpoints in epochs (log-dirty mode). At the start the guest
// is written whole as the chain's base and a dirty-page tracker is attached;
// then, every epoch, at the next safe point, the pause covers only: collect
// the dirty set, copy those pages, capture vCPU and device state. Encoding,
// compression, checksums and writing happen on the checkpoint worker while
// the guest runs on. At most `queueMax` epochs are in flight: past that the
// guest waits (back-pressure) instead of memory growing without bound.
import path from 'node:path';
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { UnderstudyError, type ErrorCode } from '../errors.js';
import type { Guest } from '../guest/guest.js';
import { native, PAGE_BYTES } from '../native.js';
import type { OutputGate } from '../output/gate.js';
import { createTracker, type DirtyTracker, type TrackerKind } from '../track/tracker.js';
import { assert } from '../util/assert.js';
import { Deadline } from '../util/deadline.js';
import { baseFileName } from './chain.js';
import { ChainWriter, type ChainWriterOptions, type EpochCapture, type EpochWritten } from './chain-writer.js';
import { encodeGuestState, writeFullCheckpoint } from './snapshot.js';

/** Epochs in flight (captured, not yet durable) before the guest is made to wait. */
export const QUEUE_MAX_DEFAULT = 4;
export const EPOCH_MS_DEFAULT = 20;
/**
 * Dirty sets smaller than this are copied by the JS thread alone: 256 pages copy in ~0.1 ms, about
 * what waking the helper can cost when the machine is idle (its wake-up may even run first on this
 * core). Measured at 1,000 and 10,000 pages in docs/benchmarks.md (pause).
 */
export const PARALLEL_COPY_MIN_PAGES_DEFAULT = 256;

export interface EpochOptions extends ChainWriterOptions {
  dir: string;
  /** Length of an epoch; the checkpoint is taken at the first safe point after it ends. */
  epochMs?: number;
  /** Instead of time: an epoch every this many safe points (deterministic; tests). */
  everySafePoints?: number;
  tracker?: TrackerKind | 'auto';
  /** wp-async hot-region threshold (TrackerOptions.hotWrittenMinPages; default the tracker's). */
  hotWrittenMinPages?: number;
  /** Dirty sets of at least this many pages are copied by two threads, the state captured beside (default PARALLEL_COPY_MIN_PAGES_DEFAULT; Infinity: one thread). */
  parallelCopyMinPages?: number;
  /** Encode on this thread instead of a worker (tests; byte-identical output either way). */
  inline?: boolean;
  queueMax?: number;
  firstSequence?: number;
  /** The creation time written into the base (default now). */
  createdAtMs?: number;
  onEpoch?: (e: EpochStats) => void;
}

/** What the guest paid for one epoch. */
export interface EpochPause {
  sequence: number;
  listedPages: number;
  /** Guest stopped for: collect, then the copy with the state capture beside it. */
  pauseMs: number;
  collectMs: number;
  /** The copy's part after the state was captured (a helper thread copies while the state is captured). */
  copyMs: number;
  stateMs: number;
  /** Time the guest then waited for the worker (back-pressure; 0 when the queue had room). */
  waitMs: number;
}

/** An epoch once durable: what the guest paid and what the worker did. */
export interface EpochStats extends EpochWritten, Omit<EpochPause, 'waitMs'> {}

interface Sink {
  start(baseSequence: number, moduleSha256: string, image: Uint8Array): Promise<void>;
  submit(c: EpochCapture): Promise<EpochWritten>;
  close(): Promise<void>;
}

class InlineSink implements Sink {
  private readonly writer: ChainWriter;
  constructor(dir: string, options: ChainWriterOptions) {
    this.writer = new ChainWriter(dir, options);
  }
  async start(b: number, sha: string, image: Uint8Array): Promise<void> {
    this.writer.start(b, sha, image);
  }
  async submit(c: EpochCapture): Promise<EpochWritten> {
    return this.writer.append(c);
  }
  async close(): Promise<void> {
    this.writer.close();
  }
}

type Reply = { type: 'started' } | { type: 'written'; written: EpochWritten } | { type: 'closed' } | { type: 'failed'; code: string; message: string };

class WorkerSink implements Sink {
  private readonly worker: Worker;
  private readonly pending: { resolve: (r: Reply) => void; reject: (e: unknown) => void }[] = [];
  private failure: UnderstudyError | null = null;

  constructor(dir: string, options: ChainWriterOptions) {
    this.worker = new Worker(new URL('./epoch-worker.js', import.meta.url), { workerData: { dir, options } });
    this.worker.on('message', (r: Reply) => {
      const p = this.pending.shift();
      assert(p, 'a reply nobody waits for');
      if (r.type === 'failed') {
        this.failure = new UnderstudyError(r.code as ErrorCode, `checkpoint worker: ${r.message}`);
        p.reject(this.failure);
      } else p.resolve(r);
    });
    this.worker.on('error', (e) => {
      this.failure = new UnderstudyError('ERR_CKPT_IO', `checkpoint worker died: ${e.message}`, { cause: e });
      for (const p of this.pending.splice(0)) p.reject(this.failure);
    });
  }

  private request(msg: unknown, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.worker.postMessage(msg, transfer);
    });
  }

  async start(baseSequence: number, moduleSha256: string, image: Uint8Array): Promise<void> {
    await this.request({ type: 'start', baseSequence, moduleSha256, image }, [image.buffer as ArrayBuffer]);
  }
  async submit(capture: EpochCapture): Promise<EpochWritten> {
    // The staged pages live in a shared staging slot (not copied, not transferred); the page list is moved.
    const r = await this.request({ type: 'epoch', capture }, [capture.pages.buffer as ArrayBuffer]);
    assert(r.type === 'written');
    return r.written;
  }
  async close(): Promise<void> {
    try {
      await this.request({ type: 'close' });
    } finally {
      await this.worker.terminate();
    }
  }
}

/**
 * Staging slots: shared buffers the pause copies dirty pages into and the worker reads them from.
 * Reused, so the pause never pays the kernel's first-touch faults of fresh memory (measured: that
 * tripled the copy), and their number bounds the epochs in flight.
 */
class StagingSlots {
  private readonly buffers: (SharedArrayBuffer | null)[];
  private readonly busy: boolean[];
  constructor(count: number) {
    this.buffers = new Array(count).fill(null);
    this.busy = new Array(count).fill(false);
  }
  /** A free slot of at least `bytes`, or null when all are busy. */
  acquire(bytes: number): { index: number; view: Uint8Array } | null {
    const index = this.busy.indexOf(false);
    if (index < 0) return null;
    let sab = this.buffers[index];
    if (!sab || sab.byteLength < bytes) {
      // Grow in steps of 25 % so a slowly growing dirty set does not reallocate every epoch.
      sab = new SharedArrayBuffer(Math.max(bytes, Math.ceil((sab?.byteLength ?? 0) * 1.25 / PAGE_BYTES) * PAGE_BYTES, PAGE_BYTES));
      this.buffers[index] = sab;
    }
    this.busy[index] = true;
    return { index, view: new Uint8Array(sab, 0, bytes) };
  }
  hasFree(): boolean {
    return this.busy.includes(false);
  }
  release(index: number): void {
    assert(this.busy[index], 'releasing a free slot');
    this.busy[index] = false;
  }
}

export class EpochCheckpointer {
  private sequence: number;
  /** Passes when the next epoch is due (a flag a timer thread sets: one load per check). */
  private readonly deadline = Deadline.create();
  private safePointsSinceEpoch = 0;
  private readonly inFlight = new Set<Promise<EpochWritten>>();
  private readonly slots: StagingSlots;
  private failure: unknown = null;
  private closed = false;
  /** Gathers the dirty set on a helper thread while this thread captures the state. */
  private readonly copier = native.copierCreate();
  readonly epochs: EpochStats[] = [];

  private constructor(
    private readonly guest: Guest,
    private readonly output: OutputGate,
    private readonly tracker: DirtyTracker,
    private readonly sink: Sink,
    private readonly options: EpochOptions,
    firstSequence: number,
  ) {
    this.sequence = firstSequence;
    this.slots = new StagingSlots(options.queueMax ?? QUEUE_MAX_DEFAULT);
    this.deadline.arm(this.epochMs);
  }

  private get epochMs(): number {
    return this.options.epochMs ?? EPOCH_MS_DEFAULT;
  }

  get trackerKind(): TrackerKind {
    return this.tracker.kind;
  }

  /** Writes the base and starts tracking. The guest must be at rest. */
  static async start(guest: Guest, output: OutputGate, options: EpochOptions): Promise<EpochCheckpointer> {
    if (!guest.atRest) throw new UnderstudyError('ERR_GUEST_NOT_AT_SAFE_POINT', 'incremental checkpoints start with the guest at rest');
    fs.mkdirSync(options.dir, { recursive: true });
    const first = options.firstSequence ?? 1;
    // Tracking starts before the base is read, so no write after the base can be missed.
    const tracker = createTracker(guest.memory, options.tracker ?? 'auto', { preimageBytesMax: 0, hotWrittenMinPages: options.hotWrittenMinPages });
    const writerOptions: ChainWriterOptions = { keep: options.keep, codec: options.codec, fsync: options.fsync };
    const sink: Sink = options.inline ? new InlineSink(options.dir, writerOptions) : new WorkerSink(options.dir, writerOptions);
    try {
      writeFullCheckpoint(path.join(options.dir, baseFileName(first)), { guest, output, sequence: first, createdAtMs: options.createdAtMs });
      await sink.start(first, guest.module.sha256, new Uint8Array(guest.memory.buffer).slice());
    } catch (e) {
      tracker.dispose();
      await sink.close().catch(() => undefined);
      throw e;
    }
    const ep = new EpochCheckpointer(guest, output, tracker, sink, options, first + 1);
    if (guest.kind === 'command') guest.onSafePoint(() => ep.atSafePoint());
    return ep;
  }

  private due(): boolean {
    if (this.options.everySafePoints) return this.safePointsSinceEpoch >= this.options.everySafePoints;
    return this.deadline.passed;
  }

  private async atSafePoint(): Promise<void> {
    if (this.closed) return;
    this.safePointsSinceEpoch++;
    if (this.due()) await this.epoch();
  }

  /** For reactors, between requests: take an epoch if one is due. */
  async epochIfDue(): Promise<EpochPause | null> {
    if (this.closed) return null;
    this.safePointsSinceEpoch++;
    return this.due() ? this.epoch() : null;
  }

  /** Captures one epoch now (the guest must be at rest) and hands it to the worker. Resolves once it is queued; waits if the queue is full. */
  async epoch(): Promise<EpochPause> {
    if (this.failure) throw this.failure;
    assert(!this.closed, 'epoch after close');
    assert(this.guest.atRest, 'epoch while the guest runs');
    // Back-pressure first: with every staging slot in flight, the guest waits for the worker.
    const w0 = performance.now();
    while (!this.slots.hasFree()) {
      await Promise.race(this.inFlight).catch(() => undefined);
      if (this.failure) throw this.failure;
    }
    const t0 = performance.now();
    const waitMs = t0 - w0;
    let all: Uint32Array;
    try {
      all = this.tracker.collect().slice();
    } catch (e) {
      // A collect that fails partway has re-protected pages it did not report: no later delta would
      // carry their writes, so the chain ends here (a new checkpointer starts from a full base).
      this.failure ??= e;
      throw e;
    }
    const slot = this.slots.acquire(all.length * PAGE_BYTES);
    assert(slot, 'a slot was free');
    const t1 = performance.now();
    const staged = slot.view;
    const memory = new Uint8Array(this.guest.memory.buffer);
    let state: ReturnType<typeof encodeGuestState>;
    let tState: number;
    if (all.length >= (this.options.parallelCopyMinPages ?? PARALLEL_COPY_MIN_PAGES_DEFAULT)) {
      // The helper thread starts the copy; this thread captures the state, then helps finish it.
      native.copierGatherStart(this.copier, memory, all, staged);
      try {
        state = encodeGuestState(this.guest, this.output);
      } finally {
        tState = performance.now();
        native.copierGatherJoin(this.copier);
      }
    } else {
      state = encodeGuestState(this.guest, this.output);
      tState = performance.now();
      native.gatherPages(memory, all, staged);
    }
    const { vcpu, devices } = state;
    const t2 = performance.now();
    const capture: EpochCapture = {
      sequence: this.sequence++,
      memoryBytes: this.guest.memory.buffer.byteLength,
      pages: all,
      staged,
      vcpu,
      devices,
      output: this.output.save(),
      stdinBytesConsumed: this.guest.wasi.stdinBytesConsumed,
      restoreGeneration: this.guest.wasi.restoreGeneration,
    };
    const t3 = performance.now();
    this.deadline.arm(this.epochMs);
    this.safePointsSinceEpoch = 0;
    const timing = { sequence: capture.sequence, listedPages: all.length, pauseMs: t3 - t0, collectMs: t1 - t0, copyMs: t2 - tState, stateMs: tState - t1 + (t3 - t2) };
    const slotIndex = slot.index;
    const job = this.sink.submit(capture).then((written) => {
      const stats: EpochStats = { ...written, ...timing };
      this.epochs.push(stats);
      this.options.onEpoch?.(stats);
      return written;
    });
    this.inFlight.add(job);
    job.then(
      () => {
        this.inFlight.delete(job);
        this.slots.release(slotIndex);
      },
      (e: unknown) => {
        this.inFlight.delete(job);
        this.slots.release(slotIndex);
        this.failure ??= e;
      },
    );
    return { ...timing, waitMs };
  }

  /** Waits until every captured epoch is durable. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    if (this.failure) throw this.failure;
  }

  /** Flushes, stops tracking, and ends the worker. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await Promise.allSettled([...this.inFlight]);
    } finally {
      this.tracker.dispose();
      this.deadline.close();
      native.copierClose(this.copier);
      await this.sink.close();
    }
    if (this.failure) throw this.failure;
  }

  get lastSequence(): number {
    return this.sequence - 1;
  }
}
