// "Has the armed delay passed?" asked on the guest's path, between reactor
// requests and at safe points, as often as every ~2 µs. A clock read
// (performance.now(), ~60 ns here) costs a fast reactor ~3 % of its run time;
// the flag a native timer thread sets costs one load. Without that thread
// (a build without it, or a failed thread start) it reads the clock.
import { native } from '../native.js';
import { assert } from './assert.js';

export type DeadlinePath = 'timer-thread' | 'clock';

/** Delays past this never pass (native/src/deadline.c, US_DEADLINE_DELAY_MS_MAX): ~31 years. */
const DELAY_NEVER_MS = 1e12;
/** Shorter delays read the clock: the timer thread wakes ~0.1 ms late (median here; 0.55 ms at the
 * 99th percentile), which a sub-millisecond epoch (tests use 0.001 ms for "after every request")
 * would not survive. Asked that often relative to the delay, the clock read's cost is moot. */
export const DEADLINE_THREAD_MIN_MS = 1;

export class Deadline {
  /** The native flag (its buffer is the native deadline), or null on the clock path. */
  #flag: Int32Array | null;
  /** The clock path's deadline (performance.now() time base); never until armed. */
  #atMs = Infinity;
  /** This arm reads the clock: no timer thread, or a delay under DEADLINE_THREAD_MIN_MS. */
  #byClock: boolean;
  #closed = false;

  private constructor(buffer: ArrayBuffer | null) {
    this.#flag = buffer ? new Int32Array(buffer) : null;
    this.#byClock = !buffer;
  }

  /** Not armed: passed is false until arm(). `path` 'clock' forces the portable path (tests, comparisons). */
  static create(path?: DeadlinePath): Deadline {
    const buffer = path === 'clock' ? null : native.deadlineCreate();
    return new Deadline(buffer);
  }

  get path(): DeadlinePath {
    return this.#flag ? 'timer-thread' : 'clock';
  }

  /** passed turns true delayMs from now (at once when delayMs <= 0, never when Infinity or past
   * ~31 years); re-arming replaces the deadline. */
  arm(delayMs: number): void {
    assert(!this.#closed, 'arm after close');
    assert(!Number.isNaN(delayMs), 'a deadline delay is a number of milliseconds');
    this.#byClock = !this.#flag || delayMs < DEADLINE_THREAD_MIN_MS;
    if (this.#byClock) this.#atMs = delayMs > DELAY_NEVER_MS ? Infinity : performance.now() + delayMs;
    else native.deadlineArm(this.#flag!.buffer as ArrayBuffer, delayMs);
  }

  /** True once the armed delay has passed. The timer thread sets it within its wake-up latency
   * (~0.1 ms median here with a core free); a check a little before then reads false. */
  get passed(): boolean {
    return this.#byClock ? performance.now() >= this.#atMs : this.#flag![0] !== 0;
  }

  /** Idempotent; passed stays as it was. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#flag) native.deadlineClose(this.#flag.buffer as ArrayBuffer);
  }
}
