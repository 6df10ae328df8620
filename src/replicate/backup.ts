// The backup: first receives a complete copy (pre-copy chunks, then the final
// delta), then applies each epoch whole, verified and in order, and
// acknowledges it. It keeps the outputs of applied epochs until the primary
// says they were released, so that if it takes over it can release the ones
// the primary had not. It promotes itself when its primary is silent past
// primaryTimeoutMs.
import { assert } from '../util/assert.js';
import { isReplicateError } from './codes.js';
import type { MachineFactory, ReplicatedMachine } from './machine.js';
import type { Epoch, Hello, Message, Output, SyncChunk, SyncDone } from './messages.js';
import { STAY, type NodeContext, type Transition } from './role.js';

export interface RetainedEpoch {
  term: number;
  seq: number;
  outputs: Output[];
}

export class BackupRole {
  /** 'syncing' until the final delta applies; only a 'backup' holds a replica it may take over with. */
  state: 'syncing' | 'backup' = 'syncing';
  readonly machine: ReplicatedMachine;
  /** Chunks written, in order. */
  private chunkSeq = 0;
  /** The last epoch applied (-1 while syncing). */
  lastApplied = -1;
  /** Applied epochs whose outputs the primary has not yet said it released, oldest first. */
  readonly retained: RetainedEpoch[] = [];
  private releasedThrough = -1;
  private lastPrimaryContactMs: number;
  private lastHeartbeatMs = -Infinity;

  constructor(
    private readonly ctx: NodeContext,
    createMachine: MachineFactory,
    readonly session: number,
  ) {
    this.machine = createMachine();
    this.lastPrimaryContactMs = ctx.env.now();
    ctx.bumpView();
  }

  get roleName(): 'syncing' | 'backup' {
    return this.state;
  }

  hello(): Hello {
    return this.ctx.hello(this.state, this.session, this.lastApplied);
  }

  onMessage(msg: Message): Transition {
    if ('session' in msg && msg.type !== 'hello' && msg.session !== this.session) {
      // The primary is in another session: tell it where we are, so it offers again.
      this.ctx.log('stale', `${msg.type} for session ${msg.session}, ours is ${this.session}`);
      this.ctx.send(this.hello());
      return STAY;
    }
    switch (msg.type) {
      case 'hello':
        // Offers of another session were handled by the node; this is our primary, live.
        if (msg.role === 'primary' || msg.role === 'deposed') {
          if (msg.session === this.session) this.contact();
          this.ctx.send(this.hello());
        }
        return STAY;
      case 'sync-chunk':
        return this.onChunk(msg);
      case 'sync-done':
        return this.onSyncDone(msg);
      case 'epoch':
        return this.onEpoch(msg);
      case 'heartbeat':
        this.contact();
        this.forgetReleased(msg.seq);
        return STAY;
      default:
        this.ctx.log('stale', `a ${this.state} node ignores ${msg.type}`);
        return STAY;
    }
  }

  onTick(now: number): Transition {
    const c = this.ctx.config;
    if (now - this.lastPrimaryContactMs >= c.primaryTimeoutMs) {
      if (this.state === 'backup') return { to: 'promote' };
      return { to: 'idle', reason: `primary silent for ${now - this.lastPrimaryContactMs} ms during sync` };
    }
    if (now - this.lastHeartbeatMs >= c.heartbeatMs) {
      this.lastHeartbeatMs = now;
      if (this.state === 'backup') this.ctx.send({ type: 'heartbeat', term: this.ctx.term, session: this.session, seq: this.lastApplied });
      else this.ctx.send({ type: 'sync-ack', term: this.ctx.term, session: this.session, chunkSeq: this.chunkSeq });
    }
    return STAY;
  }

  private contact(): void {
    this.lastPrimaryContactMs = this.ctx.env.now();
  }

  private onChunk(m: SyncChunk): Transition {
    this.contact();
    if (this.state !== 'syncing') return STAY; // a late retransmission
    if (m.chunkSeq === this.chunkSeq + 1) {
      if (m.pageBytes !== this.machine.pageBytes) {
        this.ctx.send({ type: 'reject', term: this.ctx.term, reason: 'delta-invalid', detail: `pages of ${m.pageBytes} bytes; ours are ${this.machine.pageBytes}` });
        return { to: 'idle', reason: 'page size mismatch' };
      }
      try {
        m.pages.forEach((p, i) => this.machine.writePage(p, m.data.subarray(i * m.pageBytes, (i + 1) * m.pageBytes)));
      } catch (e) {
        if (!isReplicateError(e)) throw e;
        this.ctx.send({ type: 'reject', term: this.ctx.term, reason: 'delta-invalid', detail: e.message });
        return { to: 'idle', reason: `sync chunk refused: ${e.message}` };
      }
      this.chunkSeq = m.chunkSeq;
    }
    // In order, a duplicate, or past a gap: the cumulative ack says where we are.
    this.ctx.send({ type: 'sync-ack', term: this.ctx.term, session: this.session, chunkSeq: this.chunkSeq });
    return STAY;
  }

  private onSyncDone(m: SyncDone): Transition {
    this.contact();
    if (this.state === 'backup') {
      if (m.seq <= this.lastApplied) this.ack();
      return STAY;
    }
    if (m.chunksTotal !== this.chunkSeq) {
      // Cannot happen with an honest primary (it sends this after every chunk is acknowledged), so say where we are.
      this.ctx.send({ type: 'sync-ack', term: this.ctx.term, session: this.session, chunkSeq: this.chunkSeq });
      return STAY;
    }
    const t = this.apply(m);
    if (t.to !== 'stay') return t;
    this.state = 'backup';
    this.ctx.bumpView();
    this.ctx.log('role', `synced at epoch ${m.seq}`);
    return STAY;
  }

  private onEpoch(m: Epoch): Transition {
    this.contact();
    if (this.state !== 'backup') return STAY; // the SyncDone comes first; the primary resends in order
    if (m.seq === this.lastApplied + 1) return this.apply(m);
    // A duplicate, or past a gap (an earlier epoch was lost): the cumulative ack tells the primary where to resume.
    this.ack();
    return STAY;
  }

  /** Applies a whole, verified delta, checks the replica, and acknowledges. */
  private apply(m: Epoch | SyncDone): Transition {
    try {
      this.machine.applyDelta(m.delta);
    } catch (e) {
      if (!isReplicateError(e)) throw e;
      this.ctx.send({ type: 'reject', term: this.ctx.term, reason: 'delta-invalid', detail: e.message });
      // applyDelta applies nothing on failure, but a primary that sends a bad delta gets a fresh sync.
      return { to: 'idle', reason: `delta of epoch ${m.seq} refused: ${e.message}` };
    }
    if (m.digest !== 0 && this.machine.digest() !== m.digest) {
      this.ctx.send({ type: 'reject', term: this.ctx.term, reason: 'diverged', detail: `replica digest differs after epoch ${m.seq}` });
      return { to: 'idle', reason: `replica diverged at epoch ${m.seq}` };
    }
    this.lastApplied = m.seq;
    this.retained.push({ term: m.term, seq: m.seq, outputs: m.outputs });
    this.forgetReleased(m.releasedThrough);
    // Bounded: the primary sends epoch N only while N - releasedThrough <= epochsInFlightMax.
    assert(this.retained.length <= this.ctx.config.epochsInFlightMax + 1, 'retained outputs past the in-flight bound');
    this.ctx.log('applied', `epoch ${m.seq}`, { epochTerm: m.term, seq: m.seq });
    this.ack();
    return STAY;
  }

  private ack(): void {
    this.ctx.send({ type: 'ack', term: this.ctx.term, session: this.session, seq: this.lastApplied });
  }

  private forgetReleased(releasedThrough: number): void {
    if (releasedThrough <= this.releasedThrough) return;
    this.releasedThrough = Math.min(releasedThrough, this.lastApplied);
    while (this.retained.length > 0 && this.retained[0]!.seq <= this.releasedThrough) this.retained.shift();
  }

  describe(): string {
    return `${this.state} session=${this.session} applied=${this.lastApplied} chunks=${this.chunkSeq} retained=${this.retained.length}`;
  }
}
