// The checkpoint container: a fixed header, a section table, and sections,
// each with its own CRC-32C. This file knows bytes and bounds only; what the
// sections mean is in snapshot.ts.
//
//   header (64 bytes, little-endian)
//     0  u8[8]  magic  89 'U' 'S' 'C' 'K' 0D 0A 1A  (high bit, CRLF, ^Z catch text-mode mangling)
//     8  u16    format major   (readers refuse a major they do not know)
//    10  u16    format minor   (adds optional sections only; any minor is readable)
//    12  u32    section count
//    16  u64    file bytes     (the whole file; a truncated file disagrees)
//    24  u32    flags          (reserved, 0)
//    28  u32    CRC-32C of the section table
//    32  u8[28] reserved, 0
//    60  u32    CRC-32C of bytes 0..60
//   section table at 64: count x 32 bytes
//     0  u32 kind   4 u32 flags (bit 0: optional)   8 u64 offset   16 u64 length   24 u32 CRC-32C   28 u32 reserved
//   sections: 8-byte aligned; the memory image is 4 KiB aligned so it can be mapped.
//
//   MemoryPages (kind 6, since 1.1; replaces the dense Memory section in new files):
//     0  u64 memory bytes   (the configured size; a multiple of 64 KiB)
//     8  u32 extent count
//    12  u32 reserved, 0
//    16  count x { u32 first page, u32 page count }   (4 KiB pages; ascending, disjoint,
//        not adjacent — runs are maximal — and inside memory)
//     .. zero padding to the next 4 KiB boundary of the section
//     .. the stored pages' bytes, extent after extent (4 KiB aligned in the file, so it could be mapped)
//   Pages no extent covers read as zero: never touched, or all zero.
//
//   MemoryRuns (kind 7, since 1.2; only beside MemoryPages): pages mostly zero, stored below page
//     granularity.
//     0  u32 extent count
//     4  u32 reserved, 0
//     8  count x { u32 first page, u32 page count }   (the run pages: same rules as above, and
//        outside every MemoryPages extent)
//     .. a page delta encoding (delta-codec.ts) against all-zero pages: one RUNS entry (the
//        page's non-zero byte runs) per run page, in order. Loaded after MemoryPages onto zeroed
//        pages, streamed from the file (the extents come first so the pages can be populated
//        while the runs are read).
import { UnderstudyError } from '../errors.js';
import { native } from '../native.js';
import { assert } from '../util/assert.js';

export const MAGIC = Uint8Array.of(0x89, 0x55, 0x53, 0x43, 0x4b, 0x0d, 0x0a, 0x1a);
export const FORMAT_MAJOR = 1;
/**
 * 1.1 added the sparse MemoryPages section, 1.2 the MemoryRuns section (each required where
 * present: an older reader refuses such a file as ERR_CKPT_VERSION, naming the unknown section).
 */
export const FORMAT_MINOR = 2;
export const HEADER_BYTES = 64;
export const SECTION_ENTRY_BYTES = 32;
/** No checkpoint of ours has more than a handful; a larger count is a corrupt header. */
export const SECTION_COUNT_MAX = 64;
export const SECTION_FLAG_OPTIONAL = 1;

export enum SectionKind {
  Meta = 1,
  Module = 2,
  Memory = 3,
  Vcpu = 4,
  Devices = 5,
  /** The sparse memory image (1.1); a file holds either this or Memory, never both. */
  MemoryPages = 6,
  /** Mostly-zero pages as non-zero byte runs (1.2); only beside MemoryPages. */
  MemoryRuns = 7,
}

/** Bytes per stored page of a MemoryPages section (the kernel's page, not the 64 KiB wasm page). */
export const MEMORY_PAGE_BYTES = 4096;
/** The wasm32 maximum memory: 65536 wasm pages of 64 KiB. */
export const MEMORY_BYTES_MAX = 65536 * 65536;
export const MEMORY_PAGES_HEADER_BYTES = 16;
export const MEMORY_EXTENT_BYTES = 8;
/** Extents are maximal runs with a gap between them, so a memory of P pages has at most ceil(P/2). */
export const MEMORY_EXTENTS_MAX = MEMORY_BYTES_MAX / MEMORY_PAGE_BYTES / 2;

/** Per-kind size limits, checked before any section is read. */
export const SECTION_BYTES_MAX: Readonly<Record<SectionKind, number>> = {
  [SectionKind.Meta]: 1 << 20, // a few hundred bytes of metadata in practice
  [SectionKind.Module]: 256 << 20, // V8 refuses modules past ~1 GiB; real guests are far smaller
  [SectionKind.Memory]: 65536 * 65536, // 4 GiB: the wasm32 maximum
  [SectionKind.Vcpu]: 64 << 20, // globals, tables, captured stack
  [SectionKind.Devices]: 4 * 1024 ** 3, // the in-memory file system can be large
  [SectionKind.MemoryPages]: MEMORY_BYTES_MAX + alignUp(MEMORY_PAGES_HEADER_BYTES + MEMORY_EXTENTS_MAX * MEMORY_EXTENT_BYTES, MEMORY_PAGE_BYTES), // every page, plus the largest extent table
  [SectionKind.MemoryRuns]: MEMORY_BYTES_MAX, // a RUNS entry is smaller than its page
};
assert(MEMORY_PAGES_HEADER_BYTES + MEMORY_EXTENTS_MAX * MEMORY_EXTENT_BYTES < 8 << 20, 'the extent table of a 4 GiB memory is under 8 MiB');

/** A section's alignment in the file. */
export function sectionAlignment(kind: number): number {
  return kind === SectionKind.Memory || kind === SectionKind.MemoryPages ? 4096 : 8;
}

/** The compatibility rule, in code: same major, any minor. */
export function isReadableVersion(major: number, _minor: number): boolean {
  return major === FORMAT_MAJOR;
}

export interface SectionEntry {
  kind: number;
  flags: number;
  offset: number;
  length: number;
  crc: number;
}

export interface Layout {
  major: number;
  minor: number;
  fileBytes: number;
  sections: SectionEntry[];
}

function fail(code: 'ERR_CKPT_TRUNCATED' | 'ERR_CKPT_MAGIC' | 'ERR_CKPT_VERSION' | 'ERR_CKPT_CHECKSUM' | 'ERR_CKPT_MALFORMED' | 'ERR_CKPT_TOO_LARGE', what: string): never {
  throw new UnderstudyError(code, what);
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Lays out sections of the given kinds and lengths; returns the header + table bytes and each section's offset. */
export function buildLayout(sections: { kind: SectionKind; flags: number; length: number; crc: number }[]): { head: Uint8Array; offsets: number[]; fileBytes: number } {
  assert(sections.length <= SECTION_COUNT_MAX, 'too many sections');
  const tableEnd = HEADER_BYTES + sections.length * SECTION_ENTRY_BYTES;
  let at = tableEnd;
  const offsets: number[] = [];
  for (const s of sections) {
    const max = SECTION_BYTES_MAX[s.kind] as number | undefined;
    assert(max === undefined || s.length <= max, `section ${SectionKind[s.kind]} over its limit`);
    at = alignUp(at, sectionAlignment(s.kind));
    offsets.push(at);
    at += s.length;
  }
  const fileBytes = at;
  const head = new Uint8Array(tableEnd);
  const view = new DataView(head.buffer);
  head.set(MAGIC, 0);
  view.setUint16(8, FORMAT_MAJOR, true);
  view.setUint16(10, FORMAT_MINOR, true);
  view.setUint32(12, sections.length, true);
  view.setBigUint64(16, BigInt(fileBytes), true);
  sections.forEach((s, i) => {
    const e = HEADER_BYTES + i * SECTION_ENTRY_BYTES;
    view.setUint32(e, s.kind, true);
    view.setUint32(e + 4, s.flags, true);
    view.setBigUint64(e + 8, BigInt(offsets[i]!), true);
    view.setBigUint64(e + 16, BigInt(s.length), true);
    view.setUint32(e + 24, s.crc >>> 0, true);
  });
  view.setUint32(28, native.crc32c(head.subarray(HEADER_BYTES, tableEnd)), true);
  view.setUint32(60, native.crc32c(head.subarray(0, 60)), true);
  return { head, offsets, fileBytes };
}

/** Validates the first HEADER_BYTES of a file of `actualBytes` bytes; returns the section count. */
export function parseHeader(header: Uint8Array, actualBytes: number): { major: number; minor: number; count: number; fileBytes: number; tableCrc: number } {
  if (actualBytes < HEADER_BYTES || header.length < HEADER_BYTES) fail('ERR_CKPT_TRUNCATED', `file is ${actualBytes} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (header[i] !== MAGIC[i]) fail('ERR_CKPT_MAGIC', 'not an understudy checkpoint (bad magic)');
  }
  const view = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  const major = view.getUint16(8, true);
  const minor = view.getUint16(10, true);
  if (native.crc32c(header.subarray(0, 60)) !== view.getUint32(60, true)) fail('ERR_CKPT_CHECKSUM', 'header checksum mismatch');
  if (!isReadableVersion(major, minor)) fail('ERR_CKPT_VERSION', `checkpoint format ${major}.${minor} is not readable by this understudy (reads ${FORMAT_MAJOR}.x)`);
  const count = view.getUint32(12, true);
  const fileBytes64 = view.getBigUint64(16, true);
  if (count > SECTION_COUNT_MAX) fail('ERR_CKPT_MALFORMED', `section count ${count} exceeds ${SECTION_COUNT_MAX}`);
  if (fileBytes64 > BigInt(Number.MAX_SAFE_INTEGER)) fail('ERR_CKPT_MALFORMED', 'file size field is absurd');
  const fileBytes = Number(fileBytes64);
  if (actualBytes < fileBytes) fail('ERR_CKPT_TRUNCATED', `file is truncated: ${actualBytes} of ${fileBytes} bytes`);
  if (actualBytes > fileBytes) fail('ERR_CKPT_MALFORMED', `file has ${actualBytes - fileBytes} trailing bytes`);
  if (HEADER_BYTES + count * SECTION_ENTRY_BYTES > fileBytes) fail('ERR_CKPT_TRUNCATED', 'section table runs past the end of the file');
  return { major, minor, count, fileBytes, tableCrc: view.getUint32(28, true) };
}

/** Validates the section table (bounds, overlap, limits, known kinds) against the header. */
export function parseTable(table: Uint8Array, head: ReturnType<typeof parseHeader>): Layout {
  assert(table.length === head.count * SECTION_ENTRY_BYTES);
  if (native.crc32c(table) !== head.tableCrc) fail('ERR_CKPT_CHECKSUM', 'section table checksum mismatch');
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const sections: SectionEntry[] = [];
  const tableEnd = HEADER_BYTES + table.length;
  for (let i = 0; i < head.count; i++) {
    const e = i * SECTION_ENTRY_BYTES;
    const kind = view.getUint32(e, true);
    const flags = view.getUint32(e + 4, true);
    const offset64 = view.getBigUint64(e + 8, true);
    const length64 = view.getBigUint64(e + 16, true);
    const crc = view.getUint32(e + 24, true);
    if (offset64 > BigInt(head.fileBytes) || length64 > BigInt(head.fileBytes) - offset64) fail('ERR_CKPT_MALFORMED', `section ${i} lies outside the file`);
    const offset = Number(offset64);
    const length = Number(length64);
    if (offset < tableEnd) fail('ERR_CKPT_MALFORMED', `section ${i} overlaps the header`);
    const known = kind in SECTION_BYTES_MAX;
    if (!known && !(flags & SECTION_FLAG_OPTIONAL)) fail('ERR_CKPT_VERSION', `section kind ${kind} is required but unknown to this understudy`);
    if (known && length > SECTION_BYTES_MAX[kind as SectionKind]) fail('ERR_CKPT_TOO_LARGE', `${SectionKind[kind]} section of ${length} bytes exceeds its limit`);
    if (known && sections.some((s) => s.kind === kind)) fail('ERR_CKPT_MALFORMED', `duplicate ${SectionKind[kind]} section`);
    sections.push({ kind, flags, offset, length, crc });
  }
  const sorted = [...sections].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (prev.offset + prev.length > sorted[i]!.offset) fail('ERR_CKPT_MALFORMED', 'sections overlap');
  }
  return { major: head.major, minor: head.minor, fileBytes: head.fileBytes, sections };
}

/** Checks one section's bytes against its table entry. */
export function verifySection(entry: SectionEntry, bytes: Uint8Array): void {
  assert(bytes.length === entry.length);
  if (native.crc32c(bytes) !== entry.crc) {
    const name = SectionKind[entry.kind] ?? `kind ${entry.kind}`;
    fail('ERR_CKPT_CHECKSUM', `${name} section checksum mismatch`);
  }
}

/**
 * The head of a MemoryPages section: `extents` holds [first page, page count] pairs. Returns the
 * head (header, extent table, zero padding to 4 KiB); the stored pages follow it.
 */
export function encodeMemoryPagesHead(memoryBytes: number, extents: Uint32Array): Uint8Array {
  const count = extents.length / 2;
  assert(Number.isInteger(count) && count <= MEMORY_EXTENTS_MAX, 'extent list has an odd length or too many extents');
  assert(memoryBytes % 65536 === 0 && memoryBytes <= MEMORY_BYTES_MAX, 'memory size is not whole wasm pages');
  const head = new Uint8Array(memoryPagesHeadBytes(count));
  const view = new DataView(head.buffer);
  view.setBigUint64(0, BigInt(memoryBytes), true);
  view.setUint32(8, count, true);
  let prevEnd = -1;
  for (let i = 0; i < count; i++) {
    const first = extents[2 * i]!;
    const pages = extents[2 * i + 1]!;
    assert(pages > 0 && first > prevEnd && (first + pages) * MEMORY_PAGE_BYTES <= memoryBytes, 'extents are not maximal ascending runs inside memory');
    prevEnd = first + pages;
    view.setUint32(MEMORY_PAGES_HEADER_BYTES + i * MEMORY_EXTENT_BYTES, first, true);
    view.setUint32(MEMORY_PAGES_HEADER_BYTES + i * MEMORY_EXTENT_BYTES + 4, pages, true);
  }
  return head;
}

/** Bytes of a MemoryPages head with `count` extents: where the page data begins. */
export function memoryPagesHeadBytes(count: number): number {
  return alignUp(MEMORY_PAGES_HEADER_BYTES + count * MEMORY_EXTENT_BYTES, MEMORY_PAGE_BYTES);
}

/** Maximal runs of an ascending page list, as [first, count] pairs. */
export function extentsOf(pages: Uint32Array): Uint32Array {
  const out: number[] = [];
  for (let i = 0; i < pages.length; ) {
    const first = pages[i]!;
    let j = i + 1;
    while (j < pages.length && pages[j] === first + (j - i)) j++;
    assert(j === pages.length || pages[j]! > first + (j - i), 'page list is not ascending');
    out.push(first, j - i);
    i = j;
  }
  return Uint32Array.from(out);
}

export interface MemoryPagesHead {
  memoryBytes: number;
  /** [first page, page count] pairs, validated: maximal ascending runs inside memory. */
  extents: Uint32Array;
  storedPages: number;
  /** Offset of the first stored page from the start of the section. */
  dataOffset: number;
}

/**
 * Validates a MemoryPages head against the section's length (untrusted input: answered, never
 * asserted). `fixed` is the first 16 bytes; `table` is read by the caller once the count is known
 * to fit (see memoryPagesTableBytes).
 */
export function parseMemoryPagesCount(fixed: Uint8Array, sectionBytes: number): { memoryBytes: number; count: number } {
  assert(fixed.length === MEMORY_PAGES_HEADER_BYTES);
  if (sectionBytes < MEMORY_PAGES_HEADER_BYTES) fail('ERR_CKPT_MALFORMED', `MemoryPages section of ${sectionBytes} bytes is shorter than its header`);
  const view = new DataView(fixed.buffer, fixed.byteOffset, fixed.byteLength);
  const memoryBytes64 = view.getBigUint64(0, true);
  if (memoryBytes64 > BigInt(MEMORY_BYTES_MAX) || memoryBytes64 % 65536n !== 0n) fail('ERR_CKPT_MALFORMED', `memory size ${memoryBytes64} is not whole wasm pages within 4 GiB`);
  const count = view.getUint32(8, true);
  if (view.getUint32(12, true) !== 0) fail('ERR_CKPT_MALFORMED', 'MemoryPages reserved field is not zero');
  const memoryBytes = Number(memoryBytes64);
  if (count > Math.ceil(memoryBytes / MEMORY_PAGE_BYTES / 2)) fail('ERR_CKPT_MALFORMED', `${count} extents cannot fit a memory of ${memoryBytes} bytes`);
  if (memoryPagesHeadBytes(count) > sectionBytes) fail('ERR_CKPT_MALFORMED', `the extent table of ${count} extents runs past the section`);
  return { memoryBytes, count };
}

/** Validates the extent table and padding (the whole head, `memoryPagesHeadBytes(count)` bytes). */
/** Every page of (first, count) extents, ascending. */
export function pagesOfExtents(extents: Uint32Array): Uint32Array {
  let n = 0;
  for (let i = 1; i < extents.length; i += 2) n += extents[i]!;
  const out = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < extents.length; i += 2) for (let p = extents[i]!, end = p + extents[i + 1]!; p < end; p++) out[k++] = p;
  return out;
}

export const MEMORY_RUNS_HEADER_BYTES = 8;

export function memoryRunsHeadBytes(count: number): number {
  return MEMORY_RUNS_HEADER_BYTES + count * MEMORY_EXTENT_BYTES;
}

export function encodeMemoryRunsHead(extents: Uint32Array): Uint8Array {
  assert(extents.length % 2 === 0);
  const out = new Uint8Array(memoryRunsHeadBytes(extents.length / 2));
  const view = new DataView(out.buffer);
  view.setUint32(0, extents.length / 2, true);
  for (let i = 0; i < extents.length; i++) view.setUint32(MEMORY_RUNS_HEADER_BYTES + i * 4, extents[i]!, true);
  return out;
}

/** The extent count of a MemoryRuns head, bounded by the section's length (so the head can be read whole). */
export function parseMemoryRunsCount(fixed: Uint8Array, sectionBytes: number): number {
  if (sectionBytes < MEMORY_RUNS_HEADER_BYTES || fixed.length < MEMORY_RUNS_HEADER_BYTES) fail('ERR_CKPT_MALFORMED', 'MemoryRuns section is shorter than its header');
  const view = new DataView(fixed.buffer, fixed.byteOffset, fixed.byteLength);
  const count = view.getUint32(0, true);
  if (view.getUint32(4, true) !== 0) fail('ERR_CKPT_MALFORMED', 'MemoryRuns reserved field is not zero');
  if (count > MEMORY_EXTENTS_MAX || memoryRunsHeadBytes(count) > sectionBytes) fail('ERR_CKPT_MALFORMED', `MemoryRuns extent table (${count} extents) does not fit its section`);
  return count;
}

/**
 * Reads `count` extents (u32 first page, u32 page count) at byte `at` of a head: each non-empty,
 * after the one before it without touching it (runs are maximal), and inside memory.
 */
function parseExtents(view: DataView, at: number, count: number, memoryPages: number, what: string): { extents: Uint32Array; pages: number } {
  const extents = new Uint32Array(count * 2);
  let prevEnd = -1;
  let pages = 0;
  for (let i = 0; i < count; i++) {
    const first = view.getUint32(at + i * MEMORY_EXTENT_BYTES, true);
    const n = view.getUint32(at + i * MEMORY_EXTENT_BYTES + 4, true);
    if (n === 0) fail('ERR_CKPT_MALFORMED', `${what} ${i} is empty`);
    if (first <= prevEnd) fail('ERR_CKPT_MALFORMED', `${what} ${i} is out of order, overlaps or touches the one before it`);
    if (first + n > memoryPages) fail('ERR_CKPT_MALFORMED', `${what} ${i} runs past the end of memory`);
    prevEnd = first + n;
    pages += n;
    extents[2 * i] = first;
    extents[2 * i + 1] = n;
  }
  return { extents, pages };
}

/** The run-page extents of a MemoryRuns head (validated like MemoryPages extents), and their pages. */
export function parseMemoryRunsHead(head: Uint8Array, memoryBytes: number): { extents: Uint32Array; pages: number } {
  const count = (head.length - MEMORY_RUNS_HEADER_BYTES) / MEMORY_EXTENT_BYTES;
  assert(Number.isInteger(count) && count >= 0);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  return parseExtents(view, MEMORY_RUNS_HEADER_BYTES, count, memoryBytes / MEMORY_PAGE_BYTES, 'run extent');
}

export function parseMemoryPagesHead(head: Uint8Array, sectionBytes: number): MemoryPagesHead {
  const { memoryBytes, count } = parseMemoryPagesCount(head.subarray(0, MEMORY_PAGES_HEADER_BYTES), sectionBytes);
  assert(head.length === memoryPagesHeadBytes(count));
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const { extents, pages: stored } = parseExtents(view, MEMORY_PAGES_HEADER_BYTES, count, memoryBytes / MEMORY_PAGE_BYTES, 'extent');
  for (let at = MEMORY_PAGES_HEADER_BYTES + count * MEMORY_EXTENT_BYTES; at < head.length; at++) {
    if (head[at] !== 0) fail('ERR_CKPT_MALFORMED', 'non-zero padding after the extent table');
  }
  const dataOffset = head.length;
  if (dataOffset + stored * MEMORY_PAGE_BYTES !== sectionBytes) fail('ERR_CKPT_MALFORMED', `MemoryPages section is ${sectionBytes} bytes; its extents need ${dataOffset + stored * MEMORY_PAGE_BYTES}`);
  return { memoryBytes, extents, storedPages: stored, dataOffset };
}
