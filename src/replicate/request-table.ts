// The request-id table of a replicated guest: which (client, request id)
// pairs were applied and what they answered. It is host-kept but part of the
// replicated state (GuestMachine serialises it into every delta), so a backup
// that takes over knows exactly which requests took effect: a retried request
// gets its recorded answer and no second effect.
//
// Rules (per client):
//  * a request id with a recorded answer gets that answer again, no effect;
//  * a request id at or below the client's floor without a recorded answer was
//    applied once and its answer forgotten (evicted): it is refused, no effect;
//  * any other id runs once and its answer is recorded.
// Eviction (oldest first, over all clients) keeps the table inside its bounds
// and raises the evicted client's floor to the evicted id. So every id ever
// applied is either recorded or at or below its client's floor: nothing runs twice.
//
// The table is a deterministic function of a starting table and the sequence
// of record() calls (eviction included), so an epoch need not carry the whole
// table (1,000 answers are 50-100 KiB, encoded, sent, decoded and rebuilt
// every epoch): it carries the records made since the previous capture (the
// journal), and the backup replays them. A base delta (a sync's last) carries
// the whole table and starts a new journal. A running fingerprint of the
// records since the base travels with each journal: the backup's replay must
// reach the same one.
import type { Plain, PlainObject } from '../util/plain.js';
import { assert } from '../util/assert.js';
import { replicateError } from './codes.js';
import { crc32c } from './crc32c.js';
import { EPOCH_OUTPUTS_MAX, ID_MAX } from './messages.js';

/** Answers kept over all clients: the table rides on every delta, so it stays small. */
export const TABLE_RESPONSES_MAX = 1024;
/** Bytes of recorded answers over all clients. */
export const TABLE_RESPONSE_BYTES_MAX = 1024 * 1024;
/** Answers kept per client: a client has at most this many requests outstanding and still retriable. */
export const TABLE_RESPONSES_PER_CLIENT_MAX = 16;
/** Distinct clients (their floors are kept forever); a new client past this is refused. */
export const TABLE_CLIENTS_MAX = 4096;
/** One recorded answer, at most (a larger guest answer is refused as a guest error). */
export const TABLE_RESPONSE_BYTES_EACH_MAX = 256 * 1024;
/** Records one journal holds: every record is an output of the open epoch, so an epoch makes at most this many; past it the next delta carries the whole table. */
export const TABLE_JOURNAL_MAX = EPOCH_OUTPUTS_MAX;

/** The records made since the last capture, in order, and the fingerprint after them. */
export interface TableJournal {
  records: [number, number, Uint8Array][];
  fingerprint: number;
}

/** The first byte of every answer the machine gives: who answered and how. */
export const ResponseStatus = {
  /** The guest's answer follows. */
  ok: 0,
  /** The request id was applied once and its answer is no longer kept. No effect now. */
  forgotten: 1,
  /** The guest trapped (or answered past the size bound); the detail follows as text. Recorded like an answer. */
  guestError: 2,
  /** The table holds TABLE_CLIENTS_MAX clients; this new one is refused. No effect. */
  tooManyClients: 3,
} as const;
export type ResponseStatus = (typeof ResponseStatus)[keyof typeof ResponseStatus];

export function envelope(status: ResponseStatus, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + body.length);
  out[0] = status;
  out.set(body, 1);
  return out;
}

export function openEnvelope(bytes: Uint8Array): { status: ResponseStatus; body: Uint8Array } | null {
  const s = bytes[0];
  if (s === undefined || s > ResponseStatus.tooManyClients) return null;
  return { status: s as ResponseStatus, body: bytes.subarray(1) };
}

interface ClientEntry {
  floor: number;
  answers: Map<number, Uint8Array>;
}

export type Lookup = { kind: 'recorded'; answer: Uint8Array } | { kind: 'forgotten' } | { kind: 'too-many-clients' } | { kind: 'new' };

export class RequestTable {
  private readonly clients = new Map<number, ClientEntry>();
  /** Recorded answers, oldest first: [client, reqId]. */
  /** Recorded answers, oldest first, from `head` on (a queue: the oldest leaves in O(1); compacted when half is dead). */
  private order: [number, number][] = [];
  private head = 0;
  private bytes = 0;
  /** Records since the last takeJournal() or startJournal(); null once past TABLE_JOURNAL_MAX. */
  private journal: [number, number, Uint8Array][] | null = [];
  /** CRC-32C chained over every record since the last base. */
  private fp = 0;

  get size(): number {
    return this.order.length - this.head;
  }
  get fingerprint(): number {
    return this.fp;
  }

  /** The whole table goes out (a base delta): the journal and the fingerprint start afresh. */
  startJournal(): void {
    this.journal = [];
    this.fp = 0;
  }

  /** What changed since the last call (a new journal starts), or null if only the whole table will do. */
  takeJournal(): TableJournal | null {
    const j = this.journal;
    this.journal = [];
    return j === null ? null : { records: j, fingerprint: this.fp };
  }

  /**
   * A copy of this table with a journal replayed, after checking everything
   * (untrusted: ERR_REPL_DELTA); this table is unchanged.
   */
  replay(records: Plain, fingerprint: Plain): RequestTable {
    const bad = (what: string) => replicateError('ERR_REPL_DELTA', `request table journal: ${what}`);
    if (!Array.isArray(records) || records.length > TABLE_JOURNAL_MAX) throw bad('not a bounded list');
    if (typeof fingerprint !== 'number' || !Number.isInteger(fingerprint) || fingerprint < 0 || fingerprint > ID_MAX) throw bad('fingerprint');
    const t = this.clone();
    for (const r of records) {
      if (!Array.isArray(r) || r.length !== 3 || !isId(r[0]) || !isId(r[1]) || !(r[2] instanceof Uint8Array) || r[2].length > TABLE_RESPONSE_BYTES_EACH_MAX + 1) throw bad('a record is not [client, id, bytes]');
      const l = t.lookup(r[0], r[1]);
      if (l.kind !== 'new') throw bad(`record ${r[0]}:${r[1]} is not new here (${l.kind})`);
      t.record(r[0], r[1], r[2]);
    }
    if (t.fp !== fingerprint) throw bad(`fingerprint ${t.fp} after the replay, the primary's is ${fingerprint}: the histories differ`);
    t.journal = [];
    return t;
  }

  private clone(): RequestTable {
    const t = new RequestTable();
    for (const [client, c] of this.clients) t.clients.set(client, { floor: c.floor, answers: new Map(c.answers) });
    for (let i = this.head; i < this.order.length; i++) t.order.push(this.order[i]!);
    t.bytes = this.bytes;
    t.fp = this.fp;
    return t;
  }

  lookup(client: number, reqId: number): Lookup {
    const c = this.clients.get(client);
    if (c === undefined) return this.clients.size >= TABLE_CLIENTS_MAX ? { kind: 'too-many-clients' } : { kind: 'new' };
    const answer = c.answers.get(reqId);
    if (answer !== undefined) return { kind: 'recorded', answer };
    return reqId <= c.floor ? { kind: 'forgotten' } : { kind: 'new' };
  }

  record(client: number, reqId: number, answer: Uint8Array): void {
    assert(this.lookup(client, reqId).kind === 'new', 'record() only after lookup() said new');
    assert(answer.length <= TABLE_RESPONSE_BYTES_EACH_MAX + 1, 'answer past its bound');
    let c = this.clients.get(client);
    if (c === undefined) {
      c = { floor: 0, answers: new Map() };
      this.clients.set(client, c);
    }
    c.answers.set(reqId, answer);
    this.order.push([client, reqId]);
    this.bytes += answer.length;
    const head = new Uint8Array(12);
    const hv = new DataView(head.buffer);
    hv.setUint32(0, client, true);
    hv.setUint32(4, reqId, true);
    hv.setUint32(8, answer.length, true);
    this.fp = crc32c(answer, crc32c(head, this.fp));
    if (this.journal !== null) {
      if (this.journal.length < TABLE_JOURNAL_MAX) this.journal.push([client, reqId, answer]);
      else this.journal = null;
    }
    if (c.answers.size > TABLE_RESPONSES_PER_CLIENT_MAX) {
      // The client's oldest answer (smallest id) goes first.
      let oldest = Infinity;
      for (const id of c.answers.keys()) oldest = Math.min(oldest, id);
      let at = this.head;
      while (at < this.order.length && !(this.order[at]![0] === client && this.order[at]![1] === oldest)) at++;
      this.evict(at);
    }
    while (this.size > TABLE_RESPONSES_MAX || this.bytes > TABLE_RESPONSE_BYTES_MAX) this.evict(this.head);
    assert(this.size <= TABLE_RESPONSES_MAX && this.bytes <= TABLE_RESPONSE_BYTES_MAX);
  }

  private evict(at: number): void {
    assert(at >= this.head && at < this.order.length);
    const [client, reqId] = this.order[at]!;
    if (at === this.head) {
      this.head++;
      if (this.head > TABLE_RESPONSES_MAX && this.head * 2 > this.order.length) {
        this.order = this.order.slice(this.head);
        this.head = 0;
      }
    } else {
      this.order.splice(at, 1);
    }
    const c = this.clients.get(client)!;
    this.bytes -= c.answers.get(reqId)!.length;
    c.answers.delete(reqId);
    // Every id up to the evicted one counts as applied: ids at or below the floor never run again.
    c.floor = Math.max(c.floor, reqId);
  }

  save(): PlainObject {
    const floors: Plain[] = [];
    for (const [client, c] of this.clients) floors.push([client, c.floor]);
    const answers: Plain[] = [];
    for (let i = this.head; i < this.order.length; i++) {
      const [client, reqId] = this.order[i]!;
      answers.push([client, reqId, this.clients.get(client)!.answers.get(reqId)!]);
    }
    return { floors, answers };
  }

  /** Validates untrusted plain data (ERR_REPL_DELTA) before building anything. */
  static restore(p: Plain): RequestTable {
    const bad = (what: string) => replicateError('ERR_REPL_DELTA', `request table: ${what}`);
    if (p === null || typeof p !== 'object' || Array.isArray(p) || p instanceof Uint8Array) throw bad('not an object');
    const { floors, answers } = p as PlainObject;
    if (!Array.isArray(floors) || floors.length > TABLE_CLIENTS_MAX) throw bad('floors is not a bounded list');
    if (!Array.isArray(answers) || answers.length > TABLE_RESPONSES_MAX) throw bad('answers is not a bounded list');
    const t = new RequestTable();
    for (const f of floors) {
      if (!Array.isArray(f) || f.length !== 2 || !isId(f[0]) || !isId(f[1])) throw bad('a floor is not [client, id]');
      if (t.clients.has(f[0])) throw bad(`client ${f[0]} listed twice`);
      t.clients.set(f[0], { floor: f[1], answers: new Map() });
    }
    for (const a of answers) {
      if (!Array.isArray(a) || a.length !== 3 || !isId(a[0]) || !isId(a[1]) || !(a[2] instanceof Uint8Array)) throw bad('an answer is not [client, id, bytes]');
      const c = t.clients.get(a[0]);
      if (c === undefined) throw bad(`an answer for client ${a[0]}, which has no floor`);
      if (a[1] <= c.floor || c.answers.has(a[1])) throw bad(`answer ${a[0]}:${a[1]} at or below its floor, or repeated`);
      if (a[2].length > TABLE_RESPONSE_BYTES_EACH_MAX + 1) throw bad('an answer past its bound');
      c.answers.set(a[1], a[2]);
      t.order.push([a[0], a[1]]);
      t.bytes += a[2].length;
      if (c.answers.size > TABLE_RESPONSES_PER_CLIENT_MAX) throw bad(`client ${a[0]} has too many answers`);
    }
    if (t.bytes > TABLE_RESPONSE_BYTES_MAX) throw bad('answers past the byte bound');
    return t;
  }
}

function isId(v: Plain | undefined): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= ID_MAX;
}
