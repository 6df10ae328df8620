// The guest side of ballooning for AssemblyScript guests (the C version, with
// the full description of exports and hypercalls, is guests/sdk/understudy_balloon.h).
//
// An entry file re-exports the four functions:
//
//   export { us_balloon_stats, us_balloon_inflate, us_balloon_deflate, us_balloon_set_reporting } from "../sdk/as/balloon";
//
// The balloon allocates from the runtime's allocator (TLSF, heap.alloc) and
// frees back to it. TLSF doubles memory when a request finds no free block,
// so the balloon asks TLSF's own bitmaps first (`fitsWithoutGrowth`, the
// search TLSF itself makes) and takes only blocks that are already free:
// inflating never grows memory. Statistics walk TLSF's free lists (bounded),
// after a full garbage collection so that garbage counts as free.
// Free page reporting is not offered here (AssemblyScript frees through the
// collector, not through calls a library sees): us_balloon_set_reporting
// answers -1.
import { ROOT } from "rt/tlsf";

// @ts-ignore: decorator
@external("understudy", "balloon_give") declare function hcGive(ptr: u32, len: u32): i32;
// @ts-ignore: decorator
@external("understudy", "balloon_take") declare function hcTake(ptr: u32, len: u32): i32;

const PAGE: usize = 4096;
const CHUNK: usize = 1 << 20;
const SMALL_CHUNK: usize = 64 << 10;
const STATS_WORDS: i32 = 8;
// Free blocks walked for statistics at most (a bound, not a limit reached in practice).
const WALK_BLOCKS_MAX: i32 = 1 << 22;

// TLSF's layout on wasm32 (std/assembly/rt/tlsf.ts, common.ts of AssemblyScript 0.28).
const AL_MASK: usize = 15;
const BLOCK_OVERHEAD: usize = 4;
const BLOCK_MINSIZE: usize = 12;
const SL_BITS: u32 = 4;
const SB_BITS: u32 = 8;
const FL_BITS: u32 = 23;
const SL_START: usize = 4;
const HL_START: usize = 96;
const HL_END: usize = HL_START + <usize>FL_BITS * (1 << SL_BITS) * 4;
const TAGS_MASK: usize = 3;

let balloonList: usize = 0;
let balloonPages: u32 = 0;
const stats = new StaticArray<u32>(STATS_WORDS);

function root(): usize {
  return changetype<usize>(ROOT);
}

function slMap(fl: u32): u32 {
  return load<u32>(root() + (<usize>fl << 2), SL_START);
}

// True when TLSF can serve `size` bytes from a free block (no memory.grow).
function fitsWithoutGrowth(size: usize): bool {
  if (root() == 0) return false;
  let payload = size <= BLOCK_MINSIZE ? BLOCK_MINSIZE : ((size + BLOCK_OVERHEAD + AL_MASK) & ~AL_MASK) - BLOCK_OVERHEAD;
  const request = payload + (<usize>1 << (27 - clz<usize>(payload))) - 1;
  let fl: u32 = 31 - <u32>clz<usize>(request);
  const sl = <u32>((request >> (fl - SL_BITS)) ^ (1 << SL_BITS));
  fl -= SB_BITS - 1;
  if (fl >= FL_BITS) return false;
  if ((slMap(fl) & (~0 << sl)) != 0) return true;
  return fl + 1 < FL_BITS && (load<usize>(root()) & (~0 << (fl + 1))) != 0;
}

// Bytes in TLSF's free blocks.
function freeBytes(): usize {
  const r = root();
  if (r == 0) return 0;
  let total: usize = 0;
  let walked = 0;
  for (let fl: u32 = 0; fl < FL_BITS; fl++) {
    const map = slMap(fl);
    if (map == 0) continue;
    for (let sl: u32 = 0; sl < (1 << SL_BITS); sl++) {
      if ((map & (1 << sl)) == 0) continue;
      let block = load<usize>(r + (((<usize>fl << SL_BITS) + <usize>sl) << 2), HL_START);
      while (block != 0 && walked < WALK_BLOCKS_MAX) {
        total += load<usize>(block) & ~TAGS_MASK;
        block = load<usize>(block, 8); // Block.next
        walked++;
      }
    }
  }
  return total;
}

export function us_balloon_stats(): i32 {
  __collect();
  const heapEnd: usize = root() == 0 ? <usize>memory.size() << 16 : load<usize>(root(), HL_END) + 16;
  const heapPages = <u32>(heapEnd / PAGE);
  const free = <u32>(freeBytes() / PAGE);
  const taken = free + balloonPages;
  stats[0] = 1;
  stats[1] = <u32>memory.size() << 4;
  stats[2] = heapPages;
  stats[3] = heapPages > taken ? heapPages - taken : 0;
  stats[4] = free;
  stats[5] = balloonPages;
  stats[6] = 0;
  stats[7] = 0;
  return changetype<i32>(stats);
}

// One chunk from a free block, handed over; pages given, 0 when none is free, < 0 refused.
function takeChunk(size: usize): i32 {
  if (!fitsWithoutGrowth(size)) return 0;
  const before = memory.size();
  const c = heap.alloc(size);
  assert(memory.size() == before, "balloon grew memory");
  const lo = (c + 12 + PAGE - 1) & ~(PAGE - 1);
  const hi = (c + size) & ~(PAGE - 1);
  const r = hi > lo ? hcGive(<u32>lo, <u32>(hi - lo)) : 0;
  if (r < 0) {
    heap.free(c);
    return r;
  }
  store<usize>(c, balloonList);
  store<u32>(c, <u32>lo, 4);
  store<u32>(c, <u32>(hi - lo), 8);
  balloonList = c;
  const pages = <u32>((hi - lo) / PAGE);
  balloonPages += pages;
  return pages > 0 ? <i32>pages : 1;
}

export function us_balloon_inflate(target: i32, stepMax: i32): i32 {
  if (target < 0 || stepMax <= 0) return <i32>balloonPages;
  let added: u32 = 0;
  let size = CHUNK;
  while (balloonPages < <u32>target && added < <u32>stepMax) {
    const want = <usize>(<u32>target - balloonPages) * PAGE;
    if (size > SMALL_CHUNK && want < size) size = SMALL_CHUNK;
    const got = takeChunk(size);
    if (got < 0) return got;
    if (got == 0) {
      if (size == SMALL_CHUNK) break;
      size = SMALL_CHUNK;
      continue;
    }
    added += <u32>got;
  }
  return <i32>balloonPages;
}

export function us_balloon_deflate(): i32 {
  let released: u32 = 0;
  while (balloonList != 0) {
    const c = balloonList;
    balloonList = load<usize>(c);
    const ptr = load<u32>(c, 4);
    const len = load<u32>(c, 8);
    if (len != 0) hcTake(ptr, len);
    released += len / <u32>PAGE;
    heap.free(c);
  }
  balloonPages = 0;
  return <i32>released;
}

export function us_balloon_set_reporting(minBytes: i32): i32 {
  return -1;
}
