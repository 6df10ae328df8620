// The primary: runs the guest in epochs, ships each epoch's delta to the
// backup, and releases the outputs of an epoch only when the backup has
// acknowledged it in the current term. It first brings a backup up to date
// (pre-copy rounds, then a final stop-and-copy), and steps down (stops
// releasing, pauses the guest) when its synced backup falls silent.
//
// Solo: a primary that knows no other node holds a replica (it just promoted,
// or its peer showed it lost its copy) serves alone, unprotected: it closes an
// epoch after each batch of requests and releases its outputs at once, until
// a new backup's sync completes. Nothing can take over from state that lacks
// those outputs while no other replica exists; if this node is lost too before
// the new backup syncs, that is a double failure (docs/replication.md).
import { assert } from '../util/assert.js';
import type { ReplicatedMachine } from './machine.js';
import type { Epoch, Hello, Message, Output, SyncAck, SyncChunk, SyncDone } from './messages.js';
import { STAY, type NodeContext, type Transition } from './role.js';

interface InFlight {
  msg: Epoch | SyncDone;
  sentAtMs: number;
}
interface ChunkInFlight {
  msg: SyncChunk;
  sentAtMs: number;
}
interface QueuedRequest {
  client: number;
  reqId: number;
  body: Uint8Array;
}

/**
 * How far the primary is with its backup. `helloSeen`: a Hello from the peer
 * in this session arrived (syncing or backup). Hellos are ordered per sender
 * (incarnation, view) and the node drops older ones, so once one of this
 * session was seen, any later Hello saying the peer holds no replica is newer
 * than its replica, not a delayed copy from before it synced.
 */
type BackupLink =
  | { state: 'offering'; session: number; lastOfferMs: number }
  | {
      state: 'syncing';
      session: number;
      round: number;
      roundPages: number[];
      nextPage: number;
      nextChunkSeq: number;
      window: ChunkInFlight[];
      helloSeen: boolean;
    }
  | { state: 'synced'; session: number; syncSeq: number; helloSeen: boolean };

export type RequestVerdict = 'queued' | 'not-primary' | 'busy';

export interface PrimaryOptions {
  /** Start serving alone: no other node holds a replica (a promoted backup). */
  solo: boolean;
}

export class PrimaryRole {
  /** Deposed: the synced backup fell silent. No output is released and the guest is paused until it answers. */
  deposed = false;
  /** The last captured epoch; the open epoch is seq + 1. */
  private seq: number;
  /** Outputs of the open epoch (and, after a resync, of epochs the old session never acknowledged). */
  private open: Output[] = [];
  private touched = false;
  private readonly inflight: InFlight[] = [];
  /** Every epoch up to here is acknowledged and its outputs released. */
  private releasedThrough: number;
  private readonly queue: QueuedRequest[] = [];
  private link: BackupLink;
  private lastBackupContactMs: number;
  private lastEpochMs: number;
  private lastHeartbeatMs = -Infinity;
  private lastDeposedHelloMs = -Infinity;
  /** Serving alone (see the header): set on promotion or on evidence that the peer holds no replica; cleared by a completed sync. */
  private solo: boolean;

  constructor(
    private readonly ctx: NodeContext,
    readonly machine: ReplicatedMachine,
    lastSeq: number,
    o: PrimaryOptions,
  ) {
    this.solo = o.solo;
    this.seq = lastSeq;
    this.releasedThrough = lastSeq;
    const now = ctx.env.now();
    this.lastBackupContactMs = now;
    this.lastEpochMs = now;
    this.link = { state: 'offering', session: ctx.newSession(0), lastOfferMs: -Infinity };
    ctx.bumpView();
  }

  // ---- what the wiring and the simulator look at ----

  get session(): number {
    return this.link.session;
  }
  get lastCaptured(): number {
    return this.seq;
  }
  get lastReleased(): number {
    return this.releasedThrough;
  }
  get epochsInFlight(): number {
    return this.inflight.length;
  }
  /** Protected: a backup holds a complete replica in this session. */
  get isProtected(): boolean {
    return !this.deposed && this.link.state === 'synced' && this.releasedThrough >= this.link.syncSeq;
  }
  get linkState(): BackupLink['state'] {
    return this.link.state;
  }
  /** Serving alone: outputs are released when their epoch closes here, unacknowledged. */
  get isSolo(): boolean {
    return this.solo;
  }
  /** The guest may run: not deposed, the open epoch has room, and back-pressure allows. */
  get guestRunnable(): boolean {
    return !this.deposed && this.open.length < this.ctx.config.epochOutputsMax && this.inflight.length < this.ctx.config.epochsInFlightMax;
  }

  // ---- inputs ----

  onRequest(client: number, reqId: number, body: Uint8Array): RequestVerdict {
    if (this.queue.length >= this.ctx.config.requestQueueMax) return 'busy';
    this.queue.push({ client, reqId, body });
    this.runGuest();
    return 'queued';
  }

  /** Log output the guest wrote: held with the open epoch. The wiring calls this only while guestRunnable. */
  onOutput(o: Output): void {
    assert(this.open.length < this.ctx.config.epochOutputsMax + this.ctx.config.epochOutputsMax * this.ctx.config.epochsInFlightMax, 'output while the open epoch is full: the guest should be paused');
    this.open.push(o);
    this.touched = true;
    this.closeSolo();
  }

  onMessage(msg: Message): Transition {
    switch (msg.type) {
      case 'hello':
        return this.onHello(msg);
      case 'sync-ack':
        return this.onSyncAck(msg);
      case 'ack':
        this.onAck(msg.session, msg.seq, 'ack');
        return STAY;
      case 'heartbeat':
        this.onAck(msg.session, msg.seq, 'heartbeat');
        return STAY;
      case 'reject':
        // A newer term is handled by the node before we see it; at our term the peer says it lost our session.
        if (msg.reason === 'session' || msg.reason === 'delta-invalid' || msg.reason === 'diverged') this.reoffer(`backup refused: ${msg.reason} (${msg.detail})`);
        return STAY;
      default:
        this.ctx.log('stale', `a primary ignores ${msg.type}`);
        return STAY;
    }
  }

  onTick(now: number): Transition {
    const c = this.ctx.config;
    if (!this.deposed && this.link.state === 'synced' && now - this.lastBackupContactMs >= c.backupTimeoutMs) {
      this.deposed = true;
      this.ctx.log('deposed', `backup silent for ${now - this.lastBackupContactMs} ms: no more output until it answers`);
    }
    if (this.link.state === 'syncing' && now - this.lastBackupContactMs >= c.backupTimeoutMs) {
      // A syncing peer holds no complete replica, so it cannot take over: simply offer again.
      this.reoffer('syncing backup silent');
    }
    if (this.deposed) {
      if (now - this.lastDeposedHelloMs >= c.helloMs) {
        this.lastDeposedHelloMs = now;
        this.ctx.send(this.ctx.hello('deposed', this.link.session, this.seq));
      }
      return STAY;
    }
    switch (this.link.state) {
      case 'offering':
        if (now - this.link.lastOfferMs >= c.helloMs) {
          this.link.lastOfferMs = now;
          this.ctx.send(this.ctx.hello('primary', this.link.session, this.seq));
        }
        break;
      case 'syncing':
        this.pumpSync(now);
        break;
      case 'synced':
        this.maybeCaptureEpoch(now, this.open.length >= c.epochOutputsMax);
        this.retransmit(now);
        break;
    }
    if (this.link.state !== 'offering' && now - this.lastHeartbeatMs >= c.heartbeatMs) {
      this.lastHeartbeatMs = now;
      this.ctx.send({ type: 'heartbeat', term: this.ctx.term, session: this.link.session, seq: this.releasedThrough });
    }
    this.runGuest();
    this.closeSolo();
    return STAY;
  }

  // ---- the guest ----

  private runGuest(): void {
    const c = this.ctx.config;
    for (let n = 0; n < c.requestsPerTickMax && this.queue.length > 0; n++) {
      // A full open epoch closes early (back-pressure permitting) rather than pausing the guest until the next tick.
      if (!this.guestRunnable && this.link.state === 'synced' && this.open.length >= c.epochOutputsMax) this.maybeCaptureEpoch(this.ctx.env.now(), true);
      if (!this.guestRunnable) break;
      const r = this.queue.shift()!;
      const body = this.machine.handleRequest(r.client, r.reqId, r.body);
      // Every answer, a repeated one too, is output of the open epoch: a repeat may answer from state not yet acknowledged.
      this.open.push({ kind: 'response', client: r.client, reqId: r.reqId, body });
      this.touched = true;
    }
    this.closeSolo();
  }

  /**
   * Solo: closes an epoch over the open outputs and releases them now. No delta
   * is captured (no backup needs one; a new backup's sync sends whole pages),
   * so the dirty tracking of a pre-copy in progress is left alone.
   */
  private closeSolo(): void {
    if (!this.solo || this.open.length === 0) return;
    assert(this.link.state !== 'synced' && this.inflight.length === 0, 'a solo primary has no synced backup');
    this.ctx.noteSolo(); // durable before the first solo release of this term
    this.seq += 1;
    const outputs = this.open;
    this.open = [];
    this.releasedThrough = this.seq;
    this.ctx.log('solo', `epoch ${this.seq} closed alone: ${outputs.length} outputs released unprotected`, { epochTerm: this.ctx.term, seq: this.seq });
    this.ctx.env.release({ term: this.ctx.term, epochTerm: this.ctx.term, epochSeq: this.seq, outputs, solo: true });
  }

  private goSolo(why: string): void {
    if (this.solo) return;
    this.solo = true;
    this.ctx.log('role', `serving alone, unprotected, until a new backup has synced: ${why}`);
  }

  // ---- epochs ----

  /** Closes the open epoch every epochMs (or at once if `full`: it holds epochOutputsMax outputs). */
  private maybeCaptureEpoch(now: number, full: boolean): void {
    const c = this.ctx.config;
    if (!this.touched || (!full && now - this.lastEpochMs < c.epochMs)) return;
    if (this.inflight.length >= c.epochsInFlightMax) return; // back-pressure: the guest stays paused
    assert(this.link.state === 'synced');
    this.seq += 1;
    const msg: Epoch = {
      type: 'epoch',
      term: this.ctx.term,
      session: this.link.session,
      seq: this.seq,
      delta: this.machine.captureDelta(),
      outputs: this.open,
      digest: this.seq % c.digestEveryEpochs === 0 ? this.machine.digest() : 0,
      releasedThrough: this.releasedThrough,
    };
    this.open = [];
    this.touched = false;
    this.lastEpochMs = now;
    this.inflight.push({ msg, sentAtMs: now });
    this.ctx.send(msg);
    assert(this.inflight.length <= c.epochsInFlightMax);
  }

  private retransmit(now: number): void {
    const first = this.inflight[0];
    if (first === undefined || now - first.sentAtMs < this.ctx.config.retransmitMs) return;
    // Go-back-N: the backup applies in order only.
    for (const e of this.inflight) {
      e.sentAtMs = now;
      // A new message object: one already sent is never changed (the simulator passes objects).
      e.msg = { ...e.msg, releasedThrough: this.releasedThrough };
      this.ctx.send(e.msg);
    }
  }

  /** Cumulative acknowledgement of epochs up to seq in session. */
  private onAck(session: number, seq: number, via: string): void {
    if (session !== this.link.session) {
      this.ctx.log('stale', `${via} for session ${session}, ours is ${this.link.session}`);
      return;
    }
    this.contact();
    if (this.link.state !== 'synced') return;
    if (seq > this.seq) {
      this.ctx.log('refused', `${via} for epoch ${seq}, past the last captured ${this.seq}`);
      return;
    }
    if (this.deposed) {
      // The backup answered in our term and session: it has not taken over. Resume.
      this.deposed = false;
      this.ctx.log('resumed', `backup answered (${via} ${seq})`);
    }
    while (this.inflight.length > 0 && this.inflight[0]!.msg.seq <= seq) {
      const e = this.inflight.shift()!;
      this.releasedThrough = e.msg.seq;
      if (e.msg.outputs.length > 0) this.ctx.env.release({ term: this.ctx.term, epochTerm: e.msg.term, epochSeq: e.msg.seq, outputs: e.msg.outputs, solo: false });
    }
  }

  private contact(): void {
    this.lastBackupContactMs = this.ctx.env.now();
  }

  // ---- the backup link: offer, pre-copy, final stop-and-copy ----

  private onHello(h: Hello): Transition {
    const mine = this.link.session;
    if ((h.role === 'primary' || h.role === 'deposed') && h.term === this.ctx.term) {
      // Terms are owned by one node each, so this cannot be honest.
      this.ctx.log('refused', `peer claims ${h.role} in our own term ${h.term}`);
      return STAY;
    }
    if (h.role === 'backup' && h.session === mine && h.term === this.ctx.term) {
      if (this.link.state !== 'offering') this.link.helloSeen = true;
      this.onAck(h.session, h.lastApplied, 'hello');
      return STAY;
    }
    if (h.role === 'syncing' && h.session === mine && h.term === this.ctx.term) {
      this.contact();
      if (this.link.state === 'offering') this.startSync();
      if (this.link.state !== 'offering') this.link.helloSeen = true;
      if (this.deposed) {
        this.deposed = false;
        this.ctx.log('resumed', 'backup is syncing with us');
      }
      return STAY;
    }
    if (h.role === 'backup') {
      // A backup of another session still holds a replica and may take over:
      // no evidence to resume on, and no serving alone while it exists.
      if (this.deposed) {
        this.ctx.log('stale', `deposed; peer is backup of session ${h.session}`);
        return STAY;
      }
      this.solo = false;
    } else {
      // The peer holds no replica at all (idle, syncing, an older primary): it
      // cannot take over from us, so we may resume and offer afresh. If it held
      // our replica until now (our link was synced) and this Hello is known to
      // be newer than that replica (helloSeen), it lost it: serve alone until
      // it has synced again. Otherwise keep waiting for a backup.
      if (this.link.state === 'synced' && this.link.helloSeen) this.goSolo(`the backup holds no replica (it is ${h.role} at term ${h.term})`);
      if (this.deposed) {
        this.deposed = false;
        this.ctx.log('resumed', `peer is ${h.role} at term ${h.term} without our session`);
      }
    }
    if (this.link.state === 'offering') {
      this.link.lastOfferMs = -Infinity; // answer at once
    } else {
      this.reoffer(`peer is ${h.role} (session ${h.session})`);
    }
    return STAY;
  }

  /** The node moved us to a newer term because the peer is idle (it holds no replica): start over with it, alone until it syncs. */
  restartLink(why: string): void {
    this.deposed = false;
    this.reoffer(why);
    this.goSolo(why);
  }

  /** Abandons the current session: what it had not acknowledged rides on the next sync. */
  private reoffer(why: string): void {
    const carried: Output[] = [];
    for (const e of this.inflight) carried.push(...e.msg.outputs);
    this.inflight.length = 0;
    this.open = carried.concat(this.open);
    if (this.open.length > 0) this.touched = true;
    this.link = { state: 'offering', session: this.ctx.newSession(this.link.session), lastOfferMs: -Infinity };
    this.ctx.bumpView();
    this.ctx.log('role', `offering a new sync: ${why}`);
  }

  private startSync(): void {
    assert(this.link.state === 'offering');
    this.machine.collectDirtyPages(); // round 0 sends every page; start tracking from here
    const n = this.machine.pageCount();
    const pages: number[] = [];
    for (let i = 0; i < n; i++) pages.push(i);
    this.link = { state: 'syncing', session: this.link.session, round: 0, roundPages: pages, nextPage: 0, nextChunkSeq: 1, window: [], helloSeen: false };
    this.ctx.log('role', `pre-copy round 0: ${n} pages`);
    this.pumpSync(this.ctx.env.now());
  }

  private pumpSync(now: number): void {
    const l = this.link;
    if (l.state !== 'syncing') return;
    const c = this.ctx.config;
    // Retransmit the window (go-back-N) if its oldest chunk is overdue.
    const first = l.window[0];
    if (first !== undefined && now - first.sentAtMs >= c.retransmitMs) {
      for (const w of l.window) {
        w.sentAtMs = now;
        this.ctx.send(w.msg);
      }
    }
    while (l.window.length < c.syncChunksInFlightMax && l.nextPage < l.roundPages.length) {
      const pages = l.roundPages.slice(l.nextPage, l.nextPage + c.syncChunkPages);
      l.nextPage += pages.length;
      const pb = this.machine.pageBytes;
      const data = new Uint8Array(pages.length * pb);
      pages.forEach((p, i) => data.set(this.machine.readPage(p), i * pb));
      const msg: SyncChunk = { type: 'sync-chunk', term: this.ctx.term, session: l.session, chunkSeq: l.nextChunkSeq++, pageBytes: pb, pages, data };
      l.window.push({ msg, sentAtMs: now });
      this.ctx.send(msg);
    }
    if (l.window.length === 0 && l.nextPage >= l.roundPages.length) this.nextRound();
  }

  private onSyncAck(a: SyncAck): Transition {
    const l = this.link;
    if (a.session !== l.session) {
      this.ctx.log('stale', `sync-ack for session ${a.session}`);
      return STAY;
    }
    this.contact();
    if (l.state === 'offering') {
      this.startSync();
      return STAY;
    }
    if (l.state !== 'syncing') return STAY;
    if (a.chunkSeq >= l.nextChunkSeq) {
      this.ctx.log('refused', `sync-ack for chunk ${a.chunkSeq}, past the last sent ${l.nextChunkSeq - 1}`);
      return STAY;
    }
    while (l.window.length > 0 && l.window[0]!.msg.chunkSeq <= a.chunkSeq) l.window.shift();
    this.pumpSync(this.ctx.env.now());
    return STAY;
  }

  private nextRound(): void {
    const l = this.link;
    assert(l.state === 'syncing');
    const c = this.ctx.config;
    const round = l.round + 1;
    const dirty = this.machine.collectDirtyPages();
    if (dirty.length > c.precopyDirtyPagesStop && round < c.precopyRoundsMax) {
      l.round = round;
      l.roundPages = dirty;
      l.nextPage = 0;
      this.ctx.log('role', `pre-copy round ${round}: ${dirty.length} dirty pages`);
      this.pumpSync(this.ctx.env.now());
      return;
    }
    // Final stop-and-copy: the guest does not run between this capture and the
    // next request (captureDelta is synchronous), so the stop is just the capture.
    // It carries the pages this last round collected, which no chunk sent.
    this.seq += 1;
    const msg: SyncDone = {
      type: 'sync-done',
      term: this.ctx.term,
      session: l.session,
      chunksTotal: l.nextChunkSeq - 1,
      seq: this.seq,
      delta: this.machine.captureDelta(dirty, true),
      outputs: this.open,
      digest: this.machine.digest(),
      releasedThrough: this.releasedThrough,
    };
    this.open = [];
    this.touched = false;
    const now = this.ctx.env.now();
    this.lastEpochMs = now;
    this.link = { state: 'synced', session: l.session, syncSeq: this.seq, helloSeen: l.helloSeen };
    this.inflight.push({ msg, sentAtMs: now });
    this.ctx.send(msg);
    this.ctx.log('role', `sync done at epoch ${this.seq} after ${round} pre-copy rounds and ${msg.chunksTotal} chunks`);
    if (this.solo) {
      // From this epoch on the backup holds our state: output waits for its acknowledgements again.
      this.solo = false;
      this.ctx.log('role', `protected again from epoch ${this.seq}: output waits for acknowledgements`);
    }
  }

  describe(): string {
    return `primary seq=${this.seq} released=${this.releasedThrough} inflight=${this.inflight.length} link=${this.link.state}${this.deposed ? ' deposed' : ''}${this.solo ? ' solo' : ''}`;
  }
}
