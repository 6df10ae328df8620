// The two userfaultfd trackers, thin owners of a native handle
// (native/src/uffd.c holds the mechanism and its reasoning).
import { UnderstudyError } from '../errors.js';
import { native, type UffdHandle } from '../native.js';
import type { TrackErrorCode } from './codes.js';
import type { DirtyTracker, Preimages, PreimageTracker, ScanResult, SealedEpoch, UndoLogInfo } from './tracker.js';

/**
 * Default bound of the wp-sync pre-image store: 256 MiB holds the pre-images of
 * 65,536 distinct pages written in one epoch (a quarter of a 1 GiB guest).
 * Past it the epoch's pre-images are incomplete and takePreimages() says so.
 */
export const PREIMAGE_BYTES_MAX_DEFAULT = 256 * 1024 * 1024;
/** The native hard cap: every page of a full 4 GiB wasm32 memory once. */
export const PREIMAGE_BYTES_MAX_LIMIT = 4 * 1024 * 1024 * 1024;

const NATIVE_CODES: ReadonlySet<string> = new Set<TrackErrorCode>([
  'ERR_TRACKER_UNSUPPORTED',
  'ERR_TRACKER',
  'ERR_TRACKER_DISPOSED',
  'ERR_TRACKER_BUSY',
  'ERR_TRACKER_MEMORY',
  'ERR_TRACKER_PREIMAGES_INCOMPLETE',
  'ERR_TRACKER_SCAN',
]);

/** Re-throws a native error as an UnderstudyError with the same code; the native error (with its facts) is the cause. */
export function rethrowNative(e: unknown): never {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && NATIVE_CODES.has(code)) {
    throw new UnderstudyError(code as TrackErrorCode, (e as Error).message, { cause: e });
  }
  throw e;
}

abstract class UffdTracker implements DirtyTracker {
  abstract readonly kind: 'wp-async' | 'wp-sync';
  protected handle: UffdHandle | undefined;
  #finalStats: Record<string, number> | undefined;

  constructor(
    protected readonly memory: WebAssembly.Memory,
    handle: UffdHandle,
  ) {
    this.handle = handle;
  }

  protected live(): UffdHandle {
    if (!this.handle) throw new UnderstudyError('ERR_TRACKER_DISPOSED', `the ${this.kind} tracker was disposed`);
    return this.handle;
  }

  /** Runs a native call, its errors re-thrown as UnderstudyErrors. */
  protected native<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      rethrowNative(e);
    }
  }

  collect(): Uint32Array {
    const handle = this.live();
    return this.native(() => native.uffdCollect(handle, this.memory.buffer));
  }

  stats(): Record<string, number> {
    if (!this.handle) return { ...this.#finalStats, disposed: 1 };
    return native.uffdStats(this.handle);
  }

  dispose(): void {
    const handle = this.handle;
    if (!handle) return;
    this.#finalStats = native.uffdStats(handle);
    this.handle = undefined;
    native.uffdDispose(handle);
  }
}

export class WpAsyncTracker extends UffdTracker {
  readonly kind = 'wp-async' as const;

  /**
   * Hot regions (on by default): a 2 MiB region with at least
   * `hotWrittenMinPages` of its 512 pages written in an epoch is left
   * unprotected for a lease of epochs and reported whole, so a guest that
   * rewrites the same memory every epoch stops paying a fault per page
   * (native/src/uffd.c, scan_fast_hot). collect() then lists a superset of
   * the written pages; consumers that compare with the previous version (the
   * delta encoder) drop the extra ones. 0: exactly the written pages.
   */
  static create(memory: WebAssembly.Memory, options: { hotWrittenMinPages?: number } = {}): WpAsyncTracker {
    let handle: UffdHandle;
    try {
      handle = native.uffdCreate(memory.buffer, 'async', 0);
    } catch (e) {
      rethrowNative(e);
    }
    const tracker = new WpAsyncTracker(memory, handle);
    tracker.setHotWrittenMinPages(options.hotWrittenMinPages ?? HOT_WRITTEN_MIN_PAGES_DEFAULT);
    return tracker;
  }

  /** 0 turns hot regions off (every lease ends at the next collect). */
  setHotWrittenMinPages(pages: number): void {
    const handle = this.live();
    this.native(() => native.uffdSetHot(handle, pages));
  }
}

/**
 * A region turns hot when this many of its 512 pages were written in an epoch (a quarter). Its
 * unwritten pages then cost a 4 KiB copy each per epoch in the pause (~0.3 us here, on two
 * threads) and a comparison on the worker, where each written page saves a write-protect fault
 * (a kernel-resolved wp-async fault, ~1.7 us here): break-even near a fifth written. Run time decides, not the pause: at a quarter,
 * kvstore-long's tracking overhead fell from +53 % to +6 % and its whole epoch pipeline from +124 %
 * to +48 %, though its median pause grew from 1.9 to 3.2 ms (docs/benchmarks.md, tracking
 * overhead); at an eighth the pipeline gained nothing more and primes' got worse.
 */
export const HOT_WRITTEN_MIN_PAGES_DEFAULT = 128;

export class WpSyncTracker extends UffdTracker implements PreimageTracker {
  readonly kind = 'wp-sync' as const;

  private constructor(
    memory: WebAssembly.Memory,
    handle: UffdHandle,
    readonly preimageBytesMax: number,
  ) {
    super(memory, handle);
  }

  /** preimageBytesMax 0 turns pre-image capture off (pure dirty tracking); `faults` see TrackerOptions. */
  static create(memory: WebAssembly.Memory, preimageBytesMax: number, faults: 'thread' | 'signal' = 'thread'): WpSyncTracker {
    if (!Number.isInteger(preimageBytesMax) || preimageBytesMax < 0 || preimageBytesMax > PREIMAGE_BYTES_MAX_LIMIT) {
      throw new UnderstudyError('ERR_TRACKER', `preimageBytesMax must be an integer from 0 to ${PREIMAGE_BYTES_MAX_LIMIT}`);
    }
    try {
      return new WpSyncTracker(memory, native.uffdCreate(memory.buffer, 'sync', preimageBytesMax, faults === 'signal'), preimageBytesMax);
    } catch (e) {
      rethrowNative(e);
    }
  }

  takePreimages(into?: Uint8Array): Preimages {
    const handle = this.live();
    let taken: ReturnType<typeof native.uffdTakePreimages>;
    try {
      taken = into ? native.uffdTakePreimages(handle, into) : native.uffdTakePreimages(handle);
    } catch (e) {
      rethrowNative(e);
    }
    if (!taken.complete) {
      throw new UnderstudyError(
        'ERR_TRACKER_PREIMAGES_INCOMPLETE',
        `more than ${this.preimageBytesMax} bytes of pages were written this epoch, so some pre-images were not kept; raise preimageBytesMax`,
      );
    }
    return { pages: taken.pages, data: taken.data, byteLength: taken.byteLength };
  }

  /**
   * Saves the pre-images of `pages` (predicted to be written this epoch) and un-protects them now,
   * so writes to them do not fault. Guest paused. Pages that turn out unwritten are dropped from
   * takePreimages() and collect() (their content equals the pre-image). COWP's own pre-saving runs
   * in the background after seal(presave = true).
   */
  presave(pages: Uint32Array): number {
    return this.native(() => native.uffdPresave(this.live(), pages));
  }

  seal(presave: boolean, scan?: { image: Uint8Array; bytes: number }, jobIn: 'background' | 'pause' = 'background'): SealedEpoch {
    const handle = this.live();
    const r = this.native(() => native.uffdSeal(handle, this.memory.buffer, presave, scan ?? null, jobIn === 'pause'));
    return {
      log: r.log,
      slots: r.slots,
      complete: r.complete === 1,
      grownPages: r.grownPages,
      finishedLog: r.finishedLog,
      finishedKept: r.finishedKept,
      faults: r.faults,
      presavedPagesTotal: r.presavedPagesTotal,
    };
  }

  release(log: number): void {
    this.native(() => native.uffdRelease(this.live(), log));
  }

  logInfo(log: number, finish = false): UndoLogInfo {
    const r = this.native(() => native.uffdLogInfo(this.live(), log, finish));
    return { slots: r.slots, kept: r.kept, complete: r.complete === 1, done: r.done === 1 };
  }

  verify(log: number): 'ok' | 'checksum' | 'incomplete' {
    return this.native(() => native.uffdVerify(this.live(), log));
  }

  flipLogBit(log: number, bit: number): void {
    this.native(() => native.uffdFlipLogBit(this.live(), log, bit));
  }

  /**
   * In-place rollback: writes back the live epoch's pre-images, then each of `logs` (earlier
   * epochs' undo logs, newest first, so the oldest wins), zeroes memory from `zeroFromBytes` on,
   * and starts the live epoch afresh. Guest paused. Returns the number of distinct pages restored.
   * Stops a collect scan in progress.
   */
  rollback(logs: readonly number[], zeroFromBytes: number): number {
    return this.native(() => native.uffdRollback(this.live(), this.memory.buffer, [...logs], zeroFromBytes));
  }

  scanPoll(): 'none' | 'copying' | 'merging' | 'done' | 'failed' {
    return this.native(() => native.uffdScanPoll(this.live()));
  }

  scanEnd(): ScanResult {
    return this.native(() => native.uffdScanEnd(this.live()));
  }

  scanAbort(): void {
    this.native(() => native.uffdScanAbort(this.live()));
  }

  /** Histase (seed 002, 4.1.2): a fault also pre-saves neighbours by each 2 MiB region's history of stride. */
  setHistase(enabled: boolean, alpha = HISTASE_ALPHA_DEFAULT): void {
    const handle = this.live();
    this.native(() => native.uffdSetHistase(handle, enabled, alpha));
  }

  /**
   * Dense regions (COWP): a 2 MiB region of which at least `keptMinPages` of its 512 pages were
   * written in the sealed epoch is pre-saved whole for the next, not only those pages. 0: off
   * (only the pages written, seed 003's H_i).
   */
  setDenseRegions(keptMinPages: number): void {
    const handle = this.live();
    this.native(() => native.uffdSetDense(handle, keptMinPages));
  }
}

/**
 * A region is pre-saved whole when this many of its 512 pages were written in the epoch (1/8).
 * A synchronous write-protect fault (wp-sync, pre-image copied) costs ~6 us here and a pre-saved page ~0.6 us, so pre-saving a region pays
 * once about one in ten of its pages would fault; at 1/8 written, a table written at random
 * (kvstore) writes about that many new pages the next epoch.
 */
export const DENSE_REGION_MIN_PAGES_DEFAULT = 64;

/** Seed 002's default weight of history in his_stride. */
export const HISTASE_ALPHA_DEFAULT = 0.7;
