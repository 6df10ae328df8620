// The areas a program declared and where their committed bytes live.
//
// The committed copy of the areas (the "image") is laid out in *slots*: each
// area gets the 4 KiB pages it overlaps, in id order, and keeps its in-page
// offsets, so a memory page maps to one slot page per area and the per-page
// delta encoder (src/checkpoint/delta-codec.ts) works on the image unchanged.
// Bytes of a slot outside its area (the ends of an area that does not start or
// end on a page boundary) are always zero: they are never committed.
//
//   area { id 1, address 0x11800, length 0x2000 }  -> slots 0..2 (memory pages 0x11..0x13)
//   area { id 2, address 0x20000, length 0x1000 }  -> slot 3
import { PAGE_BYTES } from '../native.js';
import { assert } from '../util/assert.js';
import { cdaError } from './codes.js';

/** Areas one program may declare at once: the paper's applications declare a handful. */
export const CDA_AREAS_MAX = 64;
/** Default bound of the bytes in all areas together (the image is about this large, in memory and per full record). */
export const CDA_AREA_BYTES_MAX_DEFAULT = 32 * 1024 * 1024;
/**
 * The most `areaBytesMax` may be raised to: a full image, with its two edge pages per
 * area, its layout and the message around it, must fit one replication frame
 * (FRAME_PAYLOAD_BYTES_MAX, 64 MiB) even when it does not compress.
 */
export const CDA_AREA_BYTES_LIMIT = 48 * 1024 * 1024;
/** wasm32: every address and length is below 2^32. */
export const CDA_ADDRESS_LIMIT = 2 ** 32;
/** Area ids are i32 answers of cda_register; they count up and are never reused in one run. */
export const CDA_AREA_ID_MAX = 0x7fffffff;

export interface AreaSpec {
  id: number;
  /** Byte offset in the memory. */
  address: number;
  length: number;
}

/** An area with its place in the image. */
export interface PlacedArea extends AreaSpec {
  /** First memory page the area overlaps. */
  firstPage: number;
  /** Memory pages it overlaps (= its slots). */
  pages: number;
  /** Its first slot in the image. */
  slotBase: number;
}

export interface Placement {
  areas: readonly PlacedArea[];
  /** Slots in all: the image is slots * 4096 bytes. */
  slots: number;
}

/** Where each area of `layout` (ascending ids) lives in the image. */
export function place(layout: readonly AreaSpec[]): Placement {
  let slotBase = 0;
  const areas = layout.map((a) => {
    const firstPage = Math.floor(a.address / PAGE_BYTES);
    const pages = Math.ceil((a.address + a.length) / PAGE_BYTES) - firstPage;
    const placed: PlacedArea = { ...a, firstPage, pages, slotBase };
    slotBase += pages;
    return placed;
  });
  return { areas, slots: slotBase };
}

/** Image offset of memory byte `address` of `area` (which must contain it). */
export function imageOffset(area: PlacedArea, address: number): number {
  assert(address >= area.address && address <= area.address + area.length, 'address inside the area');
  return area.slotBase * PAGE_BYTES + (address - area.firstPage * PAGE_BYTES);
}

export function sameArea(a: AreaSpec, b: AreaSpec): boolean {
  return a.id === b.id && a.address === b.address && a.length === b.length;
}

export function sameLayout(a: readonly AreaSpec[], b: readonly AreaSpec[]): boolean {
  return a.length === b.length && a.every((x, i) => sameArea(x, b[i]!));
}

export function layoutBytes(layout: readonly AreaSpec[]): number {
  return layout.reduce((n, a) => n + a.length, 0);
}

/** The layout as numbers for a record: [id, address, length] per area. */
export function layoutToNumbers(layout: readonly AreaSpec[]): number[] {
  return layout.flatMap((a) => [a.id, a.address, a.length]);
}

/**
 * A layout from untrusted numbers (a record, a message): every area inside
 * wasm32 memory, non-empty, ids strictly ascending, areas disjoint, within the
 * count and byte bounds. Answers ERR_CDA_RECORD with the reason.
 */
export function layoutFromNumbers(v: unknown, areaBytesMax = CDA_AREA_BYTES_LIMIT): AreaSpec[] {
  const bad = (why: string) => cdaError('ERR_CDA_RECORD', `area layout: ${why}`);
  if (!Array.isArray(v) || v.length % 3 !== 0) throw bad('not a list of (id, address, length)');
  if (v.length / 3 > CDA_AREAS_MAX) throw bad(`more than ${CDA_AREAS_MAX} areas`);
  const layout: AreaSpec[] = [];
  for (let i = 0; i < v.length; i += 3) {
    const [id, address, length] = [v[i], v[i + 1], v[i + 2]];
    if (![id, address, length].every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) throw bad('a field is not a non-negative integer');
    const a = { id: id as number, address: address as number, length: length as number };
    if (a.id < 1 || a.id > CDA_AREA_ID_MAX) throw bad(`id ${a.id} out of range`);
    if (a.length < 1 || a.address + a.length > CDA_ADDRESS_LIMIT) throw bad(`area ${a.id} is empty or past 4 GiB`);
    if (layout.length && layout[layout.length - 1]!.id >= a.id) throw bad('ids are not strictly ascending');
    layout.push(a);
  }
  const overlap = findOverlap(layout);
  if (overlap) throw bad(`areas ${overlap[0]} and ${overlap[1]} overlap`);
  if (layoutBytes(layout) > areaBytesMax) throw bad(`more than ${areaBytesMax} bytes in areas`);
  return layout;
}

/** Two ids of overlapping areas, or null. */
export function findOverlap(layout: readonly AreaSpec[]): [number, number] | null {
  const byAddress = [...layout].sort((a, b) => a.address - b.address);
  for (let i = 1; i < byAddress.length; i++) {
    const prev = byAddress[i - 1]!;
    const cur = byAddress[i]!;
    if (prev.address + prev.length > cur.address) return [prev.id, cur.id];
  }
  return null;
}

/**
 * The image for `next` made from the image of `prev`: an area present in both
 * with the same id, address and length keeps its bytes; any other starts at
 * zero (it is new; its whole content is in the next commit). `alloc` makes the
 * buffer (shared when another thread reads it).
 */
export function relayout(prev: readonly AreaSpec[], prevImage: Uint8Array, next: readonly AreaSpec[], alloc: (bytes: number) => Uint8Array = (n) => new Uint8Array(n)): Uint8Array {
  const from = place(prev);
  const to = place(next);
  assert(prevImage.length === from.slots * PAGE_BYTES, 'image matches its layout');
  const image = alloc(to.slots * PAGE_BYTES);
  assert(image.length === to.slots * PAGE_BYTES);
  for (const area of to.areas) {
    const old = from.areas.find((o) => sameArea(o, area));
    if (!old) continue;
    image.set(prevImage.subarray(old.slotBase * PAGE_BYTES, (old.slotBase + old.pages) * PAGE_BYTES), area.slotBase * PAGE_BYTES);
  }
  return image;
}

/** A SharedArrayBuffer-backed image (the main thread reads the worker's committed copy). */
export function sharedAlloc(bytes: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(Math.max(bytes, 0)));
}
