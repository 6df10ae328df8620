// Per-page delta encoding of dirty pages (seed 001's "difference computation":
// compare a page with its previous version word by word and ship only what
// changed). The loops are native (native/src/delta.c); this file defines the
// format, checks the native side agrees with it, and is the interface.
//
// Format, little-endian:
//
//   header (DELTA_HEADER_BYTES = 24)
//     0  u32 magic       DELTA_MAGIC ("USDL")
//     4  u16 version     DELTA_VERSION
//     6  u16 flags       0 (no flags are defined; non-zero is refused)
//     8  u32 entryCount
//    12  u32 pageBytes   4096
//    16  u64 totalBytes  the whole encoding, header included; must equal its length
//   entries, page indices strictly ascending, each
//     u32 pageIndex, u8 kind, then by kind
//       ZERO (0)  nothing: the page is all zero
//       FULL (1)  4096 bytes: the page
//       RUNS (2)  u16 runCount (>= 1), then runCount times
//                   u16 offset, u16 length (>= 1), `length` bytes
//                 runs ascending and non-overlapping, offset + length <= 4096;
//                 the page's other bytes keep their previous value
//
// A page equal to its previous version has no entry, so the encoding of an
// epoch is the same whichever tracker listed the pages (trackers report
// different supersets of the truly changed pages). The encoder keeps a shadow:
// the previous image of the whole memory, updated page by page as it encodes.
import { UnderstudyError } from '../errors.js';
import { native, PAGE_BYTES } from '../native.js';
import { assert } from '../util/assert.js';

export const DELTA_MAGIC = 0x4c445355; // bytes 'U' 'S' 'D' 'L'
export const DELTA_VERSION = 1;
export const DELTA_HEADER_OFFSETS = { magic: 0, version: 4, flags: 6, entryCount: 8, pageBytes: 12, totalBytes: 16 } as const;
export const DELTA_HEADER_BYTES = 24;
/** u32 pageIndex + u8 kind. */
export const DELTA_ENTRY_HEAD_BYTES = 5;
/** u16 runCount of a RUNS entry. */
export const DELTA_RUNS_HEAD_BYTES = 2;
/** u16 offset + u16 length of one run. */
export const DELTA_RUN_HEAD_BYTES = 4;
/** The largest entry, a FULL page; the per-page worst case of the bound. */
export const DELTA_ENTRY_BYTES_MAX = DELTA_ENTRY_HEAD_BYTES + PAGE_BYTES;

export const DeltaKind = { zero: 0, full: 1, runs: 2 } as const;
export type DeltaKind = (typeof DeltaKind)[keyof typeof DeltaKind];

/**
 * Changed runs closer than this are merged. 0 = never: runs are maximal
 * sequences of differing 8-byte words (trimmed to bytes), so two runs are at
 * least 8 bytes apart, more than a run header (4 bytes) costs. Measured in
 * docs/compression.md: merging saved nothing after compression either.
 */
export const DELTA_RUN_GAP_MERGE_BYTES = 0;
/** A RUNS body of this many bytes or more is sent FULL instead (= a page: RUNS whenever smaller). */
export const DELTA_RUNS_BYTES_MAX = PAGE_BYTES;

// Layout relations, and agreement with the native encoder (prose drifts; code does not).
assert(DELTA_HEADER_OFFSETS.totalBytes + 8 === DELTA_HEADER_BYTES, 'totalBytes (u64) ends the header');
assert(DELTA_HEADER_OFFSETS.pageBytes + 4 === DELTA_HEADER_OFFSETS.totalBytes);
assert(DELTA_RUNS_BYTES_MAX <= PAGE_BYTES, 'a RUNS entry is never larger than a FULL one');
{
  const layout = native.deltaLayout;
  const expected: Record<string, number> = {
    magic: DELTA_MAGIC,
    version: DELTA_VERSION,
    headerBytes: DELTA_HEADER_BYTES,
    entryHeadBytes: DELTA_ENTRY_HEAD_BYTES,
    entryBytesMax: DELTA_ENTRY_BYTES_MAX,
    runsHeadBytes: DELTA_RUNS_HEAD_BYTES,
    runHeadBytes: DELTA_RUN_HEAD_BYTES,
    runGapMergeBytes: DELTA_RUN_GAP_MERGE_BYTES,
    runsBytesMax: DELTA_RUNS_BYTES_MAX,
    kindZero: DeltaKind.zero,
    kindFull: DeltaKind.full,
    kindRuns: DeltaKind.runs,
  };
  for (const [k, v] of Object.entries(expected)) assert(layout[k] === v, `native delta layout disagrees on ${k}: ${layout[k]} != ${v}`);
}

/** What one encode did (counts of pages, and bytes). */
export interface DeltaEncodeCounts {
  /** Bytes of the encoding, header included. */
  bytes: number;
  /** Listed pages equal to their previous version: no entry. */
  unchanged: number;
  zero: number;
  full: number;
  /** Pages sent as changed byte runs. */
  runs: number;
  /** Runs in those pages. */
  runSegments: number;
  /** Changed bytes carried by those runs (run headers not counted). */
  runBytes: number;
}

/** Worst-case encoded bytes for `pageCount` listed pages: the size `out` must have. */
export function deltaBoundBytes(pageCount: number): number {
  assert(Number.isSafeInteger(pageCount) && pageCount >= 0);
  return DELTA_HEADER_BYTES + pageCount * DELTA_ENTRY_BYTES_MAX;
}

/** Tuning knobs, for the benchmark that chose the constants; production uses the defaults. */
export interface DeltaTuning {
  runGapMergeBytes?: number;
  runsBytesMax?: number;
}

/**
 * Encodes the pages listed in `pages` (strictly ascending; their new contents
 * packed in `staged`, 4 KiB each, in order) against `shadow`, the previous
 * image of the whole memory, and updates `shadow` to the new contents.
 *
 * Contract: `shadow` covers every listed page. After memory.grow the caller
 * extends the shadow with zero pages first (`growShadow`): a page that did not
 * exist had all-zero previous contents. Nothing is written when a call is
 * refused. `out` (default: a new buffer) must hold deltaBoundBytes(pages.length).
 */
export function encodeDelta(
  staged: Uint8Array,
  pages: Uint32Array,
  shadow: Uint8Array,
  out: Uint8Array = new Uint8Array(deltaBoundBytes(pages.length)),
  tuning: DeltaTuning = {},
): { encoded: Uint8Array; counts: DeltaEncodeCounts } {
  assert(staged.length >= pages.length * PAGE_BYTES, 'staged holds every listed page');
  assert(shadow.length % PAGE_BYTES === 0, 'shadow is whole pages');
  assert(out.length >= deltaBoundBytes(pages.length), 'out holds the worst case');
  const counts = native.deltaEncode(staged, pages, shadow, out, tuning.runGapMergeBytes, tuning.runsBytesMax);
  assert(counts.bytes >= DELTA_HEADER_BYTES && counts.bytes <= out.length);
  assert(counts.unchanged + counts.zero + counts.full + counts.runs === pages.length, 'every listed page is counted once');
  return { encoded: out.subarray(0, counts.bytes), counts };
}

/**
 * Applies an encoding (untrusted: it came from a file or the network) onto
 * `memory`: validates all of it first, then writes. Returns the pages written.
 * Throws UnderstudyError ERR_CKPT_MALFORMED, with `memory` untouched, when any
 * length, kind, page index (must be < memory pages), run or order is wrong.
 */
export function applyDelta(encoded: Uint8Array, memory: Uint8Array): number {
  assert(memory.length % PAGE_BYTES === 0, 'memory is whole pages');
  try {
    return native.deltaApply(encoded, memory);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ERR_CKPT_MALFORMED') throw new UnderstudyError('ERR_CKPT_MALFORMED', (e as Error).message, { cause: e });
    throw e;
  }
}

/** The header fields, validated against the bytes at hand (for tools that only look). */
export function readDeltaHeader(encoded: Uint8Array): { entryCount: number; totalBytes: number } {
  const bad = (what: string) => new UnderstudyError('ERR_CKPT_MALFORMED', `malformed page delta: ${what}`);
  if (encoded.length < DELTA_HEADER_BYTES) throw bad('shorter than the header');
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const o = DELTA_HEADER_OFFSETS;
  if (view.getUint32(o.magic, true) !== DELTA_MAGIC) throw bad('bad magic');
  if (view.getUint16(o.version, true) !== DELTA_VERSION) throw bad('unknown version');
  if (view.getUint16(o.flags, true) !== 0) throw bad('unknown flags');
  if (view.getUint32(o.pageBytes, true) !== PAGE_BYTES) throw bad('page size is not 4096');
  const totalBytes = view.getBigUint64(o.totalBytes, true);
  if (totalBytes !== BigInt(encoded.length)) throw bad('total length disagrees with the input length');
  return { entryCount: view.getUint32(o.entryCount, true), totalBytes: encoded.length };
}

/** The shadow extended with zero pages to `byteLength` (what a grown memory's new pages were before). */
export function growShadow(shadow: Uint8Array, byteLength: number): Uint8Array {
  assert(byteLength % PAGE_BYTES === 0 && byteLength >= shadow.length, 'a shadow only grows, by whole pages');
  if (byteLength === shadow.length) return shadow;
  const grown = new Uint8Array(byteLength);
  grown.set(shadow);
  return grown;
}
