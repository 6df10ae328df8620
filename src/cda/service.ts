// Application-assisted checkpointing (seeds 001 and 000): the program declares
// its critical data areas and brackets transactions with checkpoint cycles;
// at the end of a cycle the changes to the areas are committed atomically to
// the target. CriticalAreaService is the one owner of that state for one
// memory (a guest's linear memory, or a WebAssembly.Memory a Node program uses
// as its arena).
//
//   idle ──begin──▶ open ──end──▶ committing ──acknowledged──▶ idle
//                    │                  └────target failed────▶ idle (areas back as at begin, ERR_CDA_IO)
//                    └──abort──▶ idle (areas back as at begin)
//
// Units. The dirty units are memory pages (page tracking and diff) or byte
// ranges (emul). Three sets of units matter:
//   pending  units that may differ from the committed image, outside a cycle:
//            changes made between cycles (they belong to the next commit) and
//            every unit of an area registered since the last commit
//   overlay  at begin, a copy of the pending units' bytes: the part of the
//            state at begin that the committed image does not hold
//   D        units written during the cycle (the tracker's answer at the end)
// The state at begin is the committed image overlaid with `overlay`, exactly;
// so abort writes D back from the committed image, then the overlay — only
// the bytes inside areas. An area not in the committed image (new) is wholly
// pending, so it never needs the image. The committed image is the worker's
// (a SharedArrayBuffer); this thread reads it only while no commit runs.
//
// The hand-over (what the application pays at the end of a cycle): collect
// the dirty set, copy the dirty units' bytes into a staging buffer shared with
// the commit worker, post. Diffing, compression, sealing and the commit itself
// happen on the worker (committer.ts).
import { Worker } from 'node:worker_threads';
import { UnderstudyError, isUnderstudyError, type ErrorCode } from '../errors.js';
import { native, PAGE_BYTES } from '../native.js';
import { probeTrackers, type TrackerKind } from '../track/tracker.js';
import { assert } from '../util/assert.js';
import { cdaError } from './codes.js';
import { CdaCommitter, type CdaTargetSpec, type CommitDone, type CommitJob } from './committer.js';
import type { LogStop } from './disk.js';
import {
  CDA_AREA_BYTES_LIMIT,
  CDA_AREA_BYTES_MAX_DEFAULT,
  CDA_AREAS_MAX,
  findOverlap,
  imageOffset,
  layoutBytes,
  place,
  sameArea,
  sameLayout,
  type AreaSpec,
  type PlacedArea,
  type Placement,
} from './layout.js';
import { intersect, rangeBytes, union, type Ranges } from './ranges.js';
import type { CommittedState } from './record.js';
import { ComparePageSource, KernelPageSource, StoreLog, type PageSource } from './tracking.js';

export type CdaMode = 'wp-async' | 'wp-sync' | 'hash' | 'diff' | 'emul';
export const CDA_MODES: readonly CdaMode[] = ['wp-async', 'wp-sync', 'hash', 'diff', 'emul'];

export interface CdaOptions {
  /** How changes are found (default 'auto': wp-async where the kernel has it, else wp-sync, else hash). */
  mode?: CdaMode | 'auto';
  /** The page tracker under 'diff' (default: the best this machine has). */
  diffTracker?: 'wp-async' | 'wp-sync' | 'hash' | 'auto';
  /** Where cycles are committed (default memory: a copy on the worker). */
  target?: CdaTargetSpec;
  /** Bound of the bytes in all areas (default CDA_AREA_BYTES_MAX_DEFAULT, at most CDA_AREA_BYTES_LIMIT). */
  areaBytesMax?: number;
  /** Commit on this thread instead of a worker (tests; the same bytes either way). */
  inline?: boolean;
  /** Told the bounds of all areas (lowest address, highest end) when they change: instrumented guests filter stores by them. */
  onBounds?: (lo: number, hi: number) => void;
  onCommit?: (s: CommitStats) => void;
  /** What the machine supports (default probeTrackers); tests inject "the kernel lacks it". */
  probe?: typeof probeTrackers;
  /** Tests, inline only: the target fails this cycle's commit after the image was encoded (a crash mid-commit). */
  failCommit?: (cycle: number) => boolean;
}

/** One area's committed bytes. */
export interface CommittedArea extends AreaSpec {
  bytes: Uint8Array;
}

/** The committed areas of a state, copied out of its image. */
export function areasOf(state: CommittedState): { cycle: number; areas: CommittedArea[] } {
  return {
    cycle: state.cycle,
    areas: place(state.layout).areas.map((a) => ({
      id: a.id,
      address: a.address,
      length: a.length,
      bytes: state.image.slice(imageOffset(a, a.address), imageOffset(a, a.address + a.length)),
    })),
  };
}

/** One committed cycle: what the application paid, and what the worker did. */
export interface CommitStats {
  cycle: number;
  mode: CdaMode;
  /** Dirty units handed over: pages (page modes, diff) or byte ranges (emul). */
  units: number;
  /** Emul: stores recorded since the previous hand-over (the cycle's writes, and any between cycles); null in page modes. */
  stores: number | null;
  /** Bytes copied into the staging buffer by the application's thread. */
  stagedBytes: number;
  /** Bytes of the page delta the cycle committed (the record's body, before compression). */
  deltaBytes: number;
  /** Bytes written to the target (compressed and framed; 0 for memory). */
  storedBytes: number;
  /** Pages the commit changed, and the changed bytes it carried. */
  changedPages: number;
  changedBytes: number;
  /** The backup was resent the whole image. */
  full: boolean;
  /** The application's part: collect + copy + post. */
  handoverMs: number;
  collectMs: number;
  copyMs: number;
  /** From the end call until the target held the cycle. */
  totalMs: number;
  /** Worker: diff/encode, then the target (compress, write + fsync, or seal + send + ack). */
  encodeMs: number;
  targetMs: number;
}

export type CycleState = 'idle' | 'open' | 'committing';

/** What the service knows at a glance (plain numbers and strings). */
export interface CdaServiceStats {
  mode: CdaMode;
  tracker: string;
  target: CdaTargetSpec['kind'];
  state: CycleState;
  committedCycle: number;
  areas: number;
  areaBytes: number;
  commits: number;
  aborts: number;
  failures: number;
  last: CommitStats | null;
  trackerStats: Record<string, number>;
  /** Disk: why the commit log ended early when it was opened. */
  logStop: LogStop | null;
}

interface Sink {
  open(target: CdaTargetSpec): Promise<{ state: CommittedState; stop: LogStop | null }>;
  commit(job: CommitJob): Promise<CommitDone>;
  close(): Promise<void>;
}

class InlineSink implements Sink {
  private committer: CdaCommitter | null = null;
  constructor(private readonly failCommit?: (cycle: number) => boolean) {}
  async open(target: CdaTargetSpec) {
    this.committer = await CdaCommitter.open(target);
    return { state: this.committer.committed, stop: this.committer.stop };
  }
  async commit(job: CommitJob): Promise<CommitDone> {
    // The staged bytes are read before this resolves; a copy of the list keeps the job's view stable.
    const done = await this.committer!.commit({ ...job, list: job.list.slice() }, this.failCommit);
    try {
      this.committer!.compactIfDue();
    } catch {
      // A failed compaction leaves base and log as they were.
    }
    return done;
  }
  async close(): Promise<void> {
    this.committer?.close();
  }
}

type Reply =
  | { type: 'opened'; state: CommittedState; stop: LogStop | null }
  | { type: 'committed'; done: CommitDone }
  | { type: 'closed' }
  | { type: 'failed'; code: string; message: string };

class WorkerSink implements Sink {
  private readonly worker: Worker;
  private readonly waiting: { resolve: (r: Reply) => void; reject: (e: unknown) => void }[] = [];
  private dead: UnderstudyError | null = null;

  constructor() {
    this.worker = new Worker(new URL('./worker.js', import.meta.url));
    // The worker keeps the process alive only while a request is in flight: a program that
    // forgets close() still exits, and one that awaits a commit does not exit under it.
    this.worker.unref();
    this.worker.on('message', (r: Reply) => {
      const w = this.waiting.shift();
      assert(w, 'a CDA worker reply nobody waits for');
      if (this.waiting.length === 0) this.worker.unref();
      if (r.type === 'failed') w.reject(new UnderstudyError(r.code as ErrorCode, r.message));
      else w.resolve(r);
    });
    this.worker.on('error', (e) => {
      this.dead = cdaError('ERR_CDA_IO', `the CDA worker died: ${e.message}`, { cause: e });
      for (const w of this.waiting.splice(0)) w.reject(this.dead);
    });
  }

  private request(msg: unknown): Promise<Reply> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.ref();
      this.worker.postMessage(msg);
    });
  }

  async open(target: CdaTargetSpec) {
    const r = await this.request({ type: 'open', target });
    assert(r.type === 'opened');
    return { state: r.state, stop: r.stop };
  }
  async commit(job: CommitJob): Promise<CommitDone> {
    // The staged bytes live in the shared staging buffer (not copied); the list is cloned.
    const r = await this.request({ type: 'commit', job });
    assert(r.type === 'committed');
    return r.done;
  }
  async close(): Promise<void> {
    try {
      if (!this.dead) await this.request({ type: 'close' });
    } finally {
      await this.worker.terminate();
    }
  }
}

/** What a commit in flight must remember until its answer. */
interface InFlight {
  /** Units written during the cycle (D): on failure they go back. */
  dirtyPages: Uint32Array | null;
  dirtyRanges: Ranges | null;
  startedAt: number;
  handover: { units: number; stores: number | null; stagedBytes: number; handoverMs: number; collectMs: number; copyMs: number };
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

/** The best page tracking this machine has, for 'auto'. */
function bestPageKind(probe: typeof probeTrackers): 'wp-async' | 'wp-sync' | 'hash' {
  const probes = probe();
  if (probes.find((p) => p.kind === 'wp-async')?.supported) return 'wp-async';
  if (probes.find((p) => p.kind === 'wp-sync')?.supported) return 'wp-sync';
  return 'hash';
}

export class CriticalAreaService {
  readonly mode: CdaMode;
  readonly target: CdaTargetSpec;
  readonly areaBytesMax: number;
  /** Resolves once the target's committed state is read (recover and commits need it). */
  readonly ready: Promise<void>;
  private readonly options: CdaOptions;
  private readonly pageKind: 'wp-async' | 'wp-sync' | 'hash' | null;
  private memory: WebAssembly.Memory | null = null;
  private source: PageSource | null = null;
  private storeLog: StoreLog | null = null;
  private storesHandedOver = 0;
  private sink: Sink;

  private areas: AreaSpec[] = [];
  private placement: Placement = place([]);
  private nextId = 1;
  /** Memory pages -> index+1 of the one area overlapping it, -1 when several do, 0 none. */
  private pageOwner = new Int32Array(0);
  private areaRanges: Ranges = [];

  private state: CycleState = 'idle';
  private opened = false;
  private committed: CommittedState = { cycle: 0, layout: [], image: new Uint8Array(0) };
  private committedPlacement: Placement = place([]);
  private logStop: LogStop | null = null;
  private openError: UnderstudyError | null = null;

  // Page modes: pending pages (mask + list), the overlay taken at begin.
  private pendingMask = new Uint8Array(0);
  private pendingList: number[] = [];
  private overlayPages = new Uint32Array(0);
  private overlayData = new Uint8Array(0);
  // Emul: pending ranges, the overlay taken at begin.
  private pendingRanges: Ranges = [];
  private overlayRanges: Ranges = [];
  private overlayBytes = new Uint8Array(0);

  private staging = new SharedArrayBuffer(0);
  private inFlight: InFlight | null = null;
  private settled: Promise<unknown> = Promise.resolve();
  private closed = false;
  private counts = { commits: 0, aborts: 0, failures: 0 };
  private last: CommitStats | null = null;

  constructor(options: CdaOptions = {}) {
    this.options = options;
    const requested = options.mode ?? 'auto';
    if (requested !== 'auto' && !CDA_MODES.includes(requested)) throw cdaError('ERR_CDA_CONFIG', `mode ${String(requested)}: use one of ${CDA_MODES.join(', ')} or auto`);
    const probe = options.probe ?? probeTrackers;
    this.mode = requested === 'auto' ? bestPageKind(probe) : requested;
    if (this.mode === 'emul') this.pageKind = null;
    else if (this.mode === 'diff') this.pageKind = !options.diffTracker || options.diffTracker === 'auto' ? bestPageKind(probe) : options.diffTracker;
    else this.pageKind = this.mode;
    if (this.pageKind === 'wp-async' || this.pageKind === 'wp-sync') {
      const p = probe().find((x) => x.kind === this.pageKind);
      if (!p?.supported) throw cdaError('ERR_CDA_MODE', `${this.mode} needs the ${this.pageKind} tracker: ${p?.reason ?? 'not probed'}`);
    }
    this.areaBytesMax = options.areaBytesMax ?? CDA_AREA_BYTES_MAX_DEFAULT;
    if (!isInt(this.areaBytesMax) || this.areaBytesMax < 1 || this.areaBytesMax > CDA_AREA_BYTES_LIMIT) {
      throw cdaError('ERR_CDA_CONFIG', `areaBytesMax must be an integer from 1 to ${CDA_AREA_BYTES_LIMIT}`);
    }
    // The store log exists before any memory: an instrumented guest is linked to its recorder.
    if (this.mode === 'emul') this.storeLog = new StoreLog();
    this.target = options.target ?? { kind: 'memory' };
    if (options.failCommit && !options.inline) throw cdaError('ERR_CDA_CONFIG', 'failCommit is a test hook of the inline sink');
    this.sink = options.inline ? new InlineSink(options.failCommit) : new WorkerSink();
    this.ready = this.sink.open(this.target).then(
      ({ state, stop }) => {
        this.setCommitted(state);
        this.logStop = stop;
        this.opened = true;
      },
      (e: unknown) => {
        this.openError = isUnderstudyError(e) ? e : cdaError('ERR_CDA_IO', String(e));
        throw this.openError;
      },
    );
    // A failed open is reported by whoever awaits `ready` or asks the service for its state.
    this.ready.catch(() => undefined);
  }

  /** The memory whose areas are protected; tracking starts now. Once. */
  bindMemory(memory: WebAssembly.Memory): void {
    assert(this.memory === null, 'a service protects one memory');
    this.memory = memory;
    if (this.pageKind === 'wp-async' || this.pageKind === 'wp-sync') {
      try {
        this.source = KernelPageSource.create(memory, this.pageKind);
      } catch (e) {
        if (isUnderstudyError(e)) throw cdaError('ERR_CDA_MODE', `${this.mode}: ${e.message}`, { cause: e });
        throw e;
      }
    } else if (this.pageKind === 'hash') this.source = new ComparePageSource();
  }

  get bound(): boolean {
    return this.memory !== null;
  }

  get cycleState(): CycleState {
    return this.state;
  }

  get committedCycle(): number {
    return this.committed.cycle;
  }

  /** The layout registered now (ascending ids). */
  get registered(): readonly AreaSpec[] {
    return this.areas;
  }

  /** Emul: the recorder an instrumented accessor or instrumented wasm calls per store. */
  get recordStore(): (address: number, length: number) => void {
    if (!this.storeLog) throw cdaError('ERR_CDA_MODE', `recordWrite is for mode emul; this service tracks with ${this.mode}`);
    return this.storeLog.record;
  }

  private mem(): Uint8Array {
    assert(this.memory !== null, 'bindMemory first');
    return new Uint8Array(this.memory.buffer);
  }

  private setCommitted(state: CommittedState): void {
    this.committed = state;
    this.committedPlacement = place(state.layout);
  }

  private expectState(s: CycleState, what: string): void {
    if (this.closed) throw cdaError('ERR_CDA_STATE', `${what}: the service is closed`);
    if (this.state !== s) throw cdaError('ERR_CDA_STATE', `${what} while the cycle is ${this.state}`);
  }

  // ---- areas ----

  /** Declares [offset, offset + length) a critical data area; returns its id (ids count up from 1). Not inside a cycle. */
  register(offset: number, length: number): number {
    this.expectState('idle', 'register');
    const memory = this.mem();
    if (!isInt(offset) || !isInt(length) || offset < 0 || length < 1 || offset + length > memory.length) {
      throw cdaError('ERR_CDA_RANGE', `area [${offset}, +${length}) is empty or not inside the ${memory.length}-byte memory`);
    }
    if (this.areas.length >= CDA_AREAS_MAX) throw cdaError('ERR_CDA_LIMIT', `at most ${CDA_AREAS_MAX} areas`);
    if (layoutBytes(this.areas) + length > this.areaBytesMax) throw cdaError('ERR_CDA_LIMIT', `at most ${this.areaBytesMax} bytes in areas`);
    const area: AreaSpec = { id: this.nextId, address: offset, length };
    const overlap = findOverlap([...this.areas, area]);
    if (overlap) throw cdaError('ERR_CDA_STATE', `area [${offset}, +${length}) overlaps area ${overlap[0] === area.id ? overlap[1] : overlap[0]}`);
    this.absorbChanges();
    this.nextId++;
    this.setAreas([...this.areas, area]);
    // A new area is not in the committed image: all of it belongs to the next commit.
    if (this.storeLog) this.pendingRanges = union(this.pendingRanges, [offset, offset + length]);
    else {
      const placed = this.placement.areas.find((a) => a.id === area.id)!;
      for (let p = placed.firstPage; p < placed.firstPage + placed.pages; p++) this.markPending(p);
    }
    return area.id;
  }

  /** The area stops being committed (from the next commit on). Not inside a cycle. */
  unregister(id: number): void {
    this.expectState('idle', 'unregister');
    if (!this.areas.some((a) => a.id === id)) throw cdaError('ERR_CDA_STATE', `no area ${id}`);
    this.absorbChanges();
    this.setAreas(this.areas.filter((a) => a.id !== id));
    if (this.storeLog) this.pendingRanges = intersect(this.pendingRanges, this.areaRanges);
    else {
      const keep = this.pendingList.filter((p) => this.ownerOf(p) !== 0);
      this.pendingMask.fill(0);
      this.pendingList = [];
      for (const p of keep) this.markPending(p);
    }
  }

  /** Changes made since the tracker was last asked become pending (before the areas change under it). */
  private absorbChanges(): void {
    if (this.storeLog) this.pendingRanges = union(this.pendingRanges, intersect(this.storeLog.take(), this.areaRanges));
    else for (const p of this.collectAreaPages()) this.markPending(p);
  }

  private setAreas(areas: AreaSpec[]): void {
    this.areas = areas;
    this.placement = place(areas);
    const pages = this.mem().length / PAGE_BYTES;
    const owner = new Int32Array(pages);
    this.placement.areas.forEach((a, i) => {
      for (let p = a.firstPage; p < a.firstPage + a.pages; p++) owner[p] = owner[p] === 0 ? i + 1 : -1;
    });
    this.pageOwner = owner;
    if (this.pendingMask.length < pages) {
      const grown = new Uint8Array(pages);
      grown.set(this.pendingMask);
      this.pendingMask = grown;
    }
    const byAddress = [...areas].sort((a, b) => a.address - b.address);
    this.areaRanges = byAddress.flatMap((a) => [a.address, a.address + a.length]);
    this.source?.setAreas(this.memory!, this.placement);
    const lo = byAddress.length ? byAddress[0]!.address : 0;
    const hi = byAddress.reduce((m, a) => Math.max(m, a.address + a.length), 0);
    this.options.onBounds?.(lo, hi);
  }

  private ownerOf(page: number): number {
    return page < this.pageOwner.length ? this.pageOwner[page]! : 0;
  }

  /** The areas overlapping memory page `page`. */
  private areasOf(page: number): readonly PlacedArea[] {
    const o = this.ownerOf(page);
    if (o > 0) return [this.placement.areas[o - 1]!];
    if (o === 0) return [];
    return this.placement.areas.filter((a) => page >= a.firstPage && page < a.firstPage + a.pages);
  }

  private markPending(page: number): void {
    if (this.pendingMask[page]) return;
    this.pendingMask[page] = 1;
    this.pendingList.push(page);
  }

  /** The tracker's dirty pages that hold bytes of an area. */
  private collectAreaPages(): Uint32Array {
    const all = this.source!.collect();
    let n = 0;
    const out = new Uint32Array(all.length);
    for (let i = 0; i < all.length; i++) if (this.ownerOf(all[i]!) !== 0) out[n++] = all[i]!;
    return out.subarray(0, n);
  }

  // ---- cycles ----

  /** Opens a cycle. Changes made to the areas between cycles belong to it. */
  begin(): void {
    this.expectState('idle', 'begin');
    const memory = this.mem();
    this.absorbChanges();
    if (this.storeLog) {
      this.overlayRanges = this.pendingRanges.slice();
      const bytes = rangeBytes(this.overlayRanges);
      if (this.overlayBytes.length < bytes) this.overlayBytes = new Uint8Array(bytes);
      let at = 0;
      for (let i = 0; i < this.overlayRanges.length; i += 2) {
        const s = this.overlayRanges[i]!;
        const e = this.overlayRanges[i + 1]!;
        this.overlayBytes.set(memory.subarray(s, e), at);
        at += e - s;
      }
    } else {
      this.overlayPages = Uint32Array.from(this.pendingList);
      const bytes = this.overlayPages.length * PAGE_BYTES;
      if (this.overlayData.length < bytes) this.overlayData = new Uint8Array(bytes);
      if (this.overlayPages.length) native.gatherPages(memory, this.overlayPages, this.overlayData.subarray(0, bytes));
    }
    this.state = 'open';
  }

  /** Ends the cycle without committing: the areas are put back as they were at begin. */
  abort(): void {
    this.expectState('open', 'abort');
    if (this.storeLog) this.restoreRanges(intersect(this.storeLog.take(), this.areaRanges));
    else this.restorePages(this.collectAreaPages());
    this.state = 'idle';
    this.counts.aborts++;
  }

  /** Writes `dirty` back as of begin: the committed image where it holds the area, then the overlay. */
  private restorePages(dirty: Uint32Array): void {
    const memory = this.mem();
    const image = this.committed.image;
    for (let i = 0; i < dirty.length; i++) {
      const p = dirty[i]!;
      for (const a of this.areasOf(p)) {
        const c = this.committedArea(a);
        if (!c) continue; // a new area: wholly in the overlay
        const [s, e] = clip(a, p);
        memory.set(image.subarray(imageOffset(c, s), imageOffset(c, e)), s);
      }
    }
    for (let i = 0; i < this.overlayPages.length; i++) {
      const p = this.overlayPages[i]!;
      for (const a of this.areasOf(p)) {
        const [s, e] = clip(a, p);
        memory.set(this.overlayData.subarray(i * PAGE_BYTES + (s - p * PAGE_BYTES), i * PAGE_BYTES + (e - p * PAGE_BYTES)), s);
      }
    }
    // The host's own writes are not changes: the areas are as at begin, whose differences from the image are pending already.
    this.source!.collect();
  }

  private restoreRanges(dirty: Ranges): void {
    const memory = this.mem();
    const image = this.committed.image;
    for (const a of this.placement.areas) {
      const c = this.committedArea(a);
      if (!c) continue;
      const parts = intersect(dirty, [a.address, a.address + a.length]);
      for (let i = 0; i < parts.length; i += 2) memory.set(image.subarray(imageOffset(c, parts[i]!), imageOffset(c, parts[i + 1]!)), parts[i]!);
    }
    let at = 0;
    for (let i = 0; i < this.overlayRanges.length; i += 2) {
      const s = this.overlayRanges[i]!;
      const e = this.overlayRanges[i + 1]!;
      memory.set(this.overlayBytes.subarray(at, at + e - s), s);
      at += e - s;
    }
    // Host writes are not recorded by the store log: nothing to forget.
  }

  /** The committed image's placement of `a`, when the image holds this very area. */
  private committedArea(a: AreaSpec): PlacedArea | null {
    if (!this.opened) return null;
    return this.committedPlacement.areas.find((c) => sameArea(c, a)) ?? null;
  }

  /**
   * Ends the cycle: hands the changes over to the worker (synchronously: the
   * application pays this) and returns the cycle number the commit will have,
   * and a promise of its outcome. ERR_CDA_IO from the promise: not committed,
   * the areas are as they were at begin.
   */
  end(): { cycle: number; done: Promise<CommitStats> } {
    this.expectState('open', 'end');
    if (!this.opened) throw this.openError ?? cdaError('ERR_CDA_STATE', 'end before the target was read (await ready)');
    const t0 = performance.now();
    const memory = this.mem();
    let job: CommitJob;
    let flight: InFlight;
    if (this.storeLog) {
      const dirty = intersect(this.storeLog.take(), this.areaRanges);
      const units = union(this.pendingRanges, dirty);
      const t1 = performance.now();
      const { list, count, bytes } = this.stageRanges(memory, units);
      const t2 = performance.now();
      job = { cycle: this.committed.cycle + 1, layout: this.areas, kind: 'ranges', list, count, staged: new Uint8Array(this.staging, 0, bytes), diff: false };
      const stores = this.storeLog.stores - this.storesHandedOver;
      this.storesHandedOver = this.storeLog.stores;
      flight = { dirtyPages: null, dirtyRanges: dirty, startedAt: t0, handover: { units: units.length / 2, stores, stagedBytes: bytes, handoverMs: 0, collectMs: t1 - t0, copyMs: t2 - t1 } };
      this.pendingRanges = [];
    } else {
      const dirty = this.collectAreaPages();
      for (let i = 0; i < dirty.length; i++) this.markPending(dirty[i]!);
      const units = Uint32Array.from(this.pendingList).sort();
      const t1 = performance.now();
      const { slots, count, bytes } = this.stagePages(memory, units);
      const t2 = performance.now();
      job = { cycle: this.committed.cycle + 1, layout: this.areas, kind: 'pages', list: slots, count, staged: new Uint8Array(this.staging, 0, bytes), diff: this.mode === 'diff' };
      flight = { dirtyPages: dirty, dirtyRanges: null, startedAt: t0, handover: { units: units.length, stores: null, stagedBytes: bytes, handoverMs: 0, collectMs: t1 - t0, copyMs: t2 - t1 } };
      for (const p of this.pendingList) this.pendingMask[p] = 0;
      this.pendingList = [];
    }
    const done = this.sink.commit(job);
    flight.handover.handoverMs = performance.now() - t0;
    this.inFlight = flight;
    this.state = 'committing';
    const outcome = done.then((d) => this.committedOk(d, job), (e: unknown) => this.committedFailed(e));
    this.settled = outcome.catch(() => undefined);
    return { cycle: job.cycle, done: outcome };
  }

  private committedOk(d: CommitDone, job: CommitJob): CommitStats {
    const f = this.inFlight!;
    this.setCommitted({ cycle: d.cycle, layout: job.layout, image: d.image ?? this.committed.image });
    this.inFlight = null;
    this.state = 'idle';
    this.counts.commits++;
    const stats: CommitStats = {
      cycle: d.cycle,
      mode: this.mode,
      ...f.handover,
      deltaBytes: d.deltaBytes,
      storedBytes: d.storedBytes,
      changedPages: d.changedPages,
      changedBytes: d.changedBytes,
      full: d.full,
      totalMs: performance.now() - f.startedAt,
      encodeMs: d.encodeMs,
      targetMs: d.targetMs,
    };
    this.last = stats;
    this.options.onCommit?.(stats);
    return stats;
  }

  private committedFailed(e: unknown): never {
    const f = this.inFlight!;
    this.inFlight = null;
    this.state = 'idle';
    this.counts.failures++;
    if (!this.closed && this.memory) {
      // Not committed: the areas go back as they were at begin (the image is the previous cycle's, unchanged).
      if (this.storeLog) {
        const since = intersect(this.storeLog.take(), this.areaRanges);
        this.restoreRanges(union(f.dirtyRanges!, since));
        this.pendingRanges = this.overlayRanges.slice();
      } else {
        const since = this.collectAreaPages();
        const all = new Uint32Array(f.dirtyPages!.length + since.length);
        all.set(f.dirtyPages!);
        all.set(since, f.dirtyPages!.length);
        this.restorePages(all);
        for (const p of this.overlayPages) this.markPending(p);
      }
    }
    if (isUnderstudyError(e, 'ERR_CDA_IO')) throw e;
    throw cdaError('ERR_CDA_IO', `cycle not committed: ${(e as Error).message}`, { cause: e });
  }

  private ensureStaging(bytes: number): void {
    if (this.staging.byteLength >= bytes) return;
    // Grown in steps of 25 %, reused: fresh pages cost a first-touch fault each (epochs.ts measured it).
    this.staging = new SharedArrayBuffer(Math.max(bytes, Math.ceil((this.staging.byteLength * 1.25) / PAGE_BYTES) * PAGE_BYTES));
  }

  /** Copies the dirty pages into staging, one slot page per (page, area), in slot order; bytes outside areas zero. */
  private stagePages(memory: Uint8Array, units: Uint32Array): { slots: Uint32Array; count: number; bytes: number } {
    const slots: number[] = [];
    const pages: number[] = [];
    const edges: number[] = []; // index in staging, area index
    this.placement.areas.forEach((a, ai) => {
      let i = lowerBound(units, a.firstPage);
      for (; i < units.length && units[i]! < a.firstPage + a.pages; i++) {
        const p = units[i]!;
        if (p * PAGE_BYTES < a.address || (p + 1) * PAGE_BYTES > a.address + a.length) edges.push(slots.length, ai);
        slots.push(a.slotBase + p - a.firstPage);
        pages.push(p);
      }
    });
    const bytes = slots.length * PAGE_BYTES;
    this.ensureStaging(bytes);
    const staged = new Uint8Array(this.staging, 0, bytes);
    if (pages.length) native.gatherPages(memory, Uint32Array.from(pages), staged);
    for (let k = 0; k < edges.length; k += 2) {
      const at = edges[k]! * PAGE_BYTES;
      const a = this.placement.areas[edges[k + 1]!]!;
      const page = pages[edges[k]!]! * PAGE_BYTES;
      const head = Math.max(0, a.address - page);
      const tail = Math.min(PAGE_BYTES, a.address + a.length - page);
      staged.fill(0, at, at + head);
      staged.fill(0, at + tail, at + PAGE_BYTES);
    }
    return { slots: Uint32Array.from(slots), count: slots.length, bytes };
  }

  /** Copies the dirty ranges' bytes into staging, as (image offset, length) in image order. */
  private stageRanges(memory: Uint8Array, units: Ranges): { list: Uint32Array; count: number; bytes: number } {
    const pairs: number[] = [];
    let bytes = 0;
    for (const a of this.placement.areas) {
      const parts = intersect(units, [a.address, a.address + a.length]);
      for (let i = 0; i < parts.length; i += 2) {
        pairs.push(imageOffset(a, parts[i]!), parts[i + 1]! - parts[i]!, parts[i]!);
        bytes += parts[i + 1]! - parts[i]!;
      }
    }
    this.ensureStaging(bytes);
    const staged = new Uint8Array(this.staging, 0, bytes);
    const list = new Uint32Array((pairs.length / 3) * 2);
    let at = 0;
    for (let k = 0, j = 0; k < pairs.length; k += 3, j += 2) {
      list[j] = pairs[k]!;
      list[j + 1] = pairs[k + 1]!;
      staged.set(memory.subarray(pairs[k + 2]!, pairs[k + 2]! + pairs[k + 1]!), at);
      at += pairs[k + 1]!;
    }
    return { list, count: pairs.length / 3, bytes };
  }

  /** Ends the cycle and waits until the target holds it. */
  async commit(): Promise<CommitStats> {
    if (this.state === 'open' && !this.opened && !this.openError) await this.ready.catch(() => undefined);
    return this.end().done;
  }

  /** begin; fn (sync or async); commit. If fn throws, abort and rethrow. */
  async transaction<T>(fn: () => T | Promise<T>): Promise<{ result: T; commit: CommitStats }> {
    if (!this.opened) await this.ready;
    this.begin();
    let result: T;
    try {
      result = await fn();
    } catch (e) {
      if (this.state === 'open') this.abort();
      throw e;
    }
    return { result, commit: await this.commit() };
  }

  // ---- recovery ----

  /**
   * Fills every registered area with its content at the last committed cycle
   * and returns that cycle's number; 0 when nothing was committed (areas
   * untouched). The registered areas must be the committed ones (same ids,
   * addresses, lengths): ERR_CDA_LAYOUT otherwise. Not inside a cycle.
   */
  recoverNow(): number {
    this.expectState('idle', 'recover');
    if (!this.opened) throw this.openError ?? cdaError('ERR_CDA_STATE', 'recover before the target was read (await ready)');
    if (this.committed.cycle === 0) return 0;
    if (!sameLayout(this.areas, this.committed.layout)) {
      const show = (l: readonly AreaSpec[]) => l.map((a) => `${a.id}@${a.address}+${a.length}`).join(', ') || 'none';
      throw cdaError('ERR_CDA_LAYOUT', `registered areas [${show(this.areas)}] are not the committed ones [${show(this.committed.layout)}]`);
    }
    const memory = this.mem();
    for (const a of this.placement.areas) memory.set(this.committed.image.subarray(imageOffset(a, a.address), imageOffset(a, a.address + a.length)), a.address);
    // The areas now equal the image: nothing is pending, and the host's writes are not changes.
    if (this.storeLog) {
      this.storeLog.clear();
      this.pendingRanges = [];
    } else {
      this.source!.collect();
      this.pendingMask.fill(0);
      this.pendingList = [];
    }
    return this.committed.cycle;
  }

  async recover(): Promise<number> {
    await this.ready;
    return this.recoverNow();
  }

  /** The committed areas (copies), as of the last acknowledged cycle. Not while a commit runs. */
  committedAreas(): { cycle: number; areas: CommittedArea[] } {
    if (this.state === 'committing') throw cdaError('ERR_CDA_STATE', 'committedAreas while a commit runs');
    return areasOf(this.committed);
  }

  /** Emul: `length` bytes at `offset` were (or are about to be) written. */
  recordWrite(offset: number, length: number): void {
    this.recordStore(offset >>> 0, length >>> 0);
  }

  stats(): CdaServiceStats {
    return {
      mode: this.mode,
      tracker: this.storeLog ? 'store-log' : (this.pageKind ?? 'none'),
      target: this.target.kind,
      state: this.state,
      committedCycle: this.committed.cycle,
      areas: this.areas.length,
      areaBytes: layoutBytes(this.areas),
      ...this.counts,
      last: this.last,
      trackerStats: this.storeLog ? { stores: this.storeLog.stores, folds: this.storeLog.folds, widened: this.storeLog.widened } : (this.source?.stats() ?? {}),
      logStop: this.logStop,
    };
  }

  /** Resolves when no commit is in flight (whatever its outcome). */
  whenSettled(): Promise<void> {
    return this.settled.then(() => undefined);
  }

  /** Waits for a commit in flight, stops tracking, ends the worker. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.settled;
    this.closed = true;
    await this.ready.catch(() => undefined);
    this.source?.dispose();
    this.source = null;
    await this.sink.close();
  }
}

/** The bytes of area `a` in memory page `p`: [start, end). */
function clip(a: AreaSpec, p: number): [number, number] {
  return [Math.max(a.address, p * PAGE_BYTES), Math.min(a.address + a.length, (p + 1) * PAGE_BYTES)];
}

function lowerBound(sorted: Uint32Array, v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
