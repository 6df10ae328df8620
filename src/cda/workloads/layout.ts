// The arena layout shared, byte for byte, by the TypeScript workloads and the
// C guest guests/c/cdabench.c: the header, the allocator, the PRNG, the value
// fill and the digest. A change here is a change there (the cross-check test
// runs both and compares the arenas), and bumps ARENA_VERSION.
//
// An arena holds ALL of a workload's state — header, PRNG state, counters,
// roots, allocator, nodes — as offsets from the arena's start, so its bytes
// are position-independent: an arena recovered from a commit (or copied)
// resumes the workload exactly where the commit left it.
//
// Header (little-endian; offsets in bytes):
//     0 magic u32 "UCDA"      4 version u32         8 workload id u32
//    12 arena bytes u32      16 seed u32           20 PRNG state u32
//    24 ops done u64         32 cycles ended u64
//    40 allocator bump u32   44 live bytes u32     48 element count u32
//    52 root0 u32            56 root1 u32          60 aux0 u32    64 aux1 u32
//   128 free-list heads, ALLOC_CLASSES x u32       256 first block
//
// Allocator: sizes round up to ALLOC_GRAIN_BYTES; a block of k grains (k <=
// ALLOC_CLASSES) is taken from free list k (its first u32 links the next free
// block) or, when that list is empty, from the bump pointer. Larger blocks are
// bump-only and never freed (the hash table's bucket array). Blocks carry no
// header: the structure knows each node's size. Live and free blocks tile
// [HEADER_BYTES, bump) exactly, which check() verifies.
import { UnderstudyError } from '../../errors.js';
import { native } from '../../native.js';
import type { ArenaView } from './arena.js';

export const ARENA_MAGIC = 0x41444355; // "UCDA" in little-endian byte order
export const ARENA_VERSION = 1;
export const HEADER_BYTES = 256;
export const ARENA_PAGE_BYTES = 4096;
/** 10,000 operations of every workload fit with room to spare (the tree, the largest, uses ~1.1 MiB). */
export const ARENA_BYTES_DEFAULT = 8 * 1024 * 1024;
/** Header plus the hash table's bucket array and a few hundred nodes. */
export const ARENA_BYTES_MIN = 64 * 1024;
/** Offsets are u32 and a wasm32 guest must hold the arena beside its own memory. */
export const ARENA_BYTES_MAX = 1024 * 1024 * 1024;
export const ALLOC_GRAIN_BYTES = 16;
export const ALLOC_CLASSES = 16;
/** The largest block a free list serves. */
export const ALLOC_CLASS_BYTES_MAX = ALLOC_GRAIN_BYTES * ALLOC_CLASSES;

export const H = {
  magic: 0,
  version: 4,
  workload: 8,
  arenaBytes: 12,
  seed: 16,
  prng: 20,
  ops: 24,
  cycles: 32,
  bump: 40,
  liveBytes: 44,
  count: 48,
  root0: 52,
  root1: 56,
  aux0: 60,
  aux1: 64,
  free: 128,
} as const;
// Layout relations the C side mirrors with _Static_assert.
if (H.free + 4 * ALLOC_CLASSES > HEADER_BYTES || H.aux1 + 4 > H.free || HEADER_BYTES % ALLOC_GRAIN_BYTES !== 0) throw new Error('arena header layout');

export type WorkloadName = 'list' | 'tree' | 'hash' | 'queue';
export const WORKLOAD_IDS: Readonly<Record<WorkloadName, number>> = { list: 1, tree: 2, hash: 3, queue: 4 };
export const WORKLOAD_NAMES: readonly WorkloadName[] = ['list', 'tree', 'hash', 'queue'];

/** Values are record-sized, as in the seed's data-structure workloads: tens of bytes. */
export const VALUE_BYTES_MIN = 16;
export const VALUE_BYTES_MAX = 64;

export function corrupt(message: string): UnderstudyError {
  return new UnderstudyError('ERR_CDA_ARENA_CORRUPT', `corrupt arena: ${message}`);
}

export function roundToGrain(bytes: number): number {
  return Math.ceil(bytes / ALLOC_GRAIN_BYTES) * ALLOC_GRAIN_BYTES;
}

/** A block of `bytes`; its offset (16-aligned). ERR_CDA_ARENA_FULL when the arena has no room. */
export function alloc(a: ArenaView, bytes: number): number {
  const size = roundToGrain(bytes);
  const cls = size / ALLOC_GRAIN_BYTES;
  if (cls <= ALLOC_CLASSES) {
    const headAt = H.free + 4 * (cls - 1);
    const head = a.u32(headAt);
    if (head !== 0) {
      a.setU32(headAt, a.u32(head));
      a.setU32(H.liveBytes, a.u32(H.liveBytes) + size);
      return head;
    }
  }
  const bump = a.u32(H.bump);
  if (bump + size > a.byteLength) {
    throw new UnderstudyError('ERR_CDA_ARENA_FULL', `the arena (${a.byteLength} bytes) has no room for a ${size}-byte block; ${a.u32(H.liveBytes)} bytes are live`);
  }
  a.setU32(H.bump, bump + size);
  a.setU32(H.liveBytes, a.u32(H.liveBytes) + size);
  return bump;
}

/** Returns a block of `bytes` (what it was allocated with) to its free list. */
export function free(a: ArenaView, offset: number, bytes: number): void {
  const size = roundToGrain(bytes);
  const cls = size / ALLOC_GRAIN_BYTES;
  if (cls > ALLOC_CLASSES) throw corrupt(`free of a ${size}-byte block, larger than any free list`);
  const headAt = H.free + 4 * (cls - 1);
  a.setU32(offset, a.u32(headAt));
  a.setU32(headAt, offset);
  a.setU32(H.liveBytes, a.u32(H.liveBytes) - size);
}

/**
 * splitmix32: one u32 of state (kept in the header), a Weyl step and a
 * murmur3-style finaliser. Exact in 32-bit integer arithmetic, so the C guest
 * and TypeScript (Math.imul, no BigInt) draw the same sequence.
 */
export class Rng {
  constructor(public state: number) {}
  next(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }
  /** A value length in [VALUE_BYTES_MIN, VALUE_BYTES_MAX]. */
  valueBytes(): number {
    return VALUE_BYTES_MIN + (this.next() % (VALUE_BYTES_MAX - VALUE_BYTES_MIN + 1));
  }
}

/** A value's bytes from one draw: an LCG (Numerical Recipes) word per 4 bytes, little-endian, cut at `length`. */
export function fillValue(draw: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let w = draw >>> 0;
  for (let i = 0; i < length; i += 4) {
    w = (Math.imul(w, 1664525) + 1013904223) >>> 0;
    for (let b = 0; b < 4 && i + b < length; b++) out[i + b] = (w >>> (8 * b)) & 0xff;
  }
  return out;
}

/** murmur3's 32-bit finaliser: the hash table's bucket hash. */
export function fmix32(h: number): number {
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** CRC-32C (Castagnoli) of the whole arena, as the C guest prints it (the native one: an 8 MiB arena in ~1 ms). */
export function digest(arena: ArenaView | Uint8Array): number {
  return native.crc32c(arena instanceof Uint8Array ? arena : arena.raw());
}

/** The header as plain data. */
export interface ArenaHeader {
  magic: number;
  version: number;
  workload: number;
  arenaBytes: number;
  seed: number;
  prng: number;
  ops: number;
  cycles: number;
  bump: number;
  liveBytes: number;
  count: number;
  roots: [number, number, number, number];
  freeHeads: number[];
}

export function readHeader(a: ArenaView): ArenaHeader {
  if (a.byteLength < HEADER_BYTES) throw corrupt(`${a.byteLength} bytes cannot hold the ${HEADER_BYTES}-byte header`);
  const freeHeads: number[] = [];
  for (let i = 0; i < ALLOC_CLASSES; i++) freeHeads.push(a.u32(H.free + 4 * i));
  return {
    magic: a.u32(H.magic),
    version: a.u32(H.version),
    workload: a.u32(H.workload),
    arenaBytes: a.u32(H.arenaBytes),
    seed: a.u32(H.seed),
    prng: a.u32(H.prng),
    ops: a.u64(H.ops),
    cycles: a.u64(H.cycles),
    bump: a.u32(H.bump),
    liveBytes: a.u32(H.liveBytes),
    count: a.u32(H.count),
    roots: [a.u32(H.root0), a.u32(H.root1), a.u32(H.aux0), a.u32(H.aux1)],
    freeHeads,
  };
}

/** Whether `offset` can be a block: 16-aligned and inside [HEADER_BYTES, bump). */
export function isBlock(offset: number, bump: number): boolean {
  return offset >= HEADER_BYTES && offset < bump && offset % ALLOC_GRAIN_BYTES === 0;
}

/**
 * Checks a header before anything trusts it: the identity (magic, version),
 * that it is this workload's arena of this size (ERR_CDA_ARENA_MISMATCH), and
 * that the allocator's fields are in range (ERR_CDA_ARENA_CORRUPT).
 */
export function validateHeader(a: ArenaView, workload: WorkloadName): ArenaHeader {
  const h = readHeader(a);
  if (h.magic !== ARENA_MAGIC) throw corrupt(`magic is 0x${h.magic.toString(16)}, not 0x${ARENA_MAGIC.toString(16)} (never initialised, or overwritten)`);
  if (h.version !== ARENA_VERSION) throw corrupt(`layout version ${h.version}, this build reads ${ARENA_VERSION}`);
  const id = WORKLOAD_IDS[workload];
  if (h.workload !== id) {
    const other = WORKLOAD_NAMES.find((n) => WORKLOAD_IDS[n] === h.workload);
    if (!other) throw corrupt(`unknown workload id ${h.workload}`);
    throw new UnderstudyError('ERR_CDA_ARENA_MISMATCH', `the arena holds the ${other} workload, not ${workload}`);
  }
  if (h.arenaBytes !== a.byteLength) throw new UnderstudyError('ERR_CDA_ARENA_MISMATCH', `the arena was made with ${h.arenaBytes} bytes; this view has ${a.byteLength}`);
  if (h.bump < HEADER_BYTES || h.bump > h.arenaBytes || h.bump % ALLOC_GRAIN_BYTES !== 0) throw corrupt(`allocator bump ${h.bump} outside [${HEADER_BYTES}, ${h.arenaBytes}] or unaligned`);
  if (h.liveBytes > h.bump - HEADER_BYTES || h.liveBytes % ALLOC_GRAIN_BYTES !== 0) throw corrupt(`live bytes ${h.liveBytes} exceed the ${h.bump - HEADER_BYTES} allocated`);
  h.freeHeads.forEach((f, i) => {
    if (f !== 0 && !isBlock(f, h.bump)) throw corrupt(`free list ${i + 1} starts at ${f}, not a block`);
  });
  return h;
}
