// Dirty-page trackers behind one interface: which 4 KiB pages of a guest's
// linear memory were written during an epoch.
//
//   wp-async  userfaultfd async write-protect + PAGEMAP_SCAN (Linux 6.7+):
//             ~1 µs per first write, a scan of the page tables per collect.
//   wp-sync   userfaultfd write-protect faults served by a native thread that
//             keeps each page's pre-image (Linux 6.4+): copy-on-write for
//             in-memory rollback; ~tens of µs per first write.
//   hash      compare against a copy of the memory: works anywhere, costs a
//             pass over the whole memory per collect and a second copy of it.
import { UnderstudyError, isUnderstudyError } from '../errors.js';
import { native } from '../native.js';
import { explainKernelFailure, kernelFailureOf } from './explain.js';
import { HashTracker } from './hash.js';
import { PREIMAGE_BYTES_MAX_DEFAULT, WpAsyncTracker, WpSyncTracker } from './uffd.js';

export type TrackerKind = 'wp-async' | 'wp-sync' | 'hash';

/** Preference order of 'auto': cost per epoch grows down the list. */
export const TRACKER_KINDS: readonly TrackerKind[] = ['wp-async', 'wp-sync', 'hash'];

/** Environment variable that forces the kind 'auto' picks (wp-async | wp-sync | hash | auto). */
export const TRACKER_ENV = 'UNDERSTUDY_TRACKER';

export interface DirtyTracker {
  readonly kind: TrackerKind;
  /**
   * Pages written since attach() or the previous collect(), sorted ascending,
   * as 4 KiB page indices; re-arms tracking atomically (a write racing with
   * collect lands in this or the next set, never lost). Covers pages added by
   * memory.grow since. wp-async with hot regions may also list pages that
   * were not written (never fewer); compare with the previous version when
   * exactness matters.
   */
  collect(): Uint32Array;
  /** Stats: faults, scan time etc. (plain numbers). */
  stats(): Record<string, number>;
  /** Idempotent; releases fds, threads, buffers. */
  dispose(): void;
}

export interface Preimages {
  /** Pages written since the last arm (creation or collect), ascending. */
  pages: Uint32Array;
  /** pages.length * 4096 bytes: each page's content as of the arm. */
  data: Uint8Array;
  /** The memory's size at the arm; pages at or past it were zeros then (they arrived by grow). */
  byteLength: number;
}

/** What seal() hands over: the epoch's undo log, held natively until release(). */
export interface SealedEpoch {
  /** The log's id (native store and generation). */
  log: number;
  /** Pages recorded in the epoch so far (predicted pages found unchanged are dropped later, by its job). */
  slots: number;
  /** False when the epoch wrote more than preimageBytesMax: the log cannot be rolled back. */
  complete: boolean;
  /** Pages of a grown tail written before it was registered (their pre-images are zeros). */
  grownPages: number;
  /** The log whose job this seal finished (the previous seal's), or -1; its counts are final now. */
  finishedLog: number;
  /** That log's kept pages (slots minus predicted pages found unchanged). */
  finishedKept: number;
  /** The tracker's fault and pre-save counters as of the seal (stats() without taking its lock again). */
  faults: number;
  presavedPagesTotal: number;
}

export interface UndoLogInfo {
  slots: number;
  /** Slots minus predicted pages found unchanged (final once done). */
  kept: number;
  complete: boolean;
  /** The log's background job (filter, pre-save, checksum) has finished. */
  done: boolean;
}

/** The result of a collect scan: the image holds the memory at its seal. */
export interface ScanResult {
  /** Pages of the image holding a non-zero byte, ascending (what a full checkpoint stores). */
  storedPages: Uint32Array;
  copyMs: number;
  mergeMs: number;
  /** Pages whose bytes came from an epoch's pre-image rather than from the copy. */
  mergedPages: number;
  /** Epochs the scan spanned (undo logs it pinned). */
  epochs: number;
}

/**
 * A wp-sync tracker that keeps the pre-image of every page written in the epoch. The pre-image
 * store of an epoch is its undo log: seal() hands it over without a copy.
 */
export interface PreimageTracker extends DirtyTracker {
  readonly kind: 'wp-sync';
  /**
   * A copy of the live epoch's pre-images; does not re-arm. Throws ERR_TRACKER_PREIMAGES_INCOMPLETE
   * past preimageBytesMax. `into`, when large enough, receives the data (a reused buffer touches no
   * fresh pages); `data` is then a view of it.
   */
  takePreimages(into?: Uint8Array): Preimages;
  /** Synchronous pre-saving of `pages` (guest paused); returns how many were saved. */
  presave(pages: Uint32Array): number;
  /** Histase neighbour prediction in the fault handler. */
  setHistase(enabled: boolean, alpha?: number): void;
  /** COWP's dense regions: a region with at least this many pages written in an epoch is pre-saved whole (0: off). */
  setDenseRegions(keptMinPages: number): void;
  /**
   * Ends the epoch (guest paused): its pre-images become an undo log held until release(); the next
   * epoch starts. With `presave` (COWP) the log's pages are pre-saved for the next epoch by its job,
   * which runs in the background (the handler thread, between faults) or, with jobIn 'pause', here
   * before the guest resumes: in place (the epoch's pages stay writable; only the dropped ones are
   * protected again), leaving what only reads (checksum, the dense regions' comparisons) to the
   * handler thread. With `scan`, a collect scan of memory as of this instant starts.
   */
  seal(presave: boolean, scan?: { image: Uint8Array; bytes: number }, jobIn?: 'background' | 'pause'): SealedEpoch;
  release(log: number): void;
  /** With `finish`, the log's background job is completed first. */
  logInfo(log: number, finish?: boolean): UndoLogInfo;
  /** Recomputes the log's checksum: 'ok', 'checksum' (it changed since the seal) or 'incomplete'. */
  verify(log: number): 'ok' | 'checksum' | 'incomplete';
  /** Flips one bit of a log's pre-images (error injection into a kept checkpoint). */
  flipLogBit(log: number, bit: number): void;
  /** In-place rollback of memory to the start of the oldest of `logs` (newest first); re-arms; returns pages restored. */
  rollback(logs: readonly number[], zeroFromBytes: number): number;
  scanPoll(): 'none' | 'copying' | 'merging' | 'done' | 'failed';
  /** Ends a finished scan (throws ERR_TRACKER_SCAN when it failed). */
  scanEnd(): ScanResult;
  /** Stops a scan in progress, if any. */
  scanAbort(): void;
}

export interface TrackerProbe {
  kind: TrackerKind;
  supported: boolean;
  /** Why not, in words a user can act on (only when unsupported). */
  reason?: string;
}

export interface TrackerOptions {
  /** wp-sync: bytes of pre-images kept per epoch (default PREIMAGE_BYTES_MAX_DEFAULT; 0 = none). */
  preimageBytesMax?: number;
  /**
   * wp-async hot regions: a 2 MiB region with at least this many of its 512 pages written in an
   * epoch is reported whole for a lease (default HOT_WRITTEN_MIN_PAGES_DEFAULT; 0 = off). collect()
   * is then a superset of the written pages.
   */
  hotWrittenMinPages?: number;
  /**
   * wp-sync with pre-images: how write faults are served. 'thread' (default): by the tracker's
   * handler thread, which the kernel wakes (any write, the kernel's own included, is caught).
   * 'signal': on the faulting thread, in a SIGBUS handler (no other thread needs a CPU; a write by
   * the kernel into a protected page fails with EFAULT instead, and understudy's guest runtime makes
   * none). See native/src/uffd.c.
   */
  faults?: 'thread' | 'signal';
  /** What 'auto' believes this machine supports (default probeTrackers); tests inject "the kernel lacks it". */
  probe?: () => readonly TrackerProbe[];
  /** Where UNDERSTUDY_TRACKER is read from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

export function createTracker(memory: WebAssembly.Memory, kind: 'wp-sync', options?: TrackerOptions): PreimageTracker;
export function createTracker(memory: WebAssembly.Memory, kind?: TrackerKind | 'auto', options?: TrackerOptions): DirtyTracker;
/** 'auto' = the best supported kind, unless UNDERSTUDY_TRACKER names one. */
export function createTracker(
  memory: WebAssembly.Memory,
  kind: TrackerKind | 'auto' = 'auto',
  options: TrackerOptions = {},
): DirtyTracker {
  const forced = (options.env ?? process.env)[TRACKER_ENV];
  if (kind === 'auto' && forced !== undefined && forced !== '' && forced !== 'auto') {
    if (!(TRACKER_KINDS as readonly string[]).includes(forced)) {
      throw new UnderstudyError(
        'ERR_TRACKER_UNSUPPORTED',
        `${TRACKER_ENV}=${forced} is not a tracker; use one of ${TRACKER_KINDS.join(', ')} or auto`,
      );
    }
    kind = forced as TrackerKind;
  }
  if (kind !== 'auto') return createKind(memory, kind, options, true);

  const probes = (options.probe ?? probeTrackers)();
  const reasons: string[] = [];
  for (const candidate of TRACKER_KINDS) {
    const probe = probes.find((p) => p.kind === candidate);
    if (!probe?.supported) {
      reasons.push(`${candidate}: ${probe?.reason ?? 'not probed'}`);
      continue;
    }
    try {
      // Picked for dirty tracking only: wp-sync keeps no pre-images unless asked.
      return createKind(memory, candidate, options, false);
    } catch (e) {
      // The probe passed but this memory could not be tracked this way; a
      // caller mistake (busy, disposed, bad memory) is not a reason to fall back.
      if (!isUnderstudyError(e, 'ERR_TRACKER_UNSUPPORTED')) throw e;
      reasons.push(`${candidate}: ${e.message}`);
    }
  }
  throw new UnderstudyError('ERR_TRACKER_UNSUPPORTED', `no dirty-page tracker works here: ${reasons.join('; ')}`);
}

function createKind(memory: WebAssembly.Memory, kind: TrackerKind, options: TrackerOptions, explicit: boolean): DirtyTracker {
  switch (kind) {
    case 'wp-async':
    case 'wp-sync': {
      if (!native.uffdBuilt) {
        throw new UnderstudyError('ERR_TRACKER_UNSUPPORTED', `${kind} needs Linux userfaultfd; this is ${process.platform}`);
      }
      try {
        if (kind === 'wp-async') return WpAsyncTracker.create(memory, { hotWrittenMinPages: options.hotWrittenMinPages });
        const preimageBytesMax = options.preimageBytesMax ?? (explicit ? PREIMAGE_BYTES_MAX_DEFAULT : 0);
        return WpSyncTracker.create(memory, preimageBytesMax, options.faults ?? 'thread');
      } catch (e) {
        if (isUnderstudyError(e, 'ERR_TRACKER_UNSUPPORTED')) {
          throw new UnderstudyError('ERR_TRACKER_UNSUPPORTED', explainKernelFailure(kind, kernelFailureOf(e)), { cause: e });
        }
        throw e;
      }
    }
    case 'hash':
      return new HashTracker(memory);
  }
}

let probed: TrackerProbe[] | undefined;

/**
 * Which trackers work on this machine. Each kernel tracker is really tried: a
 * one-page memory, one write, two collects (the write, then nothing). Cached
 * for the process; `refresh` probes again.
 */
export function probeTrackers(options: { refresh?: boolean } = {}): TrackerProbe[] {
  if (!probed || options.refresh) probed = TRACKER_KINDS.map(probeKind);
  return probed.map((p) => ({ ...p }));
}

const PROBE_PAGE = 3;

function probeKind(kind: TrackerKind): TrackerProbe {
  if (kind !== 'hash' && !native.uffdBuilt) {
    return { kind, supported: false, reason: `${kind} needs Linux (userfaultfd); this is ${process.platform}, so the hash tracker is used` };
  }
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
  let tracker: DirtyTracker | undefined;
  try {
    tracker = createKind(memory, kind, { preimageBytesMax: kind === 'wp-sync' ? 4096 : 0 }, true);
    new Uint8Array(memory.buffer)[PROBE_PAGE * 4096 + 7] = 1;
    const first = Array.from(tracker.collect());
    const second = tracker.collect();
    if (first.length !== 1 || first[0] !== PROBE_PAGE || second.length !== 0) {
      return {
        kind,
        supported: false,
        reason: `the kernel reported wrong pages in a self-test (wrote page ${PROBE_PAGE}, got [${first.join(', ')}] then [${Array.from(second).join(', ')}]); please report this with your kernel version`,
      };
    }
    return { kind, supported: true };
  } catch (e) {
    const reason = isUnderstudyError(e, 'ERR_TRACKER_UNSUPPORTED') ? e.message : explainKernelFailure(kind as 'wp-async', kernelFailureOf(e));
    return { kind, supported: false, reason };
  } finally {
    tracker?.dispose();
  }
}

/** The kind 'auto' would pick here (ignoring UNDERSTUDY_TRACKER). */
export function bestTrackerKind(probes: readonly TrackerProbe[] = probeTrackers()): TrackerKind {
  return probes.find((p) => p.supported)?.kind ?? 'hash';
}
