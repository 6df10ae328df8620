// ArenaView: typed little-endian access to one workload's arena, a contiguous
// range of a WebAssembly.Memory (or any buffer) at a base offset. Every store
// goes through it, so it counts writes and bytes and calls an optional
// onWrite(offset, length) hook: the emulation ("emul") mode of critical data
// areas and the writes-per-transaction counters plug in there.
//
// Offsets are arena-relative (0 is the arena's first byte); `base` turns them
// into memory addresses. Every access is bounds-checked against the arena,
// because the offsets come from the arena's own bytes, which a recovered or
// corrupted arena may have wrong: a bad pointer is ERR_CDA_ARENA_RANGE, never
// a read of a neighbour's memory.
import { UnderstudyError } from '../../errors.js';

// The layout's u32 fields all sit at 4-aligned arena offsets; on a
// little-endian host (every one Node runs on in practice) an aligned arena
// reads and writes them through a Uint32Array, several times faster than
// DataView calls in the structures' walks. Anything else takes DataView.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Called after every store with the arena-relative offset and length written. */
export type WriteHook = (offset: number, length: number) => void;

export type ArenaBacking = WebAssembly.Memory | ArrayBuffer | Uint8Array;

export interface ArenaViewOptions {
  onWrite?: WriteHook | null;
}

export class ArenaView {
  /** Store calls since construction or the last resetCounters(). */
  writes = 0;
  /** Bytes stored since construction or the last resetCounters(). */
  bytesWritten = 0;
  onWrite: WriteHook | null;
  private readonly memory: WebAssembly.Memory | null;
  private u8: Uint8Array;
  private dv: DataView;
  /** Words of a 4-aligned arena on a little-endian host; null otherwise. */
  private w32: Uint32Array | null;

  /**
   * `base` and `byteLength` are in bytes of the backing (for a Uint8Array,
   * relative to its first byte). The arena must lie inside the backing now; a
   * WebAssembly.Memory may grow later (the view follows the new buffer).
   */
  constructor(
    backing: ArenaBacking,
    readonly base: number,
    readonly byteLength: number,
    options: ArenaViewOptions = {},
  ) {
    this.onWrite = options.onWrite ?? null;
    let buffer: ArrayBuffer;
    let start = base;
    if (backing instanceof WebAssembly.Memory) {
      this.memory = backing;
      buffer = backing.buffer;
    } else if (backing instanceof Uint8Array) {
      this.memory = null;
      buffer = backing.buffer as ArrayBuffer;
      if (base + byteLength > backing.byteLength) throw rangeError(base, byteLength, backing.byteLength);
      start = backing.byteOffset + base;
    } else {
      this.memory = null;
      buffer = backing;
    }
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(byteLength) || base < 0 || byteLength <= 0 || start + byteLength > buffer.byteLength) {
      throw rangeError(base, byteLength, buffer.byteLength);
    }
    this.u8 = new Uint8Array(buffer, start, byteLength);
    this.dv = new DataView(buffer, start, byteLength);
    this.w32 = words(buffer, start, byteLength);
  }

  /** A view of a fresh zero-filled arena of `byteLength` bytes. */
  static allocate(byteLength: number, options: ArenaViewOptions = {}): ArenaView {
    return new ArenaView(new ArrayBuffer(byteLength), 0, byteLength, options);
  }

  // Growing a WebAssembly.Memory detaches its old buffer (byteLength 0 then):
  // re-derive the views from the new one.
  private live(): DataView {
    if (this.memory !== null && this.u8.byteLength === 0) {
      this.u8 = new Uint8Array(this.memory.buffer, this.base, this.byteLength);
      this.dv = new DataView(this.memory.buffer, this.base, this.byteLength);
      this.w32 = words(this.memory.buffer, this.base, this.byteLength);
    }
    return this.dv;
  }

  private check(offset: number, length: number): void {
    if (!(offset >= 0 && offset + length <= this.byteLength)) throw rangeError(offset, length, this.byteLength, 'the arena');
  }

  private wrote(offset: number, length: number): void {
    this.writes++;
    this.bytesWritten += length;
    if (this.onWrite) this.onWrite(offset, length);
  }

  u8At(offset: number): number {
    this.check(offset, 1);
    return this.live().getUint8(offset);
  }

  u32(offset: number): number {
    // The fast path is inlined by V8: a detached buffer's words have length 0 and take the slow one.
    const w = this.w32;
    if (w !== null && (offset & 3) === 0 && offset >= 0 && offset + 4 <= this.byteLength && w.length !== 0) return w[offset >>> 2]!;
    this.check(offset, 4);
    return this.live().getUint32(offset, true);
  }

  /** A u64 as a number: the fields kept as u64 (op and cycle counters) stay below 2^53. */
  u64(offset: number): number {
    return this.u32(offset + 4) * 0x100000000 + this.u32(offset);
  }

  setU8(offset: number, value: number): void {
    this.check(offset, 1);
    this.live().setUint8(offset, value);
    this.wrote(offset, 1);
  }

  setU32(offset: number, value: number): void {
    const w = this.w32;
    if (w !== null && (offset & 3) === 0 && offset >= 0 && offset + 4 <= this.byteLength && w.length !== 0) {
      w[offset >>> 2] = value;
    } else {
      this.check(offset, 4);
      this.live().setUint32(offset, value, true);
    }
    this.wrote(offset, 4);
  }

  /** One 8-byte store of a non-negative safe integer. */
  setU64(offset: number, value: number): void {
    this.check(offset, 8);
    const w = this.w32;
    if (w !== null && (offset & 3) === 0 && w.length !== 0) {
      w[offset >>> 2] = value % 0x100000000;
      w[(offset >>> 2) + 1] = Math.floor(value / 0x100000000);
    } else {
      const dv = this.live();
      dv.setUint32(offset, value % 0x100000000, true);
      dv.setUint32(offset + 4, Math.floor(value / 0x100000000), true);
    }
    this.wrote(offset, 8);
  }

  /** One store of `src` at `offset` (a memcpy in the C workloads). */
  setBytes(offset: number, src: Uint8Array): void {
    this.check(offset, src.length);
    this.live();
    this.u8.set(src, offset);
    this.wrote(offset, src.length);
  }

  /** A copy of `length` bytes at `offset`. */
  bytes(offset: number, length: number): Uint8Array {
    this.check(offset, length);
    this.live();
    return this.u8.slice(offset, offset + length);
  }

  /** The whole arena, live (no copy): for digests and comparisons; writes through it are not counted. */
  raw(): Uint8Array {
    this.live();
    return this.u8;
  }

  /** A copy of the whole arena. */
  snapshot(): Uint8Array {
    return this.raw().slice();
  }

  resetCounters(): void {
    this.writes = 0;
    this.bytesWritten = 0;
  }
}

function words(buffer: ArrayBuffer, start: number, byteLength: number): Uint32Array | null {
  return LITTLE_ENDIAN && start % 4 === 0 ? new Uint32Array(buffer, start, byteLength >>> 2) : null;
}

function rangeError(offset: number, length: number, limit: number, what = 'its backing'): UnderstudyError {
  return new UnderstudyError('ERR_CDA_ARENA_RANGE', `arena access [${offset}, ${offset + length}) lies outside ${what} (${limit} bytes)`);
}
