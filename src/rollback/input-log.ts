// Inputs logged since the oldest kept checkpoint, so a rolled-back guest is
// handed the same bytes again (seed 003 replays nothing; a WebAssembly guest's
// only inputs are its host calls, so replaying them makes recovery exact).
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';
import type { InputSource } from '../wasi/index.js';

/**
 * Bytes of input kept for replay from the very start (so a restart can replay
 * everything). Past it, only what follows the oldest kept checkpoint is kept
 * and a restart is no longer possible.
 */
export const INPUT_LOG_BYTES_MAX = 64 * 1024 * 1024;

/** stdin for a command guest under rollback: everything read is logged; rewind(n) serves byte n onwards again. */
export class ReplayInput implements InputSource {
  private chunks: Uint8Array[] = [];
  /** Absolute offset of chunks[0][0]. */
  private logStart = 0;
  private logEnd = 0;
  private pos = 0;
  private ended = false;

  constructor(
    private readonly source: InputSource | undefined,
    private readonly bytesMax = INPUT_LOG_BYTES_MAX,
  ) {}

  /** Whether byte 0 is still logged (a restart can replay all input). */
  get fromStart(): boolean {
    return this.logStart === 0;
  }

  private serve(maxBytes: number): Uint8Array | null {
    if (this.pos >= this.logEnd) return null;
    let at = this.logStart;
    for (const c of this.chunks) {
      if (this.pos < at + c.length) {
        const out = c.subarray(this.pos - at, Math.min(c.length, this.pos - at + maxBytes));
        this.pos += out.length;
        return out;
      }
      at += c.length;
    }
    assert(false, 'replay position inside the log');
  }

  private append(r: Uint8Array | null | 'empty'): Uint8Array | null | 'empty' {
    if (r === null) {
      this.ended = true;
      return null;
    }
    if (r === 'empty' || r.length === 0) return r;
    const copy = r.slice();
    this.chunks.push(copy);
    this.logEnd += copy.length;
    this.pos += copy.length;
    return copy;
  }

  read(maxBytes: number): Uint8Array | null | 'empty' {
    const logged = this.serve(maxBytes);
    if (logged) return logged;
    if (this.ended || !this.source) return null;
    return this.append(this.source.read(maxBytes));
  }

  whenReadable(): Promise<void> {
    if (this.pos < this.logEnd || this.ended || !this.source) return Promise.resolve();
    return this.source.whenReadable();
  }

  readSync(maxBytes: number): Uint8Array | null {
    const logged = this.serve(maxBytes);
    if (logged) return logged;
    if (this.ended || !this.source) return null;
    const r = this.append(this.source.readSync(maxBytes));
    return r === 'empty' ? new Uint8Array(0) : r;
  }

  /** Serves from absolute byte `offset` again (a checkpoint's stdinBytesConsumed). */
  rewind(offset: number): void {
    if (offset < this.logStart || offset > this.logEnd) {
      throw new UnderstudyError('ERR_ROLLBACK_INPUT_LOG_FULL', `stdin byte ${offset} is no longer logged (log holds ${this.logStart}..${this.logEnd})`);
    }
    this.pos = offset;
  }

  /** The checkpoint that consumed up to `offset` is the oldest now: bytes before it may go, once the log is past its bound. */
  forget(offset: number): void {
    if (this.logEnd - this.logStart <= this.bytesMax) return;
    while (this.chunks.length > 0 && this.logStart + this.chunks[0]!.length <= offset) {
      this.logStart += this.chunks.shift()!.length;
    }
  }
}
