// One conformance suite that every tracker kind supported here must pass
// (the jco pattern): exact dirty sets for writes from JS, from wasm code and
// from the kernel; memory.grow during an epoch; several guests at once;
// dispose releasing everything.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isUnderstudyError } from '../errors.js';
import { createTracker, probeTrackers, TRACKER_KINDS, type DirtyTracker, type TrackerKind } from './tracker.js';
import { instantiateStoreGuest } from './guest-fixture.js';

const PAGE = 4096;
const WASM_PAGE = 65536;

function pagesOf(addrs: Iterable<number>): number[] {
  return [...new Set([...addrs].map((a) => Math.floor(a / PAGE)))].sort((a, b) => a - b);
}

/** Changes the byte (so the hash tracker, which compares contents, sees it too). */
function bump(u8: Uint8Array, addr: number): void {
  u8[addr] = (u8[addr]! + 1) & 0xff;
}

function withTracker(memory: WebAssembly.Memory, kind: TrackerKind, body: (t: DirtyTracker) => void): void {
  const tracker = createTracker(memory, kind);
  try {
    body(tracker);
  } finally {
    tracker.dispose();
  }
}

const linux = process.platform === 'linux';
const countFds = () => readdirSync('/proc/self/fd').length;
const countThreads = () => readdirSync('/proc/self/task').length;

export function testTrackerImplementation(kind: TrackerKind): void {
  it('reports exactly the pages written from JS (property)', () => {
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 64 });
    withTracker(memory, kind, (tracker) => {
      assert.equal(tracker.kind, kind);
      fc.assert(
        fc.property(fc.array(fc.nat(16 * WASM_PAGE - 1), { maxLength: 48 }), (addrs) => {
          const u8 = new Uint8Array(memory.buffer);
          for (const a of addrs) bump(u8, a);
          assert.deepEqual(Array.from(tracker.collect()), pagesOf(addrs));
          assert.equal(tracker.collect().length, 0, 'a second collect with no writes is empty');
        }),
        { numRuns: 60 },
      );
    });
  });

  it('reports exactly the pages written by wasm code (property)', () => {
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 64 });
    const guest = instantiateStoreGuest(memory);
    const bytes = 16 * WASM_PAGE;
    let epoch = 0;
    withTracker(memory, kind, (tracker) => {
      fc.assert(
        fc.property(
          fc.array(fc.record({ addr: fc.nat(bytes - 1), len: fc.integer({ min: 1, max: 3 * PAGE }) }), { maxLength: 12 }),
          fc.array(fc.nat(bytes - 1), { maxLength: 12 }),
          (fills, pokes) => {
            const value = (epoch++ % 250) + 1; // differs from the previous epoch's value
            const written: number[] = [];
            for (const { addr, len } of fills) {
              const n = Math.min(len, bytes - addr);
              guest.fill(addr, n, value);
              written.push(addr, addr + n - 1);
              for (let p = Math.floor(addr / PAGE); p <= Math.floor((addr + n - 1) / PAGE); p++) written.push(p * PAGE);
            }
            const u8 = new Uint8Array(memory.buffer);
            for (const a of pokes) {
              guest.poke(a, (u8[a]! + 1) & 0xff);
              written.push(a);
            }
            assert.deepEqual(Array.from(tracker.collect()), pagesOf(written));
            assert.equal(tracker.collect().length, 0);
          },
        ),
        { numRuns: 40 },
      );
    });
  });

  it('sees writes made by the kernel (read(2) into guest memory)', (t) => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 8 });
    const dir = mkdtempSync(join(tmpdir(), 'understudy-track-'));
    try {
      const file = join(dir, 'data');
      writeFileSync(file, Buffer.alloc(2 * PAGE + 100, 0x5a));
      withTracker(memory, kind, (tracker) => {
        if (tracker.stats().userModeOnly === 1 && kind === 'wp-sync') {
          t.skip('userfaultfd is user-mode-only here; kernel writes into wp-sync memory fail with EFAULT');
          return;
        }
        const fd = openSync(file, 'r');
        try {
          const n = readSync(fd, new Uint8Array(memory.buffer), 5 * PAGE + 10, 2 * PAGE + 100, 0);
          assert.equal(n, 2 * PAGE + 100);
        } finally {
          closeSync(fd);
        }
        assert.deepEqual(Array.from(tracker.collect()), [5, 6, 7]);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('follows memory.grow during an epoch (from JS and from wasm)', () => {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 16 });
    const guest = instantiateStoreGuest(memory);
    withTracker(memory, kind, (tracker) => {
      bump(new Uint8Array(memory.buffer), 1 * PAGE + 1); // old region
      memory.grow(2); // pages 32..63 arrive
      let u8 = new Uint8Array(memory.buffer);
      bump(u8, 40 * PAGE + 9);
      bump(u8, 63 * PAGE + PAGE - 1);
      void u8[50 * PAGE]; // a read is not a write
      assert.equal(guest.grow(1), 4); // pages 64..79 arrive, grown by wasm code
      guest.poke(70 * PAGE + 3, 7);
      guest.poke(2 * PAGE, 9); // old region again, from wasm
      assert.deepEqual(Array.from(tracker.collect()), [1, 2, 40, 63, 70]);
      assert.equal(tracker.collect().length, 0);
      // The grown pages are tracked like the others from now on.
      u8 = new Uint8Array(memory.buffer);
      bump(u8, 40 * PAGE + 9);
      bump(u8, 79 * PAGE);
      assert.deepEqual(Array.from(tracker.collect()), [40, 79]);
      // A grow with no writes reports nothing.
      memory.grow(1);
      void new Uint8Array(memory.buffer)[85 * PAGE];
      assert.equal(tracker.collect().length, 0);
    });
  });

  // wp-async scans a grown range with a slower, filtered query until it has
  // promoted it (in steps of at most 4,096 pages not yet written) to the fast one, which would
  // count never-touched and read-only pages as written: epochs of writes and
  // reads on both sides of several grows, some larger than one promotion step,
  // must stay exact the whole time.
  it('stays exact across epochs with grows, and writes and reads in the old and the grown ranges (property)', () => {
    const maxWasmPages = 1280; // 80 MiB
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            // The large grows (19-25 MiB) take more than one promotion step (16 MiB).
            grow: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 300, max: 400 })),
            viaWasm: fc.boolean(),
            // Fractions of the memory's size at the time of the write, before and after the grow.
            before: fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { maxLength: 6 }),
            after: fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { maxLength: 6 }),
            reads: fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { maxLength: 6 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        (epochs) => {
          const memory = new WebAssembly.Memory({ initial: 4, maximum: maxWasmPages });
          const guest = instantiateStoreGuest(memory);
          withTracker(memory, kind, (tracker) => {
            let value = 1;
            for (const epoch of epochs) {
              const written: number[] = [];
              const write = (fraction: number, viaWasm: boolean) => {
                const u8 = new Uint8Array(memory.buffer);
                const addr = Math.floor(fraction * u8.length);
                if (viaWasm) guest.poke(addr, (u8[addr]! + 1) & 0xff);
                else bump(u8, addr);
                written.push(addr);
              };
              const oldBytes = memory.buffer.byteLength;
              for (const f of epoch.before) write(f, epoch.viaWasm);
              const grow = Math.min(epoch.grow, maxWasmPages - oldBytes / WASM_PAGE);
              if (grow > 0) {
                if (epoch.viaWasm) guest.grow(grow);
                else memory.grow(grow);
              }
              for (const f of epoch.after) write(f, !epoch.viaWasm);
              const u8 = new Uint8Array(memory.buffer);
              let sink = 0;
              for (const f of epoch.reads) sink += u8[Math.floor(f * u8.length)]!; // reads are not writes
              // Always at least one write in the newest part, so grown pages are exercised.
              if (grow > 0) write((oldBytes + (value % (grow * WASM_PAGE))) / u8.length, false);
              value++;
              assert.ok(sink >= 0);
              assert.deepEqual(Array.from(tracker.collect()), pagesOf(written), `epoch ${value - 1}`);
              assert.equal(tracker.collect().length, 0, 'a second collect with no writes is empty');
            }
            if (kind === 'wp-async') {
              // Run collects until the grown ranges are promoted; each stays empty.
              for (let i = 0; i < 8 && tracker.stats().fastScanBytes! < memory.buffer.byteLength; i++) {
                assert.equal(tracker.collect().length, 0);
              }
              const stats = tracker.stats();
              assert.equal(stats.promoteErrno, 0);
              assert.equal(stats.fastScanBytes, memory.buffer.byteLength, 'every grown range was promoted');
              bump(new Uint8Array(memory.buffer), memory.buffer.byteLength - 1);
              assert.deepEqual(Array.from(tracker.collect()), [memory.buffer.byteLength / PAGE - 1]);
            }
          });
        },
      ),
      { numRuns: 25 },
    );
  });

  it('keeps several guests apart', () => {
    const memories = [0, 1, 2].map(() => new WebAssembly.Memory({ initial: 4, maximum: 8 }));
    const guests = memories.map((m) => instantiateStoreGuest(m));
    const trackers = memories.map((m) => createTracker(m, kind));
    try {
      fc.assert(
        fc.property(fc.array(fc.tuple(fc.nat(2), fc.nat(4 * WASM_PAGE - 1), fc.boolean()), { maxLength: 30 }), (writes) => {
          const expected: number[][] = [[], [], []];
          for (const [g, addr, viaWasm] of writes) {
            const u8 = new Uint8Array(memories[g]!.buffer);
            if (viaWasm) guests[g]!.poke(addr, (u8[addr]! + 1) & 0xff);
            else bump(u8, addr);
            expected[g]!.push(addr);
          }
          trackers.forEach((t, g) => assert.deepEqual(Array.from(t.collect()), pagesOf(expected[g]!), `guest ${g}`));
        }),
        { numRuns: 25 },
      );
    } finally {
      for (const t of trackers) t.dispose();
    }
  });

  it('dispose releases fds and threads, and is idempotent', { skip: !linux }, () => {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 4 });
    const fds = countFds();
    const threads = countThreads();
    const tracker = createTracker(memory, kind);
    if (kind === 'wp-sync') assert.equal(countThreads(), threads + 1, 'one handler thread');
    bump(new Uint8Array(memory.buffer), 3 * PAGE);
    assert.deepEqual(Array.from(tracker.collect()), [3]);
    bump(new Uint8Array(memory.buffer), 4 * PAGE);
    tracker.dispose();
    tracker.dispose();
    assert.equal(countFds(), fds, 'every fd closed');
    assert.equal(countThreads(), threads, 'the handler thread joined');
    bump(new Uint8Array(memory.buffer), 5 * PAGE); // no longer protected: must not block
    assert.throws(() => tracker.collect(), (e) => isUnderstudyError(e, 'ERR_TRACKER_DISPOSED'));
    assert.equal(tracker.stats().disposed, 1);
  });

  if (kind === 'wp-async') {
    it('promotes a grown range the guest wrote at once, and an untouched one 16 MiB per collect', () => {
      // US_PROMOTE_UNBACKED_PAGES_MAX in native/src/uffd.c: pages not yet written per promotion.
      const stepPages = 4096;
      const step = stepPages * PAGE; // 16 MiB, 256 wasm pages
      const memory = new WebAssembly.Memory({ initial: 16, maximum: 16 + 256 + 1024 + 1024 });
      withTracker(memory, kind, (tracker) => {
        const fast = () => tracker.stats().fastScanBytes!;
        assert.equal(fast(), 16 * WASM_PAGE);
        // 16 MiB grown and written whole: one collect reports it and promotes all of it.
        memory.grow(256);
        const u8 = new Uint8Array(memory.buffer);
        for (let a = 16 * WASM_PAGE; a < u8.length; a += PAGE) bump(u8, a);
        assert.equal(tracker.collect().length, 256 * 16);
        assert.equal(fast(), memory.buffer.byteLength);
        // 64 MiB grown, untouched: one step per collect, each collect empty.
        const before = fast();
        memory.grow(1024);
        for (let i = 1; i <= 4; i++) {
          assert.equal(tracker.collect().length, 0);
          assert.equal(fast(), before + i * step);
        }
        // 64 MiB grown, its second half written: the untouched first half takes two steps, and
        // the written half comes with the second.
        const start = fast();
        memory.grow(1024);
        const u8b = new Uint8Array(memory.buffer);
        for (let a = start + 2 * step; a < u8b.length; a += PAGE) bump(u8b, a);
        assert.equal(tracker.collect().length, 2 * stepPages);
        assert.equal(fast(), start + step);
        assert.equal(tracker.collect().length, 0);
        assert.equal(fast(), memory.buffer.byteLength);
        assert.equal(tracker.stats().promoteErrno, 0);
        // Exact from the fast scan: one write in each part, and a read of an untouched page (which
        // maps the zero page under its marker) is not a write.
        const u8c = new Uint8Array(memory.buffer);
        assert.equal(u8c[start + 3 * PAGE], 0);
        for (const a of [start + 5, start + step + 9 * PAGE + 7]) bump(u8c, a);
        assert.deepEqual(Array.from(tracker.collect()), pagesOf([start + 5, start + step + 9 * PAGE + 7]));
      });
    });
  }

  if (kind !== 'hash') {
    it('refuses a second kernel tracker on one memory, and allows one after dispose', () => {
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
      const first = createTracker(memory, kind);
      assert.throws(() => createTracker(memory, kind), (e) => isUnderstudyError(e, 'ERR_TRACKER_BUSY'));
      first.dispose();
      withTracker(memory, kind, (second) => {
        bump(new Uint8Array(memory.buffer), 9 * PAGE);
        assert.deepEqual(Array.from(second.collect()), [9]);
      });
    });
  }
}

const probes = probeTrackers();
for (const kind of TRACKER_KINDS) {
  const probe = probes.find((p) => p.kind === kind);
  describe(`tracker ${kind}`, { skip: probe?.supported ? false : (probe?.reason ?? 'not probed') }, () => {
    testTrackerImplementation(kind);
  });
}
