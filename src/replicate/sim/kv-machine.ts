// A small deterministic machine for the simulator: its whole state is a byte
// array of pages (so deltas are page diffs, as with a wasm guest's memory),
// and its request-id table lives in those pages, so it is replicated with
// everything else and exactly-once survives failover.
//
// Layout (u32 little-endian words):
//   page 0           opCount: effects applied so far
//   pages 1..        per client: lastSeq, appliedCount, responses[KV_REQUESTS_PER_CLIENT_MAX]
//   KV_KEY_PAGE0+k   key k: word 0 its value, words 1.. written by requests (noise, to vary deltas)
// A request (client, reqId, [key, add]) with reqId = lastSeq + 1 applies once:
// opCount += 1, key += add, appliedCount += 1, and its response (opCount
// after) is recorded; a reqId already applied returns the recorded response.
import { assert } from '../../util/assert.js';
import { crc32c } from '../crc32c.js';
import { replicateError } from '../codes.js';
import type { ReplicatedMachine } from '../machine.js';

export const KV_PAGE_BYTES = 64;
export const KV_PAGES = 32;
export const KV_CLIENTS_MAX = 8;
/** Client ids are 1..KV_CLIENTS_MAX; request ids 1..KV_REQUESTS_PER_CLIENT_MAX. */
export const KV_REQUESTS_PER_CLIENT_MAX = 16;
export const KV_KEYS = 16;
const CLIENT_TABLE_AT = KV_PAGE_BYTES;
const CLIENT_BYTES = 8 + 4 * KV_REQUESTS_PER_CLIENT_MAX;
export const KV_KEY_PAGE0 = 12;
assert(CLIENT_TABLE_AT + KV_CLIENTS_MAX * CLIENT_BYTES <= KV_KEY_PAGE0 * KV_PAGE_BYTES, 'kv layout: client table overlaps keys');
assert(KV_KEY_PAGE0 + KV_KEYS <= KV_PAGES, 'kv layout: keys past memory');
const WORDS_PER_PAGE = KV_PAGE_BYTES / 4;
export const KV_ERROR_RESPONSE = 0xffffffff;
const DELTA_ENTRY_BYTES = 4 + KV_PAGE_BYTES;

export interface KvClientState {
  lastSeq: number;
  applied: number;
  responses: number[];
}

export class KvMachine implements ReplicatedMachine {
  readonly pageBytes = KV_PAGE_BYTES;
  private readonly mem = new Uint8Array(KV_PAGES * KV_PAGE_BYTES);
  private readonly view = new DataView(this.mem.buffer);
  /** The memory as of the previous collect: dirty tracking by comparison (like src/track/hash.ts). */
  private readonly shadow = new Uint8Array(KV_PAGES * KV_PAGE_BYTES);

  pageCount(): number {
    return KV_PAGES;
  }
  readPage(index: number): Uint8Array {
    assert(index >= 0 && index < KV_PAGES);
    return this.mem.slice(index * KV_PAGE_BYTES, (index + 1) * KV_PAGE_BYTES);
  }
  writePage(index: number, bytes: Uint8Array): void {
    if (!Number.isInteger(index) || index < 0 || index >= KV_PAGES) throw replicateError('ERR_REPL_DELTA', `page ${index} is past the machine's ${KV_PAGES} pages`);
    if (bytes.length !== KV_PAGE_BYTES) throw replicateError('ERR_REPL_DELTA', `a page of ${bytes.length} bytes`);
    this.mem.set(bytes, index * KV_PAGE_BYTES);
    this.shadow.set(bytes, index * KV_PAGE_BYTES);
  }
  collectDirtyPages(): number[] {
    const dirty: number[] = [];
    for (let p = 0; p < KV_PAGES; p++) {
      const at = p * KV_PAGE_BYTES;
      for (let i = at; i < at + KV_PAGE_BYTES; i++) {
        if (this.mem[i] !== this.shadow[i]) {
          dirty.push(p);
          this.shadow.set(this.mem.subarray(at, at + KV_PAGE_BYTES), at);
          break;
        }
      }
    }
    return dirty;
  }
  /** All state is in pages, so a base delta is no different. */
  captureDelta(alsoPages: readonly number[] = [], _base = false): Uint8Array {
    const dirty = [...new Set([...this.collectDirtyPages(), ...alsoPages])].sort((a, b) => a - b);
    const out = new Uint8Array(4 + dirty.length * DELTA_ENTRY_BYTES);
    const v = new DataView(out.buffer);
    v.setUint32(0, dirty.length, true);
    dirty.forEach((p, i) => {
      const at = 4 + i * DELTA_ENTRY_BYTES;
      v.setUint32(at, p, true);
      out.set(this.mem.subarray(p * KV_PAGE_BYTES, (p + 1) * KV_PAGE_BYTES), at + 4);
    });
    return out;
  }
  applyDelta(delta: Uint8Array): void {
    // Validate all of it before changing anything.
    if (delta.length < 4) throw replicateError('ERR_REPL_DELTA', 'delta shorter than its count');
    const v = new DataView(delta.buffer, delta.byteOffset, delta.byteLength);
    const n = v.getUint32(0, true);
    if (n > KV_PAGES || delta.length !== 4 + n * DELTA_ENTRY_BYTES) throw replicateError('ERR_REPL_DELTA', `delta of ${delta.length} bytes for ${n} pages`);
    let previous = -1;
    for (let i = 0; i < n; i++) {
      const p = v.getUint32(4 + i * DELTA_ENTRY_BYTES, true);
      if (p >= KV_PAGES || p <= previous) throw replicateError('ERR_REPL_DELTA', `delta page ${p} out of range or order`);
      previous = p;
    }
    for (let i = 0; i < n; i++) {
      const at = 4 + i * DELTA_ENTRY_BYTES;
      this.writePage(v.getUint32(at, true), delta.subarray(at + 4, at + DELTA_ENTRY_BYTES));
    }
  }
  digest(): number {
    return crc32c(this.mem);
  }

  handleRequest(client: number, reqId: number, body: Uint8Array): Uint8Array {
    const out = new Uint8Array(4);
    const ov = new DataView(out.buffer);
    const key = body[0] ?? 0;
    if (client < 1 || client > KV_CLIENTS_MAX || reqId < 1 || reqId > KV_REQUESTS_PER_CLIENT_MAX || body.length !== 2 || key >= KV_KEYS) {
      ov.setUint32(0, KV_ERROR_RESPONSE, true);
      return out;
    }
    const c = CLIENT_TABLE_AT + (client - 1) * CLIENT_BYTES;
    const lastSeq = this.u32(c);
    if (reqId <= lastSeq) {
      ov.setUint32(0, this.u32(c + 8 + 4 * (reqId - 1)), true); // already applied: the recorded answer
      return out;
    }
    if (reqId !== lastSeq + 1) {
      ov.setUint32(0, KV_ERROR_RESPONSE, true); // clients are sequential: a gap is a client bug
      return out;
    }
    const opCount = this.u32(0) + 1;
    this.setU32(0, opCount);
    const kAt = (KV_KEY_PAGE0 + key) * KV_PAGE_BYTES;
    this.setU32(kAt, (this.u32(kAt) + body[1]!) >>> 0);
    this.setU32(kAt + 4 * (1 + (opCount % (WORDS_PER_PAGE - 1))), opCount);
    this.setU32(c, reqId);
    this.setU32(c + 4, this.u32(c + 4) + 1);
    this.setU32(c + 8 + 4 * (reqId - 1), opCount);
    ov.setUint32(0, opCount, true);
    return out;
  }

  // ---- for the checker ----

  opCount(): number {
    return this.u32(0);
  }
  client(client: number): KvClientState {
    assert(client >= 1 && client <= KV_CLIENTS_MAX);
    const c = CLIENT_TABLE_AT + (client - 1) * CLIENT_BYTES;
    const responses: number[] = [];
    for (let i = 0; i < KV_REQUESTS_PER_CLIENT_MAX; i++) responses.push(this.u32(c + 8 + 4 * i));
    return { lastSeq: this.u32(c), applied: this.u32(c + 4), responses };
  }
  keyValue(key: number): number {
    return this.u32((KV_KEY_PAGE0 + key) * KV_PAGE_BYTES);
  }

  private u32(at: number): number {
    return this.view.getUint32(at, true);
  }
  private setU32(at: number, v: number): void {
    this.view.setUint32(at, v, true);
  }
}

export function kvRequestBody(key: number, add: number): Uint8Array {
  return Uint8Array.of(key, add);
}
export function kvResponseValue(body: Uint8Array): number {
  return body.length === 4 ? new DataView(body.buffer, body.byteOffset, 4).getUint32(0, true) : KV_ERROR_RESPONSE;
}
