// Memory exclusion without the guest's help: the sparse MemoryPages section stores exactly the
// present, non-zero pages; untouched pages are neither read nor stored and come back as zero;
// every malformed or mutated sparse file is refused; 1.0 dense files still read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { CheckpointFile, restoreTuning, writeCheckpointFile } from './file.js';
import {
  MEMORY_EXTENT_BYTES,
  MEMORY_PAGES_HEADER_BYTES,
  SectionKind,
  encodeMemoryPagesHead,
  extentsOf,
  memoryPagesHeadBytes,
  encodeMemoryRunsHead,
  parseMemoryPagesHead,
} from './format.js';
import { memoryPagesSection, SPARSE_PAGE_BODY_BYTES_MAX, openCheckpoint, restoreFromCheckpoint, writeCheckpointParts, writeFullCheckpoint, type CheckpointMeta } from './snapshot.js';
import { encodePlain } from './plain-codec.js';
import { vcpuToPlain, type VcpuState } from '../guest/persist.js';
import { Guest } from '../guest/guest.js';
import { loadGuestModule, sha256Hex } from '../guest/module.js';
import { CollectedOutput, OutputGate } from '../output/gate.js';
import { WasiDevice } from '../wasi/index.js';
import { guestPath, tempDir } from '../testing/fixtures.js';
import { isUnderstudyError, type ErrorCode } from '../errors.js';
import { native } from '../native.js';
import { inspectCheckpoint } from '../cli/inspect.js';

const P = 4096;
const dir = tempDir('exclusion');
let n = 0;
const fresh = (): string => path.join(dir, `x${n++}.usck`);
const CODES: ErrorCode[] = ['ERR_CKPT_TRUNCATED', 'ERR_CKPT_MAGIC', 'ERR_CKPT_VERSION', 'ERR_CKPT_CHECKSUM', 'ERR_CKPT_MALFORMED', 'ERR_CKPT_TOO_LARGE', 'ERR_CKPT_MODULE_MISMATCH'];
const isCkptError = (e: unknown): boolean => CODES.some((c) => isUnderstudyError(e, c));

/** A page of a random image: never touched, written with zeros, or holding bytes. */
type PageKind = 'untouched' | 'zero' | 'data';
const imageArb = fc
  .integer({ min: 1, max: 24 })
  .chain((wasmPages) => fc.tuple(fc.constant(wasmPages), fc.array(fc.constantFrom<PageKind>('untouched', 'untouched', 'zero', 'data'), { minLength: wasmPages * 16, maxLength: wasmPages * 16 }), fc.integer()));

/** A page-aligned memory (a real WebAssembly.Memory, so the page tables say what was touched). */
function buildImage(wasmPages: number, kinds: PageKind[], seed: number): Uint8Array {
  const memory = new Uint8Array(new WebAssembly.Memory({ initial: wasmPages }).buffer);
  kinds.forEach((k, p) => {
    if (k === 'zero') memory.fill(0, p * P, (p + 1) * P);
    if (k === 'data') memory[p * P + ((seed >>> 0) + p * 131) % P] = 1 + ((seed + p) & 0x7f);
  });
  return memory;
}

function readImage(file: string, into: Uint8Array): void {
  const f = CheckpointFile.open(file);
  try {
    const entry = f.require(SectionKind.MemoryPages);
    f.readMemoryPagesInto(entry, f.readMemoryPagesHead(entry), into);
  } finally {
    f.close();
  }
}

test('random sparse images round-trip exactly; exactly the non-zero pages are stored, untouched ones are not even present', () => {
  fc.assert(
    fc.property(imageArb, fc.constantFrom('ahead' as const, 'inline' as const, 'none' as const), fc.boolean(), ([wasmPages, kinds, seed], populate, hugePages) => {
      restoreTuning.populate = populate;
      restoreTuning.hugePages = hugePages;
      const memory = buildImage(wasmPages, kinds, seed);
      const stored = native.storedPages(memory);
      const dataPages = kinds.flatMap((k, p) => (k === 'data' ? [p] : []));
      assert.deepEqual([...stored.pages], dataPages, 'stored = present and non-zero');
      if (stored.method === 'pagemap-scan') {
        assert.deepEqual([...native.presentPages(memory)], kinds.flatMap((k, p) => (k === 'untouched' ? [] : [p])), 'present = touched');
        assert.equal(stored.zeroPresent, kinds.filter((k) => k === 'zero').length);
      }
      const file = fresh();
      writeCheckpointFile(file, [{ kind: SectionKind.Meta, data: Uint8Array.of(1) }, memoryPagesSection(memory)]);
      const f = CheckpointFile.open(file);
      const entry = f.require(SectionKind.MemoryPages);
      f.close();
      assert.equal(entry.offset % P, 0);
      assert.equal(entry.length, memoryPagesHeadBytes(extentsOf(stored.pages).length / 2) + dataPages.length * P, 'section = head + stored pages');
      // Into a destination that already holds bytes everywhere (like a fresh instance's data segments).
      const back = new Uint8Array(new WebAssembly.Memory({ initial: wasmPages }).buffer);
      for (let p = 0; p < back.length / P; p += 3) back[p * P + 5] = 0xee;
      readImage(file, back);
      assert.ok(Buffer.from(back).equals(Buffer.from(memory)));
      fs.rmSync(file);
    }),
    { numRuns: 60 },
  );
  restoreTuning.populate = 'ahead';
  restoreTuning.hugePages = true;
});

test('the prefault thread checks its extents, changes no byte, and joins once', () => {
  const memory = new Uint8Array(new WebAssembly.Memory({ initial: 2 }).buffer);
  memory.fill(9, 0, 3 * P);
  const handle = native.prefaultStart(memory, Uint32Array.of(0, 4, 10, 22));
  assert.equal(native.prefaultJoin(handle), 0);
  assert.equal(native.prefaultJoin(handle), 0, 'a second join is a no-op');
  assert.ok(memory.subarray(0, 3 * P).every((b) => b === 9) && memory.subarray(3 * P).every((b) => b === 0));
  const code = (e: unknown) => (e as { code?: string }).code;
  assert.throws(() => native.prefaultStart(memory, Uint32Array.of(30, 3)), (e) => code(e) === 'ERR_NATIVE_RANGE');
  assert.throws(() => native.prefaultStart(memory, Uint32Array.of(1)), (e) => code(e) === 'ERR_NATIVE_ARG');
  assert.throws(() => native.prefaultStart(memory, [0, 1] as unknown as Uint32Array), (e) => code(e) === 'ERR_NATIVE_ARG');
});

test('restoring a sparse image into a fresh memory touches no excluded page', () => {
  const memory = buildImage(64, Array.from({ length: 1024 }, (_, p) => (p % 97 === 0 ? 'data' : p % 13 === 0 ? 'zero' : 'untouched')), 7);
  const file = fresh();
  writeCheckpointFile(file, [memoryPagesSection(memory)]);
  const back = new Uint8Array(new WebAssembly.Memory({ initial: 64 }).buffer);
  readImage(file, back);
  if (native.storedPages(back).method === 'pagemap-scan') assert.deepEqual([...native.presentPages(back)], [...native.storedPages(memory).pages]);
  assert.ok(Buffer.from(back).equals(Buffer.from(memory)));
});

test('restoring onto huge pages backs only whole 2 MiB blocks of stored pages: no excluded page becomes present', () => {
  restoreTuning.hugePages = true;
  // 16 MiB: a 5 MiB run of data (two whole 2 MiB blocks inside it), zero pages, scattered data.
  const kinds = Array.from({ length: 4096 }, (_, p): 'data' | 'zero' | 'untouched' =>
    p >= 300 && p < 300 + 1280 ? 'data' : p % 211 === 0 ? 'data' : p % 17 === 0 ? 'zero' : 'untouched',
  );
  const memory = buildImage(256, kinds, 11);
  const file = fresh();
  writeCheckpointFile(file, [memoryPagesSection(memory)]);
  const back = new Uint8Array(new WebAssembly.Memory({ initial: 256 }).buffer);
  readImage(file, back);
  assert.ok(Buffer.from(back).equals(Buffer.from(memory)));
  if (native.storedPages(back).method === 'pagemap-scan') assert.deepEqual([...native.presentPages(back)], [...native.storedPages(memory).pages]);
  // The restored memory is an ordinary one afterwards: discarding part of a block gives it back.
  native.discardPages(back, 600, 16);
  assert.ok(back.subarray(600 * P, 616 * P).every((b) => b === 0));
  if (native.storedPages(back).method === 'pagemap-scan') assert.ok(![...native.presentPages(back)].some((p) => p >= 600 && p < 616));
});

test('malformed extent tables are refused as ERR_CKPT_MALFORMED before any page is read', () => {
  const mem = 4 * 65536; // 64 pages
  const head = (extents: number[], count = extents.length / 2): Uint8Array => {
    const h = new Uint8Array(memoryPagesHeadBytes(count));
    const v = new DataView(h.buffer);
    v.setBigUint64(0, BigInt(mem), true);
    v.setUint32(8, count, true);
    extents.forEach((x, i) => v.setUint32(MEMORY_PAGES_HEADER_BYTES + i * 4, x, true));
    return h;
  };
  const sectionFor = (h: Uint8Array, pages: number): number => h.length + pages * P;
  const good = head([0, 2, 5, 3]);
  assert.equal(parseMemoryPagesHead(good, sectionFor(good, 5)).storedPages, 5);
  const cases: [string, Uint8Array, number][] = [
    ['past the end of memory', head([60, 5]), sectionFor(head([60, 5]), 5)],
    ['overlapping', head([0, 4, 3, 2]), sectionFor(head([0, 4, 3, 2]), 6)],
    ['adjacent (not maximal)', head([0, 2, 2, 2]), sectionFor(head([0, 2, 2, 2]), 4)],
    ['unsorted', head([10, 1, 2, 1]), sectionFor(head([10, 1, 2, 1]), 2)],
    ['empty extent', head([3, 0]), sectionFor(head([3, 0]), 0)],
    ['length shorter than the extents need', good, sectionFor(good, 4)],
    ['length longer than the extents need', good, sectionFor(good, 6)],
    ['extent count past the section', head([0, 2, 5, 3], 5000), good.length],
    ['wrapping page count', head([1, 0xffffffff]), sectionFor(head([1, 0xffffffff]), 1)],
  ];
  for (const [what, h, len] of cases) {
    assert.throws(
      () => parseMemoryPagesHead(h.subarray(0, Math.min(h.length, memoryPagesHeadBytes(new DataView(h.buffer).getUint32(8, true)))), len),
      (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'),
      what,
    );
  }
  const badSize = head([0, 1]);
  new DataView(badSize.buffer).setBigUint64(0, BigInt(mem + 4096), true);
  assert.throws(() => parseMemoryPagesHead(badSize, sectionFor(badSize, 1)), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'), 'memory size not whole wasm pages');
  const badPad = head([0, 1]);
  badPad[MEMORY_PAGES_HEADER_BYTES + MEMORY_EXTENT_BYTES] = 1;
  assert.throws(() => parseMemoryPagesHead(badPad, sectionFor(badPad, 1)), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'), 'non-zero padding');
  assert.throws(() => encodeMemoryPagesHead(mem, Uint32Array.of(0, 2, 1, 2)), 'the writer asserts its own extents');
});

function metaFor(vcpu: VcpuState, module: Uint8Array): CheckpointMeta {
  return {
    sequence: 1,
    createdAtMs: 1_700_000_000_000,
    moduleSha256: sha256Hex(module),
    guestKind: 'reactor',
    rewriteVersion: 1,
    memoryBytes: vcpu.memoryPages * 65536,
    restoreGeneration: 0,
    output: { stdoutBytes: 0, stderrBytes: 0 },
    stdinBytesConsumed: 0,
  };
}

test('every single-byte mutation and truncation of a sparse checkpoint is refused', () => {
  const MODULE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0);
  const vcpu: VcpuState = { memoryPages: 2, globals: [1], tables: [], stack: null, started: true };
  const memory = buildImage(2, Array.from({ length: 32 }, (_, p) => (p % 5 === 0 ? 'data' : p % 7 === 0 ? 'zero' : 'untouched')), 3);
  const file = fresh();
  writeCheckpointParts(file, { meta: metaFor(vcpu, MODULE), module: MODULE, memory, vcpu: encodePlain(vcpuToPlain(vcpu)), devices: encodePlain({ wasi: { a: 1 }, output: { stdoutBytes: 0, stderrBytes: 0 } }) });
  const good = fs.readFileSync(file);
  const load = (f: string): void => {
    const opened = openCheckpoint(f);
    try {
      opened.fillMemory(new Uint8Array(new WebAssembly.Memory({ initial: 2 }).buffer));
    } finally {
      opened.close();
    }
  };
  load(file);
  const bad = fresh();
  // Every byte of the memory section's head and a sample of the rest.
  const opened = openCheckpoint(file);
  const entry = opened.file.require(SectionKind.MemoryPages);
  assert.equal(opened.memoryForm.kind, 'sparse');
  opened.close();
  const headAt = Array.from({ length: MEMORY_PAGES_HEADER_BYTES + 4 * MEMORY_EXTENT_BYTES }, (_, i) => entry.offset + i);
  fc.assert(
    fc.property(fc.oneof(fc.constantFrom(...headAt), fc.nat(good.length - 1)), fc.integer({ min: 1, max: 255 }), (at, xor) => {
      const copy = Buffer.from(good);
      copy[at]! ^= xor;
      fs.writeFileSync(bad, copy);
      assert.throws(() => load(bad), (e) => isCkptError(e), `mutation at ${at} was accepted`);
    }),
    { numRuns: 300 },
  );
  for (const len of [entry.offset + 8, entry.offset + entry.length - 1, good.length - 1]) {
    fs.writeFileSync(bad, good.subarray(0, len));
    assert.throws(() => load(bad), (e) => isCkptError(e), `truncated to ${len}`);
  }
});

test('a 1.0 file with a dense Memory section still reads, and inspect tells the two forms apart', () => {
  const MODULE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0);
  const vcpu: VcpuState = { memoryPages: 3, globals: [], tables: [], stack: null, started: true };
  const memory = new Uint8Array(3 * 65536);
  for (let i = 0; i < memory.length; i += 4099) memory[i] = (i & 0xff) | 1;
  const parts = { meta: metaFor(vcpu, MODULE), module: MODULE, memory, vcpu: encodePlain(vcpuToPlain(vcpu)), devices: encodePlain({ wasi: {}, output: { stdoutBytes: 0, stderrBytes: 0 } }) };
  const dense = fresh();
  writeCheckpointParts(dense, { ...parts, denseMemory: true });
  // Make it exactly what a 1.0 writer wrote: minor 0 (header CRC recomputed).
  const bytes = fs.readFileSync(dense);
  bytes.writeUInt16LE(0, 10);
  bytes.writeUInt32LE(native.crc32c(bytes.subarray(0, 60)), 60);
  fs.writeFileSync(dense, bytes);
  const opened = openCheckpoint(dense);
  assert.equal(opened.memoryForm.kind, 'dense');
  const back = new Uint8Array(3 * 65536);
  opened.fillMemory(back);
  opened.close();
  assert.ok(Buffer.from(back).equals(Buffer.from(memory)));
  const sparse = fresh();
  writeCheckpointParts(sparse, parts);
  const r = inspectCheckpoint(sparse);
  assert.ok(r.ok, r.problems.join('; '));
  // One non-zero byte per page: every page is stored as its runs (MemoryRuns), none whole.
  const { encoded, sparse: runPages, dense: wholePages } = native.sparseEncode(memory, native.nonZeroPages(memory), SPARSE_PAGE_BODY_BYTES_MAX);
  assert.equal(wholePages.length, 0);
  const runsHead = encodeMemoryRunsHead(extentsOf(runPages));
  assert.deepEqual(r.memory, { form: 'sparse', configuredBytes: memory.length, storedBytes: runsHead.length + encoded.length, extents: 0, runPages: runPages.length });
  const reopened = openCheckpoint(sparse);
  const back2 = new Uint8Array(new WebAssembly.Memory({ initial: 3 }).buffer);
  reopened.fillMemory(back2);
  reopened.close();
  assert.ok(Buffer.from(back2).equals(Buffer.from(memory)));
  assert.equal(inspectCheckpoint(dense).memory?.form, 'dense');
});

test('a guest with 256 MiB configured and a few MiB used checkpoints to about what it uses and restores byte-identical', async () => {
  const module = await loadGuestModule(guestPath('kvstore'));
  const gate = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output: gate }) });
  guest.request('handle', Buffer.from('FILL 12000 100'));
  guest.memory.grow((256 * 2 ** 20 - guest.memory.buffer.byteLength) / 65536);
  const live = new Uint8Array(guest.memory.buffer);
  const used = native.storedPages(live).pages.length * P;
  assert.ok(used > 2 * 2 ** 20 && used < 16 * 2 ** 20, `guest uses ${used} bytes`);
  const file = fresh();
  const { fileBytes } = writeFullCheckpoint(file, { guest, output: gate, sequence: 1 });
  const opened = openCheckpoint(file);
  const section = opened.file.require(SectionKind.MemoryPages).length + (opened.file.entry(SectionKind.MemoryRuns)?.length ?? 0);
  // No more than the pages used (plus tables), no less than their non-zero bytes.
  let nonZeroBytes = 0;
  for (const page of native.storedPages(live).pages) for (const b of live.subarray(page * P, (page + 1) * P)) nonZeroBytes += b === 0 ? 0 : 1;
  assert.ok(section <= used * 1.03 && section >= nonZeroBytes, `memory sections ${section} vs used ${used}, non-zero bytes ${nonZeroBytes}`);
  assert.ok(fileBytes < used * 1.05 + module.original.length + 65536);
  const { guest: back } = await restoreFromCheckpoint(opened, { module, host: {}, outputTarget: new CollectedOutput() });
  opened.close();
  const restored = new Uint8Array(back.memory.buffer);
  assert.equal(restored.length, live.length);
  const presentAfter = native.presentPages(restored).length * P;
  if (native.storedPages(restored).method === 'pagemap-scan') assert.ok(presentAfter <= used + 256 * 1024, `restore touched ${presentAfter} bytes for ${used} used`);
  // Byte-identical: compare the pages either side holds, then the rest is zero on both.
  assert.deepEqual([...native.diffPages(live, restored)], []);
  // And it carries on the same.
  const a = guest.request('handle', Buffer.from('GET fill:77'));
  const b = back.request('handle', Buffer.from('GET fill:77'));
  assert.deepEqual(b, a);
});

test('pages mostly zero are stored as their non-zero runs: restored exactly, every mutation and malformed runs section refused', () => {
  const MODULE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0);
  const vcpu: VcpuState = { memoryPages: 2, globals: [1], tables: [], stack: null, started: true };
  const memory = buildImage(2, Array.from({ length: 32 }, (_, p) => (p % 4 === 0 ? 'data' : 'untouched')), 5);
  for (let p = 0; p < 32; p += 4) for (let i = 0; i < P; i++) memory[p * P + i] = 1 + ((p * 31 + i * 13) % 255); // dense pages
  // Pages 2, 3, 10 hold a few live bytes among zeros (a free hole zeroed by the balloon SDK).
  for (const [page, at, len] of [[2, 0, 40], [2, 300, 9], [3, 4000, 96], [10, 17, 1]] as const) {
    for (let i = 0; i < len; i++) memory[page * P + at + i] = 1 + ((i * 7) % 250);
  }
  const parts = { meta: metaFor(vcpu, MODULE), module: MODULE, memory, vcpu: encodePlain(vcpuToPlain(vcpu)), devices: encodePlain({ wasi: { a: 1 }, output: { stdoutBytes: 0, stderrBytes: 0 } }) };
  const file = fresh();
  writeCheckpointParts(file, parts);
  const load = (f: string): Uint8Array => {
    const opened = openCheckpoint(f);
    try {
      const back = new Uint8Array(new WebAssembly.Memory({ initial: 2 }).buffer);
      back.fill(0xcc, 2 * P, 4 * P); // a fresh instance's own bytes where run pages go
      opened.fillMemory(back);
      return back;
    } finally {
      opened.close();
    }
  };
  assert.ok(Buffer.from(load(file)).equals(Buffer.from(memory)));
  const opened = openCheckpoint(file);
  const runs = opened.file.require(SectionKind.MemoryRuns);
  assert.equal(opened.memoryForm.runPages, 3);
  assert.equal(opened.file.require(SectionKind.MemoryPages).length, memoryPagesHeadBytes(extentsOf(native.nonZeroPages(memory)).length / 2) + 8 * P, 'the data pages stay whole');
  opened.close();
  // Every byte of the runs section, mutated, is refused.
  const good = fs.readFileSync(file);
  const bad = fresh();
  for (let at = runs.offset; at < runs.offset + runs.length; at++) {
    const copy = Buffer.from(good);
    copy[at]! ^= 0x5a;
    fs.writeFileSync(bad, copy);
    assert.throws(() => load(bad), (e) => isCkptError(e), `mutation at ${at} was accepted`);
  }
  // Well-formed containers around malformed runs: a whole page in it, a page also in an extent, runs without pages.
  const sections = (runsData: Uint8Array, pages = memoryPagesSection(memory, Uint32Array.of(0, 4, 8, 12, 16, 20, 24, 28))) => [
    { kind: SectionKind.Meta, data: encodePlain(parts.meta) },
    { kind: SectionKind.Vcpu, data: parts.vcpu },
    { kind: SectionKind.Devices, data: parts.devices },
    pages,
    { kind: SectionKind.MemoryRuns, data: runsData },
  ];
  const zeroShadow = new Uint8Array(memory.length);
  const full = new Uint8Array(24 + 5 + P);
  native.deltaEncode(memory.slice(2 * P, 3 * P), Uint32Array.of(2), zeroShadow, full, 0, 1);
  const runsOf = (pages: Uint32Array, encoded: Uint8Array): Uint8Array => Buffer.concat([encodeMemoryRunsHead(extentsOf(pages)), encoded]);
  const valid = runsOf(Uint32Array.of(2, 3, 10), native.sparseEncode(memory, Uint32Array.of(2, 3, 10), SPARSE_PAGE_BODY_BYTES_MAX).encoded);
  for (const [what, secs] of [
    ['a whole page among the runs', sections(runsOf(Uint32Array.of(2), full))],
    ['a page both whole and as runs', sections(valid, memoryPagesSection(memory, Uint32Array.of(0, 3, 4, 8, 12, 16, 20, 24, 28)))],
    ['runs without a MemoryPages section', sections(valid).filter((x) => x.kind !== SectionKind.MemoryPages)],
    ['runs for other pages than the extents say', sections(runsOf(Uint32Array.of(2, 3, 11), native.sparseEncode(memory, Uint32Array.of(2, 3, 10), SPARSE_PAGE_BODY_BYTES_MAX).encoded))],
    ['fewer runs than run pages', sections(runsOf(Uint32Array.of(2, 3, 10, 11), native.sparseEncode(memory, Uint32Array.of(2, 3, 10), SPARSE_PAGE_BODY_BYTES_MAX).encoded))],
    ['a run extent past the end of memory', sections(runsOf(Uint32Array.of(2, 3, 40), native.sparseEncode(memory, Uint32Array.of(2, 3, 10), SPARSE_PAGE_BODY_BYTES_MAX).encoded))],
  ] as const) {
    writeCheckpointFile(bad, secs as never);
    assert.throws(() => load(bad), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED') || assert.fail(`${what}: ${String(e)}`), what);
  }
  writeCheckpointFile(bad, sections(valid) as never);
  assert.ok(Buffer.from(load(bad)).equals(Buffer.from(memory)), 'the hand-built valid file loads');
});

test('a runs section of many chunks streams back exactly, whatever the entry sizes at chunk boundaries', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 31 }), (seed) => {
      // 24 MiB of pages each holding 1–40 short runs: a runs section of several 1 MiB chunks.
      const memory = new Uint8Array(new WebAssembly.Memory({ initial: 384 }).buffer);
      let x = seed;
      const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
      for (let page = 0; page < memory.length / P; page++) {
        if (next() % 7 === 0) continue; // some pages untouched
        const runs = 1 + (next() % 40);
        for (let r = 0; r < runs; r++) {
          const at = page * P + (next() % (P - 64));
          const len = 1 + (next() % 48);
          for (let i = 0; i < len; i++) memory[at + i] = 1 + (next() % 255);
        }
      }
      const vcpu: VcpuState = { memoryPages: 384, globals: [], tables: [], stack: null, started: true };
      const MODULE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0);
      const file = fresh();
      writeCheckpointParts(file, { meta: metaFor(vcpu, MODULE), module: null, memory, vcpu: encodePlain(vcpuToPlain(vcpu)), devices: encodePlain({ wasi: {}, output: { stdoutBytes: 0, stderrBytes: 0 } }) });
      const opened = openCheckpoint(file);
      const runsEntry = opened.file.require(SectionKind.MemoryRuns);
      assert.ok(runsEntry.length > 3 * 2 ** 20, `runs section ${runsEntry.length} B spans several chunks`);
      const back = new Uint8Array(new WebAssembly.Memory({ initial: 384 }).buffer);
      opened.fillMemory(back);
      opened.close();
      assert.ok(Buffer.from(back).equals(Buffer.from(memory)));
      // A flipped byte anywhere in the section (here: just past the first chunk) is refused.
      const bytes = fs.readFileSync(file);
      bytes[runsEntry.offset + 2 ** 20 + 3 + (seed % 4096)]! ^= 0x20;
      fs.writeFileSync(file, bytes);
      const again = openCheckpoint(file);
      try {
        assert.throws(() => again.fillMemory(new Uint8Array(new WebAssembly.Memory({ initial: 384 }).buffer)), (e) => isCkptError(e));
      } finally {
        again.close();
      }
      fs.rmSync(file);
    }),
    { numRuns: 4 },
  );
});
