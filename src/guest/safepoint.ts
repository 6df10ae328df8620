// Stopping a command guest at a host call and resuming it, with Binaryen's
// Asyncify. Asyncify unwinds the wasm stack into a buffer in linear memory and
// rewinds from it. We borrow a scratch region at the bottom of memory for
// that buffer and put the guest's own bytes back as soon as the stack is
// copied out, so the guest never sees the borrowed bytes and its memory is
// identical to a run that was never stopped (asserted in the tests).
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';

/** Asyncify's states (asyncify_get_state). */
export const enum AsyncifyState {
  Normal = 0,
  Unwinding = 1,
  Rewinding = 2,
}

/** Header of the Asyncify buffer: two i32, the current position and the end. */
const HEADER_BYTES = 8;
/** Default size of the scratch region: locals of ~thousands of frames. An
 * unwind that needs more traps, so the limit is generous; only the bytes
 * actually used are written back afterwards. */
export const STACK_CAPTURE_BYTES_DEFAULT = 1 << 20;

interface AsyncifyExports {
  asyncify_start_unwind(addr: number): void;
  asyncify_stop_unwind(): void;
  asyncify_start_rewind(addr: number): void;
  asyncify_stop_rewind(): void;
  asyncify_get_state(): number;
}

export class SafePoints {
  private saved: Uint8Array | null = null;
  private readonly asy: AsyncifyExports;

  constructor(
    exports: WebAssembly.Exports,
    private readonly memory: WebAssembly.Memory,
    private readonly captureBytesMax: number = STACK_CAPTURE_BYTES_DEFAULT,
  ) {
    for (const name of ['asyncify_start_unwind', 'asyncify_stop_unwind', 'asyncify_start_rewind', 'asyncify_stop_rewind', 'asyncify_get_state']) {
      if (typeof exports[name] !== 'function') throw new UnderstudyError('ERR_MODULE_INVALID', `rewritten module lacks ${name}`);
    }
    this.asy = exports as unknown as AsyncifyExports;
  }

  state(): AsyncifyState {
    return this.asy.asyncify_get_state() as AsyncifyState;
  }

  private regionBytes(): number {
    return Math.min(this.captureBytesMax, this.memory.buffer.byteLength);
  }

  /** Called from inside a host import: start unwinding; the import then returns a dummy value. */
  beginUnwind(): void {
    assert(this.state() === AsyncifyState.Normal, 'unwind while not running normally');
    const size = this.regionBytes();
    const bytes = new Uint8Array(this.memory.buffer, 0, size);
    this.saved = bytes.slice();
    const view = new DataView(this.memory.buffer);
    view.setUint32(0, HEADER_BYTES, true);
    view.setUint32(4, size, true);
    this.asy.asyncify_start_unwind(0);
  }

  /** After the export returned with the state Unwinding: stop, copy the stack out, put the guest's bytes back. */
  finishUnwind(): Uint8Array {
    assert(this.state() === AsyncifyState.Unwinding, 'finishUnwind without an unwind');
    this.asy.asyncify_stop_unwind();
    const view = new DataView(this.memory.buffer);
    const end = view.getUint32(0, true);
    assert(end >= HEADER_BYTES && end <= this.regionBytes(), 'asyncify position out of range');
    const stack = new Uint8Array(this.memory.buffer, HEADER_BYTES, end - HEADER_BYTES).slice();
    this.restoreScratch(end);
    return stack;
  }

  /** Prepares a rewind into `stack`; the caller then calls the entry export again. */
  beginRewind(stack: Uint8Array): void {
    assert(this.state() === AsyncifyState.Normal, 'rewind while not running normally');
    const size = this.regionBytes();
    const used = HEADER_BYTES + stack.length;
    if (used > size) throw new UnderstudyError('ERR_STACK_OVERFLOW', `captured stack of ${stack.length} bytes does not fit the ${size}-byte capture region`);
    this.saved = new Uint8Array(this.memory.buffer, 0, used).slice();
    const mem = new Uint8Array(this.memory.buffer);
    mem.set(stack, HEADER_BYTES);
    const view = new DataView(this.memory.buffer);
    // Rewinding reads the buffer backwards from the current position.
    view.setUint32(0, used, true);
    view.setUint32(4, size, true);
    this.asy.asyncify_start_rewind(0);
  }

  /** Called from inside the host import reached by a rewind: the stack is back; return the borrowed bytes. */
  finishRewind(): void {
    assert(this.state() === AsyncifyState.Rewinding, 'finishRewind without a rewind');
    this.asy.asyncify_stop_rewind();
    assert(this.saved !== null);
    this.restoreScratch(this.saved.length);
  }

  /**
   * After a trap or a watchdog stop mid-unwind or mid-rewind: back to Normal,
   * so a rolled-back guest can run again. Bytes 0..8 are borrowed for a valid
   * header (stop_* checks it) and put back; the caller then restores memory.
   */
  reset(): void {
    const state = this.state();
    this.saved = null;
    if (state === AsyncifyState.Normal) return;
    const view = new DataView(this.memory.buffer);
    const keep = new Uint8Array(this.memory.buffer, 0, HEADER_BYTES).slice();
    view.setUint32(0, HEADER_BYTES, true);
    view.setUint32(4, this.regionBytes(), true);
    if (state === AsyncifyState.Unwinding) this.asy.asyncify_stop_unwind();
    else this.asy.asyncify_stop_rewind();
    new Uint8Array(this.memory.buffer).set(keep, 0);
    assert(this.state() === AsyncifyState.Normal, 'asyncify reset');
  }

  /** A trap during an unwind or rewind leaves Asyncify mid-way; the guest cannot go on. */
  get busy(): boolean {
    return this.state() !== AsyncifyState.Normal;
  }

  private restoreScratch(usedBytes: number): void {
    const saved = this.saved;
    assert(saved !== null, 'no saved scratch bytes');
    // Only the bytes Asyncify wrote can differ; writing back just those keeps
    // the dirty set of a tracked memory small.
    new Uint8Array(this.memory.buffer).set(saved.subarray(0, Math.min(usedBytes, saved.length)), 0);
    this.saved = null;
  }
}
