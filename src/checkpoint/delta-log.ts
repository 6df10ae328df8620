// The delta log: the records that follow a base checkpoint in a chain. One
// file per base (`log-<baseSeq>.usdl`), appended to once per epoch.
//
//   log header (64 bytes, little-endian)
//     0  u8[8]  magic  89 'USLG' 0D 0A 1A
//     8  u16    version
//    10  u16    reserved (0)
//    12  u32    reserved (0)
//    16  u64    sequence of the base this log follows
//    24  u8[32] sha256 of the guest module
//    56  u32    reserved (0)
//    60  u32    CRC-32C of bytes 0..60
//   records, back to back:
//     0  u32    magic 'USRC'
//     4  u16    version
//     6  u8     reserved (0)
//     7  u8     reserved (0)
//     8  u64    sequence
//    16  u64    parent sequence (the record's sequence - 1: a chain has no gaps)
//    24  u32    raw payload bytes (after decompression)
//    28  u32    stored payload bytes
//    32  u32    CRC-32C of the stored payload
//    36  u32    CRC-32C of bytes 0..36
//    40  stored payload: compress(encodePlain(EpochRecord)), codec id in its first byte
//
// A crash can leave a torn last record; a reader stops there and says so. A
// record that fails its checks anywhere else ends what the log can prove: no
// sequence past it can be restored, and asking for one is refused.
import fs from 'node:fs';
import { UnderstudyError } from '../errors.js';
import { native } from '../native.js';
import { assert } from '../util/assert.js';

export const LOG_MAGIC = Uint8Array.of(0x89, 0x55, 0x53, 0x4c, 0x47, 0x0d, 0x0a, 0x1a);
export const LOG_VERSION = 1;
export const LOG_HEADER_BYTES = 64;
export const RECORD_MAGIC = 0x43525355; // 'U' 'S' 'R' 'C'
export const RECORD_VERSION = 1;
export const RECORD_HEADER_BYTES = 40;
/** A record holds at most one epoch's dirty pages plus state: bounded by the 4 GiB wasm32 memory and
 * by what one Buffer can hold. Larger claims are corrupt headers. */
export const RECORD_STORED_BYTES_MAX = 2 ** 31 - 1;
export const RECORD_RAW_BYTES_MAX = 2 ** 31 - 1;

export interface LogHeader {
  baseSequence: number;
  moduleSha256: string;
}

export function encodeLogHeader(h: LogHeader): Uint8Array {
  assert(/^[0-9a-f]{64}$/.test(h.moduleSha256), 'module hash is hex sha256');
  const out = new Uint8Array(LOG_HEADER_BYTES);
  const view = new DataView(out.buffer);
  out.set(LOG_MAGIC, 0);
  view.setUint16(8, LOG_VERSION, true);
  view.setBigUint64(16, BigInt(h.baseSequence), true);
  out.set(Buffer.from(h.moduleSha256, 'hex'), 24);
  view.setUint32(60, native.crc32c(out.subarray(0, 60)), true);
  return out;
}

export function parseLogHeader(bytes: Uint8Array): LogHeader {
  if (bytes.length < LOG_HEADER_BYTES) throw new UnderstudyError('ERR_CKPT_TRUNCATED', 'delta log is shorter than its header');
  for (let i = 0; i < LOG_MAGIC.length; i++) if (bytes[i] !== LOG_MAGIC[i]) throw new UnderstudyError('ERR_CKPT_MAGIC', 'not an understudy delta log (bad magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, LOG_HEADER_BYTES);
  if (native.crc32c(bytes.subarray(0, 60)) !== view.getUint32(60, true)) throw new UnderstudyError('ERR_CKPT_CHECKSUM', 'delta log header checksum mismatch');
  if (view.getUint16(8, true) !== LOG_VERSION) throw new UnderstudyError('ERR_CKPT_VERSION', `delta log version ${view.getUint16(8, true)} is not readable (reads ${LOG_VERSION})`);
  const base = view.getBigUint64(16, true);
  if (base > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnderstudyError('ERR_CKPT_MALFORMED', 'delta log base sequence is absurd');
  return { baseSequence: Number(base), moduleSha256: Buffer.from(bytes.subarray(24, 56)).toString('hex') };
}

export interface RecordHeader {
  sequence: number;
  parent: number;
  rawBytes: number;
  storedBytes: number;
  crc: number;
}

/** Frames a stored (already compressed) payload as a record. */
export function encodeRecord(sequence: number, stored: Uint8Array, rawBytes: number): Uint8Array {
  assert(sequence >= 1 && Number.isSafeInteger(sequence));
  assert(stored.length <= RECORD_STORED_BYTES_MAX && rawBytes <= RECORD_RAW_BYTES_MAX, 'record over its bound');
  const out = new Uint8Array(RECORD_HEADER_BYTES + stored.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, RECORD_MAGIC, true);
  view.setUint16(4, RECORD_VERSION, true);
  view.setBigUint64(8, BigInt(sequence), true);
  view.setBigUint64(16, BigInt(sequence - 1), true);
  view.setUint32(24, rawBytes, true);
  view.setUint32(28, stored.length, true);
  view.setUint32(32, native.crc32c(stored), true);
  view.setUint32(36, native.crc32c(out.subarray(0, 36)), true);
  out.set(stored, RECORD_HEADER_BYTES);
  return out;
}

/** Validates a record header (not its payload). Throws with a reason. */
export function parseRecordHeader(bytes: Uint8Array): RecordHeader {
  assert(bytes.length >= RECORD_HEADER_BYTES);
  const view = new DataView(bytes.buffer, bytes.byteOffset, RECORD_HEADER_BYTES);
  if (view.getUint32(0, true) !== RECORD_MAGIC) throw new UnderstudyError('ERR_CKPT_MALFORMED', 'delta record has a bad magic');
  if (native.crc32c(bytes.subarray(0, 36)) !== view.getUint32(36, true)) throw new UnderstudyError('ERR_CKPT_CHECKSUM', 'delta record header checksum mismatch');
  if (view.getUint16(4, true) !== RECORD_VERSION) throw new UnderstudyError('ERR_CKPT_VERSION', 'delta record version is not readable');
  const seq = view.getBigUint64(8, true);
  const parent = view.getBigUint64(16, true);
  if (seq > BigInt(Number.MAX_SAFE_INTEGER) || parent > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnderstudyError('ERR_CKPT_MALFORMED', 'delta record sequence is absurd');
  const rawBytes = view.getUint32(24, true);
  const storedBytes = view.getUint32(28, true);
  if (storedBytes > RECORD_STORED_BYTES_MAX || rawBytes > RECORD_RAW_BYTES_MAX) throw new UnderstudyError('ERR_CKPT_TOO_LARGE', 'delta record claims more bytes than any record holds');
  return { sequence: Number(seq), parent: Number(parent), rawBytes, storedBytes, crc: view.getUint32(32, true) };
}

export interface LogEntry extends RecordHeader {
  /** Offset of the record header in the file. */
  offset: number;
}

export interface LogScan {
  header: LogHeader;
  entries: LogEntry[];
  /** Why the log ends where it does, when not at a clean end: a torn tail (crash while appending) or a bad record. */
  stop: { offset: number; error: UnderstudyError; torn: boolean } | null;
}

/** Reads a log's structure: every record header, each checked for continuity. Payload checksums are checked when a record is read. */
export function scanLog(path: string): LogScan {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw new UnderstudyError('ERR_CKPT_IO', `cannot open delta log ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = new Uint8Array(LOG_HEADER_BYTES);
    if (size >= LOG_HEADER_BYTES) fs.readSync(fd, head, 0, LOG_HEADER_BYTES, 0);
    const header = parseLogHeader(size >= LOG_HEADER_BYTES ? head : new Uint8Array(0));
    const entries: LogEntry[] = [];
    let at = LOG_HEADER_BYTES;
    let expected = header.baseSequence + 1;
    const rh = new Uint8Array(RECORD_HEADER_BYTES);
    let stop: LogScan['stop'] = null;
    while (at < size) {
      if (size - at < RECORD_HEADER_BYTES) {
        stop = { offset: at, torn: true, error: new UnderstudyError('ERR_CKPT_TRUNCATED', `delta log ends inside a record header at offset ${at}`) };
        break;
      }
      fs.readSync(fd, rh, 0, RECORD_HEADER_BYTES, at);
      let r: RecordHeader;
      try {
        r = parseRecordHeader(rh);
      } catch (e) {
        stop = { offset: at, torn: false, error: e as UnderstudyError };
        break;
      }
      if (r.sequence !== expected || r.parent !== expected - 1) {
        stop = { offset: at, torn: false, error: new UnderstudyError('ERR_CKPT_MALFORMED', `delta log has a gap: record ${r.sequence} (parent ${r.parent}) where ${expected} was due`) };
        break;
      }
      if (size - at - RECORD_HEADER_BYTES < r.storedBytes) {
        stop = { offset: at, torn: true, error: new UnderstudyError('ERR_CKPT_TRUNCATED', `delta record ${r.sequence} is cut short`) };
        break;
      }
      entries.push({ ...r, offset: at });
      at += RECORD_HEADER_BYTES + r.storedBytes;
      expected++;
    }
    return { header, entries, stop };
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads and verifies one record's stored payload. */
export function readRecordPayload(fd: number, entry: LogEntry): Uint8Array {
  const stored = new Uint8Array(entry.storedBytes);
  let done = 0;
  while (done < stored.length) {
    const n = fs.readSync(fd, stored, done, stored.length - done, entry.offset + RECORD_HEADER_BYTES + done);
    if (n === 0) throw new UnderstudyError('ERR_CKPT_TRUNCATED', `delta record ${entry.sequence} is cut short`);
    done += n;
  }
  if (native.crc32c(stored) !== entry.crc) throw new UnderstudyError('ERR_CKPT_CHECKSUM', `delta record ${entry.sequence} payload checksum mismatch`);
  return stored;
}
