// A checkpoint chain: a base (a full checkpoint, `base-<seq>.usck`) and the
// delta log that follows it (`log-<seq>.usdl`), in one directory. Any
// sequence from the base to the last intact record can be restored exactly;
// compaction (seed 003's `collect`) merges the oldest part into a new base
// so that a chain keeps the last N restore points.
import fs from 'node:fs';
import path from 'node:path';
import { UnderstudyError } from '../errors.js';
import { vcpuFromPlain } from '../guest/persist.js';
import { assert } from '../util/assert.js';
import { native, PAGE_BYTES } from '../native.js';
import { decompress } from './compress.js';
import { applyDelta } from './delta-codec.js';
import { encodeLogHeader, readRecordPayload, scanLog, RECORD_HEADER_BYTES, type LogEntry, type LogScan } from './delta-log.js';
import { decodeEpochRecord, type EpochRecord } from './epoch-record.js';
import { decodePlain } from './plain-codec.js';
import { isObject, openCheckpoint, outputState, writeCheckpointParts, type GuestImage, type OpenedCheckpoint } from './snapshot.js';
import type { Progress } from './file.js';
import { SectionKind } from './format.js';
import type { Plain } from '../util/plain.js';

export const BASE_PREFIX = 'base-';
export const BASE_SUFFIX = '.usck';
export const LOG_PREFIX = 'log-';
export const LOG_SUFFIX = '.usdl';

export function baseFileName(sequence: number): string {
  return `${BASE_PREFIX}${String(sequence).padStart(9, '0')}${BASE_SUFFIX}`;
}
export function logFileName(baseSequence: number): string {
  return `${LOG_PREFIX}${String(baseSequence).padStart(9, '0')}${LOG_SUFFIX}`;
}

export interface ChainScan {
  dir: string;
  basePath: string;
  baseSequence: number;
  logPath: string | null;
  log: LogScan | null;
  /** The newest sequence that can be restored. */
  lastSequence: number;
  /** Why the log ends early, if it does (restoring past it is refused with this error). */
  stop: LogScan['stop'];
}

function sequenceOf(name: string, prefix: string, suffix: string): number | null {
  if (!name.startsWith(prefix) || !name.endsWith(suffix)) return null;
  const digits = name.slice(prefix.length, name.length - suffix.length);
  return /^\d+$/.test(digits) ? Number(digits) : null;
}

export function isChainDir(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory() && fs.readdirSync(dir).some((n) => sequenceOf(n, BASE_PREFIX, BASE_SUFFIX) !== null);
  } catch {
    return false;
  }
}

/** Finds the base whose chain reaches furthest (a crash during compaction can leave two). */
export function scanChain(dir: string): ChainScan {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw new UnderstudyError('ERR_CKPT_IO', `cannot read chain directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const bases = names.map((n) => sequenceOf(n, BASE_PREFIX, BASE_SUFFIX)).filter((s): s is number => s !== null);
  if (bases.length === 0) throw new UnderstudyError('ERR_CKPT_MALFORMED', `${dir} holds no checkpoint chain (no ${BASE_PREFIX}*${BASE_SUFFIX})`);
  let best: ChainScan | null = null;
  let firstError: unknown = null;
  for (const seq of bases.sort((a, b) => b - a)) {
    const basePath = path.join(dir, baseFileName(seq));
    const logPath = path.join(dir, logFileName(seq));
    let log: LogScan | null = null;
    if (fs.existsSync(logPath)) {
      try {
        log = scanLog(logPath);
        if (log.header.baseSequence !== seq) throw new UnderstudyError('ERR_CKPT_MALFORMED', `${logPath} follows base ${log.header.baseSequence}, not ${seq}`);
      } catch (e) {
        firstError ??= e;
        log = null;
      }
    }
    const last = seq + (log?.entries.length ?? 0);
    const candidate: ChainScan = { dir, basePath, baseSequence: seq, logPath: log ? logPath : null, log, lastSequence: last, stop: log?.stop ?? null };
    if (!best || candidate.lastSequence > best.lastSequence) best = candidate;
  }
  if (!best) throw firstError;
  return best;
}

function devicesOf(bytes: Uint8Array): { wasi: Plain; output: ReturnType<typeof outputState> } {
  const d = decodePlain(bytes);
  if (!isObject(d) || d.wasi === undefined) throw new UnderstudyError('ERR_CKPT_MALFORMED', 'delta record devices hold no WASI state');
  return { wasi: d.wasi, output: outputState(d.output) };
}

/** Reads, verifies and decodes the records base+1..target of a chain. */
function readRecords(scan: ChainScan, target: number): EpochRecord[] {
  if (target === scan.baseSequence) return [];
  assert(scan.log && scan.logPath);
  const fd = fs.openSync(scan.logPath, 'r');
  try {
    return scan.log.entries
      .filter((e: LogEntry) => e.sequence <= target)
      .map((e) => {
        const raw = decompress(readRecordPayload(fd, e), e.rawBytes);
        return decodeEpochRecord(raw);
      });
  } finally {
    fs.closeSync(fd);
  }
}

export interface ChainPoint extends GuestImage {
  sequence: number;
  scan: ChainScan;
  /** The vCPU and device sections as stored (for writing a new base without re-encoding). */
  encodedState(): { vcpu: Uint8Array; devices: Uint8Array };
}

/** Opens one point of a chain (default: the newest) as a guest image. Everything but memory is verified here; memory as it is filled. */
export function openChainPoint(dir: string, target?: number): ChainPoint {
  const scan = scanChain(dir);
  const sequence = target ?? scan.lastSequence;
  if (sequence < scan.baseSequence || sequence > scan.lastSequence) {
    if (scan.stop && sequence > scan.lastSequence) {
      throw new UnderstudyError(scan.stop.error.code, `sequence ${sequence} cannot be restored: ${scan.stop.error.message}`, { cause: scan.stop.error });
    }
    throw new UnderstudyError('ERR_CKPT_MALFORMED', `sequence ${sequence} is not in the chain in ${dir} (it holds ${scan.baseSequence}..${scan.lastSequence})`);
  }
  const base: OpenedCheckpoint = openCheckpoint(scan.basePath);
  try {
    const records = readRecords(scan, sequence);
    let bytes = base.meta.memoryBytes;
    for (const r of records) {
      if (r.memoryBytes < bytes) throw new UnderstudyError('ERR_CKPT_MALFORMED', 'delta records shrink the memory');
      bytes = r.memoryBytes;
    }
    const last = records[records.length - 1];
    if (!last) return { ...base, sequence, scan, encodedState: () => ({ vcpu: base.file.read(SectionKind.Vcpu), devices: base.file.read(SectionKind.Devices) }) };
    const vcpu = vcpuFromPlain(decodePlain(last.vcpu));
    if (vcpu.memoryPages * 65536 !== last.memoryBytes) throw new UnderstudyError('ERR_CKPT_MALFORMED', 'delta record vCPU and memory size disagree');
    const devices = devicesOf(last.devices);
    return {
      sequence,
      scan,
      meta: { ...base.meta, sequence, memoryBytes: last.memoryBytes, output: last.output, stdinBytesConsumed: last.stdinBytesConsumed, restoreGeneration: last.restoreGeneration },
      module: base.module,
      vcpu,
      wasi: devices.wasi,
      output: devices.output,
      fillMemory(memory: Uint8Array, onProgress?: Progress) {
        assert(memory.length === last.memoryBytes);
        base.fillMemory(memory.subarray(0, base.meta.memoryBytes), onProgress);
        // Pages past the base's size arrived by memory.grow: zero until a delta says otherwise.
        // Only the present ones can hold anything; the rest (a fresh grow) are left untouched.
        const tail = memory.subarray(base.meta.memoryBytes);
        for (const p of native.storedPages(tail).pages) tail.fill(0, p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
        for (const r of records) applyDelta(r.pages, memory.subarray(0, r.memoryBytes));
      },
      encodedState: () => ({ vcpu: last.vcpu, devices: last.devices }),
      close: () => base.close(),
    };
  } catch (e) {
    base.close();
    throw e;
  }
}

/** The memory image of one chain point, materialised in a buffer (for compaction and tools). */
export function materializeChainPoint(dir: string, target?: number): { image: ChainPoint; memory: Uint8Array } {
  const image = openChainPoint(dir, target);
  try {
    const memory = new Uint8Array(image.meta.memoryBytes);
    image.fillMemory(memory);
    return { image, memory };
  } catch (e) {
    image.close();
    throw e;
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export interface CompactResult {
  /** The new base's sequence (unchanged when there was nothing to merge). */
  baseSequence: number;
  lastSequence: number;
  mergedRecords: number;
}

/**
 * Merges the oldest records of a chain into a new base so that exactly the last `keep` restore
 * points remain (seed 003's `collect`). Crash-safe: the new base and log are written and made
 * durable before the old ones are removed, and a reader always picks the chain that reaches furthest.
 */
export function compactChain(dir: string, keep: number): CompactResult {
  if (!Number.isInteger(keep) || keep < 1) throw new UnderstudyError('ERR_USAGE', `keep must be a positive integer, not ${keep}`);
  const scan = scanChain(dir);
  const newBase = scan.lastSequence - keep + 1;
  if (newBase <= scan.baseSequence) return { baseSequence: scan.baseSequence, lastSequence: scan.lastSequence, mergedRecords: 0 };
  const { image, memory } = materializeChainPoint(dir, newBase);
  try {
    const { vcpu, devices } = image.encodedState();
    writeCheckpointParts(path.join(dir, baseFileName(newBase)), { meta: { ...image.meta, sequence: newBase }, module: image.module, memory, vcpu, devices });
  } finally {
    image.close();
  }
  // The new log: header, then the records after newBase copied byte for byte (each verified on the way).
  assert(scan.log && scan.logPath);
  const newLog = path.join(dir, logFileName(newBase));
  const tmp = `${newLog}.tmp-${process.pid}`;
  const src = fs.openSync(scan.logPath, 'r');
  const dst = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(dst, encodeLogHeader({ baseSequence: newBase, moduleSha256: scan.log.header.moduleSha256 }));
    for (const e of scan.log.entries) {
      if (e.sequence <= newBase) continue;
      readRecordPayload(src, e);
      const whole = new Uint8Array(RECORD_HEADER_BYTES + e.storedBytes);
      fs.readSync(src, whole, 0, whole.length, e.offset);
      fs.writeSync(dst, whole);
    }
    fs.fsyncSync(dst);
  } finally {
    fs.closeSync(src);
    fs.closeSync(dst);
  }
  fs.renameSync(tmp, newLog);
  fsyncDir(dir);
  fs.rmSync(scan.logPath, { force: true });
  fs.rmSync(scan.basePath, { force: true });
  fsyncDir(dir);
  return { baseSequence: newBase, lastSequence: scan.lastSequence, mergedRecords: newBase - scan.baseSequence };
}

