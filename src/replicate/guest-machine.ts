// A reactor guest as the replication protocol sees it (ReplicatedMachine).
//
// It is in one of two forms:
//  * live  — a running Guest plus a dirty-page tracker (the primary). A delta
//            is the pages written since the previous capture plus the whole
//            non-page state: vCPU (globals, tables), WASI devices, and the
//            request-id table.
//  * image — a memory image plus the last applied non-page state (a backup).
//            The backup never runs the guest: it writes pages and keeps the
//            state. Anything a primary does (a request, a capture, a sync
//            read) first turns the image into a live guest, synchronously
//            (Guest.restoreSync), so a promotion needs no await.
//
// Delta layout (all little-endian; checked in code by DELTA_HEAD_BYTES):
//   offset size  field
//        0    4  magic "USGM"
//        4    2  version = 3
//        6    2  flags: 0, or DELTA_FLAG_RUNS
//        8    4  page count n (0 with DELTA_FLAG_RUNS)
//       12    4  meta bytes m
//       16   4n  page indices (4 KiB pages), strictly ascending
//   16+4n     m  meta: plain data { module, memoryPages, vcpu, devices } and either
//                 table (the whole request table: a base delta, which ends a sync) or
//                 tableRecords + tableFp (the records since the previous capture, replayed
//                 by the backup; see request-table.ts)
//   16+4n+m 4096n page contents, in index order
//   or, with DELTA_FLAG_RUNS, after the meta: a page delta in the checkpoint format
//   (src/checkpoint/delta-codec.ts: per page zero, full, or the changed byte runs) against
//   the state of the previous delta. A primary keeps a shadow of what its backup holds
//   (set by each base delta) to encode against: kvstore and docstore epochs shrink from
//   whole dirty pages to the few words each request changed (seed 001).
import { decodePlain, encodePlain } from '../checkpoint/plain-codec.js';
import { UnderstudyError, isUnderstudyError } from '../errors.js';
import { Guest } from '../guest/guest.js';
import type { GuestModule } from '../guest/module.js';
import { MEMORY_PAGES_MAX, WASM_PAGE_BYTES, vcpuFromPlain, vcpuToPlain, type VcpuState } from '../guest/persist.js';
import { native, PAGE_BYTES } from '../native.js';
import { createTracker, type DirtyTracker, type TrackerKind } from '../track/tracker.js';
import { assert } from '../util/assert.js';
import type { Plain, PlainObject } from '../util/plain.js';
import { WasiDevice } from '../wasi/index.js';
import type { OutputSink, OutputStream } from '../wasi/index.js';
import { replicateError } from './codes.js';
import { applyDelta as applyPageDelta, deltaBoundBytes, encodeDelta, growShadow } from '../checkpoint/delta-codec.js';
import type { ReplicatedMachine } from './machine.js';
import { RequestTable, ResponseStatus, TABLE_RESPONSE_BYTES_EACH_MAX, envelope } from './request-table.js';

export const GUEST_DELTA_MAGIC = 0x4d475355; // bytes 'U' 'S' 'G' 'M'
/** 2: the request table travels as a journal between base deltas; 3: pages may be byte runs (DELTA_FLAG_RUNS). */
export const GUEST_DELTA_VERSION = 3;
/** The pages follow the meta as a checkpoint page delta (byte runs) against the previous delta's state. */
export const DELTA_FLAG_RUNS = 1;
export const DELTA_HEAD_BYTES = 16;
/** The non-page state of one delta: vCPU, devices (with the in-memory file system) and the request table. */
export const DELTA_META_BYTES_MAX = 16 * 1024 * 1024;
/** 4 KiB pages of the largest wasm32 memory. */
const TRACKED_PAGES_MAX = (MEMORY_PAGES_MAX * WASM_PAGE_BYTES) / PAGE_BYTES;
const PAGES_PER_WASM_PAGE = WASM_PAGE_BYTES / PAGE_BYTES;
/** Log output one request may write (per stream); past it the rest is dropped and counted. */
export const REQUEST_LOG_BYTES_MAX = 64 * 1024;
assert(DELTA_HEAD_BYTES === 16 && PAGE_BYTES === 4096 && PAGES_PER_WASM_PAGE === 16, 'guest delta layout');

/** Where a request's log output goes (the wiring: ReplicaNode.onOutput); one call per stream per request. */
export type LogSink = (stream: OutputStream, bytes: Uint8Array) => void;

export interface GuestMachineOptions {
  module: GuestModule;
  /** The reactor export each request is sent to. */
  handler: string;
  /** Dirty-page tracker of the live form (default 'auto'). */
  tracker?: TrackerKind | 'auto';
  /** Compute a digest of the whole state after each capture and apply (a crc32c pass over memory). Default true. */
  digest?: boolean;
  /**
   * Epochs carry changed byte runs instead of whole dirty pages (default true). Costs a shadow
   * copy of the memory on the primary (what its backup holds), set at each sync's base delta.
   */
  diff?: boolean;
  /** Log output of requests; null discards it. */
  log?: LogSink | null;
}

interface Meta {
  memoryPages: number;
  vcpu: VcpuState;
  devices: PlainObject;
  table: RequestTable;
}

interface Live {
  guest: Guest;
  tracker: DirtyTracker;
}

export class GuestMachine implements ReplicatedMachine {
  readonly pageBytes = PAGE_BYTES;
  private live: Live | null = null;
  /** Image form: the memory (capacity may exceed imageBytes) and the last applied state. */
  private image: Uint8Array = new Uint8Array(0);
  private imageBytes = 0;
  private meta: Meta | null = null;
  private table = new RequestTable();
  /** The meta bytes of the last capture or apply: part of the digest. */
  private metaBytes: Uint8Array = new Uint8Array(0);
  /** Primary with diff on: the memory as the backup holds it (as of the last capture); null until a base delta. */
  private shadow: Uint8Array | null = null;
  private log: LogSink | null;
  private readonly pendingLog: { stdout: Uint8Array[]; stderr: Uint8Array[]; bytes: number } = { stdout: [], stderr: [], bytes: 0 };
  /** Stats. */
  logBytesDropped = 0;
  materialisedAtMs: number | null = null;
  /** Where replication spends its time on this machine (sums; the benchmark divides by the counts). */
  readonly stats = { captures: 0, captureMs: 0, capturedPages: 0, metaBytes: 0, pageBytes: 0, applies: 0, applyMs: 0, digests: 0, digestMs: 0 };

  private constructor(private readonly o: GuestMachineOptions) {
    this.log = o.log ?? null;
  }

  /** A fresh guest, initialised: the first primary's machine. */
  static async create(o: GuestMachineOptions): Promise<GuestMachine> {
    if (o.module.layout.kind !== 'reactor') throw new UnderstudyError('ERR_GUEST_EXPORT', 'replication serves reactor guests (a handler per request)');
    const m = new GuestMachine(o);
    const wasi = WasiDevice.create({ args: ['guest'], env: [], preopens: [], output: m.sink() });
    const guest = await Guest.create(o.module, { wasi });
    m.live = { guest, tracker: createTracker(guest.memory, o.tracker ?? 'auto') };
    return m;
  }

  /** An empty image: what a backup syncs into. */
  static empty(o: GuestMachineOptions): GuestMachine {
    if (o.module.layout.kind !== 'reactor') throw new UnderstudyError('ERR_GUEST_EXPORT', 'replication serves reactor guests (a handler per request)');
    return new GuestMachine(o);
  }

  get isLive(): boolean {
    return this.live !== null;
  }

  setLog(log: LogSink | null): void {
    this.log = log;
  }

  /** Releases the tracker; idempotent. The machine is unusable afterwards. */
  dispose(): void {
    this.live?.tracker.dispose();
    this.live = null;
    this.image = new Uint8Array(0);
    this.imageBytes = 0;
  }

  // ---- ReplicatedMachine ----

  pageCount(): number {
    return this.live !== null ? this.live.guest.memory.buffer.byteLength / PAGE_BYTES : this.imageBytes / PAGE_BYTES;
  }

  readPage(index: number): Uint8Array {
    const mem = this.memoryView();
    assert(Number.isInteger(index) && index >= 0 && (index + 1) * PAGE_BYTES <= mem.length, 'readPage past memory');
    return mem.slice(index * PAGE_BYTES, (index + 1) * PAGE_BYTES);
  }

  writePage(index: number, bytes: Uint8Array): void {
    assert(this.live === null, 'sync pages are written into an image, never a live guest');
    if (!Number.isInteger(index) || index < 0 || index >= this.pagesLimit()) throw replicateError('ERR_REPL_DELTA', `page ${index} is past the guest's memory limit`);
    if (bytes.length !== PAGE_BYTES) throw replicateError('ERR_REPL_DELTA', `a page of ${bytes.length} bytes`);
    this.growImage((index + 1) * PAGE_BYTES);
    this.image.set(bytes, index * PAGE_BYTES);
  }

  collectDirtyPages(): number[] {
    return Array.from(this.ensureLive().tracker.collect());
  }

  captureDelta(alsoPages: readonly number[] = [], base = false): Uint8Array {
    const t0 = performance.now();
    const { guest, tracker } = this.ensureLive();
    assert(guest.atRest, 'capture between requests only');
    const mem = new Uint8Array(guest.memory.buffer);
    const limit = mem.length / PAGE_BYTES;
    const set = new Set<number>(tracker.collect());
    for (const p of alsoPages) if (p < limit) set.add(p);
    const pages = Uint32Array.from([...set].sort((a, b) => a - b));
    const vcpu = guest.captureVcpu();
    const journal = base ? null : this.table.takeJournal();
    let table: PlainObject;
    if (journal === null) {
      table = { table: this.table.save() };
      this.table.startJournal();
    } else {
      table = { tableRecords: journal.records, tableFp: journal.fingerprint };
    }
    const meta = encodePlain({ module: this.o.module.sha256, memoryPages: vcpu.memoryPages, vcpu: vcpuToPlain(vcpu), devices: guest.wasi.save(), ...table });
    assert(meta.length <= DELTA_META_BYTES_MAX, 'delta meta past its bound');
    let out: Uint8Array;
    if (!base && this.shadow !== null) {
      // Changed byte runs against what the backup holds; the shadow follows.
      const staged = new Uint8Array(pages.length * PAGE_BYTES);
      if (pages.length > 0) native.gatherPages(mem, pages, staged);
      this.shadow = growShadow(this.shadow, mem.length);
      const runs = encodeDelta(staged, pages, this.shadow, new Uint8Array(deltaBoundBytes(pages.length))).encoded;
      out = new Uint8Array(DELTA_HEAD_BYTES + meta.length + runs.length);
      writeDeltaHead(out, DELTA_FLAG_RUNS, 0, meta.length);
      out.set(meta, DELTA_HEAD_BYTES);
      out.set(runs, DELTA_HEAD_BYTES + meta.length);
    } else {
      out = new Uint8Array(DELTA_HEAD_BYTES + 4 * pages.length + meta.length + pages.length * PAGE_BYTES);
      writeDeltaHead(out, 0, pages.length, meta.length);
      const v = new DataView(out.buffer);
      pages.forEach((p, i) => v.setUint32(DELTA_HEAD_BYTES + 4 * i, p, true));
      const metaAt = DELTA_HEAD_BYTES + 4 * pages.length;
      out.set(meta, metaAt);
      if (pages.length > 0) native.gatherPages(mem, pages, out.subarray(metaAt + meta.length));
      // A base delta makes the backup's image equal to our memory: encode the next epochs against a copy of it.
      if (base && this.o.diff !== false) this.shadow = mem.slice();
    }
    this.metaBytes = meta;
    const s = this.stats;
    s.captures++;
    s.captureMs += performance.now() - t0;
    s.capturedPages += pages.length;
    s.metaBytes += meta.length;
    s.pageBytes += out.length - meta.length - DELTA_HEAD_BYTES;
    return out;
  }

  applyDelta(delta: Uint8Array): void {
    assert(this.live === null, 'deltas apply to an image, never a live guest');
    const t0 = performance.now();
    const d = this.parseDelta(delta); // everything validated before anything changes
    const before = this.imageBytes;
    this.growImage(d.meta.memoryPages * WASM_PAGE_BYTES);
    if (d.runs !== null) {
      if (this.meta === null) {
        this.imageBytes = before;
        throw replicateError('ERR_REPL_DELTA', 'guest delta: byte runs before any whole state');
      }
      try {
        applyPageDelta(d.runs, this.image.subarray(0, this.imageBytes)); // validates all of it, then writes
      } catch (e) {
        // Nothing was written; the image grows only with zero pages, so shrinking it back restores it exactly.
        this.imageBytes = before;
        if (isUnderstudyError(e) && e.code === 'ERR_CKPT_MALFORMED') throw replicateError('ERR_REPL_DELTA', `guest delta: page runs: ${e.message}`, { cause: e });
        throw e;
      }
    } else if (d.pages.length > 0) {
      native.scatterPages(d.data, d.pages, this.image.subarray(0, this.imageBytes));
    }
    this.meta = d.meta;
    this.table = d.meta.table;
    this.metaBytes = d.metaBytes;
    this.stats.applies++;
    this.stats.applyMs += performance.now() - t0;
  }

  digest(): number {
    if (this.o.digest === false) return 0;
    const t0 = performance.now();
    const mem = this.memoryView();
    const d = native.crc32c(this.metaBytes, native.crc32c(mem)) >>> 0 || 1;
    this.stats.digests++;
    this.stats.digestMs += performance.now() - t0;
    return d;
  }

  handleRequest(client: number, reqId: number, body: Uint8Array): Uint8Array {
    const { guest } = this.ensureLive();
    const seen = this.table.lookup(client, reqId);
    if (seen.kind === 'recorded') return seen.answer;
    if (seen.kind === 'forgotten') return envelope(ResponseStatus.forgotten, new TextEncoder().encode(`request ${client}:${reqId} was applied; its answer is no longer kept`));
    if (seen.kind === 'too-many-clients') return envelope(ResponseStatus.tooManyClients, new TextEncoder().encode('too many clients'));
    let answer: Uint8Array;
    try {
      const out = guest.request(this.o.handler, body);
      answer = out.length <= TABLE_RESPONSE_BYTES_EACH_MAX ? envelope(ResponseStatus.ok, out) : envelope(ResponseStatus.guestError, new TextEncoder().encode(`answer of ${out.length} bytes is past ${TABLE_RESPONSE_BYTES_EACH_MAX}`));
    } catch (e) {
      if (!isUnderstudyError(e)) throw e;
      answer = envelope(ResponseStatus.guestError, new TextEncoder().encode(`${e.code}: ${e.message}`.slice(0, 1024)));
    }
    this.table.record(client, reqId, answer);
    this.flushLog();
    return answer;
  }

  prepareToRun(): void {
    this.ensureLive();
  }

  // ---- for tests and the wiring ----

  get requestTable(): RequestTable {
    return this.table;
  }

  /** The live guest (materialising an image). */
  guest(): Guest {
    return this.ensureLive().guest;
  }

  // ---- internals ----

  private memoryView(): Uint8Array {
    return this.live !== null ? new Uint8Array(this.live.guest.memory.buffer) : this.image.subarray(0, this.imageBytes);
  }

  private pagesLimit(): number {
    const max = this.o.module.layout.memory.maxPages;
    return (max === null ? MEMORY_PAGES_MAX : Math.min(max, MEMORY_PAGES_MAX)) * PAGES_PER_WASM_PAGE;
  }

  private growImage(bytes: number): void {
    assert(bytes <= this.pagesLimit() * PAGE_BYTES);
    if (bytes <= this.imageBytes) return;
    if (bytes > this.image.length) {
      const next = new Uint8Array(Math.min(Math.max(bytes, this.image.length * 2), this.pagesLimit() * PAGE_BYTES));
      next.set(this.image.subarray(0, this.imageBytes));
      this.image = next;
    }
    this.imageBytes = bytes;
  }

  private sink(): OutputSink {
    return {
      write: (stream: OutputStream, bytes: Uint8Array) => {
        const p = this.pendingLog;
        if (p.bytes + bytes.length > REQUEST_LOG_BYTES_MAX * 2) {
          this.logBytesDropped += bytes.length;
          return;
        }
        p[stream].push(bytes);
        p.bytes += bytes.length;
      },
    };
  }

  private flushLog(): void {
    const p = this.pendingLog;
    for (const stream of ['stdout', 'stderr'] as const) {
      if (p[stream].length === 0) continue;
      const bytes = Buffer.concat(p[stream]);
      p[stream] = [];
      if (this.log !== null) this.log(stream, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    }
    p.bytes = 0;
  }

  /** The image becomes a running guest (a promoted backup); no await, so the protocol step stays whole. */
  private ensureLive(): Live {
    if (this.live !== null) return this.live;
    const meta = this.meta;
    assert(meta !== null, 'a machine with no applied state cannot run');
    const wasi = WasiDevice.restore(meta.devices, { output: this.sink() });
    const image = this.image.subarray(0, this.imageBytes);
    const guest = Guest.restoreSync(this.o.module, { wasi }, meta.vcpu, (mem) => {
      assert(mem.length === image.length, 'image and memory sizes agree');
      mem.set(image);
    });
    this.live = { guest, tracker: createTracker(guest.memory, this.o.tracker ?? 'auto') };
    this.image = new Uint8Array(0);
    this.imageBytes = 0;
    this.materialisedAtMs = performance.now();
    return this.live;
  }

  private parseDelta(delta: Uint8Array): { pages: Uint32Array; data: Uint8Array; runs: Uint8Array | null; meta: Meta; metaBytes: Uint8Array } {
    const bad = (what: string) => replicateError('ERR_REPL_DELTA', `guest delta: ${what}`);
    if (delta.length < DELTA_HEAD_BYTES) throw bad('shorter than its header');
    const v = new DataView(delta.buffer, delta.byteOffset, delta.byteLength);
    if (v.getUint32(0, true) !== GUEST_DELTA_MAGIC) throw bad('bad magic');
    if (v.getUint16(4, true) !== GUEST_DELTA_VERSION) throw bad(`version ${v.getUint16(4, true)}`);
    const flags = v.getUint16(6, true);
    if (flags !== 0 && flags !== DELTA_FLAG_RUNS) throw bad('unknown flags');
    const n = v.getUint32(8, true);
    const m = v.getUint32(12, true);
    if (n > TRACKED_PAGES_MAX || m > DELTA_META_BYTES_MAX) throw bad('page count or meta size past its bound');
    if (flags === DELTA_FLAG_RUNS) {
      // The page delta checks its own lengths and indices when applied (against the grown image).
      if (n !== 0 || delta.length < DELTA_HEAD_BYTES + m) throw bad(`byte runs with ${n} listed pages or ${delta.length} bytes for ${m} meta bytes`);
    } else if (delta.length !== DELTA_HEAD_BYTES + 4 * n + m + n * PAGE_BYTES) {
      throw bad(`${delta.length} bytes do not match ${n} pages and ${m} meta bytes`);
    }
    const metaAt = DELTA_HEAD_BYTES + 4 * n;
    const metaBytes = delta.slice(metaAt, metaAt + m);
    let plain: Plain;
    try {
      plain = decodePlain(metaBytes);
    } catch (e) {
      if (!isUnderstudyError(e)) throw e;
      throw bad(`meta: ${e.message}`);
    }
    if (plain === null || typeof plain !== 'object' || Array.isArray(plain) || plain instanceof Uint8Array) throw bad('meta is not an object');
    const o = plain as PlainObject;
    if (o.module !== this.o.module.sha256) throw bad(`for module ${String(o.module).slice(0, 16)}, ours is ${this.o.module.sha256.slice(0, 16)}`);
    const memoryPages = o.memoryPages;
    if (typeof memoryPages !== 'number' || !Number.isInteger(memoryPages) || memoryPages * PAGES_PER_WASM_PAGE > this.pagesLimit()) throw bad('memoryPages out of range');
    if (memoryPages * WASM_PAGE_BYTES < this.imageBytes && this.meta !== null) throw bad('memory shrank');
    let vcpu: VcpuState;
    try {
      vcpu = vcpuFromPlain(o.vcpu ?? null);
      // Devices validate whole on restore; a throwaway device checks them now, before anything changes.
      if (o.devices === null || typeof o.devices !== 'object' || Array.isArray(o.devices) || o.devices instanceof Uint8Array) throw bad('devices is not an object');
      WasiDevice.restore(o.devices, { output: { write: () => {} } });
    } catch (e) {
      if (!isUnderstudyError(e) || e.code === 'ERR_REPL_DELTA') throw e;
      throw bad(`${e.code}: ${e.message}`);
    }
    if (vcpu.memoryPages !== memoryPages) throw bad('vCPU and delta disagree on the memory size');
    const layout = this.o.module.layout;
    if (vcpu.globals.length !== layout.globals.length || vcpu.tables.length !== layout.tables.length) throw bad('vCPU does not fit the module');
    let table: RequestTable;
    if (o.table !== undefined && o.tableRecords === undefined && o.tableFp === undefined) {
      table = RequestTable.restore(o.table);
    } else if (o.table === undefined && o.tableRecords !== undefined && o.tableFp !== undefined) {
      // A journal continues the table of the previous delta; an image that has none cannot take it.
      if (this.meta === null) throw bad('a request-table journal before any whole table');
      table = this.table.replay(o.tableRecords, o.tableFp);
    } else {
      throw bad('meta carries neither a whole request table nor a journal');
    }
    const pages = new Uint32Array(n);
    const limit = memoryPages * PAGES_PER_WASM_PAGE;
    let previous = -1;
    for (let i = 0; i < n; i++) {
      const p = v.getUint32(DELTA_HEAD_BYTES + 4 * i, true);
      if (p <= previous || p >= limit) throw bad(`page ${p} out of order or past the memory`);
      pages[i] = p;
      previous = p;
    }
    const rest = delta.subarray(metaAt + m);
    return { pages, data: rest, runs: flags === DELTA_FLAG_RUNS ? rest : null, meta: { memoryPages, vcpu, devices: o.devices as PlainObject, table }, metaBytes };
  }
}

function writeDeltaHead(out: Uint8Array, flags: number, pages: number, metaBytes: number): void {
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(0, GUEST_DELTA_MAGIC, true);
  v.setUint16(4, GUEST_DELTA_VERSION, true);
  v.setUint16(6, flags, true);
  v.setUint32(8, pages, true);
  v.setUint32(12, metaBytes, true);
}
