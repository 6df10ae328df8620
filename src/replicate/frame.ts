// The wire format of the replication channel: one frame per message.
//
//   offset size  field
//        0    4  magic "USRP"
//        4    2  protocol version (u16 LE)
//        6    1  message type (MessageType)
//        7    1  flags (0 in version 1)
//        8    4  sender node id (u32 LE)
//       12    8  term (u64 LE, at most 2^53 - 1)
//       20    8  sequence (u64 LE, at most 2^53 - 1)
//       28    8  counter (u64 LE, at most 2^53 - 1): the AEAD nonce's per-sender part
//       36    4  payload length (u32 LE, at most FRAME_PAYLOAD_BYTES_MAX)
//       40    4  CRC-32C of the plaintext payload
//       44    n  payload, encrypted with ChaCha20-Poly1305 (pre-shared key)
//     44+n   16  Poly1305 tag
//
// The nonce is sender id (4 bytes) || counter (8 bytes); the whole header is
// the AAD, so no header bit can change unnoticed. A sender never reuses a
// counter (NonceCounter reserves blocks in durable storage before use), and a
// receiver accepts each (sender, counter) once (ReplayWindow), so a replayed
// frame is refused. decodeFrame checks every bound before it uses a field.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { assert } from '../util/assert.js';
import { crc32c } from './crc32c.js';
import { replicateError, type ReplicateErrorCode } from './codes.js';
import type { UnderstudyError } from '../errors.js';

export const FRAME_MAGIC = Uint8Array.of(0x55, 0x53, 0x52, 0x50); // "USRP"
/** 2: Hello carries soloTerm (solo terms after a failover). A node speaks exactly one version. */
export const PROTOCOL_VERSION = 2;
export const FRAME_HEADER_BYTES = 44;
export const FRAME_TAG_BYTES = 16;
/** One epoch delta travels in one frame; a guest whose epoch dirties more than this is refused, not split. */
export const FRAME_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024;
export const FRAME_BYTES_MAX = FRAME_HEADER_BYTES + FRAME_PAYLOAD_BYTES_MAX + FRAME_TAG_BYTES;
export const KEY_BYTES = 32;
/** Frames arriving out of order are accepted within this many counters of the newest; older ones are refused. */
export const REPLAY_WINDOW = 64;
/** The sender reserves counters in blocks of this many, one durable write per block. */
export const NONCE_BLOCK = 1 << 16;
/** Message types 1..MESSAGE_TYPE_MAX are defined (see messages.ts). */
export const MESSAGE_TYPE_MAX = 8;

// Layout asserted in code (prose drifts).
const OFF = { magic: 0, version: 4, type: 6, flags: 7, sender: 8, term: 12, seq: 20, counter: 28, length: 36, crc: 40 } as const;
assert(OFF.crc + 4 === FRAME_HEADER_BYTES, 'frame header layout');

export interface FrameHeader {
  version: number;
  type: number;
  flags: number;
  sender: number;
  term: number;
  seq: number;
  counter: number;
  payloadBytes: number;
  payloadCrc: number;
}

export type FrameResult =
  | { ok: true; header: FrameHeader; payload: Uint8Array }
  | { ok: false; error: UnderstudyError };

function fail(code: ReplicateErrorCode, message: string): { ok: false; error: UnderstudyError } {
  return { ok: false, error: replicateError(code, message) };
}

function checkKey(key: Uint8Array): void {
  if (key.length !== KEY_BYTES) throw replicateError('ERR_REPL_CONFIG', `the pre-shared key must be ${KEY_BYTES} bytes, not ${key.length}`);
}

function safeU64(view: DataView, at: number): number | null {
  const v = view.getBigUint64(at, true);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}

function nonceOf(sender: number, counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(sender, 0);
  n.writeBigUInt64LE(BigInt(counter), 4);
  return n;
}

/** Hands out AEAD counters that never repeat, across restarts, as long as `persist` is durable. */
export class NonceCounter {
  private next: number;
  private reservedUpTo: number;
  constructor(
    reservedUpTo: number,
    private readonly persist: (reservedUpTo: number) => void,
  ) {
    assert(Number.isSafeInteger(reservedUpTo) && reservedUpTo >= 0, 'nonce reservation');
    // Everything below the stored reservation may have been used by an earlier incarnation.
    this.next = reservedUpTo;
    this.reservedUpTo = reservedUpTo;
  }
  take(): number {
    if (this.next >= this.reservedUpTo) {
      this.reservedUpTo = this.next + NONCE_BLOCK;
      assert(this.reservedUpTo <= Number.MAX_SAFE_INTEGER, 'nonce space exhausted');
      this.persist(this.reservedUpTo); // durable before the first counter of the block is used
    }
    return this.next++;
  }
}

/** Accepts each counter at most once, tolerating reordering within REPLAY_WINDOW. */
export class ReplayWindow {
  private top = -1;
  private readonly slots = new Float64Array(REPLAY_WINDOW).fill(-1);
  /** Checks without recording: the frame is authenticated before it may move the window. */
  fresh(counter: number): boolean {
    if (counter > this.top) return true;
    if (counter <= this.top - REPLAY_WINDOW) return false;
    return this.slots[counter % REPLAY_WINDOW] !== counter;
  }
  record(counter: number): void {
    assert(this.fresh(counter), 'replay window: recording a stale counter');
    this.slots[counter % REPLAY_WINDOW] = counter;
    if (counter > this.top) this.top = counter;
  }
}

export interface SealArgs {
  type: number;
  term: number;
  seq: number;
  payload: Uint8Array;
}

/** The sending half: one per node, shared by all its peers (the counter is per sender). */
export class FrameSealer {
  private readonly key: Buffer;
  constructor(
    readonly selfId: number,
    key: Uint8Array,
    private readonly counter: NonceCounter,
  ) {
    checkKey(key);
    this.key = Buffer.from(key);
  }
  seal(a: SealArgs): Uint8Array {
    assert(a.type >= 1 && a.type <= MESSAGE_TYPE_MAX, 'frame type');
    assert(Number.isSafeInteger(a.term) && a.term >= 0 && Number.isSafeInteger(a.seq) && a.seq >= 0, 'frame term/seq');
    assert(a.payload.length <= FRAME_PAYLOAD_BYTES_MAX, 'frame payload too large: callers bound what they send');
    const counter = this.counter.take();
    const out = new Uint8Array(FRAME_HEADER_BYTES + a.payload.length + FRAME_TAG_BYTES);
    const view = new DataView(out.buffer);
    out.set(FRAME_MAGIC, OFF.magic);
    view.setUint16(OFF.version, PROTOCOL_VERSION, true);
    view.setUint8(OFF.type, a.type);
    view.setUint8(OFF.flags, 0);
    view.setUint32(OFF.sender, this.selfId, true);
    view.setBigUint64(OFF.term, BigInt(a.term), true);
    view.setBigUint64(OFF.seq, BigInt(a.seq), true);
    view.setBigUint64(OFF.counter, BigInt(counter), true);
    view.setUint32(OFF.length, a.payload.length, true);
    view.setUint32(OFF.crc, crc32c(a.payload), true);
    const header = out.subarray(0, FRAME_HEADER_BYTES);
    const cipher = createCipheriv('chacha20-poly1305', this.key, nonceOf(this.selfId, counter), { authTagLength: FRAME_TAG_BYTES });
    cipher.setAAD(header, { plaintextLength: a.payload.length });
    const body = cipher.update(a.payload);
    const final = cipher.final();
    out.set(body, FRAME_HEADER_BYTES);
    out.set(final, FRAME_HEADER_BYTES + body.length);
    out.set(cipher.getAuthTag(), FRAME_HEADER_BYTES + a.payload.length);
    return out;
  }
}

/**
 * Parses and validates a header (no cryptography): what a stream reader needs
 * to know how long the frame is before it waits for the rest.
 */
export function parseFrameHeader(bytes: Uint8Array): { ok: true; header: FrameHeader } | { ok: false; error: UnderstudyError } {
  if (bytes.length < FRAME_HEADER_BYTES) return fail('ERR_REPL_FRAME_TRUNCATED', `frame of ${bytes.length} bytes is shorter than its ${FRAME_HEADER_BYTES}-byte header`);
  for (let i = 0; i < FRAME_MAGIC.length; i++) {
    if (bytes[OFF.magic + i] !== FRAME_MAGIC[i]) return fail('ERR_REPL_FRAME_MAGIC', 'not a replication frame (bad magic)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER_BYTES);
  const version = view.getUint16(OFF.version, true);
  if (version !== PROTOCOL_VERSION) return fail('ERR_REPL_FRAME_VERSION', `protocol version ${version}; this build speaks ${PROTOCOL_VERSION}`);
  const type = view.getUint8(OFF.type);
  if (type < 1 || type > MESSAGE_TYPE_MAX) return fail('ERR_REPL_FRAME_MALFORMED', `unknown message type ${type}`);
  const flags = view.getUint8(OFF.flags);
  if (flags !== 0) return fail('ERR_REPL_FRAME_MALFORMED', `flags ${flags} are not defined in version ${PROTOCOL_VERSION}`);
  const term = safeU64(view, OFF.term);
  const seq = safeU64(view, OFF.seq);
  const counter = safeU64(view, OFF.counter);
  if (term === null || seq === null || counter === null) return fail('ERR_REPL_FRAME_MALFORMED', 'a term, sequence or counter past 2^53');
  const payloadBytes = view.getUint32(OFF.length, true);
  if (payloadBytes > FRAME_PAYLOAD_BYTES_MAX) return fail('ERR_REPL_FRAME_TOO_LARGE', `payload of ${payloadBytes} bytes is past the ${FRAME_PAYLOAD_BYTES_MAX}-byte limit`);
  return {
    ok: true,
    header: { version, type, flags, sender: view.getUint32(OFF.sender, true), term, seq, counter, payloadBytes, payloadCrc: view.getUint32(OFF.crc, true) },
  };
}

export function frameBytes(header: FrameHeader): number {
  return FRAME_HEADER_BYTES + header.payloadBytes + FRAME_TAG_BYTES;
}

/** The receiving half: one per node, with a replay window per configured peer. */
export class FrameOpener {
  private readonly key: Buffer;
  private readonly windows = new Map<number, ReplayWindow>();
  constructor(key: Uint8Array, peers: readonly number[]) {
    checkKey(key);
    this.key = Buffer.from(key);
    for (const p of peers) this.windows.set(p, new ReplayWindow());
  }
  open(bytes: Uint8Array): FrameResult {
    const parsed = parseFrameHeader(bytes);
    if (!parsed.ok) return parsed;
    const h = parsed.header;
    const total = frameBytes(h);
    if (bytes.length < total) return fail('ERR_REPL_FRAME_TRUNCATED', `frame of ${bytes.length} bytes; its header says ${total}`);
    if (bytes.length > total) return fail('ERR_REPL_FRAME_MALFORMED', `${bytes.length - total} bytes after the frame`);
    const window = this.windows.get(h.sender);
    if (window === undefined) return fail('ERR_REPL_PEER', `frame from node ${h.sender}, which is not a configured peer`);
    // Cheap refusal before the cipher; recorded only once the frame authenticates.
    if (!window.fresh(h.counter)) return fail('ERR_REPL_REPLAY', `frame counter ${h.counter} from node ${h.sender} was already seen or is too old`);
    const header = bytes.subarray(0, FRAME_HEADER_BYTES);
    let payload: Uint8Array;
    try {
      const d = createDecipheriv('chacha20-poly1305', this.key, nonceOf(h.sender, h.counter), { authTagLength: FRAME_TAG_BYTES });
      d.setAAD(header, { plaintextLength: h.payloadBytes });
      d.setAuthTag(bytes.subarray(FRAME_HEADER_BYTES + h.payloadBytes, total));
      const a = d.update(bytes.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + h.payloadBytes));
      const b = d.final();
      payload = b.length === 0 ? new Uint8Array(a.buffer, a.byteOffset, a.length) : new Uint8Array(Buffer.concat([a, b]));
    } catch {
      return fail('ERR_REPL_AUTH', `frame from node ${h.sender} does not authenticate (forged, tampered or a different key)`);
    }
    if (crc32c(payload) !== h.payloadCrc) return fail('ERR_REPL_FRAME_CHECKSUM', `payload checksum mismatch in a frame from node ${h.sender}`);
    window.record(h.counter);
    return { ok: true, header: h, payload };
  }
}

/** A stream buffers at most one partial maximal frame plus one incoming chunk of at most that size. */
export const STREAM_BUFFER_BYTES_MAX = 2 * FRAME_BYTES_MAX;

/**
 * Splits a byte stream (a TCP connection) into whole frames. A bad header
 * poisons the stream: the caller closes the connection.
 */
export class FrameStreamDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private failed: UnderstudyError | null = null;

  /** Returns the whole frames now available (still to be opened), or the error that ends the stream. */
  push(chunk: Uint8Array): { frames: Uint8Array[]; error: UnderstudyError | null } {
    if (this.failed) return { frames: [], error: this.failed };
    if (chunk.length > FRAME_BYTES_MAX || this.buffered + chunk.length > STREAM_BUFFER_BYTES_MAX) {
      this.failed = replicateError('ERR_REPL_FRAME_TOO_LARGE', 'stream buffer past its bound');
      return { frames: [], error: this.failed };
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Uint8Array[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) break;
      const head = this.peek(FRAME_HEADER_BYTES);
      const parsed = parseFrameHeader(head);
      if (!parsed.ok) {
        this.failed = parsed.error;
        return { frames, error: parsed.error };
      }
      const total = frameBytes(parsed.header);
      if (this.buffered < total) break;
      frames.push(this.take(total));
    }
    return { frames, error: null };
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (at === n) break;
    }
    return out;
  }

  private take(n: number): Uint8Array {
    const out = this.peek(n).slice();
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        this.chunks.shift();
        left -= c.length;
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    return out;
  }
}
