// wp-sync specifics: pre-images (the copy-on-write primitive of rollback),
// their bound, fault accounting.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import fc from 'fast-check';
import { isUnderstudyError } from '../errors.js';
import { createTracker, probeTrackers, type PreimageTracker } from './tracker.js';
import { instantiateStoreGuest } from './guest-fixture.js';

const PAGE = 4096;
const probe = probeTrackers().find((p) => p.kind === 'wp-sync');

function fillRandom(u8: Uint8Array): void {
  for (let at = 0; at < u8.length; at += 65536) webcrypto.getRandomValues(u8.subarray(at, Math.min(u8.length, at + 65536)));
}

function withSync(memory: WebAssembly.Memory, preimageBytesMax: number | undefined, body: (t: PreimageTracker) => void, faults: 'thread' | 'signal' = 'thread'): void {
  const tracker = createTracker(memory, 'wp-sync', { ...(preimageBytesMax === undefined ? {} : { preimageBytesMax }), faults });
  try {
    body(tracker);
  } finally {
    tracker.dispose();
  }
}

describe('wp-sync pre-images', { skip: probe?.supported ? false : (probe?.reason ?? 'not probed') }, () => {
  for (const faults of ['thread', 'signal'] as const) {
  it(`hold each written page as it was at the arm, faults served by ${faults === 'thread' ? 'the handler thread' : 'a SIGBUS handler on the writing thread'} (property)`, () => {
    const memory = new WebAssembly.Memory({ initial: 8, maximum: 16 });
    fillRandom(new Uint8Array(memory.buffer)); // written before attach: not dirty
    const guest = instantiateStoreGuest(memory);
    withSync(memory, undefined, (tracker) => {
      assert.equal(tracker.collect().length, 0);
      let faults = tracker.stats().faults!;
      fc.assert(
        fc.property(fc.array(fc.tuple(fc.nat(8 * 65536 - 1), fc.nat(255), fc.boolean()), { maxLength: 40 }), (writes) => {
          const before = new Uint8Array(memory.buffer).slice();
          for (const [addr, value, viaWasm] of writes) {
            if (viaWasm) guest.poke(addr, value);
            else new Uint8Array(memory.buffer)[addr] = value;
          }
          const pages = [...new Set(writes.map(([a]) => Math.floor(a / PAGE)))].sort((a, b) => a - b);
          const pre = tracker.takePreimages();
          assert.deepEqual(Array.from(pre.pages), pages);
          assert.equal(pre.byteLength, memory.buffer.byteLength);
          assert.equal(pre.data.length, pages.length * PAGE);
          pages.forEach((p, i) => {
            assert.ok(
              Buffer.from(pre.data.subarray(i * PAGE, (i + 1) * PAGE)).equals(before.subarray(p * PAGE, (p + 1) * PAGE)),
              `pre-image of page ${p}`,
            );
          });
          // A write stores a byte even when it equals the old one: the page is still written.
          assert.deepEqual(Array.from(tracker.collect()), pages);
          assert.equal(tracker.takePreimages().pages.length, 0, 'collect re-arms');
          const stats = tracker.stats();
          assert.equal(stats.faults, faults + pages.length, 'one fault per first write of a page');
          faults = stats.faults!;
        }),
        { numRuns: 40 },
      );
      const stats = tracker.stats();
      assert.ok(stats.faultNsTotal! > 0 && stats.faultNsMax! > 0);
    }, faults);
  });
  }

  it('report the size at the arm across a grow (grown pages were zeros)', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    withSync(memory, undefined, (tracker) => {
      new Uint8Array(memory.buffer)[5] = 1;
      memory.grow(1);
      new Uint8Array(memory.buffer)[20 * PAGE] = 1; // grown, not yet registered
      const pre = tracker.takePreimages();
      assert.deepEqual(Array.from(pre.pages), [0]);
      assert.equal(pre.byteLength, 65536);
      assert.deepEqual(Array.from(tracker.collect()), [0, 20]);
      new Uint8Array(memory.buffer)[21 * PAGE] = 2; // grown and now registered
      const next = tracker.takePreimages();
      assert.deepEqual(Array.from(next.pages), [21]);
      assert.equal(next.byteLength, 2 * 65536);
      assert.ok(next.data.every((b) => b === 0));
    });
  });

  it('say when the store bound was exceeded, while collect stays exact', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
    withSync(memory, 2 * PAGE, (tracker) => {
      const u8 = new Uint8Array(memory.buffer);
      u8[0] = 1;
      u8[PAGE] = 1;
      assert.equal(tracker.takePreimages().pages.length, 2);
      u8[2 * PAGE] = 1;
      assert.throws(() => tracker.takePreimages(), (e) => isUnderstudyError(e, 'ERR_TRACKER_PREIMAGES_INCOMPLETE'));
      assert.equal(tracker.stats().preimageOverflow, 1);
      assert.deepEqual(Array.from(tracker.collect()), [0, 1, 2]);
      u8[3 * PAGE] = 1;
      assert.deepEqual(Array.from(tracker.takePreimages().pages), [3]);
    });
  });

  it('are off when auto picks wp-sync for plain dirty tracking', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
    const tracker = createTracker(memory, 'auto', {
      env: {},
      probe: () => [
        { kind: 'wp-async', supported: false, reason: 'simulated: kernel lacks PAGEMAP_SCAN' },
        { kind: 'wp-sync', supported: true },
        { kind: 'hash', supported: true },
      ],
    });
    try {
      assert.equal(tracker.kind, 'wp-sync');
      new Uint8Array(memory.buffer)[PAGE] = 1;
      assert.deepEqual(Array.from(tracker.collect()), [1]);
      assert.equal(tracker.stats().preimageStoreBytes, 0);
      assert.throws(() => (tracker as PreimageTracker).takePreimages(), (e) => isUnderstudyError(e, 'ERR_TRACKER'));
    } finally {
      tracker.dispose();
    }
  });
});

describe('wp-sync prediction (COWP pre-saving, Histase)', { skip: probe?.supported ? false : (probe?.reason ?? 'not probed') }, () => {
  it('pre-saved pages take no fault; those left unwritten are dropped from the pre-images and the dirty set', () => {
    const memory = new WebAssembly.Memory({ initial: 4 });
    withSync(memory, undefined, (tracker) => {
      const mem = new Uint8Array(memory.buffer);
      assert.equal(tracker.presave(Uint32Array.of(3, 4, 5, 9)), 4);
      const faults = tracker.stats().faults!;
      mem[3 * PAGE] = 1;
      mem[5 * PAGE + 7] = 2;
      mem[20 * PAGE] = 3; // not predicted: faults
      assert.equal(tracker.stats().faults! - faults, 1);
      const pre = tracker.takePreimages();
      assert.deepEqual(Array.from(pre.pages), [3, 5, 20]);
      assert.deepEqual(Array.from(tracker.collect()), [3, 5, 20]);
      const s = tracker.stats();
      assert.equal(s.predictedWrittenTotal, 2);
      assert.equal(s.predictedUnwrittenTotal, 2);
    });
  });

  it('Histase learns a region\'s stride and pre-saves forward on the next fault', () => {
    const memory = new WebAssembly.Memory({ initial: 16 });
    withSync(memory, undefined, (tracker) => {
      tracker.setHistase(true, 0.7);
      const mem = new Uint8Array(memory.buffer);
      // Epoch 1: one run of 8 pages in region 0 (his_stride becomes 8).
      for (let p = 10; p < 18; p++) mem[p * PAGE] = 1;
      tracker.takePreimages();
      tracker.collect();
      const faults = tracker.stats().faults!;
      // Epoch 2: the same run again: the first write faults, the next 7 were predicted.
      for (let p = 10; p < 18; p++) mem[p * PAGE] = 2;
      assert.equal(tracker.stats().faults! - faults, 1);
      const pre = tracker.takePreimages();
      // Pages 7..9 were predicted backwards (8/3 rounds to 3) but not written: dropped.
      assert.deepEqual(Array.from(pre.pages), [10, 11, 12, 13, 14, 15, 16, 17]);
      assert.ok(pre.data.subarray(PAGE, 2 * PAGE).every((b, i) => b === (i === 0 ? 1 : 0)));
      assert.equal(tracker.stats().histasePagesTotal, 7 + 3);
    });
  });

  it('rollback writes back the oldest pre-image of each page (page 1 is in both epochs) and zeroes the grown tail', () => {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 4 });
    withSync(memory, undefined, (tracker) => {
      const mem = () => new Uint8Array(memory.buffer);
      const target = mem().slice();
      mem()[1 * PAGE] = 1;
      const e1 = tracker.seal(false);
      mem()[1 * PAGE] = 2;
      mem()[2 * PAGE] = 3;
      memory.grow(1);
      mem()[2 * 65536 + 5] = 9;
      assert.equal(tracker.rollback([e1.log], 2 * 65536), 2);
      assert.ok(Buffer.from(mem().subarray(0, 2 * 65536)).equals(target));
      assert.ok(mem().subarray(2 * 65536).every((b) => b === 0));
      tracker.release(e1.log);
      assert.equal(tracker.collect().length, 0, 're-armed: nothing written since');
      mem()[2 * PAGE] = 4;
      assert.deepEqual(Array.from(tracker.collect()), [2]);
    });
  });
});

describe('wp-sync undo logs (seal, background job, verify)', { skip: probe?.supported ? false : (probe?.reason ?? 'not probed') }, () => {
  it('a sealed log checks out until a bit of it flips; a released id is refused', () => {
    const memory = new WebAssembly.Memory({ initial: 2 });
    withSync(memory, undefined, (tracker) => {
      const mem = new Uint8Array(memory.buffer);
      mem[3 * PAGE] = 1;
      mem[7 * PAGE] = 1;
      const sealed = tracker.seal(false);
      assert.equal(sealed.slots, 2);
      assert.equal(sealed.complete, true);
      assert.equal(tracker.verify(sealed.log), 'ok');
      assert.deepEqual(tracker.logInfo(sealed.log, true), { slots: 2, kept: 2, complete: true, done: true });
      tracker.flipLogBit(sealed.log, PAGE * 8 + 5);
      assert.equal(tracker.verify(sealed.log), 'checksum');
      assert.throws(() => tracker.flipLogBit(sealed.log, 2 * PAGE * 8), (e) => isUnderstudyError(e, 'ERR_TRACKER'));
      tracker.release(sealed.log);
      assert.throws(() => tracker.verify(sealed.log), (e) => isUnderstudyError(e, 'ERR_TRACKER'));
      // A seal right after another (its job possibly still running in the background) reports that
      // log's final count.
      mem[1 * PAGE] = 2;
      mem[2 * PAGE] = 2;
      const a = tracker.seal(true);
      mem[1 * PAGE] = 3;
      const b = tracker.seal(true);
      assert.equal(b.finishedLog, a.log);
      assert.equal(b.finishedKept, tracker.logInfo(a.log).kept);
      assert.equal(b.finishedKept, 2);
      tracker.release(a.log);
      tracker.release(b.log);
      // A released log is not reported as finished by the next seal, even once its store is reused.
      const next = tracker.seal(false);
      assert.equal(next.finishedLog, -1);
      assert.equal(next.finishedKept, 0);
      tracker.release(next.log);
    });
  });

  for (const jobIn of ['background', 'pause'] as const) {
    it(`COWP, job in the ${jobIn}: the job pre-saves the pages of the sealed epoch, so the next epoch writing them takes no fault; those left unwritten are dropped from its log${jobIn === 'pause' ? ' and protected again' : ''}`, () => {
      const memory = new WebAssembly.Memory({ initial: 4 });
      withSync(memory, undefined, (tracker) => {
        const mem = new Uint8Array(memory.buffer);
        for (const p of [3, 4, 5, 9]) mem[p * PAGE] = 1;
        const first = tracker.seal(true, undefined, jobIn);
        tracker.logInfo(first.log, true); // the job (pre-saving) is done
        const faults = tracker.stats().faults!;
        mem[3 * PAGE + 1] = 2;
        mem[5 * PAGE + 7] = 2;
        mem[20 * PAGE] = 3; // not predicted: faults
        assert.equal(tracker.stats().faults! - faults, 1);
        const second = tracker.seal(true, undefined, jobIn);
        assert.equal(second.slots, 5); // 4 pre-saved + 1 faulted
        assert.equal(tracker.logInfo(second.log, true).kept, 3); // 4 and 9 unwritten: dropped
        const s = tracker.stats();
        assert.equal(s.presavedPagesTotal, 4 + 3); // then 3, 5 and 20, written, for the third epoch
        assert.equal(s.predictedWrittenTotal, 2);
        assert.equal(s.predictedUnwrittenTotal, 2);
        assert.equal(s.reprotectedPagesTotal, jobIn === 'pause' ? 2 : 0);
        // The third epoch: the kept pages take no fault, the dropped ones fault again.
        const before = tracker.stats().faults!;
        for (const p of [3, 5, 20]) mem[p * PAGE + 100] = 7;
        assert.equal(tracker.stats().faults! - before, 0);
        mem[4 * PAGE + 100] = 7;
        mem[9 * PAGE + 100] = 7;
        assert.equal(tracker.stats().faults! - before, 2);
        const third = tracker.seal(false, undefined, jobIn);
        assert.equal(tracker.logInfo(third.log, true).kept, 5);
        // Each seal reports the previous log's final count and the counters, as stats() would.
        assert.deepEqual([first.finishedLog, second.finishedLog, third.finishedLog], [-1, first.log, second.log]);
        assert.deepEqual([second.finishedKept, third.finishedKept], [4, 3]);
        assert.equal(third.faults, tracker.stats().faults);
        assert.equal(third.presavedPagesTotal, tracker.stats().presavedPagesTotal);
        for (const l of [first.log, second.log, third.log]) tracker.release(l);
      });
    });
  }

  for (const jobIn of ['background', 'pause'] as const) {
    it(`COWP dense regions, job in the ${jobIn}: a region written at 64+ pages is pre-saved whole, its unwritten pages leave the log, and it stops when the writes thin out`, () => {
      const REGION = 512;
      const memory = new WebAssembly.Memory({ initial: 128 }); // 8 MiB: four regions
      withSync(memory, undefined, (tracker) => {
        tracker.setDenseRegions(64);
        const mem = new Uint8Array(memory.buffer);
        const faults = (): number => tracker.stats().faults!;
        for (let p = REGION; p < REGION + 100; p++) mem[p * PAGE] = 1; // region 1: dense
        for (let p = 2 * REGION; p < 2 * REGION + 10; p++) mem[p * PAGE] = 1; // region 2: sparse
        const logs = [tracker.seal(true, undefined, jobIn).log];
        tracker.logInfo(logs[0]!, true);
        let s = tracker.stats();
        assert.equal(s.denseRegionsTotal, 1);
        assert.equal(s.densePresavedPagesTotal, REGION - 100);
        let before = faults();
        mem[(REGION + 300) * PAGE] = 2; // never written, in the dense region: pre-saved, no fault
        mem[(REGION + 50) * PAGE] = 2; // written last epoch: no fault
        assert.equal(faults() - before, 0);
        mem[(2 * REGION + 100) * PAGE] = 2; // sparse region, not written last epoch: a fault
        assert.equal(faults() - before, 1);
        logs.push(tracker.seal(true, undefined, jobIn).log);
        // The log holds what was written, not the whole region pre-saved for it.
        assert.equal(tracker.logInfo(logs[1]!, true).kept, 3);
        // One page a round in region 1 from now on: within a few epochs its pages are protected again.
        let r = 0;
        for (; r < 6; r++) {
          before = faults();
          mem[(REGION + 400 + r) * PAGE] = 3;
          const faulted = faults() - before;
          logs.push(tracker.seal(true, undefined, jobIn).log);
          tracker.logInfo(logs[logs.length - 1]!, true);
          if (faulted === 1) break;
        }
        // In the background the count is current; in the pause a dense region's count is one epoch late.
        assert.ok(r <= (jobIn === 'pause' ? 2 : 0), `a fresh page of the thinned region faulted after ${r} epochs`);
        for (const l of logs) tracker.release(l);
      });
    });
  }

  it('a seal that fails (no free store) changes nothing: memory grown before it is still armed by the next seal', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    withSync(memory, 1 << 20, (tracker) => {
      const held: number[] = [];
      let refused = false;
      for (let i = 0; i < 64 && !refused; i++) {
        try {
          held.push(tracker.seal(false).log);
        } catch (e) {
          assert.ok(isUnderstudyError(e, 'ERR_TRACKER'), String(e));
          refused = true;
        }
      }
      assert.ok(refused, 'the stores ran out');
      // Grow and write the new page, then a seal that cannot take a store.
      memory.grow(1);
      new Uint8Array(memory.buffer)[65536 + 5] = 9;
      assert.throws(() => tracker.seal(false), (e) => isUnderstudyError(e, 'ERR_TRACKER'));
      for (const l of held.splice(0)) tracker.release(l);
      const sealed = tracker.seal(false);
      assert.equal(sealed.grownPages, 1, 'the page written in the grown tail is listed');
      // The grown tail is protected now: its next write faults.
      const faults = tracker.stats().faults!;
      new Uint8Array(memory.buffer)[65536 + 4096 + 7] = 1;
      assert.equal(tracker.stats().faults! - faults, 1);
      tracker.release(sealed.log);
    });
  });

  it('rolls back across several logs exactly (property), reusing a few stores', () => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 8 });
    fillRandom(new Uint8Array(memory.buffer));
    withSync(memory, undefined, (tracker) => {
      fc.assert(
        fc.property(
          fc.array(fc.array(fc.tuple(fc.nat(4 * 65536 - 1), fc.nat(255)), { maxLength: 30 }), { minLength: 1, maxLength: 4 }),
          fc.boolean(),
          fc.constantFrom('background' as const, 'pause' as const),
          fc.constantFrom(0, 1),
          (epochs, presave, jobIn, dense) => {
            tracker.setDenseRegions(dense);
            const target = new Uint8Array(memory.buffer).slice();
            const logs: number[] = [];
            for (const writes of epochs) {
              for (const [addr, v] of writes) new Uint8Array(memory.buffer)[addr] = v;
              logs.push(tracker.seal(presave, undefined, jobIn).log);
            }
            for (const [addr, v] of epochs[0]!) new Uint8Array(memory.buffer)[(addr * 7) % (4 * 65536)] = v ^ 0x5a;
            tracker.rollback([...logs].reverse(), 4 * 65536);
            assert.ok(Buffer.from(memory.buffer).equals(target));
            for (const l of logs) tracker.release(l);
          },
        ),
        { numRuns: 40 },
      );
      assert.ok(tracker.stats().undoStores! <= 6, `stores are reused (${tracker.stats().undoStores})`);
    });
  });

  it('collect: a scan started at a seal yields memory exactly as it was then, while writes and seals go on (property)', async () => {
    const memory = new WebAssembly.Memory({ initial: 32 });
    fillRandom(new Uint8Array(memory.buffer).subarray(0, 16 * 65536));
    const tracker = createTracker(memory, 'wp-sync');
    let merged = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(fc.tuple(fc.nat(32 * 65536 - 1), fc.nat(255)), { maxLength: 200 }), { minLength: 1, maxLength: 5 }),
          fc.boolean(),
          fc.constantFrom('background' as const, 'pause' as const),
          fc.constantFrom(0, 1),
          async (epochs, presave, jobIn, dense) => {
            tracker.setDenseRegions(dense);
            for (const [addr, v] of epochs[0]!) new Uint8Array(memory.buffer)[addr] = v;
            const held = [tracker.seal(presave, undefined, jobIn).log];
            const image = new Uint8Array(new SharedArrayBuffer(memory.buffer.byteLength));
            const expected = new Uint8Array(memory.buffer).slice();
            held.push(tracker.seal(presave, { image, bytes: memory.buffer.byteLength }, jobIn).log);
            for (const writes of epochs) {
              for (const [addr, v] of writes) new Uint8Array(memory.buffer)[addr] = v;
              // Write a page and put its bytes back: predicted and unchanged at the seal, yet written meanwhile.
              const mem = new Uint8Array(memory.buffer);
              const keep = mem[5 * PAGE]!;
              mem[5 * PAGE] = keep ^ 0xff;
              mem[5 * PAGE] = keep;
              held.push(tracker.seal(presave, undefined, jobIn).log);
              await new Promise((r) => setImmediate(r));
            }
            for (let i = 0; i < 2000 && tracker.scanPoll() !== 'done'; i++) await new Promise((r) => setTimeout(r, 1));
            const result = tracker.scanEnd();
            merged += result.mergedPages;
            assert.ok(Buffer.from(image).equals(expected), 'image = memory at the seal');
            const nonZero = [];
            for (let p = 0; p < expected.length / PAGE; p++) if (expected.subarray(p * PAGE, (p + 1) * PAGE).some((b) => b !== 0)) nonZero.push(p);
            assert.deepEqual(Array.from(result.storedPages), nonZero);
            for (const l of held) tracker.release(l);
          },
        ),
        { numRuns: 8 },
      );
      assert.ok(merged > 0, 'pre-images were merged over the copy');
    } finally {
      tracker.dispose();
    }
  });

  it('a rollback stops a scan in progress; dispose stops one too', () => {
    const memory = new WebAssembly.Memory({ initial: 64 });
    const tracker = createTracker(memory, 'wp-sync');
    try {
      new Uint8Array(memory.buffer)[PAGE] = 1;
      const image = new Uint8Array(new SharedArrayBuffer(memory.buffer.byteLength));
      const a = tracker.seal(true, { image, bytes: memory.buffer.byteLength });
      assert.throws(() => tracker.seal(false, { image, bytes: memory.buffer.byteLength }), (e) => isUnderstudyError(e, 'ERR_TRACKER'));
      tracker.rollback([a.log], memory.buffer.byteLength);
      assert.equal(tracker.scanPoll(), 'none');
      tracker.release(a.log);
      const b = tracker.seal(false, { image, bytes: memory.buffer.byteLength });
      void b;
    } finally {
      tracker.dispose();
    }
  });
});
