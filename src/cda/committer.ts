// The commit side of the service: it runs on the helper thread (worker.ts), or
// inline for tests. It owns the committed image of the areas and the target;
// the application's thread only hands it the dirty units (seed 000, "Data
// Processing Overhead": the main process pays for the copy to the helper,
// the helper does the diffing, compression, encryption and the commit).
//
//   job (slots + their staged pages, or byte ranges + their bytes)
//     -> image relaid out if the areas changed
//     -> page delta against the image: whole changed pages (page tracking),
//        changed byte runs (diff), or the recorded ranges (emul); the image
//        becomes the new committed state as it is encoded
//     -> the target: nothing more (memory), a fsync'd log record (disk), an
//        acknowledged frame (backup)
//     -> target failed: the image is put back (pre-images of the pages the
//        job touched), so the committed state is exactly the previous one
import { deltaBoundBytes, encodeDelta, type DeltaEncodeCounts, applyDelta } from '../checkpoint/delta-codec.js';
import { PAGE_BYTES } from '../native.js';
import { assert } from '../util/assert.js';
import { CdaBackupClient } from './backup-client.js';
import { CdaLog, type LogStop } from './disk.js';
import { place, relayout, sameLayout, sharedAlloc, type AreaSpec } from './layout.js';
import { emptyState, encodeRecord, rangesToDelta, type CommittedState } from './record.js';
import { PageUndo } from './undo.js';
import { cdaError } from './codes.js';

export type CdaTargetSpec =
  | { kind: 'memory' }
  | { kind: 'disk'; dir: string; compactRecords?: number; compactLogBytes?: number }
  | { kind: 'backup'; host: string; port: number; key: Uint8Array; timeoutMs?: number };

export interface CommitJob {
  cycle: number;
  layout: AreaSpec[];
  /** 'pages': `list` holds slot indices (ascending), `staged` their pages; 'ranges': (image offset, length) pairs, `staged` their bytes. */
  kind: 'pages' | 'ranges';
  list: Uint32Array;
  count: number;
  staged: Uint8Array;
  /** pages: commit changed byte runs (word-level diff) instead of whole changed pages. */
  diff: boolean;
}

export interface CommitDone {
  cycle: number;
  /** The new committed image when the layout changed (shared with the main thread), else null. */
  image: Uint8Array | null;
  /** Bytes of the page delta (the record's body before compression). */
  deltaBytes: number;
  /** Bytes written to the target (compressed, framed; 0 for memory). */
  storedBytes: number;
  /** Pages the delta changes, and the changed bytes it carries. */
  changedPages: number;
  changedBytes: number;
  /** The backup was sent the whole image (it held another cycle). */
  full: boolean;
  encodeMs: number;
  targetMs: number;
}

export interface OpenedState {
  state: CommittedState;
  /** Disk: why the log ends where it does, when it does not end cleanly. */
  stop: LogStop | null;
}

export class CdaCommitter {
  private state: CommittedState;
  private readonly undo = new PageUndo();
  private out = new Uint8Array(0);

  private constructor(
    readonly target: CdaTargetSpec,
    state: CommittedState,
    private readonly log: CdaLog | null,
    private readonly client: CdaBackupClient | null,
    readonly stop: LogStop | null,
  ) {
    this.state = state;
  }

  /** Opens the target and reads what it holds: the last committed state. */
  static async open(target: CdaTargetSpec): Promise<CdaCommitter> {
    switch (target.kind) {
      case 'memory':
        return new CdaCommitter(target, { ...emptyState(), image: sharedAlloc(0) }, null, null, null);
      case 'disk': {
        const log = CdaLog.open(target.dir, { compactRecords: target.compactRecords, compactLogBytes: target.compactLogBytes, alloc: sharedAlloc });
        return new CdaCommitter(target, log.recovery.state, log, null, log.recovery.stop);
      }
      case 'backup': {
        const client = new CdaBackupClient({ address: { host: target.host, port: target.port }, key: target.key, timeoutMs: target.timeoutMs });
        try {
          const state = await client.fetch(sharedAlloc);
          return new CdaCommitter(target, state.cycle === 0 ? { ...state, image: sharedAlloc(0) } : state, null, client, null);
        } catch (e) {
          client.close();
          throw e;
        }
      }
    }
  }

  get committed(): CommittedState {
    return this.state;
  }

  /** `fail` (tests): the target refuses this cycle after the image was changed in place. */
  async commit(job: CommitJob, fail?: (cycle: number) => boolean): Promise<CommitDone> {
    const t0 = performance.now();
    const prev = this.state;
    assert(job.cycle === prev.cycle + 1, `commit ${job.cycle} after ${prev.cycle}`);
    const changed = !sameLayout(prev.layout, job.layout);
    const image = changed ? relayout(prev.layout, prev.image, job.layout, sharedAlloc) : prev.image;
    const slots = place(job.layout).slots;
    assert(image.length === slots * PAGE_BYTES);
    let delta: Uint8Array;
    let changedPages = 0;
    let changedBytes = 0;
    if (job.kind === 'pages') {
      if (!changed) this.undo.save(image, job.list.subarray(0, job.count));
      const bound = deltaBoundBytes(job.count);
      if (this.out.length < bound) this.out = new Uint8Array(Math.max(bound, Math.ceil(this.out.length * 1.25)));
      const pages = job.list.subarray(0, job.count);
      const r = encodeDelta(job.staged, pages, image, this.out, job.diff ? {} : { runsBytesMax: 1 });
      delta = r.encoded;
      ({ changedPages, changedBytes } = countsOf(r.counts));
    } else {
      delta = rangesToDelta(job.list, job.count, job.staged);
      const touched = rangePages(job.list, job.count);
      if (!changed) this.undo.save(image, touched);
      applyDelta(delta, image);
      changedPages = touched.length;
      for (let i = 0; i < job.count; i++) changedBytes += job.list[2 * i + 1]!;
    }
    const t1 = performance.now();
    let storedBytes = 0;
    let full = false;
    try {
      if (fail?.(job.cycle)) throw cdaError('ERR_CDA_IO', `cycle ${job.cycle}: injected target failure`);
      if (this.log || this.client) {
        const raw = encodeRecord({ kind: 'delta', cycle: job.cycle, layout: job.layout, delta });
        if (this.log) storedBytes = this.log.append(job.cycle, raw);
        else {
          const sent = await this.client!.commit(job.cycle, prev.cycle, raw, () => encodeRecord({ kind: 'full', cycle: job.cycle, layout: job.layout, image }));
          storedBytes = sent.storedBytes;
          full = sent.full;
        }
      }
    } catch (e) {
      // Not committed: the image goes back to the previous cycle's exactly.
      if (!changed) this.undo.restore(image);
      throw e;
    }
    this.state = { cycle: job.cycle, layout: job.layout, image };
    return { cycle: job.cycle, image: changed ? image : null, deltaBytes: delta.length, storedBytes, changedPages, changedBytes, full, encodeMs: t1 - t0, targetMs: performance.now() - t1 };
  }

  /** Disk: writes a base image when the log is long enough (after a commit was answered). */
  compactIfDue(): boolean {
    if (!this.log?.compactionDue) return false;
    this.log.writeBase(this.state);
    return true;
  }

  close(): void {
    this.log?.close();
    this.client?.close();
  }
}

function countsOf(c: DeltaEncodeCounts): { changedPages: number; changedBytes: number } {
  return { changedPages: c.zero + c.full + c.runs, changedBytes: (c.zero + c.full) * PAGE_BYTES + c.runBytes };
}

/** The slot pages (ascending, distinct) that (offset, length) ranges cover. */
function rangePages(list: Uint32Array, count: number): number[] {
  const pages: number[] = [];
  for (let i = 0; i < count; i++) {
    const first = Math.floor(list[2 * i]! / PAGE_BYTES);
    const last = Math.floor((list[2 * i]! + list[2 * i + 1]! - 1) / PAGE_BYTES);
    for (let p = first; p <= last; p++) if (pages.length === 0 || pages[pages.length - 1]! < p) pages.push(p);
  }
  return pages;
}

