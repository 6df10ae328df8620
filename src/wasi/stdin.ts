// The guest's stdin: an InputSource plus a small read-ahead (poll_oneoff has
// to look at input without handing it to the guest). The read-ahead is not
// saved: a checkpoint records only `consumed`, the bytes the guest really
// got, and a restored device's source is expected to continue from there.
import { assert } from '../util/assert.js';
import type { InputSource } from './types.js';

const EMPTY = new Uint8Array(0);

export class Stdin {
  private readonly source: InputSource | undefined;
  private ahead: Uint8Array = EMPTY;
  private eof: boolean;
  /** Bytes handed to the guest, over the device's whole life (across restores). */
  consumed: number;

  constructor(source: InputSource | undefined, consumed: number) {
    this.source = source;
    this.eof = source === undefined;
    this.consumed = consumed;
  }

  private accept(r: Uint8Array | null | 'empty'): void {
    if (r === null) {
      this.eof = true;
    } else if (r !== 'empty' && r.length > 0) {
      // Copy: the source may reuse its buffer.
      this.ahead = r.slice();
    }
  }

  /** Fills the read-ahead without blocking if possible; true when a read would not block (data or EOF). */
  ready(maxBytes: number): boolean {
    if (this.ahead.length > 0 || this.eof) return true;
    assert(this.source !== undefined, 'a device without stdin is at EOF');
    this.accept(this.source.read(maxBytes));
    return this.ahead.length > 0 || this.eof;
  }

  /** Bytes in the read-ahead (0 at EOF). */
  get available(): number {
    return this.ahead.length;
  }

  get atEof(): boolean {
    return this.ahead.length === 0 && this.eof;
  }

  /** Blocks until data or EOF (for guests that cannot suspend). */
  fillSync(maxBytes: number): void {
    if (this.ahead.length > 0 || this.eof) return;
    assert(this.source !== undefined, 'a device without stdin is at EOF');
    this.accept(this.source.readSync(maxBytes));
    // A source that answers readSync with zero bytes is treated as ended rather than spun on.
    if (this.ahead.length === 0) this.eof = true;
  }

  whenReadable(): Promise<void> {
    if (this.ahead.length > 0 || this.eof || this.source === undefined) return Promise.resolve();
    return this.source.whenReadable();
  }

  /** Takes up to maxBytes from the read-ahead (call after ready()/fillSync()); empty at EOF. */
  take(maxBytes: number): Uint8Array {
    const n = Math.min(maxBytes, this.ahead.length);
    const out = this.ahead.subarray(0, n);
    this.ahead = n === this.ahead.length ? EMPTY : this.ahead.subarray(n);
    this.consumed += n;
    return out;
  }
}
