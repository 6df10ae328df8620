// The host side of the balloon hypercalls (guests/sdk/understudy_balloon.h): the guest hands
// pages over, takes them back, or reports pages of a freed block. Pages handed over are given
// back to the kernel (native.discardPages: MADV_DONTNEED), so they read as zero, are not present,
// and memory exclusion leaves them out of every checkpoint with no further bookkeeping.
import type { Guest, Hypercalls } from '../guest/guest.js';
import { native, PAGE_BYTES } from '../native.js';

/** Answers of the hypercalls (the guest sees them as i32; the SDK names them US_BALLOON_E*). */
export const BalloonAnswer = {
  ok: 0,
  /** The range lies outside memory. */
  range: -1,
  /** Pointer or length is not whole 4 KiB pages. */
  align: -2,
  /** give of pages already in the balloon; take of pages not in it; report of balloon pages. */
  state: -3,
} as const;

/** What the host knows of one guest's balloon. */
export class BalloonState {
  /** One byte per 4 KiB page: 1 = in the balloon. Grows with memory. */
  private inBalloon = new Uint8Array(0);
  balloonPages = 0;
  givenPagesTotal = 0;
  reportedPagesTotal = 0;
  refused = 0;
  discardMethod: 'madvise' | 'zero-fill' | null = null;

  /** Checks (ptr, len) from the guest; returns the page range or a refusal. */
  range(memory: WebAssembly.Memory, ptr: unknown, len: unknown): { first: number; count: number } | number {
    if (typeof ptr !== 'number' || typeof len !== 'number') return BalloonAnswer.range;
    const p = ptr >>> 0;
    const n = len >>> 0;
    if (p % PAGE_BYTES || n % PAGE_BYTES) return BalloonAnswer.align;
    if (p + n > memory.buffer.byteLength) return BalloonAnswer.range;
    const pages = memory.buffer.byteLength / PAGE_BYTES;
    if (this.inBalloon.length < pages) {
      const grown = new Uint8Array(pages);
      grown.set(this.inBalloon);
      this.inBalloon = grown;
    }
    return { first: p / PAGE_BYTES, count: n / PAGE_BYTES };
  }

  private anyIn(first: number, count: number, value: 0 | 1): boolean {
    for (let i = first; i < first + count; i++) if (this.inBalloon[i] === value) return true;
    return false;
  }

  give(memory: WebAssembly.Memory, ptr: unknown, len: unknown): number {
    const r = this.range(memory, ptr, len);
    if (typeof r === 'number') return this.refuse(r);
    if (this.anyIn(r.first, r.count, 1)) return this.refuse(BalloonAnswer.state);
    this.inBalloon.fill(1, r.first, r.first + r.count);
    this.balloonPages += r.count;
    this.givenPagesTotal += r.count;
    if (r.count) this.discardMethod = native.discardPages(new Uint8Array(memory.buffer), r.first, r.count);
    return BalloonAnswer.ok;
  }

  /** The guest takes pages back (deflate). Pages not in the balloon (after a restore, the host
   * starts with an empty one while the guest's list survives in its memory) are answered
   * `state` but the others are still taken back. */
  take(memory: WebAssembly.Memory, ptr: unknown, len: unknown): number {
    const r = this.range(memory, ptr, len);
    if (typeof r === 'number') return this.refuse(r);
    let taken = 0;
    for (let i = r.first; i < r.first + r.count; i++) {
      if (this.inBalloon[i] === 1) {
        this.inBalloon[i] = 0;
        taken++;
      }
    }
    this.balloonPages -= taken;
    return taken === r.count ? BalloonAnswer.ok : BalloonAnswer.state;
  }

  /** Free page reporting: pages of a block the guest's allocator holds free. Discarded, not kept. */
  reportFree(memory: WebAssembly.Memory, ptr: unknown, len: unknown): number {
    const r = this.range(memory, ptr, len);
    if (typeof r === 'number') return this.refuse(r);
    if (this.anyIn(r.first, r.count, 1)) return this.refuse(BalloonAnswer.state);
    this.reportedPagesTotal += r.count;
    if (r.count) this.discardMethod = native.discardPages(new Uint8Array(memory.buffer), r.first, r.count);
    return BalloonAnswer.ok;
  }

  private refuse(answer: number): number {
    this.refused++;
    return answer;
  }
}

const states = new WeakMap<Guest, BalloonState>();

/** The balloon state of a guest (created on first use). */
export function balloonState(guest: Guest): BalloonState {
  let s = states.get(guest);
  if (!s) {
    s = new BalloonState();
    states.set(guest, s);
  }
  return s;
}

/** The hypercalls, registered for every guest (a guest that does not import them pays nothing). */
export const BALLOON_HYPERCALLS: Hypercalls = {
  balloon_give: (guest, ptr, len) => balloonState(guest).give(guest.memory, ptr, len),
  balloon_take: (guest, ptr, len) => balloonState(guest).take(guest.memory, ptr, len),
  balloon_report_free: (guest, ptr, len) => balloonState(guest).reportFree(guest.memory, ptr, len),
};
