// The disk target: committed cycles in an append-only log, compacted now and
// then into a base image. Two files in the target directory:
//
//   cda.base   the image as of one cycle (written atomically: temporary file,
//              fsync, rename, fsync of the directory); absent until the first
//              compaction
//     0  u8[8] magic 89 'USCB' 0D 0A 1A
//     8  u16   version        10 u16 reserved (0)     12 u32 reserved (0)
//    16  u64   cycle
//    24  u32   raw bytes      28 u32 stored bytes     32 u32 CRC-32C of the stored payload
//    36  ...   reserved (0) up to 60
//    60  u32   CRC-32C of bytes 0..60
//    64  stored payload: compress(full record) (record.ts)
//
//   cda.log    a 64-byte header (magic 89 'USCL' 0D 0A 1A, version, the cycle
//              of the base it follows at 16, header CRC-32C at 60), then one
//              record per committed cycle, framed as the epoch delta log frames
//              its records (src/checkpoint/delta-log.ts: magic, sequence =
//              cycle, parent = cycle - 1, raw and stored sizes, payload CRC-32C,
//              header CRC-32C) around compress(delta record)
//
// A commit is acknowledged only after its record is written and fsync'd. A
// record that failed to be written whole is cut off again before the next
// append (and if even that fails, the target refuses every later commit), so
// the log never holds a gap. Recovery reads the base, then the longest valid
// prefix of the log: a tail cut by a crash (ERR_CDA_LOG_TORN) or a record that
// fails its checks (ERR_CDA_LOG_CORRUPT) ends it, is reported, and is cut off
// when the log is next opened for writing. Compaction writes the base first
// and the new log second, so a crash between leaves a base newer than the
// log's start; recovery skips the records the base already holds.
import fs from 'node:fs';
import path from 'node:path';
import { compress, decompress } from '../checkpoint/compress.js';
import { encodeRecord as frameRecord, parseRecordHeader, RECORD_HEADER_BYTES } from '../checkpoint/delta-log.js';
import { isUnderstudyError, type UnderstudyError } from '../errors.js';
import { native } from '../native.js';
import { assert } from '../util/assert.js';
import { cdaError, type CdaErrorCode } from './codes.js';
import { CDA_AREA_BYTES_LIMIT } from './layout.js';
import { applyRecord, decodeRecord, emptyState, encodeRecord, type CommittedState } from './record.js';

export const BASE_FILE = 'cda.base';
export const LOG_FILE = 'cda.log';
export const CDA_LOG_MAGIC = Uint8Array.of(0x89, 0x55, 0x53, 0x43, 0x4c, 0x0d, 0x0a, 0x1a);
export const CDA_BASE_MAGIC = Uint8Array.of(0x89, 0x55, 0x53, 0x43, 0x42, 0x0d, 0x0a, 0x1a);
export const CDA_FILE_VERSION = 1;
export const CDA_FILE_HEADER_BYTES = 64;
const OFF = { version: 8, cycle: 16, raw: 24, stored: 28, crc: 32, headerCrc: 60 } as const;
assert(OFF.headerCrc + 4 === CDA_FILE_HEADER_BYTES, 'file header layout');
/**
 * A record or base holds at most a full image (bounded by CDA_AREA_BYTES_LIMIT plus
 * two edge pages per area) or a delta over it (at most 4101 bytes per 4096 of
 * image): twice the limit bounds both. A header claiming more is corrupt.
 */
export const CDA_RECORD_RAW_BYTES_MAX = 2 * CDA_AREA_BYTES_LIMIT + (1 << 20);
/** Compact when the log holds this many records since its base... */
export const CDA_COMPACT_RECORDS_DEFAULT = 1024;
/** ...or this many bytes. */
export const CDA_COMPACT_LOG_BYTES_DEFAULT = 64 * 1024 * 1024;

export interface LogStop {
  code: CdaErrorCode;
  message: string;
  /** Offset in cda.log where the valid prefix ends. */
  offset: number;
}

export interface DiskRecovery {
  state: CommittedState;
  /** Cycle of the base image (0: none). */
  baseCycle: number;
  /** Records applied on top of the base. */
  records: number;
  /** Where the log's valid prefix ends, and why it ends there when not at the end of the file. */
  validEnd: number;
  logBytes: number;
  stop: LogStop | null;
}

function fileHeader(magic: Uint8Array, cycle: number, fields: { raw?: number; stored?: number; crc?: number } = {}): Uint8Array {
  const out = new Uint8Array(CDA_FILE_HEADER_BYTES);
  const view = new DataView(out.buffer);
  out.set(magic, 0);
  view.setUint16(OFF.version, CDA_FILE_VERSION, true);
  view.setBigUint64(OFF.cycle, BigInt(cycle), true);
  view.setUint32(OFF.raw, fields.raw ?? 0, true);
  view.setUint32(OFF.stored, fields.stored ?? 0, true);
  view.setUint32(OFF.crc, fields.crc ?? 0, true);
  view.setUint32(OFF.headerCrc, native.crc32c(out.subarray(0, OFF.headerCrc)), true);
  return out;
}

function parseFileHeader(bytes: Uint8Array, magic: Uint8Array, what: string): { cycle: number; raw: number; stored: number; crc: number } {
  const corrupt = (why: string) => cdaError('ERR_CDA_LOG_CORRUPT', `${what}: ${why}`);
  if (bytes.length < CDA_FILE_HEADER_BYTES) throw corrupt('shorter than its header');
  for (let i = 0; i < magic.length; i++) if (bytes[i] !== magic[i]) throw corrupt('bad magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, CDA_FILE_HEADER_BYTES);
  if (native.crc32c(bytes.subarray(0, OFF.headerCrc)) !== view.getUint32(OFF.headerCrc, true)) throw corrupt('header checksum mismatch');
  if (view.getUint16(OFF.version, true) !== CDA_FILE_VERSION) throw corrupt(`version ${view.getUint16(OFF.version, true)} (reads ${CDA_FILE_VERSION})`);
  const cycle = view.getBigUint64(OFF.cycle, true);
  if (cycle > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt('cycle past 2^53');
  const raw = view.getUint32(OFF.raw, true);
  const stored = view.getUint32(OFF.stored, true);
  if (raw > CDA_RECORD_RAW_BYTES_MAX || stored > CDA_RECORD_RAW_BYTES_MAX + 1) throw corrupt('claims more bytes than any image holds');
  return { cycle: Number(cycle), raw, stored, crc: view.getUint32(OFF.crc, true) };
}

function readRange(fd: number, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? out : out.subarray(0, done);
}

function fsyncDir(dir: string): void {
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

/** Writes `bytes` as `file` atomically: temporary file, fsync, rename, fsync of the directory. */
function writeAtomic(dir: string, file: string, bytes: Uint8Array): void {
  const tmp = path.join(dir, `.${file}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path.join(dir, file));
  fsyncDir(dir);
}

function readBase(dir: string): CommittedState | null {
  const file = path.join(dir, BASE_FILE);
  if (!fs.existsSync(file)) return null;
  const bytes = new Uint8Array(fs.readFileSync(file));
  const h = parseFileHeader(bytes, CDA_BASE_MAGIC, file);
  if (bytes.length !== CDA_FILE_HEADER_BYTES + h.stored) throw cdaError('ERR_CDA_LOG_CORRUPT', `${file}: ${bytes.length} bytes; its header says ${CDA_FILE_HEADER_BYTES + h.stored}`);
  const stored = bytes.subarray(CDA_FILE_HEADER_BYTES);
  if (native.crc32c(stored) !== h.crc) throw cdaError('ERR_CDA_LOG_CORRUPT', `${file}: payload checksum mismatch`);
  const record = decodeStored(stored, h.raw, file);
  if (record.kind !== 'full' || record.cycle !== h.cycle) throw cdaError('ERR_CDA_LOG_CORRUPT', `${file}: not the full image of cycle ${h.cycle}`);
  return applyRecord(emptyState(), record);
}

function decodeStored(stored: Uint8Array, rawBytes: number, what: string) {
  try {
    return decodeRecord(decompress(stored, rawBytes));
  } catch (e) {
    if (isUnderstudyError(e)) throw cdaError('ERR_CDA_LOG_CORRUPT', `${what}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The committed state a directory holds (base, then the longest valid prefix of the log). Read only. */
export function readCdaDir(dir: string, alloc?: (bytes: number) => Uint8Array): DiskRecovery {
  const base = readBase(dir);
  let state = base ?? emptyState();
  const baseCycle = state.cycle;
  const logPath = path.join(dir, LOG_FILE);
  if (!fs.existsSync(logPath)) {
    if (alloc) state = { ...state, image: copyInto(state.image, alloc) };
    return { state, baseCycle, records: 0, validEnd: 0, logBytes: 0, stop: null };
  }
  const fd = fs.openSync(logPath, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const head = parseFileHeader(readRange(fd, 0, CDA_FILE_HEADER_BYTES), CDA_LOG_MAGIC, logPath);
    if (head.cycle > baseCycle) throw cdaError('ERR_CDA_LOG_CORRUPT', `${logPath} follows cycle ${head.cycle}, but the base holds cycle ${baseCycle}`);
    if (alloc) state = { ...state, image: copyInto(state.image, alloc) };
    let at = CDA_FILE_HEADER_BYTES;
    let expected = head.cycle + 1;
    let records = 0;
    let stop: LogStop | null = null;
    const fail = (code: CdaErrorCode, message: string) => {
      stop = { code, message, offset: at };
    };
    while (at < size) {
      if (size - at < RECORD_HEADER_BYTES) {
        fail('ERR_CDA_LOG_TORN', `the log ends inside a record header at offset ${at}`);
        break;
      }
      let h;
      try {
        h = parseRecordHeader(readRange(fd, at, RECORD_HEADER_BYTES));
      } catch (e) {
        fail('ERR_CDA_LOG_CORRUPT', `record at offset ${at}: ${(e as UnderstudyError).message}`);
        break;
      }
      if (h.sequence !== expected || h.parent !== expected - 1) {
        fail('ERR_CDA_LOG_CORRUPT', `record for cycle ${h.sequence} (parent ${h.parent}) where ${expected} was due`);
        break;
      }
      if (h.rawBytes > CDA_RECORD_RAW_BYTES_MAX) {
        fail('ERR_CDA_LOG_CORRUPT', `record ${h.sequence} claims ${h.rawBytes} bytes`);
        break;
      }
      if (size - at - RECORD_HEADER_BYTES < h.storedBytes) {
        fail('ERR_CDA_LOG_TORN', `record ${h.sequence} is cut short at the end of the log`);
        break;
      }
      const stored = readRange(fd, at + RECORD_HEADER_BYTES, h.storedBytes);
      if (native.crc32c(stored) !== h.crc) {
        fail('ERR_CDA_LOG_CORRUPT', `record ${h.sequence}: payload checksum mismatch`);
        break;
      }
      if (h.sequence > state.cycle) {
        try {
          const record = decodeStored(stored, h.rawBytes, `record ${h.sequence}`);
          if (record.kind !== 'delta' || record.cycle !== h.sequence) throw cdaError('ERR_CDA_LOG_CORRUPT', `record ${h.sequence} is not the delta of its cycle`);
          state = applyRecord(state, record, alloc);
        } catch (e) {
          if (!isUnderstudyError(e)) throw e;
          fail('ERR_CDA_LOG_CORRUPT', e.message);
          break;
        }
        records++;
      }
      at += RECORD_HEADER_BYTES + h.storedBytes;
      expected++;
    }
    return { state, baseCycle, records, validEnd: at, logBytes: size, stop };
  } finally {
    fs.closeSync(fd);
  }
}

function copyInto(image: Uint8Array, alloc: (bytes: number) => Uint8Array): Uint8Array {
  const out = alloc(image.length);
  out.set(image);
  return out;
}

export interface CdaLogOptions {
  compactRecords?: number;
  compactLogBytes?: number;
  /** The image buffers (shared when another thread reads them). */
  alloc?: (bytes: number) => Uint8Array;
}

/** The writer: owns cda.log's descriptor. Open it once per directory (one writer at a time). */
export class CdaLog {
  private fd: number;
  private end: number;
  private recordsSinceBase: number;
  private broken: UnderstudyError | null = null;
  readonly recovery: DiskRecovery;

  private constructor(
    readonly dir: string,
    private readonly options: CdaLogOptions,
    recovery: DiskRecovery,
    fd: number,
  ) {
    this.recovery = recovery;
    this.fd = fd;
    this.end = recovery.validEnd;
    this.recordsSinceBase = recovery.state.cycle - recovery.baseCycle;
  }

  /** Recovers what the directory holds, cuts off an invalid tail, and opens the log for appending. */
  static open(dir: string, options: CdaLogOptions = {}): CdaLog {
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw cdaError('ERR_CDA_IO', `cannot create ${dir}: ${(e as Error).message}`, { cause: e });
    }
    const recovery = readCdaDir(dir, options.alloc);
    const logPath = path.join(dir, LOG_FILE);
    try {
      if (!fs.existsSync(logPath)) {
        writeAtomic(dir, LOG_FILE, fileHeader(CDA_LOG_MAGIC, recovery.state.cycle));
        recovery.validEnd = CDA_FILE_HEADER_BYTES;
      }
      const fd = fs.openSync(logPath, 'r+');
      if (recovery.validEnd < fs.fstatSync(fd).size) {
        // The invalid tail goes, so the next record follows the last valid one.
        fs.ftruncateSync(fd, recovery.validEnd);
        fs.fsyncSync(fd);
      }
      return new CdaLog(dir, options, recovery, fd);
    } catch (e) {
      throw cdaError('ERR_CDA_IO', `cannot open ${logPath} for writing: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Appends the (compressed) record of `cycle` and makes it durable; ERR_CDA_IO leaves the log as it was. */
  appendStored(cycle: number, stored: Uint8Array, rawBytes: number): void {
    if (this.broken) throw this.broken;
    const framed = frameRecord(cycle, stored, rawBytes);
    try {
      let done = 0;
      while (done < framed.length) done += fs.writeSync(this.fd, framed, done, framed.length - done, this.end + done);
      fs.fsyncSync(this.fd);
    } catch (e) {
      const err = cdaError('ERR_CDA_IO', `cannot append cycle ${cycle} to ${path.join(this.dir, LOG_FILE)}: ${(e as Error).message}`, { cause: e });
      try {
        fs.ftruncateSync(this.fd, this.end);
        fs.fsyncSync(this.fd);
      } catch (e2) {
        // A partial record we cannot remove would sit between two valid ones: refuse everything from now on.
        this.broken = cdaError('ERR_CDA_IO', `the commit log cannot be repaired after a failed append: ${(e2 as Error).message}`, { cause: e2 });
      }
      throw err;
    }
    this.end += framed.length;
    this.recordsSinceBase++;
  }

  /** Compresses and appends a raw record (record.ts). Returns the stored bytes. */
  append(cycle: number, raw: Uint8Array): number {
    const stored = compress(raw);
    this.appendStored(cycle, stored, raw.length);
    return stored.length;
  }

  get compactionDue(): boolean {
    return (
      this.recordsSinceBase >= (this.options.compactRecords ?? CDA_COMPACT_RECORDS_DEFAULT) ||
      this.end >= (this.options.compactLogBytes ?? CDA_COMPACT_LOG_BYTES_DEFAULT)
    );
  }

  /**
   * Writes `state` as the base and starts an empty log after it (compaction, or
   * a full image received by a backup). The base is durable before the old log
   * is replaced, so a crash in between loses nothing.
   */
  writeBase(state: CommittedState): void {
    if (this.broken) throw this.broken;
    let replaced = false;
    try {
      const raw = encodeRecord({ kind: 'full', cycle: state.cycle, layout: state.layout, image: state.image });
      const stored = compress(raw);
      const base = new Uint8Array(CDA_FILE_HEADER_BYTES + stored.length);
      base.set(fileHeader(CDA_BASE_MAGIC, state.cycle, { raw: raw.length, stored: stored.length, crc: native.crc32c(stored) }));
      base.set(stored, CDA_FILE_HEADER_BYTES);
      writeAtomic(this.dir, BASE_FILE, base);
      writeAtomic(this.dir, LOG_FILE, fileHeader(CDA_LOG_MAGIC, state.cycle));
      replaced = true;
      const fd = fs.openSync(path.join(this.dir, LOG_FILE), 'r+');
      fs.closeSync(this.fd);
      this.fd = fd;
      this.end = CDA_FILE_HEADER_BYTES;
      this.recordsSinceBase = 0;
    } catch (e) {
      const err = isUnderstudyError(e) ? e : cdaError('ERR_CDA_IO', `cannot write the base image in ${this.dir}: ${(e as Error).message}`, { cause: e });
      // The new log is in place but not open: appending to the old descriptor would write into a removed file.
      if (replaced) this.broken = err;
      throw err;
    }
  }

  get logBytes(): number {
    return this.end;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
