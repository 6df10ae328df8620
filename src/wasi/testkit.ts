// Test helpers for the WASI device (not a test file itself): a guest memory
// with a scratch allocator to lay out structs and call imports directly, a
// fake clock, scripted stdin sources, and a check that a value is Plain.
import assert from 'node:assert/strict';
import type { Plain } from '../util/plain.js';
import {
  FILESTAT, IOVEC_SIZE, OFLAGS_CREAT, RIGHTS_ALL,
} from './constants.js';
import { WasiDevice } from './device.js';
import type { InputSource, OutputStream, WasiClock, WasiConfig } from './types.js';

/** Deterministic clock: time moves only when told (sleepSync advances it). */
export class FakeClock implements WasiClock {
  realNs: bigint;
  monoNs: bigint;
  cpuNs = 0n;
  constructor(realNs = 1_700_000_000_000_000_000n, monoNs = 5_000_000_000n) {
    this.realNs = realNs;
    this.monoNs = monoNs;
  }
  realtimeNs(): bigint { return this.realNs; }
  monotonicNs(): bigint { return this.monoNs; }
  cputimeNs(): bigint { return this.cpuNs; }
  sleepSync(ms: number): void { this.advanceMs(ms); }
  advanceMs(ms: number): void {
    const ns = BigInt(Math.ceil(ms * 1e6));
    this.realNs += ns;
    this.monoNs += ns;
  }
}

export interface Captured {
  stream: OutputStream;
  bytes: Uint8Array;
}

export function captureSink(): { writes: Captured[]; text(stream?: OutputStream): string; write(stream: OutputStream, bytes: Uint8Array): void } {
  const writes: Captured[] = [];
  return {
    writes,
    write(stream, bytes) { writes.push({ stream, bytes }); },
    text(stream = 'stdout') {
      return writes.filter((w) => w.stream === stream).map((w) => Buffer.from(w.bytes).toString('utf8')).join('');
    },
  };
}

/**
 * stdin from a script of chunks; 'wait' entries make read() answer 'empty'
 * once (whenReadable resolves immediately). readSync skips the waits.
 */
export class ScriptedInput implements InputSource {
  private readonly script: (Uint8Array | 'wait')[];
  reads = 0;
  constructor(script: (string | Uint8Array | 'wait')[]) {
    this.script = script.map((s) => (s === 'wait' ? s : typeof s === 'string' ? Buffer.from(s) : s));
  }
  read(maxBytes: number): Uint8Array | null | 'empty' {
    this.reads++;
    const head = this.script[0];
    if (head === undefined) return null;
    if (head === 'wait') {
      this.script.shift();
      return 'empty';
    }
    return this.take(head, maxBytes);
  }
  private take(head: Uint8Array, maxBytes: number): Uint8Array {
    if (head.length <= maxBytes) {
      this.script.shift();
      return head;
    }
    this.script[0] = head.subarray(maxBytes);
    return head.subarray(0, maxBytes);
  }
  whenReadable(): Promise<void> {
    return Promise.resolve();
  }
  readSync(maxBytes: number): Uint8Array | null {
    while (this.script[0] === 'wait') this.script.shift();
    const head = this.script[0];
    if (head === undefined) return null;
    return this.take(head as Uint8Array, maxBytes);
  }
}

/** A stdin whose data arrives when the test says so. */
export class ManualInput implements InputSource {
  private chunks: Uint8Array[] = [];
  private ended = false;
  private waiters: (() => void)[] = [];
  push(s: string): void {
    this.chunks.push(Buffer.from(s));
    this.wake();
  }
  end(): void {
    this.ended = true;
    this.wake();
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  read(maxBytes: number): Uint8Array | null | 'empty' {
    const head = this.chunks[0];
    if (head === undefined) return this.ended ? null : 'empty';
    if (head.length <= maxBytes) {
      this.chunks.shift();
      return head;
    }
    this.chunks[0] = head.subarray(maxBytes);
    return head.subarray(0, maxBytes);
  }
  whenReadable(): Promise<void> {
    if (this.chunks.length > 0 || this.ended) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  readSync(): Uint8Array | null {
    throw new Error('ManualInput cannot block');
  }
}

/** Scratch area for structs and strings; below it, addresses tests use on purpose. */
const SCRATCH_BASE = 1024;

/** A device bound to a one-page memory, with helpers that lay out arguments and read results. */
export class Harness {
  readonly memory: WebAssembly.Memory;
  device: WasiDevice;
  private top = SCRATCH_BASE;

  constructor(device: WasiDevice, memory = new WebAssembly.Memory({ initial: 1 })) {
    this.memory = memory;
    this.device = device;
    device.bindMemory(memory);
  }

  static create(config: Partial<WasiConfig> = {}): Harness {
    return new Harness(WasiDevice.create({
      args: [], env: [], preopens: [{ guestPath: '/sandbox' }], output: captureSink(), ...config,
    }));
  }

  /** Swaps in another device (e.g. a restored one) on the same memory. */
  rebind(device: WasiDevice): void {
    this.device = device;
    device.bindMemory(this.memory);
  }

  get view(): DataView { return new DataView(this.memory.buffer); }
  get bytes(): Uint8Array { return new Uint8Array(this.memory.buffer); }

  reset(): void { this.top = SCRATCH_BASE; }

  alloc(n: number, align = 8): number {
    this.top = Math.ceil(this.top / align) * align;
    const p = this.top;
    this.top += n;
    assert.ok(this.top <= this.memory.buffer.byteLength, 'scratch fits in memory');
    return p;
  }

  put(data: string | Uint8Array): { ptr: number; len: number } {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    const ptr = this.alloc(Math.max(b.length, 1), 1);
    this.bytes.set(b, ptr);
    return { ptr, len: b.length };
  }

  u32(p: number): number { return this.view.getUint32(p, true); }
  u64(p: number): bigint { return this.view.getBigUint64(p, true); }
  u8(p: number): number { return this.view.getUint8(p); }
  u16(p: number): number { return this.view.getUint16(p, true); }

  call(name: string, ...args: (number | bigint)[]): number {
    const fn = this.device.imports[name];
    assert.ok(fn, `import ${name} exists`);
    return fn(...args) as number;
  }

  // ------------------------------------------------ syscalls with results
  open(path: string, oflags = 0, fdflags = 0, rights = RIGHTS_ALL, dirFd = 3, follow = 1): { errno: number; fd: number } {
    this.reset();
    const p = this.put(path);
    const out = this.alloc(4);
    const errno = this.call('path_open', dirFd, follow, p.ptr, p.len, oflags, rights, rights, fdflags, out);
    return { errno, fd: errno === 0 ? this.u32(out) : -1 };
  }

  create(path: string): number {
    const r = this.open(path, OFLAGS_CREAT);
    assert.equal(r.errno, 0, `create ${path}`);
    return r.fd;
  }

  write(fd: number, data: string | Uint8Array, call = 'fd_write', offset?: bigint): { errno: number; n: number } {
    this.reset();
    const b = this.put(data);
    const iov = this.alloc(IOVEC_SIZE);
    this.view.setUint32(iov, b.ptr, true);
    this.view.setUint32(iov + 4, b.len, true);
    const out = this.alloc(4);
    const errno = offset === undefined ? this.call(call, fd, iov, 1, out) : this.call(call, fd, iov, 1, offset, out);
    return { errno, n: errno === 0 ? this.u32(out) : -1 };
  }

  read(fd: number, max: number, call = 'fd_read', offset?: bigint): { errno: number; data: Uint8Array } {
    this.reset();
    const buf = this.alloc(Math.max(max, 1), 1);
    const iov = this.alloc(IOVEC_SIZE);
    this.view.setUint32(iov, buf, true);
    this.view.setUint32(iov + 4, max, true);
    const out = this.alloc(4);
    const errno = offset === undefined ? this.call(call, fd, iov, 1, out) : this.call(call, fd, iov, 1, offset, out);
    return { errno, data: errno === 0 ? this.bytes.slice(buf, buf + this.u32(out)) : new Uint8Array(0) };
  }

  seek(fd: number, offset: bigint, whence: number): { errno: number; pos: bigint } {
    this.reset();
    const out = this.alloc(8);
    const errno = this.call('fd_seek', fd, offset, whence, out);
    return { errno, pos: errno === 0 ? this.u64(out) : -1n };
  }

  pathCall(name: string, path: string, dirFd = 3): number {
    this.reset();
    const p = this.put(path);
    return this.call(name, dirFd, p.ptr, p.len);
  }

  rename(from: string, to: string, dirFd = 3): number {
    this.reset();
    const a = this.put(from);
    const b = this.put(to);
    return this.call('path_rename', dirFd, a.ptr, a.len, dirFd, b.ptr, b.len);
  }

  link(from: string, to: string, dirFd = 3): number {
    this.reset();
    const a = this.put(from);
    const b = this.put(to);
    return this.call('path_link', dirFd, 0, a.ptr, a.len, dirFd, b.ptr, b.len);
  }

  symlink(target: string, path: string, dirFd = 3): number {
    this.reset();
    const a = this.put(target);
    const b = this.put(path);
    return this.call('path_symlink', a.ptr, a.len, dirFd, b.ptr, b.len);
  }

  stat(path: string, follow = 1, dirFd = 3): { errno: number; filetype: number; size: bigint; nlink: bigint; ino: bigint } {
    this.reset();
    const p = this.put(path);
    const out = this.alloc(64);
    const errno = this.call('path_filestat_get', dirFd, follow, p.ptr, p.len, out);
    if (errno !== 0) return { errno, filetype: 0, size: 0n, nlink: 0n, ino: 0n };
    return {
      errno,
      filetype: this.u8(out + FILESTAT.filetype),
      size: this.u64(out + FILESTAT.size),
      nlink: this.u64(out + FILESTAT.nlink),
      ino: this.u64(out + FILESTAT.ino),
    };
  }

  /** All names fd_readdir reports, reading with a buffer of `bufLen` bytes at a time. */
  readdir(fd: number, bufLen = 256): { errno: number; names: string[] } {
    const names: string[] = [];
    let cookie = 0n;
    for (let round = 0; round < 1000; round++) {
      this.reset();
      const buf = this.alloc(bufLen);
      const used = this.alloc(4);
      const errno = this.call('fd_readdir', fd, buf, bufLen, cookie, used);
      if (errno !== 0) return { errno, names };
      const n = this.u32(used);
      let at = 0;
      let progressed = false;
      while (at + 24 <= n) {
        const namlen = this.u32(buf + at + 16);
        if (at + 24 + namlen > n) break;
        names.push(Buffer.from(this.bytes.subarray(buf + at + 24, buf + at + 24 + namlen)).toString());
        cookie = this.u64(buf + at);
        at += 24 + namlen;
        progressed = true;
      }
      if (n < bufLen) return { errno: 0, names };
      assert.ok(progressed, 'readdir buffer holds at least one entry');
    }
    assert.fail('readdir did not finish');
  }
}

/** Throws unless `v` is made only of the Plain types (exact prototypes: no Buffer, no class instances). */
export function assertPlain(v: unknown, where = 'state'): asserts v is Plain {
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || typeof v === 'bigint') return;
  if (typeof v === 'number') {
    assert.ok(Number.isFinite(v), `${where} is a finite number`);
    return;
  }
  if (v instanceof Uint8Array) {
    assert.equal(Object.getPrototypeOf(v), Uint8Array.prototype, `${where} is a plain Uint8Array`);
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((x, i) => assertPlain(x, `${where}[${i}]`));
    return;
  }
  assert.equal(typeof v, 'object', `${where} is an object`);
  assert.equal(Object.getPrototypeOf(v), Object.prototype, `${where} is a plain object`);
  for (const [k, x] of Object.entries(v as object)) assertPlain(x, `${where}.${k}`);
}
