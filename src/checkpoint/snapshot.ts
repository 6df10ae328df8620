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
import { SectionKind } from './format.js';
import { CheckpointFile, writeCheckpointFile, type Progress, type SectionData } from './file.js';
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
}

/** Writes a full checkpoint of a guest at rest. The guest must stay stopped until this returns. */
export function writeFullCheckpoint(filePath: string, src: CheckpointSource): { meta: CheckpointMeta; fileBytes: number; writeMs: number } {
  const started = performance.now();
  const { guest } = src;
  const vcpu = guest.captureVcpu();
  const meta: CheckpointMeta = {
    sequence: src.sequence,
    createdAtMs: Date.now(),
    moduleSha256: guest.module.sha256,
    guestKind: guest.kind,
    rewriteVersion: REWRITE_VERSION,
    memoryBytes: guest.memory.buffer.byteLength,
    restoreGeneration: guest.wasi.restoreGeneration,
    output: src.output.save(),
    stdinBytesConsumed: guest.wasi.stdinBytesConsumed,
  };
  const sections: SectionData[] = [{ kind: SectionKind.Meta, data: encodePlain(meta) }];
  if (src.embedModule ?? true) sections.push({ kind: SectionKind.Module, data: guest.module.original });
  // The live memory, not a copy: the guest is stopped while the file is written.
  sections.push({ kind: SectionKind.Memory, data: new Uint8Array(guest.memory.buffer) });
  sections.push({ kind: SectionKind.Vcpu, data: encodePlain(vcpuToPlain(vcpu)) });
  sections.push({ kind: SectionKind.Devices, data: encodePlain({ wasi: guest.wasi.save(), output: src.output.save() }) });
  const { fileBytes } = writeCheckpointFile(filePath, sections, src.onProgress);
  return { meta, fileBytes, writeMs: performance.now() - started };
}

function bad(what: string): UnderstudyError {
  return new UnderstudyError('ERR_CKPT_MALFORMED', what);
}

function isObject(p: Plain): p is PlainObject {
  return p !== null && typeof p === 'object' && !Array.isArray(p) && !(p instanceof Uint8Array);
}

function nonNegInt(o: PlainObject, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`metadata field ${key} is not a non-negative integer`);
  return v;
}

function outputState(p: Plain | undefined): OutputGateState {
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

/** A checkpoint whose structure and small sections are verified; memory is verified as it is loaded. */
export interface OpenedCheckpoint {
  file: CheckpointFile;
  meta: CheckpointMeta;
  module: Uint8Array | null;
  vcpu: VcpuState;
  wasi: Plain;
  output: OutputGateState;
}

export function openCheckpoint(filePath: string): OpenedCheckpoint {
  const file = CheckpointFile.open(filePath);
  try {
    const meta = metaFromPlain(decodePlain(file.read(SectionKind.Meta)));
    const module = file.entry(SectionKind.Module) ? file.read(SectionKind.Module) : null;
    if (module && sha256Hex(module) !== meta.moduleSha256) throw new UnderstudyError('ERR_CKPT_MODULE_MISMATCH', 'embedded module does not match the hash in the metadata');
    const memory = file.require(SectionKind.Memory);
    if (memory.length !== meta.memoryBytes) throw bad(`memory section is ${memory.length} bytes, metadata says ${meta.memoryBytes}`);
    const vcpu = vcpuFromPlain(decodePlain(file.read(SectionKind.Vcpu)));
    if (vcpu.memoryPages * 65536 !== meta.memoryBytes) throw bad('vCPU memory size disagrees with the metadata');
    if (meta.guestKind === 'reactor' && vcpu.stack !== null) throw bad('a reactor checkpoint carries a stack');
    const devices = decodePlain(file.read(SectionKind.Devices));
    if (!isObject(devices) || devices.wasi === undefined) throw bad('devices section has no WASI state');
    return { file, meta, module, vcpu, wasi: devices.wasi, output: outputState(devices.output) };
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
export async function restoreFromCheckpoint(opened: OpenedCheckpoint, options: RestoreOptions): Promise<{ guest: Guest; output: OutputGate }> {
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
  const guest = await Guest.restore(module, { ...options.guestOptions, wasi }, opened.vcpu, (mem) => opened.file.readInto(SectionKind.Memory, mem, options.onProgress));
  return { guest, output };
}
