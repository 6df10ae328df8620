// Checkpoint files on disk: written atomically (temporary file, fsync, rename,
// fsync of the directory) and read back with every bound and checksum checked
// before a byte is handed to a parser.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UnderstudyError } from '../errors.js';
import { native } from '../native.js';
import { assert } from '../util/assert.js';
import {
  HEADER_BYTES,
  MEMORY_PAGE_BYTES,
  MEMORY_PAGES_HEADER_BYTES,
  MEMORY_RUNS_HEADER_BYTES,
  memoryPagesHeadBytes,
  memoryRunsHeadBytes,
  parseMemoryRunsCount,
  parseMemoryRunsHead,
  parseMemoryPagesCount,
  parseMemoryPagesHead,
  type MemoryPagesHead,
  SECTION_ENTRY_BYTES,
  SectionKind,
  buildLayout,
  parseHeader,
  parseTable,
  verifySection,
  type Layout,
  type SectionEntry,
} from './format.js';

/** One write() call moves at most this much; larger buffers are written in pieces (and report progress per piece). */
const IO_CHUNK_BYTES = 64 << 20;

/** Told how far a long write or read has come. */
export type Progress = (doneBytes: number, totalBytes: number) => void;

export interface SectionData {
  kind: SectionKind;
  flags?: number;
  /** The bytes, whole or as pieces written back to back; may be views of live guest memory while the guest is paused. */
  data: Uint8Array | readonly Uint8Array[];
}

/** iovecs per writev call (Linux's IOV_MAX is 1024). */
const IOVECS_PER_WRITE_MAX = 1024;

function piecesOf(data: SectionData['data']): readonly Uint8Array[] {
  return data instanceof Uint8Array ? [data] : data;
}

function sectionLength(data: SectionData['data']): number {
  return piecesOf(data).reduce((n, p) => n + p.length, 0);
}

function sectionCrc(data: SectionData['data']): number {
  return piecesOf(data).reduce((crc, p) => native.crc32c(p, crc), 0);
}

function ioError(what: string, e: unknown): UnderstudyError {
  const msg = e instanceof Error ? e.message : String(e);
  return new UnderstudyError('ERR_CKPT_IO', `${what}: ${msg}`, { cause: e });
}

function writeAll(fd: number, bytes: Uint8Array, position: number, progress?: (bytes: number) => void): void {
  let done = 0;
  while (done < bytes.length) {
    const n = Math.min(IO_CHUNK_BYTES, bytes.length - done);
    const wrote = fs.writeSync(fd, bytes, done, n, position + done);
    assert(wrote > 0, 'write made no progress');
    done += wrote;
    progress?.(wrote);
  }
}

function readAll(fd: number, into: Uint8Array, position: number, progress?: (bytes: number) => void): void {
  let done = 0;
  while (done < into.length) {
    const n = Math.min(IO_CHUNK_BYTES, into.length - done);
    const got = fs.readSync(fd, into, done, n, position + done);
    if (got === 0) throw new UnderstudyError('ERR_CKPT_TRUNCATED', 'file ended early while reading');
    done += got;
    progress?.(got);
  }
}

/** Writes pieces back to back from `position`: large pieces alone, runs of small ones (such as page extents) with one writev. */
function writePieces(fd: number, pieces: readonly Uint8Array[], position: number, progress?: (bytes: number) => void): void {
  let at = position;
  for (let i = 0; i < pieces.length; ) {
    const piece = pieces[i]!;
    if (piece.length >= IO_CHUNK_BYTES) {
      writeAll(fd, piece, at, progress);
      at += piece.length;
      i++;
      continue;
    }
    const batch: Uint8Array[] = [];
    let bytes = 0;
    while (i < pieces.length && batch.length < IOVECS_PER_WRITE_MAX && pieces[i]!.length < IO_CHUNK_BYTES && bytes + pieces[i]!.length <= IO_CHUNK_BYTES) {
      batch.push(pieces[i]!);
      bytes += pieces[i]!.length;
      i++;
    }
    if (batch.length === 0) {
      // The next piece alone would overflow the batch budget: write it by itself.
      writeAll(fd, pieces[i]!, at, progress);
      at += pieces[i]!.length;
      i++;
      continue;
    }
    const wrote = fs.writevSync(fd, batch, at);
    if (wrote === bytes) {
      progress?.(bytes);
    } else {
      // A short writev (a signal, a full disk that then recovers): finish piece by piece.
      progress?.(wrote);
      let skip = wrote;
      let pieceAt = at;
      for (const p of batch) {
        if (skip < p.length) writeAll(fd, p.subarray(skip), pieceAt + skip, progress);
        skip = Math.max(0, skip - p.length);
        pieceAt += p.length;
      }
    }
    at += bytes;
  }
}

export interface WriteResult {
  path: string;
  fileBytes: number;
}

/** Writes a checkpoint atomically: after a crash there is either the old file or the whole new one. */
export function writeCheckpointFile(filePath: string, sections: SectionData[], onProgress?: Progress): WriteResult {
  const entries = sections.map((s) => ({ kind: s.kind, flags: s.flags ?? 0, length: sectionLength(s.data), crc: sectionCrc(s.data) }));
  const { head, offsets, fileBytes } = buildLayout(entries);
  const dir = path.dirname(path.resolve(filePath));
  const tmp = path.join(dir, `.${path.basename(filePath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd = -1;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    writeAll(fd, head, 0);
    let written = 0;
    const advance = onProgress && ((n: number) => onProgress((written += n), fileBytes));
    sections.forEach((s, i) => writePieces(fd, piecesOf(s.data), offsets[i]!, advance));
    // Padding after the last section is not written; make the size exact.
    fs.ftruncateSync(fd, fileBytes);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(tmp, filePath);
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch (e) {
    if (fd >= 0) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (e instanceof UnderstudyError) throw e;
    throw ioError(`cannot write checkpoint ${filePath}`, e);
  }
  return { path: filePath, fileBytes };
}

/** Alignment gaps are at most this long; a longer gap is a malformed table. */
const PADDING_BYTES_MAX = 4095;

/** The bytes between sections carry no checksum, so they must be zero: then no byte of a file can change unnoticed. */
function checkPadding(fd: number, layout: Layout): void {
  const sorted = [...layout.sections].sort((a, b) => a.offset - b.offset);
  let at = HEADER_BYTES + layout.sections.length * SECTION_ENTRY_BYTES;
  const gaps: [number, number][] = [];
  for (const s of sorted) {
    gaps.push([at, s.offset - at]);
    at = s.offset + s.length;
  }
  gaps.push([at, layout.fileBytes - at]);
  for (const [offset, length] of gaps) {
    if (length === 0) continue;
    if (length > PADDING_BYTES_MAX) throw new UnderstudyError('ERR_CKPT_MALFORMED', `a gap of ${length} bytes between sections`);
    const gap = new Uint8Array(length);
    readAll(fd, gap, offset);
    if (gap.some((b) => b !== 0)) throw new UnderstudyError('ERR_CKPT_MALFORMED', `non-zero padding at offset ${offset}`);
  }
}

/** An open, structurally validated checkpoint file. Sections are verified as they are read. */
/**
 * Restore tuning (the benchmark compares them; docs/exclusion.md, fast restore). How the pages of
 * the stored extents are faulted in before the read writes them:
 *   'ahead'  MADV_POPULATE_WRITE on a native thread running ahead of the reader, so the kernel
 *            allocates and zeroes pages on one core while the other reads and checksums;
 *   'inline' MADV_POPULATE_WRITE of each extent just before reading it (one kernel entry per
 *            extent instead of a fault per page);
 *   'none'   a fault per page during the read.
 * hugePages: with 'ahead', every 2 MiB block wholly inside a stored extent is populated as one
 *   transparent huge page (MADV_HUGEPAGE for the populate only): one allocation and zeroing pass
 *   instead of 512 faults, which is most of a sparse restore's time. Blocks with a gap stay on 4 KiB
 *   pages (an excluded page never becomes present), and a block that comes slowly (the kernel
 *   compacting fragmented memory) turns huge pages off for the rest of that restore.
 */
export const restoreTuning: { populate: 'ahead' | 'inline' | 'none'; hugePages: boolean } = { populate: 'ahead', hugePages: true };

export class CheckpointFile {
  private constructor(
    readonly path: string,
    private fd: number,
    readonly layout: Layout,
  ) {}

  static open(filePath: string): CheckpointFile {
    let fd: number;
    try {
      fd = fs.openSync(filePath, 'r');
    } catch (e) {
      throw ioError(`cannot open checkpoint ${filePath}`, e);
    }
    try {
      const size = fs.fstatSync(fd).size;
      const header = new Uint8Array(HEADER_BYTES);
      if (size >= HEADER_BYTES) readAll(fd, header, 0);
      const head = parseHeader(header, size);
      const table = new Uint8Array(head.count * SECTION_ENTRY_BYTES);
      readAll(fd, table, HEADER_BYTES);
      const layout = parseTable(table, head);
      checkPadding(fd, layout);
      return new CheckpointFile(filePath, fd, layout);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  entry(kind: SectionKind): SectionEntry | undefined {
    return this.layout.sections.find((s) => s.kind === kind);
  }

  require(kind: SectionKind): SectionEntry {
    const e = this.entry(kind);
    if (!e) throw new UnderstudyError('ERR_CKPT_MALFORMED', `checkpoint has no ${SectionKind[kind]} section`);
    return e;
  }

  /** Reads and verifies a whole section. */
  read(kind: SectionKind): Uint8Array {
    const e = this.require(kind);
    const out = new Uint8Array(e.length);
    readAll(this.fd, out, e.offset);
    verifySection(e, out);
    return out;
  }

  /** Reads a section straight into `into` (e.g. a fresh guest's memory) and verifies it there. */
  readInto(kind: SectionKind, into: Uint8Array, onProgress?: Progress): void {
    const e = this.require(kind);
    assert(into.length === e.length, 'destination size differs from the section');
    let done = 0;
    readAll(this.fd, into, e.offset, onProgress && ((n) => onProgress((done += n), e.length)));
    verifySection(e, into);
  }

  /** Reads and validates the head (header and extent table) of a MemoryPages section. */
  readMemoryPagesHead(entry: SectionEntry): MemoryPagesHead & { headCrc: number } {
    assert(entry.kind === SectionKind.MemoryPages);
    const fixed = new Uint8Array(MEMORY_PAGES_HEADER_BYTES);
    if (entry.length >= fixed.length) readAll(this.fd, fixed, entry.offset);
    const { count } = parseMemoryPagesCount(fixed, entry.length);
    // parseMemoryPagesCount bounded the head by the section's length, so this allocation is bounded too.
    const head = new Uint8Array(memoryPagesHeadBytes(count));
    readAll(this.fd, head, entry.offset);
    return { ...parseMemoryPagesHead(head, entry.length), headCrc: native.crc32c(head) };
  }

  /**
   * Loads a MemoryPages section into `into` (the memory image's full size): each extent is read
   * straight to its place; pages no extent covers are made zero without being touched when they
   * are not present (a fresh grow), and cleared when they are (a fresh instance's data segments).
   * The section's CRC is chained over what was read and checked at the end: on a mismatch the
   * destination holds garbage and must be discarded (restore discards the whole instance).
   */
  readMemoryPagesInto(entry: SectionEntry, head: MemoryPagesHead & { headCrc: number }, into: Uint8Array, onProgress?: Progress): void {
    assert(into.length === head.memoryBytes, 'destination size differs from the memory image');
    const { extents } = head;
    // Clear what the destination holds outside the extents (reads only its present pages).
    const held = native.storedPages(into).pages;
    let e = 0;
    for (const page of held) {
      while (e < extents.length && extents[e]! + extents[e + 1]! <= page) e += 2;
      const covered = e < extents.length && extents[e]! <= page;
      if (!covered) into.fill(0, page * MEMORY_PAGE_BYTES, (page + 1) * MEMORY_PAGE_BYTES);
    }
    let crc = head.headCrc;
    let at = entry.offset + head.dataOffset;
    const total = head.storedPages * MEMORY_PAGE_BYTES;
    let done = 0;
    const populate = restoreTuning.populate;
    // Pre-faulting is a hint either way: an error (an unaligned destination, an old kernel) only
    // means the read faults the pages itself.
    const ahead = populate === 'ahead' && extents.length > 0 ? native.prefaultStart(into, extents, restoreTuning.hugePages) : null;
    try {
      for (let i = 0; i < extents.length; i += 2) {
        const view = into.subarray(extents[i]! * MEMORY_PAGE_BYTES, (extents[i]! + extents[i + 1]!) * MEMORY_PAGE_BYTES);
        if (populate === 'inline') native.populatePages(into, extents[i]!, extents[i + 1]!);
        readAll(this.fd, view, at, onProgress && ((n) => onProgress((done += n), total)));
        crc = native.crc32c(view, crc);
        at += view.length;
      }
    } finally {
      if (ahead) native.prefaultJoin(ahead);
    }
    assert(at === entry.offset + entry.length);
    if (crc !== entry.crc) throw new UnderstudyError('ERR_CKPT_CHECKSUM', 'MemoryPages section checksum mismatch');
  }

  /** Verifies a section in bounded pieces without holding it whole (for inspect). */
  verify(entry: SectionEntry): boolean {
    const piece = new Uint8Array(Math.min(entry.length, 16 << 20));
    let crc = 0;
    for (let done = 0; done < entry.length; ) {
      const n = Math.min(piece.length, entry.length - done);
      const view = piece.subarray(0, n);
      readAll(this.fd, view, entry.offset + done);
      crc = native.crc32c(view, crc);
      done += n;
    }
    return crc === entry.crc;
  }

  /** Reads and validates the head (the run-page extents) of a MemoryRuns section. */
  readMemoryRunsHead(entry: SectionEntry, memoryBytes: number): { extents: Uint32Array; pages: number; headBytes: number; headCrc: number } {
    assert(entry.kind === SectionKind.MemoryRuns);
    const fixed = new Uint8Array(MEMORY_RUNS_HEADER_BYTES);
    if (entry.length >= fixed.length) readAll(this.fd, fixed, entry.offset);
    const count = parseMemoryRunsCount(fixed, entry.length);
    // Bounded by the section's length (parseMemoryRunsCount).
    const head = new Uint8Array(memoryRunsHeadBytes(count));
    readAll(this.fd, head, entry.offset);
    return { ...parseMemoryRunsHead(head, memoryBytes), headBytes: head.length, headCrc: native.crc32c(head) };
  }

  /**
   * Loads a MemoryRuns section's runs onto `into`, whose run pages must be zero: streamed from the
   * file in bounded chunks, each entry validated and applied as it arrives (native runsLoad), the
   * section's CRC chained over everything and checked at the end. On failure the destination holds
   * part of the image and must be discarded, as with readMemoryPagesInto.
   */
  readMemoryRunsInto(entry: SectionEntry, head: { headBytes: number; headCrc: number }, runPages: Uint32Array, into: Uint8Array): void {
    let crc: number;
    try {
      crc = native.runsLoad(this.fd, entry.offset + head.headBytes, entry.length - head.headBytes, into, runPages, head.headCrc);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === 'ERR_CKPT_MALFORMED' || code === 'ERR_CKPT_TRUNCATED' || code === 'ERR_CKPT_IO') throw new UnderstudyError(code, (e as Error).message, { cause: e });
      throw e;
    }
    if (crc !== entry.crc) throw new UnderstudyError('ERR_CKPT_CHECKSUM', 'MemoryRuns section checksum mismatch');
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
