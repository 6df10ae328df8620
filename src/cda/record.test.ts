// Byte ranges and commit records: the range algebra against a bitmap, recorded
// ranges as a page delta, and records refused whole when they do not hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isUnderstudyError } from '../errors.js';
import { PAGE_BYTES } from '../native.js';
import { intersect, isNormalised, normalisePairs, union, type Ranges } from './ranges.js';
import { applyRecord, decodeRecord, emptyState, encodeRecord, rangesToDelta } from './record.js';
import { layoutFromNumbers, place, relayout } from './layout.js';
import { applyDelta } from '../checkpoint/delta-codec.js';

const SPACE = 3000;
const pairs = fc.array(fc.tuple(fc.integer({ min: 0, max: SPACE - 1 }), fc.integer({ min: 0, max: 300 })), { maxLength: 20 });

function bits(r: Ranges): Uint8Array {
  const b = new Uint8Array(SPACE + 400);
  for (let i = 0; i < r.length; i += 2) b.fill(1, r[i]!, r[i + 1]!);
  return b;
}

function fromPairs(p: [number, number][]): Ranges {
  return normalisePairs(p.flat(), p.length);
}

test('ranges: normalise, union and intersect agree with a bitmap', () => {
  fc.assert(
    fc.property(pairs, pairs, (a, b) => {
      const ra = fromPairs(a);
      const rb = fromPairs(b);
      assert.ok(isNormalised(ra) && isNormalised(rb));
      const ba = new Uint8Array(SPACE + 400);
      for (const [s, n] of a) ba.fill(1, s, s + n);
      assert.deepEqual(bits(ra), ba);
      const u = union(ra, rb);
      const x = intersect(ra, rb);
      assert.ok(isNormalised(u) && isNormalised(x));
      const bu = bits(u);
      const bx = bits(x);
      const bb = bits(rb);
      for (let i = 0; i < bu.length; i++) {
        assert.equal(bu[i], ba[i]! | bb[i]!);
        assert.equal(bx[i], ba[i]! & bb[i]!);
      }
    }),
  );
});

test('recorded ranges become a page delta that writes exactly them', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 * PAGE_BYTES - 1 }), fc.integer({ min: 1, max: 9000 })), { maxLength: 12 }), fc.integer({ min: 1, max: 255 }), (p, fill) => {
      const r = normalisePairs(p.flat(), p.length);
      const image = new Uint8Array(8 * PAGE_BYTES);
      const list = new Uint32Array(r.length);
      let total = 0;
      for (let i = 0; i < r.length; i += 2) {
        list[i] = r[i]!;
        list[i + 1] = r[i + 1]! - r[i]!;
        total += list[i + 1]!;
      }
      const bytes = new Uint8Array(total).map((_, i) => (fill + i) & 0xff || 1);
      applyDelta(rangesToDelta(list, r.length / 2, bytes), image);
      const expected = new Uint8Array(8 * PAGE_BYTES);
      let at = 0;
      for (let i = 0; i < r.length; i += 2) {
        expected.set(bytes.subarray(at, at + list[i + 1]!), r[i]!);
        at += list[i + 1]!;
      }
      assert.ok(Buffer.from(image).equals(Buffer.from(expected)));
    }),
  );
});

test('records: a delta must follow its parent; a bad layout, image or delta is refused and changes nothing', () => {
  const layout = [{ id: 1, address: 100, length: 5000 }];
  const image = new Uint8Array(place(layout).slots * PAGE_BYTES);
  image.fill(7, 100, 5100);
  const full = decodeRecord(encodeRecord({ kind: 'full', cycle: 4, layout, image }));
  const s4 = applyRecord(emptyState(), full);
  assert.equal(s4.cycle, 4);
  const delta = rangesToDelta(Uint32Array.of(200, 10), 1, new Uint8Array(10).fill(9));
  const bad = (f: () => unknown, code = 'ERR_CDA_RECORD') => assert.throws(f, (e: unknown) => isUnderstudyError(e, code as 'ERR_CDA_RECORD'));
  bad(() => applyRecord(s4, decodeRecord(encodeRecord({ kind: 'delta', cycle: 6, layout, delta }))));
  const before = Buffer.from(s4.image);
  // A delta naming a page past the image: refused, nothing written.
  const far = rangesToDelta(Uint32Array.of(10 * PAGE_BYTES, 4), 1, new Uint8Array(4).fill(1));
  bad(() => applyRecord(s4, decodeRecord(encodeRecord({ kind: 'delta', cycle: 5, layout, delta: far }))));
  assert.ok(Buffer.from(s4.image).equals(before));
  const s5 = applyRecord(s4, decodeRecord(encodeRecord({ kind: 'delta', cycle: 5, layout, delta })));
  assert.equal(s5.image[200], 9);
  bad(() => layoutFromNumbers([1, 0, 10, 1, 20, 10]), 'ERR_CDA_RECORD'); // ids not ascending
  bad(() => layoutFromNumbers([1, 0, 10, 2, 5, 10]), 'ERR_CDA_RECORD'); // overlap
  bad(() => layoutFromNumbers([1, 2 ** 32 - 5, 10]), 'ERR_CDA_RECORD'); // past 4 GiB
  bad(() => decodeRecord(encodeRecord({ kind: 'full', cycle: 1, layout, image: image.subarray(4096) })));
  const dirty = image.slice();
  dirty[50] = 1; // a byte before the area
  bad(() => decodeRecord(encodeRecord({ kind: 'full', cycle: 1, layout, image: dirty })));
  bad(() => decodeRecord(new Uint8Array([1, 2, 3])));
});

test('relayout keeps areas that stay the same and starts others at zero', () => {
  const a = { id: 1, address: 0, length: 4096 };
  const b = { id: 2, address: 10000, length: 100 };
  const c = { id: 3, address: 20000, length: 5000 };
  const img = new Uint8Array(place([a, b]).slots * PAGE_BYTES).fill(5);
  const next = relayout([a, b], img, [a, { ...b, length: 50 }, c]);
  assert.equal(next.length, place([a, { ...b, length: 50 }, c]).slots * PAGE_BYTES);
  assert.equal(next[0], 5);
  assert.equal(next[4096 + (10000 % 4096)], 0, 'a changed area starts at zero');
  assert.equal(next[next.length - 1], 0);
});
