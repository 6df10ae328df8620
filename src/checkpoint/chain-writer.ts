// Appends epochs to a chain: encodes each epoch's dirty pages against the
// previous image (the shadow), compresses, frames and writes the record, and
// compacts the chain to keep the last N restore points. It runs on the
// checkpoint worker thread (epoch-worker.ts), off the guest's path; tests
// also run it inline.
import fs from 'node:fs';
import path from 'node:path';
import { UnderstudyError } from '../errors.js';
import type { OutputGateState } from '../output/gate.js';
import { assert } from '../util/assert.js';
import { compactChain, logFileName, type CompactResult } from './chain.js';
import { compress, CODEC_DEFAULT, type CodecName } from './compress.js';
import { encodeDelta, deltaBoundBytes, growShadow, type DeltaEncodeCounts } from './delta-codec.js';
import { encodeLogHeader, encodeRecord } from './delta-log.js';
import { encodeEpochRecord } from './epoch-record.js';

/** Restore points a chain keeps by default: 10 s of 20 ms epochs. */
export const CHAIN_KEEP_DEFAULT = 500;

/** One epoch as captured while the guest was paused. */
export interface EpochCapture {
  sequence: number;
  memoryBytes: number;
  /** Pages the tracker reported (a superset of the pages that changed). */
  pages: Uint32Array;
  /** Their contents, packed: pages.length * 4096 bytes. */
  staged: Uint8Array;
  vcpu: Uint8Array;
  devices: Uint8Array;
  output: OutputGateState;
  stdinBytesConsumed: number;
  restoreGeneration: number;
}

export interface EpochWritten {
  sequence: number;
  listedPages: number;
  counts: DeltaEncodeCounts;
  rawBytes: number;
  storedBytes: number;
  encodeMs: number;
  compressMs: number;
  writeMs: number;
  compacted: CompactResult | null;
}

export interface ChainWriterOptions {
  keep?: number;
  codec?: CodecName;
  /** fsync every record (default true: a record is durable when `append` returns). */
  fsync?: boolean;
}

export class ChainWriter {
  private shadow: Uint8Array = new Uint8Array(0);
  private fd = -1;
  private baseSequence = 0;
  private lastSequence = 0;
  private moduleSha256 = '';
  private out = new Uint8Array(0);
  private readonly keep: number;
  private readonly codec: CodecName;
  private readonly fsync: boolean;

  constructor(
    private readonly dir: string,
    options: ChainWriterOptions = {},
  ) {
    this.keep = options.keep ?? CHAIN_KEEP_DEFAULT;
    this.codec = options.codec ?? CODEC_DEFAULT;
    this.fsync = options.fsync ?? true;
    if (!Number.isInteger(this.keep) || this.keep < 1) throw new UnderstudyError('ERR_USAGE', 'keep must be a positive integer');
  }

  /** Begins the log after a base that the caller has written; `image` (the base's memory) becomes the shadow and is owned by the writer from now on. */
  start(baseSequence: number, moduleSha256: string, image: Uint8Array): void {
    assert(this.fd < 0, 'writer already started');
    this.shadow = image;
    this.baseSequence = baseSequence;
    this.lastSequence = baseSequence;
    this.moduleSha256 = moduleSha256;
    this.openLog(true);
  }

  private openLog(fresh: boolean): void {
    const p = path.join(this.dir, logFileName(this.baseSequence));
    this.fd = fs.openSync(p, fresh ? 'w' : 'a');
    if (fresh) {
      fs.writeSync(this.fd, encodeLogHeader({ baseSequence: this.baseSequence, moduleSha256: this.moduleSha256 }));
      if (this.fsync) fs.fsyncSync(this.fd);
    }
  }

  append(c: EpochCapture): EpochWritten {
    assert(this.fd >= 0, 'writer not started');
    if (c.sequence !== this.lastSequence + 1) throw new UnderstudyError('ERR_CKPT_MALFORMED', `epoch ${c.sequence} does not follow ${this.lastSequence}`);
    assert(c.staged.length === c.pages.length * 4096, 'staged holds every listed page');
    const t0 = performance.now();
    if (c.memoryBytes > this.shadow.length) this.shadow = growShadow(this.shadow, c.memoryBytes);
    const bound = deltaBoundBytes(c.pages.length);
    if (this.out.length < bound) this.out = new Uint8Array(bound);
    const { encoded, counts } = encodeDelta(c.staged, c.pages, this.shadow, this.out);
    const raw = encodeEpochRecord({
      memoryBytes: c.memoryBytes,
      pages: encoded,
      vcpu: c.vcpu,
      devices: c.devices,
      output: c.output,
      stdinBytesConsumed: c.stdinBytesConsumed,
      restoreGeneration: c.restoreGeneration,
    });
    const t1 = performance.now();
    const stored = compress(raw, this.codec);
    const t2 = performance.now();
    const record = encodeRecord(c.sequence, stored, raw.length);
    fs.writeSync(this.fd, record);
    if (this.fsync) fs.fsyncSync(this.fd);
    this.lastSequence = c.sequence;
    const t3 = performance.now();
    let compacted: CompactResult | null = null;
    // Compact once the log holds twice what is kept: the O(memory) merge is paid once every `keep` epochs.
    if (this.lastSequence - this.baseSequence + 1 >= 2 * this.keep) compacted = this.compact();
    return {
      sequence: c.sequence,
      listedPages: c.pages.length,
      counts,
      rawBytes: raw.length,
      storedBytes: stored.length,
      encodeMs: t1 - t0,
      compressMs: t2 - t1,
      writeMs: t3 - t2,
      compacted,
    };
  }

  private compact(): CompactResult {
    fs.closeSync(this.fd);
    this.fd = -1;
    const result = compactChain(this.dir, this.keep);
    this.baseSequence = result.baseSequence;
    this.openLog(false);
    return result;
  }

  close(): void {
    if (this.fd >= 0) {
      if (this.fsync) fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
    }
    this.fd = -1;
  }
}
