// How the service learns what changed in the areas since it last asked.
//
//   page sources (page tracking, the paper's PT):
//     wp-async  the kernel's async write-protect (src/track, userfaultfd +
//               PAGEMAP_SCAN): the analogue of PTxen — no fault reaches us,
//               the dirty set is read from the page tables
//     wp-sync   a write fault per first write to a page, served by a native
//               thread (src/track): the analogue of user-level PT (mprotect
//               + SIGSEGV)
//     hash      no kernel help: the area pages are compared with a copy
//   a store log (word-level tracking by emulation, the paper's Emul):
//     every store's address and length, recorded as it happens — by
//     instrumented wasm stores (instrument.ts) or by the program itself
//     (recordWrite) — with no page tracking at all
import { native, PAGE_BYTES } from '../native.js';
import { createTracker, type DirtyTracker } from '../track/tracker.js';
import { assert } from '../util/assert.js';
import type { Placement } from './layout.js';
import { normalisePairs, union, type Ranges } from './ranges.js';

export interface PageSource {
  readonly kind: 'wp-async' | 'wp-sync' | 'hash';
  /** Memory pages written since the last call (a superset is allowed), ascending; re-arms. */
  collect(): Uint32Array;
  /** The areas changed (after a register or unregister); pages of new areas are reported by the caller, not here. */
  setAreas(memory: WebAssembly.Memory, placement: Placement): void;
  stats(): Record<string, number>;
  dispose(): void;
}

/** A src/track tracker over the whole memory; the service keeps only the pages of areas. */
export class KernelPageSource implements PageSource {
  private constructor(
    readonly kind: 'wp-async' | 'wp-sync',
    private readonly tracker: DirtyTracker,
  ) {}

  static create(memory: WebAssembly.Memory, kind: 'wp-async' | 'wp-sync'): KernelPageSource {
    // wp-sync here is the fault-per-first-write tracker only: no pre-images (the service keeps its own).
    // No wp-async hot regions: a cycle is a transaction, and a region reported whole for a lease
    // would hand over (and commit) 512 pages for a one-page transaction.
    return new KernelPageSource(kind, createTracker(memory, kind, { preimageBytesMax: 0, hotWrittenMinPages: 0 }));
  }

  collect(): Uint32Array {
    return this.tracker.collect();
  }

  setAreas(): void {}

  stats(): Record<string, number> {
    return this.tracker.stats();
  }

  dispose(): void {
    this.tracker.dispose();
  }
}

/**
 * No kernel help: a copy of the areas' pages as of the last collect, compared
 * page by page (memcmp speed) — only the areas' pages, not the whole memory
 * (src/track/hash.ts compares everything; an application's areas are usually
 * a small part of it).
 */
export class ComparePageSource implements PageSource {
  readonly kind = 'hash' as const;
  private copy = new Uint8Array(0);
  /** Memory page ranges compared: [firstPage, pages, offset in copy (pages)]. */
  private spans: number[] = [];
  private memory: WebAssembly.Memory | null = null;
  private collects = 0;
  private compareNsTotal = 0;
  private pagesReportedTotal = 0;

  setAreas(wasmMemory: WebAssembly.Memory, placement: Placement): void {
    const memory = new Uint8Array(wasmMemory.buffer);
    // Distinct memory pages of all areas, merged into spans (two areas may share an edge page).
    const byPage = [...placement.areas].sort((a, b) => a.firstPage - b.firstPage);
    const spans: number[] = [];
    for (const a of byPage) {
      const last = spans.length - 3;
      if (last >= 0 && a.firstPage <= spans[last]! + spans[last + 1]!) {
        spans[last + 1] = Math.max(spans[last + 1]!, a.firstPage + a.pages - spans[last]!);
      } else spans.push(a.firstPage, a.pages, 0);
    }
    let offset = 0;
    for (let i = 0; i < spans.length; i += 3) {
      spans[i + 2] = offset;
      offset += spans[i + 1]!;
    }
    // The copy is taken now: pages of areas the caller keeps were collected just before.
    const copy = new Uint8Array(offset * PAGE_BYTES);
    for (let i = 0; i < spans.length; i += 3) {
      copy.set(memory.subarray(spans[i]! * PAGE_BYTES, (spans[i]! + spans[i + 1]!) * PAGE_BYTES), spans[i + 2]! * PAGE_BYTES);
    }
    this.copy = copy;
    this.spans = spans;
    this.memory = wasmMemory;
  }

  collect(): Uint32Array {
    const t0 = process.hrtime.bigint();
    const out: number[] = [];
    // A fresh view: memory.grow replaces the buffer.
    const memory = this.memory ? new Uint8Array(this.memory.buffer) : null;
    if (memory) {
      for (let i = 0; i < this.spans.length; i += 3) {
        const first = this.spans[i]!;
        const n = this.spans[i + 1]!;
        const at = this.spans[i + 2]! * PAGE_BYTES;
        const live = memory.subarray(first * PAGE_BYTES, (first + n) * PAGE_BYTES);
        const mine = this.copy.subarray(at, at + n * PAGE_BYTES);
        const changed = native.diffPages(live, mine);
        for (let k = 0; k < changed.length; k++) {
          const p = changed[k]!;
          mine.set(live.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES), p * PAGE_BYTES);
          out.push(first + p);
        }
      }
    }
    this.collects++;
    this.compareNsTotal += Number(process.hrtime.bigint() - t0);
    this.pagesReportedTotal += out.length;
    return Uint32Array.from(out);
  }

  stats(): Record<string, number> {
    return { collects: this.collects, compareNsTotal: this.compareNsTotal, pagesReportedTotal: this.pagesReportedTotal, copyBytes: this.copy.length };
  }

  dispose(): void {
    this.copy = new Uint8Array(0);
    this.memory = null;
  }
}

/** Pairs recorded before they are folded into the range list (bounds the log; folding is a sort). */
export const STORE_LOG_PAIRS_MAX = 1 << 16;
/** Ranges kept between commits; past this they are widened to whole pages (a superset commits correctly). */
export const STORE_RANGES_MAX = 1 << 18;

/**
 * The emulation tracker: (address, length) of every store, in the order they
 * happen. A store that continues the previous one extends it (sequential
 * writes cost one entry). Recording is the hot path: no allocation, no call.
 */
export class StoreLog {
  private readonly log = new Uint32Array(2 * STORE_LOG_PAIRS_MAX);
  private n = 0;
  private lastEnd = -1;
  private folded: Ranges = [];
  stores = 0;
  folds = 0;
  widened = 0;

  /** One store of `length` bytes at `address` (unsigned 32-bit). */
  readonly record = (address: number, length: number): void => {
    this.stores++;
    if (address === this.lastEnd && this.n > 0) {
      this.log[this.n - 1]! += length;
      this.lastEnd += length;
      return;
    }
    if (this.n === this.log.length) this.fold();
    this.log[this.n] = address;
    this.log[this.n + 1] = length;
    this.n += 2;
    this.lastEnd = address + length;
  };

  private fold(): void {
    this.folded = union(this.folded, normalisePairs(this.log, this.n / 2));
    this.n = 0;
    this.lastEnd = -1;
    this.folds++;
    if (this.folded.length / 2 > STORE_RANGES_MAX) {
      const pairs: number[] = [];
      for (let i = 0; i < this.folded.length; i += 2) {
        const s = Math.floor(this.folded[i]! / PAGE_BYTES) * PAGE_BYTES;
        pairs.push(s, Math.ceil(this.folded[i + 1]! / PAGE_BYTES) * PAGE_BYTES - s);
      }
      this.folded = normalisePairs(pairs, pairs.length / 2);
      this.widened++;
    }
  }

  /** Every range stored to since the last take, normalised; empties the log. */
  take(): Ranges {
    this.fold();
    const r = this.folded;
    this.folded = [];
    assert(this.n === 0);
    return r;
  }

  /** Forgets what was recorded (the host just wrote the areas itself). */
  clear(): void {
    this.n = 0;
    this.lastEnd = -1;
    this.folded = [];
  }
}
