// The portable tracker: no kernel features at all. It keeps a copy of the
// memory as of the previous collect and compares page by page, so a collect
// costs one pass over the whole memory (memcmp speed) plus a copy of the
// dirty pages, and the copy doubles the memory's footprint.
//
// "Dirty" here means "content differs from the previous epoch": a write that
// stores the bytes already there is not reported. For checkpointing that is
// the same thing (the page's content did not change). Pages added by grow are
// compared against zeros, which is what a grown page holds.
import { UnderstudyError } from '../errors.js';
import { native, PAGE_BYTES } from '../native.js';
import type { DirtyTracker } from './tracker.js';

export class HashTracker implements DirtyTracker {
  readonly kind = 'hash' as const;
  #memory: WebAssembly.Memory | undefined;
  #copy: Uint8Array;
  #collects = 0;
  #compareNsTotal = 0;
  #compareNsLast = 0;
  #pagesReportedTotal = 0;
  #grows = 0;

  constructor(memory: WebAssembly.Memory) {
    this.#memory = memory;
    this.#copy = new Uint8Array(memory.buffer).slice();
  }

  collect(): Uint32Array {
    const memory = this.#memory;
    if (!memory) throw new UnderstudyError('ERR_TRACKER_DISPOSED', 'the hash tracker was disposed');
    const t0 = process.hrtime.bigint();
    const current = new Uint8Array(memory.buffer);
    const oldBytes = this.#copy.length;
    const changed = native.diffPages(current.subarray(0, oldBytes), this.#copy);
    let dirty = changed;
    if (current.length > oldBytes) {
      // Grown pages start as zeros; the non-zero ones were written.
      const grown = native.nonZeroPages(current.subarray(oldBytes));
      const firstGrown = oldBytes / PAGE_BYTES;
      dirty = new Uint32Array(changed.length + grown.length);
      dirty.set(changed);
      for (let i = 0; i < grown.length; i++) dirty[changed.length + i] = firstGrown + grown[i]!;
      const next = new Uint8Array(current.length);
      next.set(this.#copy);
      this.#copy = next;
      this.#grows++;
    }
    for (let i = 0; i < dirty.length; i++) {
      const at = dirty[i]! * PAGE_BYTES;
      this.#copy.set(current.subarray(at, at + PAGE_BYTES), at);
    }
    const dt = Number(process.hrtime.bigint() - t0);
    this.#collects++;
    this.#compareNsLast = dt;
    this.#compareNsTotal += dt;
    this.#pagesReportedTotal += dirty.length;
    return dirty;
  }

  stats(): Record<string, number> {
    return {
      collects: this.#collects,
      compareNsTotal: this.#compareNsTotal,
      compareNsLast: this.#compareNsLast,
      pagesReportedTotal: this.#pagesReportedTotal,
      grows: this.#grows,
      copyBytes: this.#copy.length,
      ...(this.#memory ? {} : { disposed: 1 }),
    };
  }

  dispose(): void {
    this.#memory = undefined;
    this.#copy = new Uint8Array(0);
  }
}
