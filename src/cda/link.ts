// The CDA backup link: one TCP connection between a primary and a CDA backup,
// carrying replication frames (src/replicate/frame.ts: ChaCha20-Poly1305
// under a pre-shared key, CRC-32C, bounds checked before use, a replay window)
// with a per-connection session key.
//
//   primary                                   backup
//   hello { nonce_p } ───────────────────────▶
//                    ◀─────────────────────── hello { nonce_b }
//   both: K = HKDF-SHA256(psk, salt = nonce_p || nonce_b, "understudy-cda session v1")
//   fetch / commit  ─────────(sealed with K)─▶
//                    ◀────────(sealed with K)─ state / ack / nack
//
// Why a session key: the replication link keeps its nonce counters durable
// across restarts (a node's state file); a CDA primary may be any program
// that restarts from nothing. With a fresh key per connection the counters
// start at 0 without ever repeating a nonce under one key, and a frame
// recorded from an earlier connection cannot be replayed into a later one
// (it does not authenticate); within a connection the replay window refuses
// it. Hellos are sealed under a key derived from the pre-shared key with a
// random sender id and counter (85 random bits of nonce), so a peer without the
// key is refused at its first frame. A hello carries only fresh randomness:
// a replayed one makes a session nobody can speak in. Frame types 1..6 below
// never meet the replication protocol's: the keys differ (HKDF domain
// separation), so such a frame would not authenticate.
import { hkdfSync, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { decodePlain, encodePlain } from '../checkpoint/plain-codec.js';
import type { UnderstudyError } from '../errors.js';
import { FrameOpener, FrameSealer, FrameStreamDecoder, KEY_BYTES, NonceCounter, NONCE_BLOCK, parseFrameHeader } from '../replicate/frame.js';
import { assert } from '../util/assert.js';
import type { PlainObject } from '../util/plain.js';
import { cdaError } from './codes.js';

export const CDA_LINK_VERSION = 1;
const HELLO_INFO = 'understudy-cda hello v1';
const SESSION_INFO = 'understudy-cda session v1';
export const HELLO_NONCE_BYTES = 32;
/** Session sender ids: the direction is part of every nonce. */
export const PRIMARY_ID = 1;
export const BACKUP_ID = 2;
/** Messages queued on a connection before its handshake completes. */
export const QUEUED_MESSAGES_MAX = 16;

export const CdaFrameType = { hello: 1, fetch: 2, state: 3, commit: 4, ack: 5, nack: 6 } as const;
type TypeName = keyof typeof CdaFrameType;

export type CdaMessage =
  | { t: 'hello'; v: number; role: 'primary' | 'backup'; nonce: Uint8Array }
  | { t: 'fetch'; id: number }
  /** The backup's committed state: `stored` = compress(full record), empty when cycle is 0. */
  | { t: 'state'; id: number; cycle: number; stored: Uint8Array; raw: number }
  /** One committed cycle: `stored` = compress(record); a delta follows `parent`, a full record replaces. */
  | { t: 'commit'; id: number; cycle: number; parent: number; stored: Uint8Array; raw: number }
  | { t: 'ack'; id: number; cycle: number }
  /** Refused; `have` is the backup's cycle (a delta whose parent is not it is refused with ERR_CDA_RECORD). */
  | { t: 'nack'; id: number; code: string; message: string; have: number };

function isInt(v: unknown, min = 0): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

/** A message from an opened frame's payload, shape-checked (ERR_CDA_PROTOCOL). */
export function decodeMessage(type: number, payload: Uint8Array): CdaMessage {
  const bad = (why: string) => cdaError('ERR_CDA_PROTOCOL', `backup link message: ${why}`);
  let v: unknown;
  try {
    v = decodePlain(payload);
  } catch (e) {
    throw bad(`does not decode (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) throw bad('not an object');
  const m = v as Record<string, unknown>;
  if (typeof m.t !== 'string' || CdaFrameType[m.t as TypeName] !== type) throw bad(`type ${String(m.t)} in a frame of type ${type}`);
  switch (m.t) {
    case 'hello':
      if (m.v !== CDA_LINK_VERSION) throw bad(`link version ${String(m.v)}; this build speaks ${CDA_LINK_VERSION}`);
      if (m.role !== 'primary' && m.role !== 'backup') throw bad('hello role');
      if (!(m.nonce instanceof Uint8Array) || m.nonce.length !== HELLO_NONCE_BYTES) throw bad('hello nonce');
      return { t: 'hello', v: m.v, role: m.role, nonce: m.nonce };
    case 'fetch':
      if (!isInt(m.id)) throw bad('fetch id');
      return { t: 'fetch', id: m.id };
    case 'state':
      if (!isInt(m.id) || !isInt(m.cycle) || !isInt(m.raw) || !(m.stored instanceof Uint8Array)) throw bad('state fields');
      return { t: 'state', id: m.id, cycle: m.cycle, stored: m.stored, raw: m.raw };
    case 'commit':
      if (!isInt(m.id) || !isInt(m.cycle, 1) || !isInt(m.parent) || !isInt(m.raw) || !(m.stored instanceof Uint8Array)) throw bad('commit fields');
      return { t: 'commit', id: m.id, cycle: m.cycle, parent: m.parent, stored: m.stored, raw: m.raw };
    case 'ack':
      if (!isInt(m.id) || !isInt(m.cycle, 1)) throw bad('ack fields');
      return { t: 'ack', id: m.id, cycle: m.cycle };
    case 'nack':
      if (!isInt(m.id) || typeof m.code !== 'string' || typeof m.message !== 'string' || !isInt(m.have)) throw bad('nack fields');
      return { t: 'nack', id: m.id, code: m.code.slice(0, 64), message: m.message.slice(0, 512), have: m.have };
  }
  throw bad(`unknown type ${m.t}`);
}

function helloKey(psk: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', psk, new Uint8Array(0), HELLO_INFO, KEY_BYTES));
}

export function sessionKey(psk: Uint8Array, primaryNonce: Uint8Array, backupNonce: Uint8Array): Uint8Array {
  const salt = new Uint8Array(HELLO_NONCE_BYTES * 2);
  salt.set(primaryNonce, 0);
  salt.set(backupNonce, HELLO_NONCE_BYTES);
  return new Uint8Array(hkdfSync('sha256', psk, salt, SESSION_INFO, KEY_BYTES));
}

export interface ChannelHandlers {
  /** An authenticated message of the session (never a hello). */
  onMessage(m: CdaMessage): void;
  /** The connection ended; `error` says why when it was refused or broke. */
  onClose(error: UnderstudyError | null): void;
  /** Tests: every frame this side writes. */
  onFrameSent?(frame: Uint8Array): void;
}

/**
 * One connection's session: says hello, derives the session key from both
 * hellos, then seals and opens messages. Anything that does not open ends the
 * connection with the reason. The channel owns its socket.
 */
export class CdaChannel {
  private readonly myNonce = randomBytes(HELLO_NONCE_BYTES);
  private sealer: FrameSealer | null = null;
  private opener: FrameOpener | null = null;
  private readonly queue: CdaMessage[] = [];
  private closed = false;
  private closeError: UnderstudyError | null = null;
  /** The peer has sent an authenticated session frame (it holds the key, and this is not a replayed hello). */
  authenticated = false;

  constructor(
    readonly socket: net.Socket,
    private readonly psk: Uint8Array,
    readonly role: 'primary' | 'backup',
    private readonly handlers: ChannelHandlers,
  ) {
    assert(psk.length === KEY_BYTES, 'pre-shared key length');
    socket.setNoDelay(true);
    const decoder = new FrameStreamDecoder();
    socket.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      const { frames, error } = decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      for (const f of frames) {
        if (this.closed) return;
        this.receive(f);
      }
      if (error !== null) this.fail(error);
    });
    socket.on('error', (e) => {
      this.closeError ??= cdaError('ERR_CDA_IO', `backup link: ${e.message}`, { cause: e });
    });
    // The peer's end: nothing more will come, so nothing more is sent either.
    socket.on('end', () => this.close());
    socket.on('close', () => {
      this.closed = true;
      this.handlers.onClose(this.closeError);
    });
    const sendHello = () => this.write(this.sealHello());
    if (socket.connecting) socket.once('connect', sendHello);
    else sendHello();
  }

  get established(): boolean {
    return this.sealer !== null && !this.closed;
  }

  /** The handshake completed (even if the connection has closed since): messages may have reached the peer. */
  get handshaken(): boolean {
    return this.sealer !== null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private sealHello(): Uint8Array {
    // A random sender id and counter: 85 random bits of nonce per hello under the hello key.
    const r = randomBytes(11);
    const sender = r.readUInt32LE(0);
    // 52 bits (randomInt stops at 2^48): below 2^53 - NONCE_BLOCK, as NonceCounter requires.
    const counter = r.readUIntLE(4, 6) * 16 + (r[10]! & 0xf);
    assert(counter + NONCE_BLOCK <= Number.MAX_SAFE_INTEGER);
    const sealer = new FrameSealer(sender, helloKey(this.psk), new NonceCounter(counter, () => undefined));
    const payload = encodePlain({ t: 'hello', v: CDA_LINK_VERSION, role: this.role, nonce: this.myNonce });
    return sealer.seal({ type: CdaFrameType.hello, term: 0, seq: 0, payload });
  }

  private receive(frame: Uint8Array): void {
    const parsed = parseFrameHeader(frame);
    if (!parsed.ok) return this.fail(parsed.error);
    if (this.sealer === null) {
      if (parsed.header.type !== CdaFrameType.hello) return this.fail(cdaError('ERR_CDA_PROTOCOL', 'a session frame before the hello'));
      const opened = new FrameOpener(helloKey(this.psk), [parsed.header.sender]).open(frame);
      if (!opened.ok) return this.fail(opened.error);
      let hello: CdaMessage;
      try {
        hello = decodeMessage(CdaFrameType.hello, opened.payload);
      } catch (e) {
        return this.fail(e as UnderstudyError);
      }
      assert(hello.t === 'hello');
      if (hello.role === this.role) return this.fail(cdaError('ERR_CDA_PROTOCOL', `both ends of the link are ${this.role}s`));
      const [p, b] = this.role === 'primary' ? [this.myNonce, hello.nonce] : [hello.nonce, this.myNonce];
      const key = sessionKey(this.psk, p, b);
      const [me, peer] = this.role === 'primary' ? [PRIMARY_ID, BACKUP_ID] : [BACKUP_ID, PRIMARY_ID];
      this.sealer = new FrameSealer(me, key, new NonceCounter(0, () => undefined));
      this.opener = new FrameOpener(key, [peer]);
      for (const m of this.queue.splice(0)) this.send(m);
      return;
    }
    const opened = this.opener!.open(frame);
    if (!opened.ok) return this.fail(opened.error);
    let m: CdaMessage;
    try {
      m = decodeMessage(parsed.header.type, opened.payload);
    } catch (e) {
      return this.fail(e as UnderstudyError);
    }
    if (m.t === 'hello') return this.fail(cdaError('ERR_CDA_PROTOCOL', 'a second hello'));
    this.authenticated = true;
    this.handlers.onMessage(m);
  }

  send(m: CdaMessage): void {
    if (this.closed) return;
    if (this.sealer === null) {
      if (this.queue.length >= QUEUED_MESSAGES_MAX) return this.fail(cdaError('ERR_CDA_PROTOCOL', 'too many messages before the handshake'));
      this.queue.push(m);
      return;
    }
    const payload = encodePlain(m as unknown as PlainObject);
    this.write(this.sealer.seal({ type: CdaFrameType[m.t], term: 0, seq: 'id' in m ? m.id : 0, payload }));
  }

  /** Tests: writes raw bytes (a replayed or forged frame). */
  sendRaw(frame: Uint8Array): void {
    this.write(frame);
  }

  private write(frame: Uint8Array): void {
    if (this.closed || this.socket.destroyed) return;
    this.handlers.onFrameSent?.(frame);
    this.socket.write(frame);
  }

  /** Ends the connection with a reason. */
  fail(error: UnderstudyError): void {
    this.closeError ??= error;
    this.close();
  }

  close(): void {
    if (this.closed && this.socket.destroyed) return;
    this.socket.destroy();
  }
}

/** The error a closed channel reports, as the primary sees it. */
export function linkFailure(error: UnderstudyError | null, what: string): UnderstudyError {
  if (error && error.code === 'ERR_CDA_IO') return error;
  return cdaError('ERR_CDA_IO', `${what}: ${error ? `${error.code}: ${error.message}` : 'the connection closed'}`, error ? { cause: error } : undefined);
}
