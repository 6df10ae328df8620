// What a full checkpoint holds and how a guest is written to and rebuilt from
// one. Each stateful part saves itself (guest vCPU: guest/persist.ts, WASI
// device: wasi/persist.ts, output gate); this file gathers them into sections.
import { UnderstudyError } from '../errors.js';
import { Guest, type GuestOptions } from '../guest/guest.js';
import { loadGuestModule, sha256Hex, type GuestModule, type LoadOptions } from '../guest/module.js';
import { REWRITE_VERSION } from '../guest/rewrite.js';
import { vcpuFromPlain, vcpuToPlain, type VcpuState } from '../guest/persist.js';
import { OutputGate, type OutputGateState, type OutputTarget } from '../output/gate.js';
import type { Plain, PlainObject } from '../util/plain.js';
import { WasiDevice, type WasiHostEnv } from '../wasi/index.js';
import { native } from '../native.js';
import { MEMORY_PAGE_BYTES, SectionKind, encodeMemoryPagesHead, encodeMemoryRunsHead, extentsOf, pagesOfExtents, type MemoryPagesHead } from './format.js';
import { DELTA_ENTRY_HEAD_BYTES, DELTA_HEADER_BYTES } from './delta-codec.js';
import { CheckpointFile, restoreTuning, writeCheckpointFile, type Progress, type SectionData } from './file.js';
import { decodePlain, encodePlain } from './plain-codec.js';

export interface CheckpointMeta extends PlainObject {
  sequence: number;
  createdAtMs: number;
  moduleSha256: string;
  guestKind: 'command' | 'reactor';
  rewriteVersion: number;
  memoryBytes: number;
  /** Restore generation of the guest when the checkpoint was taken. */
  restoreGeneration: number;
  /** How much output preceded this checkpoint: a restored run continues from here. */
  output: OutputGateState;
  stdinBytesConsumed: number;
}

export interface CheckpointSource {
  guest: Guest;
  output: OutputGate;
  sequence: number;
  /** Embed the original module so `restore` needs nothing but the file (default true). */
  embedModule?: boolean;
  onProgress?: Progress;
  /** Creation time to record (default now; tests fix it to compare files byte for byte). */
  createdAtMs?: number;
  /** Store every byte of memory in the dense 1.0 form (for the exclusion benchmark); default: only present, non-zero pages. */
  denseMemory?: boolean;
}

/** What a full checkpoint file is made of, already encoded (for writers that do not hold a live guest, such as compaction). */
export interface CheckpointParts {
  meta: CheckpointMeta;
  /** The original module, embedded so `restore` needs nothing but the file; null to leave it out. */
  module: Uint8Array | null;
  memory: Uint8Array;
  /** The pages worth storing (ascending; pages left out read back as zero), when the writer knows them. Default: asked of the kernel (`native.storedPages`: present, non-zero). */
  storedPages?: Uint32Array;
  /** Write the dense 1.0 Memory section (every byte) instead of MemoryPages. */
  denseMemory?: boolean;
  vcpu: Uint8Array;
  devices: Uint8Array;
}

/**
 * The sparse memory section of `memory`: the head, then views of the stored page runs (no copy).
 * Memory exclusion without the guest's help: a page the guest never touched is not present in the
 * page tables and is neither read nor stored; a present page of zeros is dropped by the zero check.
 */
export function memoryPagesSection(memory: Uint8Array, storedPages?: Uint32Array): SectionData {
  const pages = storedPages ?? native.storedPages(memory).pages;
  const extents = extentsOf(pages);
  const pieces: Uint8Array[] = [encodeMemoryPagesHead(memory.length, extents)];
  for (let i = 0; i < extents.length; i += 2) {
    pieces.push(memory.subarray(extents[i]! * MEMORY_PAGE_BYTES, (extents[i]! + extents[i + 1]!) * MEMORY_PAGE_BYTES));
  }
  return { kind: SectionKind.MemoryPages, data: pieces };
}

/**
 * A stored page whose non-zero byte runs (with their 4-byte headers) take fewer bytes than this is
 * stored as runs (MemoryRuns) rather than whole: it must save at least 1/16 of the page, so pages
 * with a few zero words stay in the bulk-read MemoryPages section.
 */
export const SPARSE_PAGE_BODY_BYTES_MAX = MEMORY_PAGE_BYTES - MEMORY_PAGE_BYTES / 16;

let runsScratch = new Uint8Array(0);

/**
 * The memory image below page granularity: whole pages in MemoryPages, and pages mostly zero — a
 * guest whose allocator zeroes what it frees (the balloon SDK) leaves its free holes zero — as
 * their non-zero runs in MemoryRuns.
 */
function memoryImageSections(memory: Uint8Array, storedPages?: Uint32Array): SectionData[] {
  const stored = storedPages ?? native.storedPages(memory).pages;
  // The encoding goes into a buffer kept for the next checkpoint (this thread's; valid until then):
  // only the bytes written are ever backed, and a fresh buffer would fault in every page again.
  const bound = DELTA_HEADER_BYTES + stored.length * (DELTA_ENTRY_HEAD_BYTES + SPARSE_PAGE_BODY_BYTES_MAX);
  if (runsScratch.length < bound) runsScratch = new Uint8Array(bound);
  const { encoded, sparse, dense } = native.sparseEncode(memory, stored, SPARSE_PAGE_BODY_BYTES_MAX, runsScratch);
  if (sparse.length === 0) return [memoryPagesSection(memory, stored)];
  return [memoryPagesSection(memory, dense), { kind: SectionKind.MemoryRuns, data: [encodeMemoryRunsHead(extentsOf(sparse)), encoded] }];
}

export function writeCheckpointParts(filePath: string, parts: CheckpointParts, onProgress?: Progress): number {
  const sections: SectionData[] = [{ kind: SectionKind.Meta, data: encodePlain(parts.meta) }];
  if (parts.module) sections.push({ kind: SectionKind.Module, data: parts.module });
  if (parts.denseMemory) sections.push({ kind: SectionKind.Memory, data: parts.memory });
  else sections.push(...memoryImageSections(parts.memory, parts.storedPages));
  sections.push({ kind: SectionKind.Vcpu, data: parts.vcpu });
  sections.push({ kind: SectionKind.Devices, data: parts.devices });
  return writeCheckpointFile(filePath, sections, onProgress).fileBytes;
}

/** The metadata of a checkpoint of `guest` taken now. */
export function guestMeta(guest: Guest, output: OutputGate, sequence: number, createdAtMs = Date.now()): CheckpointMeta {
  return {
    sequence,
    createdAtMs,
    moduleSha256: guest.module.sha256,
    guestKind: guest.kind,
    rewriteVersion: REWRITE_VERSION,
    memoryBytes: guest.memory.buffer.byteLength,
    restoreGeneration: guest.wasi.restoreGeneration,
    output: output.save(),
    stdinBytesConsumed: guest.wasi.stdinBytesConsumed,
  };
}

/** The encoded vCPU and device sections of a guest at rest. */
export function encodeGuestState(guest: Guest, output: OutputGate): { vcpu: Uint8Array; devices: Uint8Array } {
  return { vcpu: encodePlain(vcpuToPlain(guest.captureVcpu())), devices: encodePlain({ wasi: guest.wasi.save(), output: output.save() }) };
}

/** Writes a full checkpoint of a guest at rest. The guest must stay stopped until this returns. */
export function writeFullCheckpoint(filePath: string, src: CheckpointSource): { meta: CheckpointMeta; fileBytes: number; writeMs: number } {
  const started = performance.now();
  const { guest } = src;
  const { vcpu, devices } = encodeGuestState(guest, src.output);
  const meta = guestMeta(guest, src.output, src.sequence, src.createdAtMs);
  // The live memory, not a copy: the guest is stopped while the file is written.
  const fileBytes = writeCheckpointParts(
    filePath,
    { meta, module: src.embedModule ?? true ? guest.module.original : null, memory: new Uint8Array(guest.memory.buffer), denseMemory: src.denseMemory, vcpu, devices },
    src.onProgress,
  );
  return { meta, fileBytes, writeMs: performance.now() - started };
}

function bad(what: string): UnderstudyError {
  return new UnderstudyError('ERR_CKPT_MALFORMED', what);
}

export function isObject(p: Plain): p is PlainObject {
  return p !== null && typeof p === 'object' && !Array.isArray(p) && !(p instanceof Uint8Array);
}

function nonNegInt(o: PlainObject, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`metadata field ${key} is not a non-negative integer`);
  return v;
}

export function outputState(p: Plain | undefined): OutputGateState {
  if (p === undefined || !isObject(p)) throw bad('output counters missing');
  return { stdoutBytes: nonNegInt(p, 'stdoutBytes'), stderrBytes: nonNegInt(p, 'stderrBytes') };
}

export function metaFromPlain(p: Plain): CheckpointMeta {
  if (!isObject(p)) throw bad('metadata is not an object');
  const sha = p.moduleSha256;
  if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha)) throw bad('metadata has no valid module hash');
  const kind = p.guestKind;
  if (kind !== 'command' && kind !== 'reactor') throw bad('metadata guest kind is invalid');
  return {
    sequence: nonNegInt(p, 'sequence'),
    createdAtMs: nonNegInt(p, 'createdAtMs'),
    moduleSha256: sha,
    guestKind: kind,
    rewriteVersion: nonNegInt(p, 'rewriteVersion'),
    memoryBytes: nonNegInt(p, 'memoryBytes'),
    restoreGeneration: nonNegInt(p, 'restoreGeneration'),
    output: outputState(p.output),
    stdinBytesConsumed: nonNegInt(p, 'stdinBytesConsumed'),
  };
}

/** A guest's saved state, verified except for memory, which is verified as it is loaded
 * (a full checkpoint file, or a point of a chain: base plus deltas). */
export interface GuestImage {
  meta: CheckpointMeta;
  module: Uint8Array | null;
  vcpu: VcpuState;
  wasi: Plain;
  output: OutputGateState;
  /** Writes the memory image into `memory` (exactly meta.memoryBytes long), verifying as it goes. */
  fillMemory(memory: Uint8Array, onProgress?: Progress): void;
  close(): void;
}

export interface OpenedCheckpoint extends GuestImage {
  file: CheckpointFile;
  /** How the memory image is stored: every byte (1.0 files), or only the stored pages. */
  /** storedBytes: the pages stored whole plus the encoded runs; runPages: pages stored as runs (1.2). */
  memoryForm: { kind: 'dense' | 'sparse'; storedBytes: number; extents: number; runPages: number };
}

export function openCheckpoint(filePath: string): OpenedCheckpoint {
  const file = CheckpointFile.open(filePath);
  try {
    const meta = metaFromPlain(decodePlain(file.read(SectionKind.Meta)));
    const module = file.entry(SectionKind.Module) ? file.read(SectionKind.Module) : null;
    if (module && sha256Hex(module) !== meta.moduleSha256) throw new UnderstudyError('ERR_CKPT_MODULE_MISMATCH', 'embedded module does not match the hash in the metadata');
    const dense = file.entry(SectionKind.Memory);
    const sparse = file.entry(SectionKind.MemoryPages);
    if (dense && sparse) throw bad('checkpoint holds both a Memory and a MemoryPages section');
    if (!dense && !sparse) throw bad('checkpoint has no memory section');
    let pagesHead: (MemoryPagesHead & { headCrc: number }) | null = null;
    if (dense && dense.length !== meta.memoryBytes) throw bad(`memory section is ${dense.length} bytes, metadata says ${meta.memoryBytes}`);
    if (sparse) {
      pagesHead = file.readMemoryPagesHead(sparse);
      if (pagesHead.memoryBytes !== meta.memoryBytes) throw bad(`memory image is ${pagesHead.memoryBytes} bytes, metadata says ${meta.memoryBytes}`);
    }
    const runsEntry = file.entry(SectionKind.MemoryRuns);
    let runs: { extents: Uint32Array; pages: number; headBytes: number; headCrc: number } | null = null;
    if (runsEntry) {
      if (!pagesHead) throw bad('a MemoryRuns section without a MemoryPages section');
      runs = file.readMemoryRunsHead(runsEntry, meta.memoryBytes);
      // No page both whole and as runs: walk the two extent lists together.
      const a = pagesHead.extents;
      const b = runs.extents;
      for (let i = 0, j = 0; i < a.length && j < b.length; ) {
        if (a[i]! + a[i + 1]! <= b[j]!) i += 2;
        else if (b[j]! + b[j + 1]! <= a[i]!) j += 2;
        else throw bad(`pages from ${Math.max(a[i]!, b[j]!)} are both in a MemoryPages extent and in MemoryRuns`);
      }
    }
    const vcpu = vcpuFromPlain(decodePlain(file.read(SectionKind.Vcpu)));
    if (vcpu.memoryPages * 65536 !== meta.memoryBytes) throw bad('vCPU memory size disagrees with the metadata');
    if (meta.guestKind === 'reactor' && vcpu.stack !== null) throw bad('a reactor checkpoint carries a stack');
    const devices = decodePlain(file.read(SectionKind.Devices));
    if (!isObject(devices) || devices.wasi === undefined) throw bad('devices section has no WASI state');
    return {
      file,
      meta,
      module,
      vcpu,
      wasi: devices.wasi,
      output: outputState(devices.output),
      memoryForm: pagesHead
        ? {
            kind: 'sparse',
            storedBytes: pagesHead.storedPages * MEMORY_PAGE_BYTES + (runsEntry?.length ?? 0),
            extents: pagesHead.extents.length / 2,
            runPages: runs?.pages ?? 0,
          }
        : { kind: 'dense', storedBytes: meta.memoryBytes, extents: 1, runPages: 0 },
      fillMemory: (memory, onProgress) => {
        if (pagesHead && sparse) {
          // The run pages are populated (as huge pages where whole blocks are run pages) on a
          // thread of their own while the whole pages are read ...
          const prefault = runs && runs.pages > 0 ? native.prefaultStart(memory, runs.extents, restoreTuning.hugePages) : null;
          try {
            // ... which leaves the run pages zero (they lie outside every extent) ...
            file.readMemoryPagesInto(sparse, pagesHead, memory, onProgress);
            // ... and their runs are streamed onto zero.
            if (runs && runsEntry) file.readMemoryRunsInto(runsEntry, runs, pagesOfExtents(runs.extents), memory);
          } finally {
            if (prefault) native.prefaultJoin(prefault);
          }
        } else {
          file.readInto(SectionKind.Memory, memory, onProgress);
        }
      },
      close: () => file.close(),
    };
  } catch (e) {
    file.close();
    throw e;
  }
}

export interface RestoreOptions {
  /** The module to restore into; must have the checkpoint's hash. Default: the embedded module. */
  module?: GuestModule;
  loadOptions?: LoadOptions;
  host: Omit<WasiHostEnv, 'output'>;
  outputTarget?: OutputTarget;
  guestOptions?: Omit<GuestOptions, 'wasi'>;
  onProgress?: Progress;
}

/** Rebuilds a guest from a checkpoint. Nothing runs and nothing is handed out unless every section verified. */
export async function restoreFromCheckpoint(opened: GuestImage, options: RestoreOptions): Promise<{ guest: Guest; output: OutputGate }> {
  const { meta } = opened;
  let module = options.module;
  if (module) {
    if (module.sha256 !== meta.moduleSha256) throw new UnderstudyError('ERR_CKPT_MODULE_MISMATCH', `checkpoint is of module ${meta.moduleSha256.slice(0, 12)}…, not of ${module.sha256.slice(0, 12)}…`);
  } else {
    if (!opened.module) throw new UnderstudyError('ERR_USAGE', 'checkpoint does not embed its module; pass the module file');
    module = await loadGuestModule(opened.module, options.loadOptions);
  }
  if (module.layout.kind !== meta.guestKind) throw new UnderstudyError('ERR_CKPT_MODULE_MISMATCH', `checkpoint is of a ${meta.guestKind}, module loads as a ${module.layout.kind}`);
  const output = new OutputGate(options.outputTarget, opened.output);
  const wasi = WasiDevice.restore(opened.wasi, { ...options.host, output });
  const guest = await Guest.restore(module, { ...options.guestOptions, wasi }, opened.vcpu, (mem) => {
    if (mem.length !== meta.memoryBytes) throw new UnderstudyError('ERR_CKPT_MODULE_MISMATCH', 'memory image and instance differ in size');
    opened.fillMemory(mem, options.onProgress);
  });
  return { guest, output };
}
