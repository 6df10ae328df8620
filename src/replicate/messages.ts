// The messages of the replication protocol and their payload codec. A payload
// is plain data (src/checkpoint/plain-codec.ts); decoding validates the shape,
// every integer's domain and every length before a message is returned, and
// answers anything else with ERR_REPL_MESSAGE.
import { decodePlain, encodePlain } from '../checkpoint/plain-codec.js';
import type { Plain, PlainObject } from '../util/plain.js';
import { assert } from '../util/assert.js';
import { replicateError, isReplicateError } from './codes.js';
import { FRAME_PAYLOAD_BYTES_MAX } from './frame.js';
import { isUnderstudyError } from '../errors.js';

export type NodeId = number;

/** What a node is doing, as told to its peer. */
export type NodeRole = 'idle' | 'syncing' | 'backup' | 'primary' | 'deposed';
export const NODE_ROLES: readonly NodeRole[] = ['idle', 'syncing', 'backup', 'primary', 'deposed'];

/** Outputs one epoch may carry: the primary pauses the guest when its open epoch holds this many. */
export const EPOCH_OUTPUTS_MAX = 4096;
/** One output (a response or a piece of log output) is at most this long. */
export const OUTPUT_BODY_BYTES_MAX = 1024 * 1024;
/** Pages one sync chunk carries. */
export const SYNC_CHUNK_PAGES_MAX = 1024;
/** A page is at most this long (wasm pages are 64 KiB; we track 4 KiB). */
export const PAGE_BYTES_MAX = 64 * 1024;
/** A Reject's human-readable detail. */
export const REJECT_DETAIL_CHARS_MAX = 256;
/** Node ids, client ids and request ids are u32. */
export const ID_MAX = 0xffffffff;

export type Output =
  | { kind: 'response'; client: number; reqId: number; body: Uint8Array }
  | { kind: 'log'; stream: 'stdout' | 'stderr'; body: Uint8Array };

/** Who I am and what I hold; sent by idle, syncing, deposed nodes, and by a primary offering a sync. */
export interface Hello {
  type: 'hello';
  term: number;
  role: NodeRole;
  /** The sync session the sender is in (0 = none). A primary's Hello with a session offers that sync. */
  session: number;
  /** Backup: last applied epoch; primary: last captured epoch; -1 = none. */
  lastApplied: number;
  /** (incarnation, view) orders a node's Hellos: a Hello older than one already seen is stale and ignored. */
  incarnation: number;
  view: number;
  /** The newest term in which the sender released output alone (0 = never); durable at the sender. */
  soloTerm: number;
}
/** Pre-copy: a run of whole pages. chunkSeq counts from 1 across all rounds of a session. */
export interface SyncChunk {
  type: 'sync-chunk';
  term: number;
  session: number;
  chunkSeq: number;
  pageBytes: number;
  pages: number[];
  data: Uint8Array;
}
/** Cumulative: every chunk up to chunkSeq arrived and was written. */
export interface SyncAck {
  type: 'sync-ack';
  term: number;
  session: number;
  chunkSeq: number;
}
/** The final stop-and-copy: the delta since the last pre-copy round, as epoch `seq`. */
export interface SyncDone {
  type: 'sync-done';
  term: number;
  session: number;
  chunksTotal: number;
  seq: number;
  delta: Uint8Array;
  outputs: Output[];
  digest: number;
  releasedThrough: number;
}
/** One epoch: its delta and the outputs it covers, released on its Ack. */
export interface Epoch {
  type: 'epoch';
  term: number;
  session: number;
  seq: number;
  delta: Uint8Array;
  outputs: Output[];
  /** The replica's digest after applying (0 = the machine does not compute one). */
  digest: number;
  /** The primary released the outputs of every epoch up to here; the backup may forget them. */
  releasedThrough: number;
}
/** Cumulative: every epoch up to seq is applied. */
export interface Ack {
  type: 'ack';
  term: number;
  session: number;
  seq: number;
}
/** Primary: seq = releasedThrough; backup: seq = last applied. */
export interface Heartbeat {
  type: 'heartbeat';
  term: number;
  session: number;
  seq: number;
}
export type RejectReason = 'stale-term' | 'session' | 'delta-invalid' | 'diverged' | 'term-conflict';
export const REJECT_REASONS: readonly RejectReason[] = ['stale-term', 'session', 'delta-invalid', 'diverged', 'term-conflict'];
export interface Reject {
  type: 'reject';
  term: number;
  reason: RejectReason;
  detail: string;
}

export type Message = Hello | SyncChunk | SyncAck | SyncDone | Epoch | Ack | Heartbeat | Reject;
export type MessageTypeName = Message['type'];

export const MESSAGE_TYPE_CODES: Readonly<Record<MessageTypeName, number>> = {
  hello: 1,
  'sync-chunk': 2,
  'sync-ack': 3,
  'sync-done': 4,
  epoch: 5,
  ack: 6,
  heartbeat: 7,
  reject: 8,
};
const TYPE_BY_CODE = new Map<number, MessageTypeName>(Object.entries(MESSAGE_TYPE_CODES).map(([k, v]) => [v, k as MessageTypeName]));

/** The sequence number a frame header carries for a message (0 when it has none). */
export function messageSeq(m: Message): number {
  switch (m.type) {
    case 'sync-chunk':
    case 'sync-ack':
      return m.chunkSeq;
    case 'sync-done':
    case 'epoch':
    case 'ack':
    case 'heartbeat':
      return m.seq;
    default:
      return 0;
  }
}

function encodeOutputs(outputs: Output[]): Plain {
  return outputs.map((o) => (o.kind === 'response' ? [0, o.client, o.reqId, o.body] : [1, o.stream === 'stdout' ? 1 : 2, o.body]));
}

export interface EncodedMessage {
  type: number;
  term: number;
  seq: number;
  payload: Uint8Array;
}

export function encodeMessage(m: Message): EncodedMessage {
  let body: PlainObject;
  switch (m.type) {
    case 'hello':
      body = { role: m.role, session: m.session, lastApplied: m.lastApplied, incarnation: m.incarnation, view: m.view, soloTerm: m.soloTerm };
      break;
    case 'sync-chunk':
      body = { session: m.session, pageBytes: m.pageBytes, pages: m.pages, data: m.data };
      break;
    case 'sync-ack':
    case 'ack':
    case 'heartbeat':
      body = { session: m.session };
      break;
    case 'sync-done':
      body = { session: m.session, chunksTotal: m.chunksTotal, delta: m.delta, outputs: encodeOutputs(m.outputs), digest: m.digest, releasedThrough: m.releasedThrough };
      break;
    case 'epoch':
      body = { session: m.session, delta: m.delta, outputs: encodeOutputs(m.outputs), digest: m.digest, releasedThrough: m.releasedThrough };
      break;
    case 'reject':
      body = { reason: m.reason, detail: m.detail.slice(0, REJECT_DETAIL_CHARS_MAX) };
      break;
  }
  const payload = encodePlain(body);
  assert(payload.length <= FRAME_PAYLOAD_BYTES_MAX, 'message larger than a frame: the sender bounds epochs and chunks');
  return { type: MESSAGE_TYPE_CODES[m.type], term: m.term, seq: messageSeq(m), payload };
}

// ---- decoding (untrusted) ----

function bad(what: string): never {
  throw replicateError('ERR_REPL_MESSAGE', `malformed message: ${what}`);
}

function obj(v: Plain, what: string): PlainObject {
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array || Array.isArray(v)) bad(`${what} is not an object`);
  return v as PlainObject;
}

function exactKeys(o: PlainObject, keys: readonly string[], what: string): void {
  const have = Object.keys(o);
  if (have.length !== keys.length || keys.some((k) => !Object.prototype.hasOwnProperty.call(o, k))) bad(`${what} has fields [${have.join(',')}], expected [${keys.join(',')}]`);
}

function int(v: Plain | undefined, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) bad(`${what} is not an integer in [${min}, ${max}]`);
  return v;
}

function bytes(v: Plain | undefined, what: string, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) bad(`${what} is not bytes`);
  if (v.length > max) bad(`${what} is ${v.length} bytes, past ${max}`);
  return v;
}

function decodeOutputs(v: Plain | undefined): Output[] {
  if (!Array.isArray(v)) bad('outputs is not an array');
  if (v.length > EPOCH_OUTPUTS_MAX) bad(`${v.length} outputs, past ${EPOCH_OUTPUTS_MAX}`);
  return v.map((item, i) => {
    if (!Array.isArray(item)) bad(`output ${i} is not an array`);
    const kind = int(item[0], `output ${i} kind`, 0, 1);
    if (kind === 0) {
      if (item.length !== 4) bad(`output ${i} has ${item.length} fields`);
      return { kind: 'response', client: int(item[1], 'client', 0, ID_MAX), reqId: int(item[2], 'reqId', 0, ID_MAX), body: bytes(item[3], 'response body', OUTPUT_BODY_BYTES_MAX) };
    }
    if (item.length !== 3) bad(`output ${i} has ${item.length} fields`);
    const stream = int(item[1], 'stream', 1, 2);
    return { kind: 'log', stream: stream === 1 ? 'stdout' : 'stderr', body: bytes(item[2], 'log body', OUTPUT_BODY_BYTES_MAX) };
  });
}

const U = Number.MAX_SAFE_INTEGER;

/** Decodes a payload whose frame header said (type, term, seq). Throws ERR_REPL_MESSAGE. */
export function decodeMessage(h: { type: number; term: number; seq: number }, payload: Uint8Array): Message {
  const type = TYPE_BY_CODE.get(h.type);
  if (type === undefined) bad(`unknown type ${h.type}`);
  let plain: Plain;
  try {
    plain = decodePlain(payload);
  } catch (e) {
    if (isUnderstudyError(e) || isReplicateError(e)) bad(`payload does not decode (${(e as Error).message})`);
    throw e;
  }
  const o = obj(plain, type);
  const term = h.term;
  const session = (): number => int(o.session, 'session', 0, ID_MAX);
  switch (type) {
    case 'hello': {
      exactKeys(o, ['role', 'session', 'lastApplied', 'incarnation', 'view', 'soloTerm'], type);
      const role = o.role;
      if (typeof role !== 'string' || !(NODE_ROLES as readonly string[]).includes(role)) bad('role');
      if (h.seq !== 0) bad('hello carries no sequence');
      return { type, term, role: role as NodeRole, session: session(), lastApplied: int(o.lastApplied, 'lastApplied', -1, U), incarnation: int(o.incarnation, 'incarnation', 0, U), view: int(o.view, 'view', 0, U), soloTerm: int(o.soloTerm, 'soloTerm', 0, U) };
    }
    case 'sync-chunk': {
      exactKeys(o, ['session', 'pageBytes', 'pages', 'data'], type);
      const pageBytes = int(o.pageBytes, 'pageBytes', 1, PAGE_BYTES_MAX);
      if (!Array.isArray(o.pages)) bad('pages is not an array');
      if (o.pages.length === 0 || o.pages.length > SYNC_CHUNK_PAGES_MAX) bad(`${o.pages.length} pages in a chunk`);
      const pages = o.pages.map((p, i) => int(p, `page ${i}`, 0, ID_MAX));
      const data = bytes(o.data, 'data', SYNC_CHUNK_PAGES_MAX * PAGE_BYTES_MAX);
      if (data.length !== pages.length * pageBytes) bad(`chunk data is ${data.length} bytes for ${pages.length} pages of ${pageBytes}`);
      if (h.seq < 1) bad('chunk sequence');
      return { type, term, session: session(), chunkSeq: h.seq, pageBytes, pages, data };
    }
    case 'sync-ack':
    case 'ack':
    case 'heartbeat': {
      exactKeys(o, ['session'], type);
      if (type === 'sync-ack') return { type, term, session: session(), chunkSeq: h.seq };
      return { type, term, session: session(), seq: h.seq };
    }
    case 'sync-done': {
      exactKeys(o, ['session', 'chunksTotal', 'delta', 'outputs', 'digest', 'releasedThrough'], type);
      return {
        type,
        term,
        session: session(),
        chunksTotal: int(o.chunksTotal, 'chunksTotal', 0, U),
        seq: h.seq,
        delta: bytes(o.delta, 'delta', FRAME_PAYLOAD_BYTES_MAX),
        outputs: decodeOutputs(o.outputs),
        digest: int(o.digest, 'digest', 0, ID_MAX),
        releasedThrough: int(o.releasedThrough, 'releasedThrough', -1, U),
      };
    }
    case 'epoch': {
      exactKeys(o, ['session', 'delta', 'outputs', 'digest', 'releasedThrough'], type);
      const releasedThrough = int(o.releasedThrough, 'releasedThrough', -1, U);
      if (releasedThrough >= h.seq) bad('an epoch cannot be released before it is sent');
      return { type, term, session: session(), seq: h.seq, delta: bytes(o.delta, 'delta', FRAME_PAYLOAD_BYTES_MAX), outputs: decodeOutputs(o.outputs), digest: int(o.digest, 'digest', 0, ID_MAX), releasedThrough };
    }
    case 'reject': {
      exactKeys(o, ['reason', 'detail'], type);
      if (typeof o.reason !== 'string' || !(REJECT_REASONS as readonly string[]).includes(o.reason)) bad('reason');
      if (typeof o.detail !== 'string' || o.detail.length > REJECT_DETAIL_CHARS_MAX) bad('detail');
      return { type, term, reason: o.reason as RejectReason, detail: o.detail };
    }
  }
}
