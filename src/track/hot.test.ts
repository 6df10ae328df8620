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

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);
/** Pages a region's sample protects after a lease: the first 8 of every 64. */
const isSampled = (page: number) => page % 64 < 8;

describe('wp-async hot regions', { skip: probe?.supported ? false : (probe?.reason ?? 'not probed') }, () => {
  it('a heavily written region is reported whole during its lease, judged by its sample, then tracked exactly again', () => {
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
      // Epoch 5: tracked page by page again.
      writePages(memory, [REGION_PAGES + 100, 2]);
      assert.deepEqual(Array.from(tracker.collect()), [2, REGION_PAGES + 100]);
      assert.deepEqual(Array.from(tracker.collect()), []);
      assert.equal(tracker.stats().hotLeasesTotal, 1);
    });
  });

  it('a region whose sample is written heavily gets a new, longer lease without being tracked page by page', () => {
    withLeaseEnded((memory, tracker) => {
      writePages(memory, range(0, 400)); // 7 of the 8 sample blocks: 56 x 8 = 448 >= 256
      const sampling = tracker.collect();
      for (const p of range(0, 400)) assert.ok(sampling.includes(p), `page ${p} reported`);
      assert.equal(tracker.stats().hotLeasesTotal, 2);
      assert.equal(tracker.stats().hotRegions, 1);
      // Lease 4: reported whole with nothing written.
      assert.deepEqual(Array.from(tracker.collect()), range(0, REGION_PAGES));
    });
  });

  it('a sampling region is judged by its sample alone: heavy writes outside it do not renew the lease', () => {
    withLeaseEnded((memory, tracker) => {
      const outside = range(0, REGION_PAGES).filter((p) => !isSampled(p)).slice(0, 400);
      writePages(memory, [...outside, 0]); // 400 pages written, one of them sampled: 1 x 8 < 256
      const sampling = new Set(tracker.collect());
      for (const p of [...outside, 0]) assert.ok(sampling.has(p), `page ${p} reported`);
      assert.equal(tracker.stats().hotLeasesTotal, 1);
      assert.equal(tracker.stats().hotRegions, 0);
      // Tracked page by page from here.
      writePages(memory, [5, 200]);
      assert.deepEqual(Array.from(tracker.collect()), [5, 200]);
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
