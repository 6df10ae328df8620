// A replica node: one half of a primary/backup pair. It owns the term and the
// durable state, filters messages by term and by Hello order, and holds one
// role at a time: idle (no replica), backup (syncing, then synced), or primary
// (possibly deposed). Every effect goes through the injected Env, so a seeded
// simulator can drive it (sim/), and the real wiring can run it on sockets.
//
// Term rules (docs/replication.md has the argument):
//  * Terms are owned: the node with the lower id owns even terms, the other odd
//    ones. Only a term's owner can be primary in it, so no two nodes release
//    output in one term.
//  * A message from a newer term makes a node adopt it (durably, before acting)
//    and drop any role: a primary or backup of an older term goes idle.
//  * A backup promotes itself to its next owned term after primaryTimeoutMs of
//    silence, releasing the outputs of the epochs it applied that the primary
//    had not said it released.
//  * A promoted backup serves alone (solo, unprotected) until a new backup has
//    synced; before its first solo release in a term it records that term
//    durably (soloTerm), and its Hellos carry it.
//  * One exception to "newer term means step down": a primary (or deposed
//    primary) that hears an *idle* peer at a newer term keeps its state and moves
//    to its next owned term past it — unless the peer released output alone in
//    a term newer than ours (its soloTerm). In a pair, the peer can only have
//    reached its term by promoting from our own epochs and then losing its
//    state; if it released nothing alone, everything it released came from
//    epochs we hold. If it did, both copies of that output are gone (a double
//    failure): we step down rather than serve from older state.
import { assert } from '../util/assert.js';
import { BackupRole } from './backup.js';
import { DEFAULT_CONFIG, validateConfig, type Env, type ReplEventKind, type ReplicaConfig } from './env.js';
import type { MachineFactory, ReplicatedMachine } from './machine.js';
import type { Hello, Message, NodeId, NodeRole, Output } from './messages.js';
import { PrimaryRole, type RequestVerdict } from './primary.js';
import type { NodeContext, Transition } from './role.js';

/** Attempts at drawing a session id different from the previous one. */
const SESSION_DRAWS_MAX = 8;

export interface ReplicaNodeOptions {
  id: NodeId;
  peer: NodeId;
  env: Env;
  config?: Partial<ReplicaConfig>;
  /** An empty machine, for syncing into. */
  createMachine: MachineFactory;
  /** Start as the first primary with this machine, unless this node's storage says it already did once. */
  bootstrap?: ReplicatedMachine;
  /**
   * The first primary serves alone until its first backup has synced (no replica exists
   * anywhere yet, so this is safe; answers are unprotected). Default: wait for the backup.
   */
  bootstrapSolo?: boolean;
}

export interface NodeStatus {
  id: NodeId;
  role: NodeRole;
  term: number;
  incarnation: number;
  session: number;
  /** Backup: last applied; primary: last captured. */
  lastApplied: number;
  /** Primary: every epoch up to here is released. */
  lastReleased: number;
  protected: boolean;
  /** Serving alone, unprotected: answers are released without a backup's acknowledgement. */
  solo: boolean;
  epochsInFlight: number;
  guestRunnable: boolean;
}

interface IdleRole {
  kind: 'idle';
  lastHelloMs: number;
}

export class ReplicaNode implements NodeContext {
  readonly id: NodeId;
  readonly peer: NodeId;
  readonly env: Env;
  readonly config: Readonly<ReplicaConfig>;
  private readonly createMachine: MachineFactory;
  private currentTerm: number;
  readonly incarnation: number;
  private viewCounter = 0;
  private role: IdleRole | PrimaryRole | BackupRole;
  private peerIncarnation = -1;
  private peerView = -1;
  private readonly termParity: number;
  /** The newest term this node released output alone in (durable as 'soloTerm'). */
  private soloTerm: number;

  constructor(o: ReplicaNodeOptions) {
    assert(o.id !== o.peer, 'a node is not its own peer');
    this.id = o.id;
    this.peer = o.peer;
    this.env = o.env;
    this.config = validateConfig({ ...DEFAULT_CONFIG, ...o.config });
    this.createMachine = o.createMachine;
    this.termParity = o.id < o.peer ? 0 : 1;
    const s = o.env.storage;
    this.currentTerm = s.get('term') ?? 0;
    this.soloTerm = s.get('soloTerm') ?? 0;
    this.incarnation = (s.get('incarnation') ?? 0) + 1;
    s.set('incarnation', this.incarnation);
    this.role = { kind: 'idle', lastHelloMs: -Infinity };
    if (o.bootstrap !== undefined && s.get('bootstrapped') !== 1) {
      this.adoptTerm(this.nextOwnedTerm(this.currentTerm));
      s.set('bootstrapped', 1);
      // By default the first primary waits for its first backup before answering anyone: a fresh service starts protected.
      this.role = new PrimaryRole(this, o.bootstrap, 0, { solo: o.bootstrapSolo ?? false });
      this.log('role', 'bootstrapped as the first primary');
    } else {
      this.log('role', `started idle (incarnation ${this.incarnation})`);
    }
  }

  // ---- NodeContext ----

  get term(): number {
    return this.currentTerm;
  }
  hello(role: NodeRole, session: number, lastApplied: number): Hello {
    return { type: 'hello', term: this.currentTerm, role, session, lastApplied, incarnation: this.incarnation, view: this.viewCounter, soloTerm: this.soloTerm };
  }
  bumpView(): void {
    this.viewCounter += 1;
  }
  send(msg: Message): void {
    this.env.send(this.peer, msg);
  }
  log(kind: ReplEventKind, detail: string, extra?: { epochTerm?: number; seq?: number }): void {
    this.env.log({ kind, node: this.id, term: this.currentTerm, detail, ...extra });
  }
  newSession(previous: number): number {
    for (let i = 0; i < SESSION_DRAWS_MAX; i++) {
      const s = 1 + Math.floor(this.env.random() * 0xfffffffe);
      if (s !== previous) return s;
    }
    return previous === 1 ? 2 : 1;
  }
  noteSolo(): void {
    if (this.soloTerm === this.currentTerm) return;
    assert(this.soloTerm < this.currentTerm, 'solo terms only grow');
    this.env.storage.set('soloTerm', this.currentTerm); // durable before the release it precedes
    this.soloTerm = this.currentTerm;
  }

  // ---- what the wiring and the simulator read ----

  get roleName(): NodeRole {
    if (this.role instanceof PrimaryRole) return this.role.deposed ? 'deposed' : 'primary';
    if (this.role instanceof BackupRole) return this.role.state;
    return 'idle';
  }
  get primary(): PrimaryRole | null {
    return this.role instanceof PrimaryRole ? this.role : null;
  }
  get backup(): BackupRole | null {
    return this.role instanceof BackupRole ? this.role : null;
  }
  /** The replica or the running machine, if this node holds one. */
  get machine(): ReplicatedMachine | null {
    return this.role instanceof PrimaryRole || this.role instanceof BackupRole ? this.role.machine : null;
  }

  status(): NodeStatus {
    const p = this.primary;
    const b = this.backup;
    return {
      id: this.id,
      role: this.roleName,
      term: this.currentTerm,
      incarnation: this.incarnation,
      session: p?.session ?? b?.session ?? 0,
      lastApplied: p?.lastCaptured ?? b?.lastApplied ?? -1,
      lastReleased: p?.lastReleased ?? -1,
      protected: p?.isProtected ?? false,
      solo: p?.isSolo ?? false,
      epochsInFlight: p?.epochsInFlight ?? 0,
      guestRunnable: p?.guestRunnable ?? false,
    };
  }

  // ---- inputs ----

  onRequest(client: number, reqId: number, body: Uint8Array): RequestVerdict {
    const p = this.primary;
    if (p === null || p.deposed) return 'not-primary';
    return p.onRequest(client, reqId, body);
  }

  /** Log output of the guest (stdout/stderr), held with the open epoch. Only while the guest runs. */
  onOutput(o: Output): void {
    const p = this.primary;
    assert(p !== null && p.guestRunnable, 'guest output while the guest is not running here');
    p.onOutput(o);
  }

  onTick(now: number): void {
    const r = this.role;
    if (r instanceof PrimaryRole || r instanceof BackupRole) {
      this.apply(r.onTick(now));
      return;
    }
    if (now - r.lastHelloMs >= this.config.helloMs) {
      r.lastHelloMs = now;
      this.send(this.hello('idle', 0, -1));
    }
  }

  onMessage(from: NodeId, msg: Message): void {
    if (from !== this.peer) {
      this.log('refused', `a ${msg.type} from node ${from}, which is not our peer`);
      return;
    }
    if (msg.type === 'hello') {
      if (msg.incarnation < this.peerIncarnation || (msg.incarnation === this.peerIncarnation && msg.view < this.peerView)) {
        this.log('stale', `a Hello older than one already seen (${msg.incarnation}.${msg.view})`);
        return;
      }
      this.peerIncarnation = msg.incarnation;
      this.peerView = msg.view;
    }
    if (msg.term > this.currentTerm) {
      if (msg.type === 'hello' && msg.role === 'idle' && this.role instanceof PrimaryRole && msg.soloTerm < this.currentTerm) {
        // The exception in the header comment: keep our state, move past the peer's term.
        this.adoptTerm(this.nextOwnedTerm(msg.term));
        this.log('term', `idle peer at newer term ${msg.term}: staying primary in term ${this.currentTerm}`);
        this.role.restartLink(`peer idle at term ${msg.term}`);
        return;
      }
      this.adoptTerm(msg.term);
      const lost = msg.type === 'hello' && msg.role === 'idle' && this.role instanceof PrimaryRole;
      this.log('term', lost ? `adopted term ${msg.term}: the peer released output alone in term ${msg.soloTerm} and lost it; our state is older, so the service stops (a double failure)` : `adopted term ${msg.term} from a ${msg.type}`);
      if (this.role instanceof PrimaryRole || this.role instanceof BackupRole) this.toIdle(`newer term ${msg.term}`);
    } else if (msg.term < this.currentTerm) {
      if (msg.type === 'hello') {
        // The peer is behind. A primary may take it as its backup; anyone else tells it our term.
        if (this.role instanceof PrimaryRole) this.apply(this.role.onMessage(msg));
        else this.send(this.helloNow());
        return;
      }
      this.log('stale', `a ${msg.type} of term ${msg.term}`);
      if (msg.type !== 'reject') this.send({ type: 'reject', term: this.currentTerm, reason: 'stale-term', detail: `term ${msg.term} is older than ${this.currentTerm}` });
      return;
    }
    // Same term from here on.
    if (msg.type === 'hello' && msg.role === 'primary' && msg.session !== 0 && !(this.role instanceof PrimaryRole)) {
      // A sync offer from our term's primary.
      if (this.role instanceof BackupRole && this.role.session === msg.session) {
        this.apply(this.role.onMessage(msg));
        return;
      }
      if (this.role instanceof BackupRole) this.log('role', `dropping the replica of session ${this.role.session} for a new sync`);
      this.role = new BackupRole(this, this.createMachine, msg.session);
      this.log('role', `syncing from the primary (session ${msg.session})`);
      this.send(this.role.hello());
      return;
    }
    const r = this.role;
    if (r instanceof PrimaryRole || r instanceof BackupRole) this.apply(r.onMessage(msg));
    else if (msg.type !== 'hello' && msg.type !== 'reject') this.send(this.helloNow()); // an idle node tells a primary it holds nothing
  }

  // ---- transitions ----

  private helloNow(): Hello {
    const r = this.role;
    if (r instanceof BackupRole) return r.hello();
    if (r instanceof PrimaryRole) return this.hello(r.deposed ? 'deposed' : 'primary', r.session, r.lastCaptured);
    return this.hello('idle', 0, -1);
  }

  private apply(t: Transition): void {
    if (t.to === 'idle') this.toIdle(t.reason);
    else if (t.to === 'promote') this.promote();
  }

  private toIdle(reason: string): void {
    this.role = { kind: 'idle', lastHelloMs: -Infinity };
    this.bumpView();
    this.log('role', `idle: ${reason}`);
  }

  private promote(): void {
    const b = this.role;
    assert(b instanceof BackupRole && b.state === 'backup', 'only a synced backup promotes');
    const from = this.currentTerm;
    this.adoptTerm(this.nextOwnedTerm(from));
    this.log('promoted', `primary silent: taking over at epoch ${b.lastApplied}, term ${from} -> ${this.currentTerm}`);
    // Release what the applied epochs covered and the primary had not said it released.
    for (const e of b.retained) {
      if (e.outputs.length > 0) this.env.release({ term: this.currentTerm, epochTerm: e.term, epochSeq: e.seq, outputs: e.outputs, solo: false });
    }
    b.machine.prepareToRun?.();
    // No other node holds a replica now (the old primary never held one of its own state): serve alone until a new backup syncs.
    this.role = new PrimaryRole(this, b.machine, b.lastApplied, { solo: true });
    this.log('role', `serving alone, unprotected, in term ${this.currentTerm} until a new backup has synced`);
  }

  private adoptTerm(t: number): void {
    assert(t > this.currentTerm, 'terms only grow');
    this.env.storage.set('term', t); // durable before we act in it
    this.currentTerm = t;
  }

  private nextOwnedTerm(t: number): number {
    return (t + 1) % 2 === this.termParity ? t + 1 : t + 2;
  }

  describe(): string {
    const r = this.role;
    return `node ${this.id} term ${this.currentTerm}: ${r instanceof PrimaryRole || r instanceof BackupRole ? r.describe() : 'idle'}`;
  }
}
