// Bounds-checked access to guest linear memory. Every pointer and length a
// guest passes goes through here; anything outside the memory answers EFAULT.
// memory.buffer is replaced when the guest grows its memory, so views are
// re-made whenever the buffer we hold is no longer the current one.
import { ERRNO_FAULT, ERRNO_ILSEQ, ERRNO_INVAL, IOVEC_SIZE } from './constants.js';
import { WasiErrno, check } from './errno.js';
import { IOVS_MAX } from './limits.js';

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
export const utf8Encoder = new TextEncoder();

export interface Iovec {
  ptr: number;
  len: number;
}

export class GuestMemory {
  private readonly memory: WebAssembly.Memory;
  private buffer: ArrayBufferLike;
  private dataView: DataView;
  private u8View: Uint8Array;

  constructor(memory: WebAssembly.Memory) {
    this.memory = memory;
    this.buffer = memory.buffer;
    this.dataView = new DataView(this.buffer);
    this.u8View = new Uint8Array(this.buffer);
  }

  private fresh(): void {
    if (this.buffer !== this.memory.buffer) {
      this.buffer = this.memory.buffer;
      this.dataView = new DataView(this.buffer);
      this.u8View = new Uint8Array(this.buffer);
    }
  }

  /** Throws EFAULT unless [ptr, ptr+len) lies inside memory. */
  check(ptr: number, len: number): void {
    this.fresh();
    if (!(Number.isInteger(ptr) && Number.isInteger(len) && ptr >= 0 && len >= 0 && ptr + len <= this.buffer.byteLength)) {
      throw new WasiErrno(ERRNO_FAULT);
    }
  }

  u8(ptr: number): number { this.check(ptr, 1); return this.dataView.getUint8(ptr); }
  u16(ptr: number): number { this.check(ptr, 2); return this.dataView.getUint16(ptr, true); }
  u32(ptr: number): number { this.check(ptr, 4); return this.dataView.getUint32(ptr, true); }
  u64(ptr: number): bigint { this.check(ptr, 8); return this.dataView.getBigUint64(ptr, true); }
  setU8(ptr: number, v: number): void { this.check(ptr, 1); this.dataView.setUint8(ptr, v); }
  setU16(ptr: number, v: number): void { this.check(ptr, 2); this.dataView.setUint16(ptr, v, true); }
  setU32(ptr: number, v: number): void { this.check(ptr, 4); this.dataView.setUint32(ptr, v, true); }
  setU64(ptr: number, v: bigint): void { this.check(ptr, 8); this.dataView.setBigUint64(ptr, v, true); }

  /** A view (not a copy) of guest bytes; valid only during the current call. */
  bytes(ptr: number, len: number): Uint8Array {
    this.check(ptr, len);
    return this.u8View.subarray(ptr, ptr + len);
  }

  /** A guest string (not NUL-terminated); invalid UTF-8 answers EILSEQ. */
  string(ptr: number, len: number): string {
    const b = this.bytes(ptr, len);
    try {
      return utf8Decoder.decode(b);
    } catch {
      throw new WasiErrno(ERRNO_ILSEQ);
    }
  }

  /** Reads and bounds-checks an iovec array and every buffer it names, before any side effect. */
  iovecs(ptr: number, count: number): Iovec[] {
    check(count <= IOVS_MAX, ERRNO_INVAL);
    this.check(ptr, count * IOVEC_SIZE);
    const out: Iovec[] = [];
    for (let i = 0; i < count; i++) {
      const bufPtr = this.u32(ptr + i * IOVEC_SIZE);
      const bufLen = this.u32(ptr + i * IOVEC_SIZE + 4);
      this.check(bufPtr, bufLen);
      out.push({ ptr: bufPtr, len: bufLen });
    }
    return out;
  }
}

export function iovecsTotal(iovs: Iovec[]): number {
  let total = 0;
  for (const v of iovs) total += v.len;
  return total;
}
