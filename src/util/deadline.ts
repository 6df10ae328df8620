// "Has the armed delay passed?" asked on the guest's path, between reactor
// requests and at safe points, as often as every ~2 µs. A clock read
// (performance.now(), ~60 ns here) costs a fast reactor ~3 % of its run time;
// the flag a native timer thread sets costs one load. Without that thread
// (a build without it, or a failed thread start) it reads the clock.
import { native } from '../native.js';
import { assert } from './assert.js';

export type DeadlinePath = 'timer-thread' | 'clock';

export class Deadline {
  #flag: Int32Array | null;
  #buffer: ArrayBuffer | null;
  /** The clock path's deadline (performance.now() time base). */
  #atMs = 0;
  #closed = false;

  private constructor(buffer: ArrayBuffer | null) {
    this.#buffer = buffer;
    this.#flag = buffer ? new Int32Array(buffer) : null;
  }

  /** Not armed: passed is false until arm(). `path` 'clock' forces the portable path (tests, comparisons). */
  static create(path?: DeadlinePath): Deadline {
    const buffer = path === 'clock' ? null : native.deadlineCreate();
    const d = new Deadline(buffer);
    if (!buffer) d.#atMs = Infinity;
    return d;
  }

  get path(): DeadlinePath {
    return this.#flag ? 'timer-thread' : 'clock';
  }

  /** passed turns true delayMs from now (at once when delayMs <= 0); re-arming replaces the deadline. */
  arm(delayMs: number): void {
    assert(!this.#closed, 'arm after close');
    if (this.#buffer) native.deadlineArm(this.#buffer, delayMs);
    else this.#atMs = performance.now() + delayMs;
  }

  /** True once the armed delay has passed. The timer thread sets it within its wake-up latency
   * (~0.1 ms median here with a core free); a check a little before then reads false. */
  get passed(): boolean {
    const flag = this.#flag;
    return flag ? flag[0] !== 0 : performance.now() >= this.#atMs;
  }

  /** Idempotent; passed stays as it was. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#buffer) native.deadlineClose(this.#buffer);
  }
}
