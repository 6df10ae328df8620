// The native addon, loaded once. It is built by node-gyp during `npm ci`.
import { createRequire } from 'node:module';
import { UnderstudyError } from './errors.js';

export interface NativeAddon {
  readonly pageBytes: number;
  crc32c(bytes: ArrayBufferView | ArrayBuffer, previous?: number): number;
  backingStore(buffer: ArrayBuffer): { address: bigint; byteLength: number };
  gatherPages(memory: Uint8Array, pageIndices: Uint32Array, packed: Uint8Array): void;
  scatterPages(packed: Uint8Array, pageIndices: Uint32Array, memory: Uint8Array): void;
  nonZeroPages(bytes: Uint8Array): Uint32Array;
  diffPages(a: Uint8Array, b: Uint8Array): Uint32Array;
  readonly uffdBuilt: boolean;
  // userfaultfd trackers (native/src/uffd.c); on non-Linux builds every call
  // but uffdProbe throws ERR_TRACKER_UNSUPPORTED.
  uffdCreate(buffer: ArrayBuffer, mode: 'async' | 'sync', preimageBytesMax?: number, faultsBySignal?: boolean): UffdHandle;
  uffdCollect(handle: UffdHandle, buffer: ArrayBuffer): Uint32Array;
  uffdTakePreimages(handle: UffdHandle, into?: Uint8Array): { pages: Uint32Array; data: Uint8Array; byteLength: number; complete: boolean };
  uffdStats(handle: UffdHandle): Record<string, number>;
  uffdDispose(handle: UffdHandle): void;
  /** COWP pre-saving: saves the listed pages' pre-images and un-protects them now; returns how many were saved. */
  uffdPresave(handle: UffdHandle, pages: Uint32Array): number;
  /** Histase's neighbour prediction in the fault handler, on or off. */
  uffdSetHistase(handle: UffdHandle, enabled: boolean, alpha: number): void;
  uffdSetDense(handle: UffdHandle, keptMinPages: number): void;
  // Hot regions of a wp-async tracker (scan_fast_hot in native/src/uffd.c).
  uffdSetHot(handle: UffdHandle, writtenMinPages: number): void;
  /** In-place rollback: the live epoch's pre-images, then each undo log (newest first); zeroes from zeroFromBytes; re-arms. Returns pages restored. */
  uffdRollback(handle: UffdHandle, buffer: ArrayBuffer, logs: number[], zeroFromBytes: number): number;
  /** Ends the epoch: its pre-image store becomes undo log `log` (no copy); the background job filters, pre-saves (COWP) and checksums it. With `scan`, a collect scan of this instant starts. */
  uffdSeal(
    handle: UffdHandle,
    buffer: ArrayBuffer,
    presave: boolean,
    scan?: { image: Uint8Array; bytes: number } | null,
    jobInPause?: boolean,
  ): {
    log: number;
    slots: number;
    complete: number;
    grownPages: number;
    finishedLog: number;
    finishedKept: number;
    faults: number;
    presavedPagesTotal: number;
  };
  uffdRelease(handle: UffdHandle, log: number): void;
  uffdLogInfo(handle: UffdHandle, log: number, finish: boolean): { slots: number; kept: number; complete: number; done: number };
  uffdVerify(handle: UffdHandle, log: number): 'ok' | 'checksum' | 'incomplete';
  uffdFlipLogBit(handle: UffdHandle, log: number, bit: number): void;
  uffdScanPoll(handle: UffdHandle): 'none' | 'copying' | 'merging' | 'done' | 'failed';
  uffdScanEnd(handle: UffdHandle): { storedPages: Uint32Array; copyMs: number; mergeMs: number; mergedPages: number; epochs: number };
  uffdScanAbort(handle: UffdHandle): void;
  uffdProbe(): Partial<UffdProbeFacts>;
  // Per-page delta encoding (native/src/delta.c); the format is documented in
  // src/checkpoint/delta-codec.ts, which is the interface to use.
  deltaEncode(staged: Uint8Array, pageIndices: Uint32Array, shadow: Uint8Array, out: Uint8Array, runGapMergeBytes?: number, runsBytesMax?: number): import('./checkpoint/delta-codec.js').DeltaEncodeCounts;
  deltaApply(encoded: Uint8Array, memory: Uint8Array): number;
  /** Sub-page exclusion: the listed pages whose non-zero runs take fewer than runsBytesMax bytes, as RUNS entries against zero pages (`encoded`, a delta encoding), and the rest (`dense`). */
  sparseEncode(memory: Uint8Array, pages: Uint32Array, runsBytesMax: number, out?: Uint8Array): { encoded: Uint8Array; sparse: Uint32Array; dense: Uint32Array };
  /** Streams a MemoryRuns encoding from a file onto memory (see native/src/delta.c); returns the CRC-32C chained onto `crc`. */
  runsLoad(fd: number, offset: number, length: number, memory: Uint8Array, runPages: Uint32Array, crc: number): number;
  readonly deltaLayout: Readonly<Record<string, number>>;
  // Memory exclusion (native/src/exclude.c): pages backed by a page in the page tables (present
  // or swapped, not the shared zero page), asked of the kernel without reading guest memory.
  // Off Linux, or for a range that is not page-aligned, every page counts as present.
  presentPages(memory: Uint8Array): Uint32Array;
  /** The present pages holding a non-zero byte (what a checkpoint stores), ascending; reads only present pages. */
  storedPages(memory: Uint8Array): { pages: Uint32Array; present: number; zeroPresent: number; method: 'pagemap-scan' | 'pagemap' | 'all' };
  // Ballooning (native/src/balloon.c). Page ranges are in 4 KiB pages and must lie inside memory
  // (ERR_NATIVE_RANGE otherwise).
  /** Gives the pages back to the kernel (Linux: MADV_DONTNEED); they read back as zero and are not present. Elsewhere: zero-filled. */
  discardPages(memory: Uint8Array, firstPage: number, pageCount: number): 'madvise' | 'zero-fill';
  /** Pre-faults the pages writable in one call (MADV_POPULATE_WRITE); returns 0 or the errno (a hint; callers ignore failure). */
  populatePages(memory: Uint8Array, firstPage: number, pageCount: number): number;
  /** Pre-faults (first, count) page extents on a thread of its own, ahead of a reader (native/src/balloon.c). */
  prefaultStart(memory: Uint8Array, extents: Uint32Array, hugePages?: boolean): PrefaultHandle;
  /** Waits for that thread; its first errno, 0 if every extent was populated (a hint either way). */
  prefaultJoin(handle: PrefaultHandle): number;
  // Page copier (native/src/copier.c): a helper thread gathers a dirty set while the JS thread
  // does other work of the same pause; join finishes the copy on both threads.
  copierCreate(): CopierHandle;
  /** Starts gathering packed[i * 4096..] = memory page pageIndices[i]; every index is checked first (ERR_NATIVE_RANGE). */
  copierGatherStart(copier: CopierHandle, memory: Uint8Array, pageIndices: Uint32Array, packed: Uint8Array): void;
  /** Returns once every page is copied; the number the helper thread copied. */
  copierGatherJoin(copier: CopierHandle): number;
  /** Finishes a gather in progress and stops the thread. Idempotent. */
  copierClose(copier: CopierHandle): void;
  // Deadline flags (native/src/deadline.c): a timer thread sets a 32-bit flag when a deadline
  // passes. null when the build has no timer thread; use src/util/deadline.ts.
  deadlineCreate(): ArrayBuffer | null;
  /** flag = 0 now, = 1 at now + delayMs (at once when delayMs <= 0; never past ~31 years or Infinity). NaN: ERR_NATIVE_ARG. */
  deadlineArm(deadline: ArrayBuffer, delayMs: number): void;
  /** The flag is never set again. Idempotent. */
  deadlineClose(deadline: ArrayBuffer): void;
  /** The calling thread's CPU time in ms (CLOCK_THREAD_CPUTIME_ID, exact); NaN without that clock. */
  threadCpuMs(): number;
}

export interface CopierHandle {
  readonly __brand: 'CopierHandle';
}

/** An opaque native tracker (a napi external); freed by GC after dispose. */
export interface PrefaultHandle {
  readonly __brand: 'PrefaultHandle';
}

export interface UffdHandle {
  readonly __brand: 'UffdHandle';
}

/** What the kernel said when asked (see uffdProbe in native/src/uffd.c). Errno 0 = success. */
export interface UffdProbeFacts {
  kernelRelease: string;
  openErrno: number;
  userModeOnlyErrno: number;
  privileged: number;
  features: number;
  featuresErrno: number;
  pagemapScanErrno: number;
  featureWpAsync: number;
  featureWpUnpopulated: number;
  featurePagefaultFlagWp: number;
}

function load(): NativeAddon {
  const require = createRequire(import.meta.url);
  // dist/src/native.js -> <package>/build/Release
  const path = new URL('../../build/Release/understudy_native.node', import.meta.url).pathname;
  try {
    return require(path) as NativeAddon;
  } catch (e) {
    throw new UnderstudyError('ERR_NATIVE', `the native addon is not built (${path}); run \`npm ci\` or \`npx node-gyp rebuild\``, { cause: e });
  }
}

export const native: NativeAddon = load();

/** Bytes per tracked page; the kernel's page size, not the 64 KiB wasm page. */
export const PAGE_BYTES = 4096;
if (native.pageBytes !== PAGE_BYTES) throw new Error('native page size disagrees with PAGE_BYTES');
