// wp-async hot regions: a 2 MiB region written heavily in one epoch is left
// unprotected and reported whole for a lease; no write is ever missed, and
// the unwritten pages reported are only those of hot regions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { probeTrackers } from './tracker.js';
import { WpAsyncTracker } from './uffd.js';
import { instantiateStoreGuest } from './guest-fixture.js';

const PAGE = 4096;
const REGION_PAGES = 512;
const probe = probeTrackers().find((p) => p.kind === 'wp-async');

function withHot(memory: WebAssembly.Memory, body: (t: WpAsyncTracker) => void): void {
  const tracker = WpAsyncTracker.create(memory, { hotWrittenMinPages: REGION_PAGES / 2 });
  try {
    body(tracker);
  } finally {
    tracker.dispose();
  }
}

/** One region, made hot and taken to the end of its first lease (its sample protected), then `body`. */
function withLeaseEnded(body: (memory: WebAssembly.Memory, t: WpAsyncTracker) => void): void {
  const memory = new WebAssembly.Memory({ initial: 32, maximum: 32 });
  withHot(memory, (tracker) => {
    writePages(memory, range(0, 400));
    tracker.collect(); // hot: lease 2
    tracker.collect(); // mid-lease
    tracker.collect(); // the lease ends: the sample is protected
    body(memory, tracker);
  });
}

function writePages(memory: WebAssembly.Memory, pages: Iterable<number>, value = 1): void {
  const u8 = new Uint8Array(memory.buffer);
  for (const p of pages) u8[p * PAGE + 17] = (u8[p * PAGE + 17]! + value) & 0xff;
}

/** A region being sampled, its first 400 pages written (7 of the 8 sample blocks: 56 x 8 = 448 >= 256):
 * every written page is reported, and the region gets its second lease (4), reported whole. */
function renewedBySampleWrites(memory: WebAssembly.Memory, tracker: WpAsyncTracker): void {
  writePages(memory, range(0, 400));
  const sampling = new Set(tracker.collect());
  for (const p of range(0, 400)) assert.ok(sampling.has(p), `page ${p} reported`);
  assert.equal(tracker.stats().hotLeasesTotal, 2);
  assert.equal(tracker.stats().hotRegions, 1);
  // Lease 4: reported whole with nothing written.
  assert.deepEqual(Array.from(tracker.collect()), range(0, REGION_PAGES));
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);
/** Pages a region's sample protects after a lease: the first 8 of every 64. */
const isSampled = (page: number) => page % 64 < 8;

describe('wp-async hot regions', { skip: probe?.supported ? false : (probe?.reason ?? 'not probed') }, () => {
  it('a heavily written region is reported whole during its lease, judged by its sample (twice), then tracked exactly again', () => {
    const memory = new WebAssembly.Memory({ initial: 64, maximum: 64 }); // 4 MiB: regions 0 and 1
    withHot(memory, (tracker) => {
      // Epoch 1: 300 of region 1's pages (over half) and 3 pages of region 0.
      writePages(memory, [...range(REGION_PAGES, 300), 5, 6, 7]);
      assert.deepEqual(Array.from(tracker.collect()), [5, 6, 7, ...range(REGION_PAGES, 300)]);
      assert.equal(tracker.stats().hotRegions, 1);
      // Epoch 2 (lease 2): nothing written; region 1 is reported whole, region 0 exactly.
      writePages(memory, [9]);
      assert.deepEqual(Array.from(tracker.collect()), [9, ...range(REGION_PAGES, REGION_PAGES)]);
      // Epoch 3: the lease ends here; region 1 is reported whole but for its sample, which is scanned
      // (its unprotected pages reported, all of it protected again).
      writePages(memory, [REGION_PAGES + 1, REGION_PAGES + 70]); // two sampled pages, written under the lease
      const ending = new Set(tracker.collect());
      assert.ok([...ending].every((p) => p >= REGION_PAGES));
      for (const p of range(REGION_PAGES, REGION_PAGES)) if (!isSampled(p)) assert.ok(ending.has(p), `unsampled page ${p} reported`);
      for (const p of range(REGION_PAGES, 300)) assert.ok(ending.has(p), `page ${p}, populated and unprotected, reported`);
      assert.equal(tracker.stats().hotRegions, 0);
      // Epoch 4, sampling: one sampled page of region 1 written, too few to be hot again. The
      // region is scanned whole: the written pages, and its unprotected (unsampled) ones.
      writePages(memory, [REGION_PAGES + 3, 2]);
      const sampling = new Set(tracker.collect());
      assert.ok(sampling.has(2) && sampling.has(REGION_PAGES + 3));
      for (const p of sampling) assert.ok(p === 2 || (p >= REGION_PAGES && (p === REGION_PAGES + 3 || !isSampled(p))), `page ${p} reported`);
      for (const p of range(REGION_PAGES, 300)) if (!isSampled(p)) assert.ok(sampling.has(p), `unsampled page ${p}, still unprotected, reported`);
      // One cold sample is not enough: the region is sampled again, its other pages unprotected.
      assert.equal(tracker.stats().hotResamplesTotal, 1);
      // Epoch 5, sampled again: an unsampled page written (no fault, reported with the other
      // unprotected ones), the sample not at all. Cold twice: tracked from here.
      writePages(memory, [REGION_PAGES + 100, 2]);
      const resampling = new Set(tracker.collect());
      assert.ok(resampling.has(2) && resampling.has(REGION_PAGES + 100));
      for (const p of resampling) assert.ok(p === 2 || (p >= REGION_PAGES && !isSampled(p)), `page ${p} reported`);
      for (const p of range(REGION_PAGES, REGION_PAGES)) if (!isSampled(p)) assert.ok(resampling.has(p), `unsampled page ${p}, unprotected again, reported`);
      // Epoch 6: tracked page by page again.
      writePages(memory, [REGION_PAGES + 101, 2]);
      assert.deepEqual(Array.from(tracker.collect()), [2, REGION_PAGES + 101]);
      assert.deepEqual(Array.from(tracker.collect()), []);
      assert.equal(tracker.stats().hotLeasesTotal, 1);
      assert.equal(tracker.stats().hotResamplesTotal, 1);
    });
  });

  it('a region whose sample is written heavily gets a new, longer lease without being tracked page by page', () => {
    withLeaseEnded(renewedBySampleWrites);
  });

  it('a sampling region is judged by its sample alone: heavy writes outside it do not renew the lease', () => {
    withLeaseEnded((memory, tracker) => {
      const outside = range(0, REGION_PAGES).filter((p) => !isSampled(p)).slice(0, 400);
      for (let epoch = 0; epoch < 2; epoch++) {
        writePages(memory, [...outside, 0]); // 400 pages written, one of them sampled: 1 x 8 < 256 / 2
        const sampling = new Set(tracker.collect());
        for (const p of [...outside, 0]) assert.ok(sampling.has(p), `page ${p} reported`);
        assert.equal(tracker.stats().hotLeasesTotal, 1);
        assert.equal(tracker.stats().hotRegions, 0);
      }
      // Cold in two samples: tracked page by page from here.
      writePages(memory, [5, 200]);
      assert.deepEqual(Array.from(tracker.collect()), [5, 200]);
    });
  });

  it('a quiet epoch does not end a hot region: sampled again, it renews its lease without a tracked epoch', () => {
    withLeaseEnded((memory, tracker) => {
      assert.deepEqual(Array.from(tracker.collect()).filter(isSampled), [], 'nothing written: no sampled page reported');
      assert.equal(tracker.stats().hotResamplesTotal, 1);
      renewedBySampleWrites(memory, tracker);
    });
  });

  it('a sample keeps its region hot from half the threshold on', () => {
    withLeaseEnded((memory, tracker) => {
      // 17 sampled pages: 17 x 8 = 136, under the threshold (256), over half of it.
      writePages(memory, range(0, REGION_PAGES).filter(isSampled).slice(0, 17));
      tracker.collect();
      assert.equal(tracker.stats().hotLeasesTotal, 2);
      assert.equal(tracker.stats().hotResamplesTotal, 0);
    });
  });

  it('the partial region at the end of memory turns hot in proportion to its size, and keeps reporting through a grow', () => {
    const memory = new WebAssembly.Memory({ initial: 48, maximum: 80 }); // 3 MiB: region 0, and half of region 1
    withHot(memory, (tracker) => {
      const partial = REGION_PAGES / 2;
      // 130 of its 256 pages: over half of it, as 256 of 512 would be of a whole region.
      writePages(memory, range(REGION_PAGES, 130));
      assert.deepEqual(Array.from(tracker.collect()), range(REGION_PAGES, 130));
      assert.equal(tracker.stats().hotRegions, 1);
      // Mid-lease, nothing written: its 256 pages, and none past the end of memory.
      assert.deepEqual(Array.from(tracker.collect()), range(REGION_PAGES, partial));
      // The lease ends: reported but for its sample, clipped to the region's 256 pages.
      const ending = new Set(tracker.collect());
      for (const p of range(REGION_PAGES, partial)) if (!isSampled(p) || p < REGION_PAGES + 130) assert.ok(ending.has(p), `page ${p} reported`);
      assert.ok([...ending].every((p) => p >= REGION_PAGES && p < REGION_PAGES + partial), 'nothing outside the region reported');
      // The memory grows past the region: the grown pages are tracked exactly until they
      // join the fast range, then the region is judged as a whole one.
      memory.grow(32); // 5 MiB
      writePages(memory, [...range(REGION_PAGES, REGION_PAGES).filter(isSampled), 2 * REGION_PAGES + 7]);
      const sampling = new Set(tracker.collect());
      for (const p of [...range(REGION_PAGES, REGION_PAGES).filter(isSampled), 2 * REGION_PAGES + 7]) assert.ok(sampling.has(p), `page ${p} reported`);
      assert.ok(![...sampling].some((p) => p >= 2 * REGION_PAGES && p !== 2 * REGION_PAGES + 7), 'grown pages reported only if written');
      assert.equal(tracker.stats().hotLeasesTotal, 2);
      assert.equal(tracker.stats().fastScanBytes, memory.buffer.byteLength, 'the grown range, untouched, promoted at once');
      // The new lease covers the whole region now.
      assert.deepEqual(Array.from(tracker.collect()), range(REGION_PAGES, REGION_PAGES));
    });
  });

  it('a region written every epoch gets ever longer leases and takes no faults during them', () => {
    const memory = new WebAssembly.Memory({ initial: 32, maximum: 32 }); // one region
    const guest = instantiateStoreGuest(memory);
    withHot(memory, (tracker) => {
      const hotEpochs: boolean[] = [];
      const leaseFaults: number[] = [];
      for (let epoch = 0; epoch < 40; epoch++) {
        // During a lease the region is unprotected: its 512 writes take no write-protect fault (the
        // process's minor faults count them: one per page when tracked; the runtime's own, a garbage
        // collection's, come now and then, so the median over the lease epochs is what is checked).
        const hot = tracker.stats().hotRegions === 1;
        const faults0 = process.resourceUsage().minorPageFault;
        for (let p = 0; p < REGION_PAGES; p += 1) guest.poke(p * PAGE + (epoch % 64), epoch & 0xff);
        const faults = process.resourceUsage().minorPageFault - faults0;
        if (hot) leaseFaults.push(faults);
        else if (epoch === 0) assert.ok(faults >= REGION_PAGES / 2, `epoch 0, tracked: ${faults} faults`);
        const pages = tracker.collect();
        assert.deepEqual(Array.from(pages), range(0, REGION_PAGES), `epoch ${epoch}: every page was written`);
        hotEpochs.push(tracker.stats().hotRegions === 1);
      }
      const median = leaseFaults.sort((a, b) => a - b)[leaseFaults.length >> 1]!;
      assert.ok(leaseFaults.length >= 30 && median < REGION_PAGES / 8, `median ${median} faults in ${leaseFaults.length} lease epochs`);
      // Leases 2, 4, 8, 16, 32: of 40 epochs only a handful are tracked page by page.
      const tracked = hotEpochs.filter((h) => !h).length;
      assert.ok(tracked <= 7, `${tracked} of 40 epochs tracked page by page`);
      assert.equal(tracker.stats().hotLeasesTotal, 5);
    });
  });

  it('every written page is reported; extra pages only in hot regions (property)', () => {
    const regions = 4;
    const memory = new WebAssembly.Memory({ initial: (regions * REGION_PAGES * PAGE) / 65536 });
    const guest = instantiateStoreGuest(memory);
    withHot(memory, (tracker) => {
      // Per epoch, per region: nothing, a few pages, or most of it; written from JS or wasm.
      const epoch = fc.array(fc.tuple(fc.constantFrom(0, 1, 2), fc.nat(1 << 30), fc.boolean()), { minLength: regions, maxLength: regions });
      fc.assert(
        fc.property(fc.array(epoch, { minLength: 1, maxLength: 12 }), (epochs) => {
          let hotBefore = new Set<number>();
          for (const plan of epochs) {
            const written = new Set<number>();
            plan.forEach(([how, seed, viaWasm], r) => {
              const count = how === 0 ? 0 : how === 1 ? 1 + (seed % 20) : 300 + (seed % 212);
              for (let i = 0; i < count; i++) written.add(r * REGION_PAGES + ((seed + i * 7) % REGION_PAGES));
              for (const p of written) if (Math.floor(p / REGION_PAGES) === r) {
                if (viaWasm) guest.poke(p * PAGE + 100, seed & 0xff);
                else writePages(memory, [p]);
              }
            });
            const reported = new Set(tracker.collect());
            for (const p of written) assert.ok(reported.has(p), `written page ${p} reported`);
            for (const p of reported) {
              if (!written.has(p)) assert.ok(hotBefore.has(Math.floor(p / REGION_PAGES)), `unwritten page ${p} is in a region hot during the epoch`);
            }
            // Regions that may be hot during the next epoch: those with at least half their
            // pages reported now (turning hot, mid-lease, or ending a lease).
            hotBefore = new Set(range(0, regions).filter((r) => range(r * REGION_PAGES, REGION_PAGES).filter((p) => reported.has(p)).length >= REGION_PAGES / 2));
          }
          // Drain leases so the next run starts from exact tracking.
          tracker.setHotWrittenMinPages(0);
          tracker.collect();
          tracker.setHotWrittenMinPages(REGION_PAGES / 2);
          assert.deepEqual(Array.from(tracker.collect()), []);
        }),
        { numRuns: 40 },
      );
    });
  });

  it('with grows: every written page is reported; extra pages only in regions hot or sampled, the partial last one included (property)', () => {
    const wasmPage = 65536;
    const maxWasmPages = 160; // 10 MiB
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(
          fc.record({
            grow: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 40 })),
            // Per write: a fraction of the memory's size, a run length (a run of 300 makes a region hot).
            writes: fc.array(fc.tuple(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(1, 20, 300)), { maxLength: 4 }),
            viaWasm: fc.boolean(),
          }),
          { minLength: 1, maxLength: 10 },
        ),
        (initial, epochs) => {
          const memory = new WebAssembly.Memory({ initial, maximum: maxWasmPages });
          const guest = instantiateStoreGuest(memory);
          withHot(memory, (tracker) => {
            let mayBeHot = new Set<number>();
            let halfReportedBefore = new Set<number>();
            for (const epoch of epochs) {
              const grow = Math.min(epoch.grow, maxWasmPages - memory.buffer.byteLength / wasmPage);
              if (grow > 0) {
                if (epoch.viaWasm) guest.grow(grow);
                else memory.grow(grow);
              }
              const pages = memory.buffer.byteLength / PAGE;
              const written = new Set<number>();
              for (const [at, run] of epoch.writes) for (let i = 0; i < run; i++) written.add(Math.min(pages - 1, Math.floor(at * pages) + i));
              for (const p of written) {
                if (epoch.viaWasm) guest.poke(p * PAGE + 33, (p + 1) & 0xff);
                else writePages(memory, [p]);
              }
              const fastPages = tracker.stats().fastScanBytes! / PAGE;
              const reported = new Set(tracker.collect());
              for (const p of written) assert.ok(reported.has(p), `written page ${p} reported`);
              for (const p of reported) if (!written.has(p)) assert.ok(mayBeHot.has(Math.floor(p / REGION_PAGES)), `unwritten page ${p} is in a region hot or sampled during the epoch`);
              // A region is hot or sampled in the next epoch only if at least half of its part in
              // the fast range was reported by this collect or the one before: turning hot,
              // mid-lease, ending a lease (sampled next, and once more if found cold). A grow
              // during the lease makes the part reported when sampled smaller than half.
              const halfReported = new Set(
                range(0, Math.ceil(fastPages / REGION_PAGES)).filter((r) => {
                  const extent = Math.min(REGION_PAGES, fastPages - r * REGION_PAGES);
                  return range(r * REGION_PAGES, extent).filter((p) => reported.has(p)).length * 2 >= extent;
                }),
              );
              mayBeHot = new Set([...halfReported, ...halfReportedBefore]);
              halfReportedBefore = halfReported;
            }
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  it('off: exactly the written pages, however many', () => {
    const memory = new WebAssembly.Memory({ initial: 32, maximum: 32 });
    const tracker = WpAsyncTracker.create(memory, { hotWrittenMinPages: 0 });
    try {
      for (let epoch = 0; epoch < 4; epoch++) {
        writePages(memory, range(0, 400));
        assert.equal(tracker.collect().length, 400);
        assert.equal(tracker.collect().length, 0);
      }
      assert.equal(tracker.stats().hotLeasesTotal, 0);
    } finally {
      tracker.dispose();
    }
  });
});
