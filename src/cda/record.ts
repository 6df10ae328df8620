// Commit records: what one committed cycle changes in the image of the areas
// (src/cda/layout.ts), the same bytes whether they go to disk or to a backup.
//
//   raw record = encodePlain({ v: 1, kind: 'delta', cycle, layout, delta })
//              | encodePlain({ v: 1, kind: 'full',  cycle, layout, image })
//
//   layout  [id, address, length] per registered area, ids ascending
//   delta   a page delta (src/checkpoint/delta-codec.ts) over the image's slots:
//           FULL pages (page tracking), changed byte runs (diff), or the
//           recorded stores as runs (emul)
//   image   the whole image (a base on disk, a resync of a backup)
//
// Applying a delta record to the state of cycle - 1 gives the state of cycle:
// when the layout changed, areas kept with the same id, address and length
// keep their bytes and new ones start at zero (layout.ts `relayout`), then the
// delta is applied. Every record is validated whole before anything changes.
import { decodePlain, encodePlain } from '../checkpoint/plain-codec.js';
import { applyDelta, DELTA_HEADER_BYTES, DELTA_HEADER_OFFSETS, DELTA_MAGIC, DELTA_VERSION, DeltaKind } from '../checkpoint/delta-codec.js';
import { isUnderstudyError } from '../errors.js';
import { PAGE_BYTES } from '../native.js';
import { assert } from '../util/assert.js';
import type { PlainObject } from '../util/plain.js';
import { cdaError } from './codes.js';
import { CDA_AREA_BYTES_LIMIT, layoutFromNumbers, layoutToNumbers, place, relayout, sameLayout, type AreaSpec } from './layout.js';

export const CDA_RECORD_VERSION = 1;

/** The areas as of one committed cycle. Cycle 0 = nothing committed (empty layout and image). */
export interface CommittedState {
  cycle: number;
  layout: AreaSpec[];
  image: Uint8Array;
}

export function emptyState(): CommittedState {
  return { cycle: 0, layout: [], image: new Uint8Array(0) };
}

export type CdaRecord =
  | { kind: 'delta'; cycle: number; layout: AreaSpec[]; delta: Uint8Array }
  | { kind: 'full'; cycle: number; layout: AreaSpec[]; image: Uint8Array };

export function encodeRecord(r: CdaRecord): Uint8Array {
  const body: PlainObject = { v: CDA_RECORD_VERSION, kind: r.kind, cycle: r.cycle, layout: layoutToNumbers(r.layout) };
  if (r.kind === 'delta') body.delta = r.delta;
  else body.image = r.image;
  return encodePlain(body);
}

/** A record from untrusted bytes: shape, version, cycle, layout and sizes checked (ERR_CDA_RECORD). */
export function decodeRecord(raw: Uint8Array, areaBytesMax = CDA_AREA_BYTES_LIMIT): CdaRecord {
  let v: unknown;
  try {
    v = decodePlain(raw);
  } catch (e) {
    if (isUnderstudyError(e)) throw cdaError('ERR_CDA_RECORD', `commit record does not decode: ${e.message}`, { cause: e });
    throw e;
  }
  const bad = (why: string) => cdaError('ERR_CDA_RECORD', `commit record: ${why}`);
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) throw bad('not an object');
  const o = v as Record<string, unknown>;
  if (o.v !== CDA_RECORD_VERSION) throw bad(`version ${String(o.v)} (reads ${CDA_RECORD_VERSION})`);
  if (typeof o.cycle !== 'number' || !Number.isSafeInteger(o.cycle) || o.cycle < 1) throw bad('cycle is not a positive integer');
  const layout = layoutFromNumbers(o.layout, areaBytesMax);
  if (o.kind === 'delta') {
    if (!(o.delta instanceof Uint8Array) || o.delta.length < DELTA_HEADER_BYTES) throw bad('delta is not a page delta');
    return { kind: 'delta', cycle: o.cycle, layout, delta: o.delta };
  }
  if (o.kind === 'full') {
    if (!(o.image instanceof Uint8Array)) throw bad('image is not bytes');
    if (o.image.length !== place(layout).slots * PAGE_BYTES) throw bad(`image of ${o.image.length} bytes for a layout of ${place(layout).slots} slots`);
    checkOutsideZero(layout, o.image);
    return { kind: 'full', cycle: o.cycle, layout, image: o.image };
  }
  throw bad(`unknown kind ${String(o.kind)}`);
}

/** Bytes of slots outside their area must be zero (layout.ts): a full image that says otherwise is not ours. */
function checkOutsideZero(layout: readonly AreaSpec[], image: Uint8Array): void {
  for (const a of place(layout).areas) {
    const start = a.slotBase * PAGE_BYTES;
    const head = a.address - a.firstPage * PAGE_BYTES;
    const tail = start + head + a.length;
    const end = (a.slotBase + a.pages) * PAGE_BYTES;
    for (let i = start; i < start + head; i++) if (image[i] !== 0) throw cdaError('ERR_CDA_RECORD', `image: byte before area ${a.id} is not zero`);
    for (let i = tail; i < end; i++) if (image[i] !== 0) throw cdaError('ERR_CDA_RECORD', `image: byte after area ${a.id} is not zero`);
  }
}

/**
 * The state after `record`. A delta must follow `state` (cycle + 1); a full
 * record replaces any state. All or nothing: on a refusal (ERR_CDA_RECORD)
 * `state` is unchanged. A delta on an unchanged layout is applied in place
 * (state.image is the result's image); otherwise the image is new (`alloc`).
 */
export function applyRecord(state: CommittedState, record: CdaRecord, alloc?: (bytes: number) => Uint8Array): CommittedState {
  if (record.kind === 'full') {
    const image = alloc ? alloc(record.image.length) : new Uint8Array(record.image.length);
    image.set(record.image);
    return { cycle: record.cycle, layout: record.layout, image };
  }
  if (record.cycle !== state.cycle + 1) throw cdaError('ERR_CDA_RECORD', `commit record ${record.cycle} does not follow cycle ${state.cycle}`);
  const image = sameLayout(state.layout, record.layout) ? state.image : relayout(state.layout, state.image, record.layout, alloc);
  try {
    applyDelta(record.delta, image);
  } catch (e) {
    if (isUnderstudyError(e)) throw cdaError('ERR_CDA_RECORD', `commit record ${record.cycle}: ${e.message}`, { cause: e });
    throw e;
  }
  return { cycle: record.cycle, layout: record.layout, image };
}

/**
 * A page delta (delta-codec.ts format) that writes recorded byte ranges: `ranges`
 * holds (image offset, length) pairs, ascending and disjoint; `bytes` their
 * contents back to back. Every range becomes runs of the slot pages it covers.
 */
export function rangesToDelta(ranges: Uint32Array, count: number, bytes: Uint8Array): Uint8Array {
  // Split at page boundaries and size the encoding.
  const pieces: number[] = []; // page, offset in page, length, offset in bytes
  let at = 0;
  let prevEnd = -1;
  for (let i = 0; i < count; i++) {
    let off = ranges[2 * i]!;
    let len = ranges[2 * i + 1]!;
    assert(len > 0 && off >= prevEnd, 'ranges ascending and disjoint');
    prevEnd = off + len;
    while (len > 0) {
      const page = Math.floor(off / PAGE_BYTES);
      const inPage = off - page * PAGE_BYTES;
      const n = Math.min(len, PAGE_BYTES - inPage);
      pieces.push(page, inPage, n, at);
      at += n;
      off += n;
      len -= n;
    }
  }
  assert(at <= bytes.length, 'bytes hold every range');
  let size = DELTA_HEADER_BYTES;
  let entries = 0;
  for (let p = 0; p < pieces.length; p += 4) {
    if (p === 0 || pieces[p]! !== pieces[p - 4]!) {
      size += 5 + 2; // entry head + run count
      entries++;
    }
    size += 4 + pieces[p + 2]!;
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  const o = DELTA_HEADER_OFFSETS;
  view.setUint32(o.magic, DELTA_MAGIC, true);
  view.setUint16(o.version, DELTA_VERSION, true);
  view.setUint32(o.entryCount, entries, true);
  view.setUint32(o.pageBytes, PAGE_BYTES, true);
  view.setBigUint64(o.totalBytes, BigInt(size), true);
  let w = DELTA_HEADER_BYTES;
  let countAt = -1;
  let runs = 0;
  for (let p = 0; p < pieces.length; p += 4) {
    const page = pieces[p]!;
    if (p === 0 || page !== pieces[p - 4]!) {
      if (countAt >= 0) view.setUint16(countAt, runs, true);
      view.setUint32(w, page, true);
      out[w + 4] = DeltaKind.runs;
      countAt = w + 5;
      w += 7;
      runs = 0;
    }
    view.setUint16(w, pieces[p + 1]!, true);
    view.setUint16(w + 2, pieces[p + 2]!, true);
    out.set(bytes.subarray(pieces[p + 3]!, pieces[p + 3]! + pieces[p + 2]!), w + 4);
    w += 4 + pieces[p + 2]!;
    runs++;
  }
  if (countAt >= 0) view.setUint16(countAt, runs, true);
  assert(w === size, 'delta size as computed');
  return out;
}
