import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import {
  DELTA_HEADER_BYTES,
  DELTA_HEADER_OFFSETS,
  DELTA_MAGIC,
  DELTA_VERSION,
  DeltaKind,
  applyDelta,
  deltaBoundBytes,
  encodeDelta,
  growShadow,
  readDeltaHeader,
} from './delta-codec.js';
import { native, PAGE_BYTES } from '../native.js';
import { isUnderstudyError } from '../errors.js';
import { Prng } from '../util/prng.js';

const P = PAGE_BYTES;

// ---- a reference implementation of the documented format, in plain TS ----

/** The encoder as the format comment describes it (no run merging, RUNS when smaller than a page). */
function referenceEncode(oldImage: Uint8Array, newImage: Uint8Array, pages: number[]): Uint8Array {
  const parts: number[] = [];
  const u16 = (v: number) => parts.push(v & 0xff, v >>> 8);
  const u32 = (v: number) => (u16(v & 0xffff), u16(v >>> 16));
  let entries = 0;
  for (const p of pages) {
    const prev = oldImage.subarray(p * P, (p + 1) * P);
    const next = newImage.subarray(p * P, (p + 1) * P);
    if (Buffer.compare(Buffer.from(prev), Buffer.from(next)) === 0) continue;
    entries++;
    u32(p);
    if (next.every((b) => b === 0)) {
      parts.push(DeltaKind.zero);
      continue;
    }
    const runs: [number, number][] = [];
    for (let w = 0; w < P / 8; ) {
      const differs = (i: number) => prev.subarray(i * 8, i * 8 + 8).some((b, k) => b !== next[i * 8 + k]);
      if (!differs(w)) {
        w++;
        continue;
      }
      const first = w;
      while (w < P / 8 && differs(w)) w++;
      let start = first * 8;
      while (prev[start] === next[start]) start++;
      let end = w * 8;
      while (prev[end - 1] === next[end - 1]) end--;
      runs.push([start, end]);
    }
    const body = 2 + runs.reduce((a, [s, e]) => a + 4 + e - s, 0);
    if (body < P) {
      parts.push(DeltaKind.runs);
      u16(runs.length);
      for (const [s, e] of runs) {
        u16(s);
        u16(e - s);
        parts.push(...next.subarray(s, e));
      }
    } else {
      parts.push(DeltaKind.full, ...next);
    }
  }
  const out = new Uint8Array(DELTA_HEADER_BYTES + parts.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, DELTA_MAGIC, true);
  view.setUint16(4, DELTA_VERSION, true);
  view.setUint32(8, entries, true);
  view.setUint32(12, P, true);
  view.setBigUint64(16, BigInt(out.length), true);
  out.set(parts, DELTA_HEADER_BYTES);
  return out;
}

/** Validates like the spec says; returns the new memory, or undefined when the input must be refused. */
function referenceApply(enc: Uint8Array, memory: Uint8Array): Uint8Array | undefined {
  const v = new DataView(enc.buffer, enc.byteOffset, enc.byteLength);
  if (enc.length < 24 || v.getUint32(0, true) !== DELTA_MAGIC || v.getUint16(4, true) !== DELTA_VERSION || v.getUint16(6, true) !== 0) return undefined;
  if (v.getUint32(12, true) !== P || v.getBigUint64(16, true) !== BigInt(enc.length)) return undefined;
  const out = memory.slice();
  const pages = memory.length / P;
  let pos = 24;
  let last = -1;
  for (let i = v.getUint32(8, true); i > 0; i--) {
    if (enc.length - pos < 5) return undefined;
    const page = v.getUint32(pos, true);
    const kind = enc[pos + 4];
    if (page >= pages || page <= last) return undefined;
    last = page;
    pos += 5;
    const dst = out.subarray(page * P, (page + 1) * P);
    if (kind === 0) dst.fill(0);
    else if (kind === 1) {
      if (enc.length - pos < P) return undefined;
      dst.set(enc.subarray(pos, pos + P));
      pos += P;
    } else if (kind === 2) {
      if (enc.length - pos < 2) return undefined;
      const n = v.getUint16(pos, true);
      pos += 2;
      if (n === 0) return undefined;
      let end = 0;
      for (let r = 0; r < n; r++) {
        if (enc.length - pos < 4) return undefined;
        const off = v.getUint16(pos, true);
        const len = v.getUint16(pos + 2, true);
        pos += 4;
        if (len === 0 || off < end || off + len > P || enc.length - pos < len) return undefined;
        dst.set(enc.subarray(pos, pos + len), off);
        pos += len;
        end = off + len;
      }
    } else return undefined;
  }
  return pos === enc.length ? out : undefined;
}

/** Page indices that have an entry. */
function entryPages(enc: Uint8Array): number[] {
  const v = new DataView(enc.buffer, enc.byteOffset, enc.byteLength);
  const pages: number[] = [];
  let pos = 24;
  for (let i = v.getUint32(8, true); i > 0; i--) {
    pages.push(v.getUint32(pos, true));
    const kind = enc[pos + 4];
    pos += 5;
    if (kind === 1) pos += P;
    if (kind === 2) {
      const n = v.getUint16(pos, true);
      pos += 2;
      for (let r = 0; r < n; r++) pos += 4 + v.getUint16(pos + 2, true);
    }
  }
  return pages;
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

function gather(image: Uint8Array, pages: number[]): Uint8Array {
  const staged = new Uint8Array(pages.length * P);
  pages.forEach((p, i) => staged.set(image.subarray(p * P, (p + 1) * P), i * P));
  return staged;
}

/** Encodes `pages` of newImage against a shadow of oldImage grown to newImage's size. */
function encodeImages(oldImage: Uint8Array, newImage: Uint8Array, pages: number[]) {
  const shadow = growShadow(oldImage.slice(), newImage.length);
  const { encoded, counts } = encodeDelta(gather(newImage, pages), Uint32Array.from(pages), shadow);
  return { encoded: encoded.slice(), counts, shadow };
}

// ---- scenarios ----

type PageChange = 'unchanged' | 'fewWords' | 'scattered' | 'whole' | 'zero' | 'prefix';

const pageChange = fc.constantFrom<PageChange>('unchanged', 'fewWords', 'scattered', 'whole', 'zero', 'prefix');
const scenario = fc.record({
  oldPages: fc.integer({ min: 1, max: 10 }),
  grownPages: fc.integer({ min: 0, max: 3 }),
  oldKinds: fc.array(fc.constantFrom('zero', 'random', 'sparse'), { minLength: 13, maxLength: 13 }),
  changes: fc.array(pageChange, { minLength: 13, maxLength: 13 }),
  extra: fc.array(fc.boolean(), { minLength: 13, maxLength: 13 }),
  seed: fc.integer({ min: 1, max: 0x7fffffff }),
});

function rng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.nextU32();
}

function build(sc: { oldPages: number; grownPages: number; oldKinds: string[]; changes: PageChange[]; extra: boolean[]; seed: number }) {
  const r = rng(sc.seed);
  const oldImage = new Uint8Array(sc.oldPages * P);
  for (let p = 0; p < sc.oldPages; p++) {
    const page = oldImage.subarray(p * P, (p + 1) * P);
    if (sc.oldKinds[p] === 'random') for (let i = 0; i < P; i++) page[i] = r() & 0xff;
    if (sc.oldKinds[p] === 'sparse') for (let k = 0; k < 20; k++) page[r() % P] = r() & 0xff;
  }
  const total = sc.oldPages + sc.grownPages;
  const newImage = new Uint8Array(total * P);
  newImage.set(oldImage);
  for (let p = 0; p < total; p++) {
    const page = newImage.subarray(p * P, (p + 1) * P);
    switch (sc.changes[p]) {
      case 'fewWords':
        for (let k = 1 + (r() % 3); k > 0; k--) {
          const w = (r() % (P / 8)) * 8;
          for (let b = r() % 8; b < 8; b += 1 + (r() % 4)) page[w + b] = r() & 0xff;
        }
        break;
      case 'scattered':
        for (let k = 1 + (r() % 300); k > 0; k--) page[r() % P] = r() & 0xff;
        break;
      case 'whole':
        for (let i = 0; i < P; i++) page[i] = r() & 0xff;
        break;
      case 'zero':
        page.fill(0);
        break;
      case 'prefix':
        page.fill(0xa5, 0, 1 + (r() % P));
        break;
      default:
        break;
    }
  }
  const changed: number[] = [];
  const listed: number[] = [];
  const oldGrown = growShadow(oldImage, newImage.length);
  for (let p = 0; p < total; p++) {
    const differs = !same(oldGrown.subarray(p * P, (p + 1) * P), newImage.subarray(p * P, (p + 1) * P));
    if (differs) changed.push(p);
    if (differs || sc.extra[p]) listed.push(p);
  }
  return { oldImage, newImage, changed, listed };
}

// ---- properties ----

test('property: encode then apply rebuilds the new image; the shadow becomes it; the bytes match the reference encoder', () => {
  fc.assert(
    fc.property(scenario, (sc) => {
      const { oldImage, newImage, changed, listed } = build(sc);
      const { encoded, counts, shadow } = encodeImages(oldImage, newImage, listed);
      assert.ok(same(shadow, newImage), 'the shadow is the new image');
      const replica = growShadow(oldImage.slice(), newImage.length);
      assert.equal(applyDelta(encoded, replica), changed.length);
      assert.ok(same(replica, newImage), 'apply rebuilds the new image');
      assert.deepEqual(entryPages(encoded), changed, 'exactly the changed pages have entries');
      assert.equal(counts.unchanged, listed.length - changed.length);
      assert.equal(counts.bytes, encoded.length);
      assert.ok(same(encoded, referenceEncode(growShadow(oldImage, newImage.length), newImage, listed)), 'the bytes are the documented format');
      assert.equal(readDeltaHeader(encoded).entryCount, changed.length);
    }),
    { numRuns: 300 },
  );
});

test('property: the encoding is deterministic and independent of extra unchanged pages in the list', () => {
  fc.assert(
    fc.property(scenario, (sc) => {
      const { oldImage, newImage, changed, listed } = build(sc);
      const exact = encodeImages(oldImage, newImage, changed).encoded;
      const superset = encodeImages(oldImage, newImage, listed).encoded;
      const all = encodeImages(oldImage, newImage, [...Array(newImage.length / P).keys()]).encoded;
      assert.ok(same(exact, superset));
      assert.ok(same(exact, all));
      assert.ok(same(exact, encodeImages(oldImage, newImage, changed).encoded), 'same input, same bytes');
    }),
    { numRuns: 150 },
  );
});

test('a page of few changed words ships as short runs; a rewritten page as FULL; a cleared page as ZERO', () => {
  const oldImage = new Uint8Array(3 * P).fill(7);
  const newImage = oldImage.slice();
  newImage[100] = 1;
  newImage[3000] = 2;
  newImage[3001] = 3;
  for (let i = P; i < 2 * P; i++) newImage[i] = i & 0xff;
  newImage.fill(0, 2 * P);
  const { encoded, counts } = encodeImages(oldImage, newImage, [0, 1, 2]);
  assert.deepEqual({ ...counts }, { bytes: encoded.length, unchanged: 0, zero: 1, full: 1, runs: 1, runSegments: 2, runBytes: 3 });
  // header + runs entry (5 + 2 + 4+1 + 4+2) + full entry (5 + 4096) + zero entry (5)
  assert.equal(encoded.length, DELTA_HEADER_BYTES + 18 + 5 + P + 5);
});

// ---- untrusted input ----

function sampleEncoding(): { encoded: Uint8Array; oldImage: Uint8Array } {
  const oldImage = new Uint8Array(6 * P);
  for (let i = 0; i < oldImage.length; i++) oldImage[i] = (i * 31) >> 3;
  const newImage = oldImage.slice();
  const flip = (i: number, x: number) => (newImage[i] = newImage[i]! ^ x);
  flip(5, 1);
  flip(P + 17, 2);
  flip(P + 900, 3);
  flip(P + 4095, 4);
  newImage.fill(0, 2 * P, 3 * P);
  for (let i = 4 * P; i < 5 * P; i++) flip(i, 0x3c);
  return { encoded: encodeImages(oldImage, newImage, [0, 1, 2, 3, 4]).encoded, oldImage };
}

function expectRefused(encoded: Uint8Array, memory: Uint8Array, why: string): void {
  const before = memory.slice();
  assert.throws(() => applyDelta(encoded, memory), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'), why);
  assert.ok(same(memory, before), `${why}: memory untouched`);
}

function withTotal(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  if (copy.length >= DELTA_HEADER_BYTES) new DataView(copy.buffer).setBigUint64(DELTA_HEADER_OFFSETS.totalBytes, BigInt(copy.length), true);
  return copy;
}

test('every truncation is refused and writes nothing, also with the total length patched to match', () => {
  const { encoded, oldImage } = sampleEncoding();
  for (let n = 0; n < encoded.length; n++) {
    expectRefused(encoded.subarray(0, n), oldImage.slice(), `truncated to ${n}`);
    expectRefused(withTotal(encoded.subarray(0, n)), oldImage.slice(), `truncated to ${n}, total patched`);
  }
});

test('property: a mutated encoding is either refused untouched or applied exactly as the reference decoder does', () => {
  const { encoded, oldImage } = sampleEncoding();
  fc.assert(
    fc.property(
      // Half the edits land in the headers and run tables (the first 80 bytes), where the structure is.
      fc.array(fc.record({ at: fc.oneof(fc.nat(80), fc.nat(encoded.length - 1)), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      fc.integer({ min: 0, max: 64 }),
      (mutations, patchTotal, cut) => {
        let bytes: Uint8Array = encoded.slice();
        for (const m of mutations) bytes[m.at] = m.value;
        if (patchTotal) bytes = withTotal(bytes.subarray(0, Math.max(0, bytes.length - cut)));
        const memory = oldImage.slice();
        const expected = referenceApply(bytes, memory);
        if (expected === undefined) expectRefused(bytes, memory, 'mutation');
        else {
          applyDelta(bytes, memory);
          assert.ok(same(memory, expected));
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test('hand-made malformed encodings are refused with a reason', () => {
  const mem = new Uint8Array(4 * P);
  const enc = (entries: number[]) => {
    const bytes = new Uint8Array(DELTA_HEADER_BYTES + entries.length);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, DELTA_MAGIC, true);
    v.setUint16(4, DELTA_VERSION, true);
    v.setUint32(12, P, true);
    bytes.set(entries, DELTA_HEADER_BYTES);
    return { bytes, v, count: (n: number) => (v.setUint32(8, n, true), withTotal(bytes)) };
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ['zero runs', enc([1, 0, 0, 0, 2, 0, 0]).count(1), /no runs/],
    ['empty run', enc([1, 0, 0, 0, 2, 1, 0, 5, 0, 0, 0]).count(1), /empty run/],
    ['run past the page', enc([1, 0, 0, 0, 2, 1, 0, 0xff, 0x0f, 2, 0, 9, 9]).count(1), /past the end of the page/],
    ['overlapping runs', enc([1, 0, 0, 0, 2, 2, 0, 10, 0, 2, 0, 9, 9, 11, 0, 1, 0, 9]).count(1), /overlap/],
    ['descending runs', enc([1, 0, 0, 0, 2, 2, 0, 20, 0, 1, 0, 9, 10, 0, 1, 0, 9]).count(1), /overlap or are not ascending/],
    ['page past memory', enc([4, 0, 0, 0, 0]).count(1), /past the end of memory/],
    ['repeated page', enc([1, 0, 0, 0, 0, 1, 0, 0, 0, 0]).count(2), /strictly ascending/],
    ['descending pages', enc([2, 0, 0, 0, 0, 1, 0, 0, 0, 0]).count(2), /strictly ascending/],
    ['unknown kind', enc([1, 0, 0, 0, 3]).count(1), /unknown entry kind/],
    ['entry count too large', enc([1, 0, 0, 0, 0]).count(2), /more entries than bytes|truncated/],
    ['bytes after the last entry', enc([1, 0, 0, 0, 0, 9]).count(1), /bytes after the last entry/],
  ];
  for (const [why, bytes, message] of cases) {
    const memory = mem.slice().fill(1);
    assert.throws(() => applyDelta(bytes, memory), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED') && message.test((e as Error).message), why);
    assert.ok(memory.every((b) => b === 1), `${why}: memory untouched`);
  }
  const header = (field: keyof typeof DELTA_HEADER_OFFSETS, value: number) => {
    const { bytes, v } = enc([]);
    v.setBigUint64(16, BigInt(bytes.length), true);
    if (field === 'version' || field === 'flags') v.setUint16(DELTA_HEADER_OFFSETS[field], value, true);
    else v.setUint32(DELTA_HEADER_OFFSETS[field], value, true);
    return bytes;
  };
  expectRefused(header('magic', 0x12345678), mem.slice(), 'magic');
  expectRefused(header('version', 2), mem.slice(), 'version');
  expectRefused(header('flags', 1), mem.slice(), 'flags');
  expectRefused(header('pageBytes', 65536), mem.slice(), 'page size');
  assert.equal(applyDelta(header('entryCount', 0), mem.slice()), 0, 'an empty delta applies nothing');
});

test('a delta for pages past the end of the target memory is refused and writes nothing', () => {
  const oldImage = new Uint8Array(2 * P);
  const newImage = new Uint8Array(5 * P).fill(9);
  const { encoded } = encodeImages(oldImage, newImage, [0, 1, 2, 3, 4]);
  expectRefused(encoded, new Uint8Array(4 * P), 'page 4 of a 4-page memory');
  const big = new Uint8Array(5 * P);
  assert.equal(applyDelta(encoded, big), 5);
  assert.ok(same(big, newImage));
});

// ---- the encoder's own arguments ----

test('the encoder refuses bad arguments before writing anything', () => {
  const shadow = new Uint8Array(4 * P).fill(3);
  const staged = new Uint8Array(2 * P).fill(4);
  const before = shadow.slice();
  const refuses = (f: () => unknown, code: string) => {
    assert.throws(f, (e) => (e as { code?: string }).code === code);
    assert.ok(same(shadow, before), 'shadow untouched');
  };
  refuses(() => native.deltaEncode(staged, Uint32Array.of(1, 2), shadow, new Uint8Array(deltaBoundBytes(2) - 1)), 'ERR_NATIVE_RANGE');
  refuses(() => native.deltaEncode(staged, Uint32Array.of(2, 1), shadow, new Uint8Array(deltaBoundBytes(2))), 'ERR_NATIVE_ARG');
  refuses(() => native.deltaEncode(staged, Uint32Array.of(1, 1), shadow, new Uint8Array(deltaBoundBytes(2))), 'ERR_NATIVE_ARG');
  refuses(() => native.deltaEncode(staged, Uint32Array.of(1, 4), shadow, new Uint8Array(deltaBoundBytes(2))), 'ERR_NATIVE_RANGE');
  refuses(() => native.deltaEncode(staged.subarray(0, P), Uint32Array.of(1, 2), shadow, new Uint8Array(deltaBoundBytes(2))), 'ERR_NATIVE_RANGE');
  refuses(() => native.deltaEncode(shadow.subarray(0, 2 * P), Uint32Array.of(2, 3), shadow, new Uint8Array(deltaBoundBytes(2))), 'ERR_NATIVE_ARG');
  refuses(() => native.deltaEncode(staged, Uint32Array.of(1, 2), shadow, new Uint8Array(deltaBoundBytes(2)), 5000), 'ERR_NATIVE_ARG');
  refuses(() => native.deltaEncode(staged, Uint32Array.of(1, 2), shadow, new Uint8Array(deltaBoundBytes(2)), undefined, 0), 'ERR_NATIVE_ARG');
  assert.throws(() => native.deltaApply(shadow.subarray(0, 100), shadow), (e) => (e as { code?: string }).code === 'ERR_NATIVE_ARG');
  assert.equal(deltaBoundBytes(10_000), DELTA_HEADER_BYTES + 10_000 * (5 + P));
});

test('merging and threshold knobs change the size, never the result', () => {
  const oldImage = new Uint8Array(2 * P);
  const newImage = oldImage.slice();
  for (let i = 0; i < P; i += 24) newImage[i] = 1;
  for (let i = P; i < P + 3000; i += 16) newImage[i] = 2;
  for (const tuning of [{}, { runGapMergeBytes: 64 }, { runsBytesMax: 100 }, { runGapMergeBytes: 4096, runsBytesMax: 4096 }]) {
    const shadow = oldImage.slice();
    const { encoded } = encodeDelta(gather(newImage, [0, 1]), Uint32Array.of(0, 1), shadow, undefined, tuning);
    const replica = oldImage.slice();
    applyDelta(encoded, replica);
    assert.ok(same(replica, newImage), JSON.stringify(tuning));
  }
});

test('the addon works in a worker_thread and encodes the same bytes there', async () => {
  const { oldImage } = sampleEncoding();
  const newImage = oldImage.slice().fill(0x11, 100, 200);
  const here = encodeImages(oldImage, newImage, [0, 1, 2]).encoded;
  const url = new URL('./delta-codec.js', import.meta.url).href;
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.url).then(({ encodeDelta }) => {
      const { staged, pages, shadow } = workerData;
      parentPort.postMessage(encodeDelta(staged, pages, shadow).encoded.slice());
    });`;
  const worker = new Worker(source, { eval: true, workerData: { url, staged: gather(newImage, [0, 1, 2]), pages: Uint32Array.of(0, 1, 2), shadow: oldImage.slice() } });
  const there = await new Promise<Uint8Array>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  assert.ok(same(new Uint8Array(there), here));
});
