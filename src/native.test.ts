import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { native, PAGE_BYTES } from './native.js';

function memoryOf(pages: number, seed: number): Uint8Array {
  const m = new Uint8Array(pages * PAGE_BYTES);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < m.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    m[i] = x & 0xff;
    m[i + 1] = (x >>> 8) & 0xff;
  }
  return m;
}

test('copier: a gather on two threads equals gatherPages, job after job on one copier', () => {
  const memory = memoryOf(512, 7);
  const copier = native.copierCreate();
  try {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 511 }), { maxLength: 400 }), (list) => {
        const pages = Uint32Array.from(list);
        const expected = new Uint8Array(pages.length * PAGE_BYTES);
        native.gatherPages(memory, pages, expected);
        const packed = new Uint8Array(pages.length * PAGE_BYTES + PAGE_BYTES).fill(0xee);
        native.copierGatherStart(copier, memory, pages, packed);
        const helped = native.copierGatherJoin(copier);
        assert.ok(helped >= 0 && helped <= pages.length);
        assert.deepEqual(packed.subarray(0, expected.length), expected);
        // Nothing past the list is written.
        assert.ok(packed.subarray(expected.length).every((b) => b === 0xee));
      }),
      { numRuns: 150 },
    );
  } finally {
    native.copierClose(copier);
  }
});

test('copier: the helper thread takes part in large gathers', () => {
  const memory = memoryOf(4096, 3);
  const pages = Uint32Array.from({ length: 4000 }, (_, i) => (i * 7) % 4096);
  const packed = new Uint8Array(pages.length * PAGE_BYTES);
  const copier = native.copierCreate();
  let helperPages = 0;
  try {
    for (let round = 0; round < 20; round++) {
      native.copierGatherStart(copier, memory, pages, packed);
      // Give the helper time to wake: the JS thread has other work in a real pause.
      const until = performance.now() + 2;
      while (performance.now() < until);
      helperPages += native.copierGatherJoin(copier);
    }
    const expected = new Uint8Array(packed.length);
    native.gatherPages(memory, pages, expected);
    assert.deepEqual(packed, expected);
  } finally {
    native.copierClose(copier);
  }
  assert.ok(helperPages > 0, 'the helper copied none of 80,000 pages');
});

test('copier: bad arguments are refused before anything is copied', () => {
  const memory = memoryOf(8, 1);
  const copier = native.copierCreate();
  const packed = new Uint8Array(2 * PAGE_BYTES);
  assert.throws(() => native.copierGatherStart(copier, memory, Uint32Array.of(0, 8), packed), { code: 'ERR_NATIVE_RANGE' });
  assert.throws(() => native.copierGatherStart(copier, memory, Uint32Array.of(0, 1, 2), packed), { code: 'ERR_NATIVE_RANGE' });
  assert.ok(packed.every((b) => b === 0));
  assert.throws(() => native.copierGatherJoin(copier), { code: 'ERR_NATIVE_ARG' });
  native.copierGatherStart(copier, memory, Uint32Array.of(3, 4), packed);
  assert.throws(() => native.copierGatherStart(copier, memory, Uint32Array.of(3, 4), packed), { code: 'ERR_NATIVE_ARG' });
  // Close finishes the gather in progress, then refuses further use.
  native.copierClose(copier);
  assert.deepEqual(packed, memory.subarray(3 * PAGE_BYTES, 5 * PAGE_BYTES));
  native.copierClose(copier);
  assert.throws(() => native.copierGatherStart(copier, memory, Uint32Array.of(1), packed), { code: 'ERR_NATIVE_ARG' });
  assert.throws(() => native.copierGatherStart({} as never, memory, Uint32Array.of(1), packed), { code: 'ERR_NATIVE_ARG' });
});
