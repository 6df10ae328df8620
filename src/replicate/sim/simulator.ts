// The deterministic simulator: two replica nodes, a handful of clients, a
// simulated clock and event queue, a network that loses, delays, reorders and
// duplicates messages and can be partitioned (both ways or one way), and
// nodes that crash (losing everything but their durable storage), restart,
// and pause (no ticks, no messages; they resume with a stale view). Every
// choice comes from one seeded PRNG, so runSchedule(seed) is a pure function
// of the seed: a failing schedule prints `seed=N`, and replaySchedule(N)
// runs it again exactly, with its trace.
//
// Two fault regimes (TigerBeetle's order: safety first, then liveness):
//  * budget: one fault at a time, the next only once the pair is protected
//    again (a primary whose synced backup acknowledged). This is what the
//    design promises to survive, so all four counts are checked, liveness too.
//  * chaos: faults at random, overlapping (both nodes down, partitions during
//    failover, ...). Only safety is checked: a pair cannot promise progress
//    when both copies are lost, but it must never lie to a client.
import { assert } from '../../util/assert.js';
import { Channel } from '../channel.js';
import type { NodeStorage, Release, ReplEvent, ReplicaConfig, StorageKey } from '../env.js';
import { NonceCounter, FRAME_HEADER_BYTES, KEY_BYTES } from '../frame.js';
import type { Message, NodeId } from '../messages.js';
import { ReplicaNode } from '../node.js';
import { Checker, type Counts } from './checker.js';
import { KV_KEYS, KV_REQUESTS_PER_CLIENT_MAX, KvMachine, kvRequestBody, kvResponseValue } from './kv-machine.js';
import { Prng } from '../../util/prng.js';

/** Nodes tick this often (simulated ms). */
export const SIM_TICK_MS = 5;
/** Pending events; the queue holds ticks, messages in flight and client timers, all bounded below. */
export const EVENTS_PENDING_MAX = 20_000;
/** Messages in flight on one link; more are dropped, as a full socket buffer would. */
export const LINK_IN_FLIGHT_MAX = 256;
/** A client gives up on a request after this many attempts (it then counts as unanswered). */
export const CLIENT_ATTEMPTS_MAX = 200;
export const CLIENT_RETRY_MS = 60;
export const CLIENT_RETRY_MS_MAX = 400;
/** Frames remembered per link for replay attacks. */
export const REPLAY_RING_FRAMES = 8;
export const TRACE_LINES_MAX = 200_000;
/** Fault durations (crash downtime, pause, partition) are drawn up to this. */
export const FAULT_MS_MAX = 700;
/** Events one schedule may run; a schedule that needs more is a livelock and fails. */
export const EVENTS_PER_SCHEDULE_MAX = 2_000_000;

const NODE_IDS: readonly NodeId[] = [1, 2];
const SIM_KEY = new Uint8Array(KEY_BYTES).map((_, i) => (i * 37 + 11) & 0xff);
const WRONG_KEY = new Uint8Array(KEY_BYTES).map((_, i) => (i * 53 + 7) & 0xff);

export type FaultKind = 'crash' | 'pause' | 'partition' | 'oneway';

/** A fault at a chosen time, for scenario tests; `who` picks the node by its role at that moment. */
export interface ScriptedFault {
  atMs: number;
  kind: FaultKind;
  who: 'primary' | 'backup';
  ms: number;
}

export interface ScheduleSpec {
  seed: number;
  /** When set, exactly these faults happen (and no random ones). */
  script?: ScriptedFault[];
  mode: 'budget' | 'chaos';
  wire: 'objects' | 'frames';
  faultPhaseMs: number;
  quietMsMax: number;
  lossP: number;
  dupP: number;
  reorderP: number;
  delayMinMs: number;
  delayMaxMs: number;
  faultKinds: FaultKind[];
  /** Chaos: mean gap between faults. Budget: gap after health returns. */
  faultGapMsMax: number;
  clients: number;
  requestsPerClient: number;
  /** Frames mode: chance per message of an attack (replay, forgery, bit flip) on that link. */
  attackP: number;
  config: Partial<ReplicaConfig>;
  /** The first primary serves alone until its first backup synced (ReplicaNodeOptions.bootstrapSolo). */
  bootstrapSolo: boolean;
}

/** The schedule a seed stands for: its fault mix, network and load. */
export function specFor(seed: number): ScheduleSpec {
  const r = new Prng(seed ^ 0x5eed5eed);
  const spec = { ...specDraws(r), seed };
  // Drawn after everything else, so adding it kept every earlier seed's schedule.
  spec.config.digestEveryEpochs = r.pick([1, 3]);
  return spec;
}

function specDraws(r: Prng): ScheduleSpec {
  const mode = r.chance(0.25) ? 'chaos' : 'budget';
  const wire = r.chance(0.1) ? 'frames' : 'objects';
  const kinds: FaultKind[] = (['crash', 'pause', 'partition', 'oneway'] as FaultKind[]).filter(() => r.chance(0.6));
  if (kinds.length === 0) kinds.push(r.pick(['crash', 'pause', 'partition', 'oneway'] as FaultKind[]));
  const delayMinMs = r.int(0, 3);
  return {
    seed: 0,
    mode,
    wire,
    faultPhaseMs: r.int(800, 3000),
    quietMsMax: 10_000,
    lossP: r.pick([0, 0.01, 0.05, 0.15]),
    dupP: r.pick([0, 0.02, 0.1]),
    reorderP: r.pick([0, 0.05, 0.2]),
    delayMinMs,
    delayMaxMs: delayMinMs + r.int(0, 12),
    faultKinds: kinds,
    faultGapMsMax: mode === 'chaos' ? r.int(100, 400) : r.int(0, 200),
    clients: r.int(1, 4),
    requestsPerClient: r.int(3, KV_REQUESTS_PER_CLIENT_MAX),
    attackP: wire === 'frames' ? 0.02 : 0,
    config: configFor(r),
    // Drawn last (object fields evaluate in order), so adding it kept every earlier seed's schedule.
    bootstrapSolo: r.chance(0.25),
  };
}

/** Varies the protocol's bounds too, so small windows, multi-round pre-copy and tight timeouts are all exercised. */
function configFor(r: Prng): Partial<ReplicaConfig> {
  const primaryTimeoutMs = r.pick([150, 300, 500]);
  const heartbeatMs = r.pick([10, 20]);
  return {
    epochMs: r.pick([5, 10, 20, 40]),
    heartbeatMs,
    helloMs: r.pick([20, 50]),
    retransmitMs: r.pick([20, 40, 80]),
    primaryTimeoutMs,
    backupTimeoutMs: r.int(Math.max(3 * heartbeatMs, 100), primaryTimeoutMs),
    epochsInFlightMax: r.pick([1, 2, 4, 8]),
    requestQueueMax: r.pick([2, 16, 64]),
    epochOutputsMax: r.pick([1, 4, 64]),
    requestsPerTickMax: r.pick([1, 4, 16]),
    precopyRoundsMax: r.pick([1, 2, 5]),
    precopyDirtyPagesStop: r.pick([0, 1, 4]),
    syncChunkPages: r.pick([1, 3, 8, 64]),
    syncChunksInFlightMax: r.pick([1, 2, 8]),
  };
}

export interface ScheduleResult {
  seed: number;
  spec: ScheduleSpec;
  counts: Counts;
  violations: string[];
  ok: boolean;
  stats: {
    /** Per node: the roles it went through, in order (scenario tests read these). */
    roles: Record<number, string[]>;
    simMs: number;
    events: number;
    requests: number;
    answered: number;
    releases: number;
    outputsReleased: number;
    promotions: number;
    /** Epochs a primary serving alone closed and released. */
    soloReleases: number;
    /** Solo answers lost with their only copy (chaos schedules: double failures, excused). */
    excused: number;
    faults: Record<FaultKind, number>;
    framesRefused: number;
    attacks: number;
    /** How often each protocol event happened: what this schedule exercised. */
    coverage: Record<string, number>;
  };
  traceHash: number;
  trace: string[] | null;
}

interface Event {
  at: number;
  seq: number;
  run: () => void;
}

/** A binary min-heap on (at, seq): equal times run in scheduling order. */
class EventQueue {
  private heap: Event[] = [];
  private seq = 0;
  get size(): number {
    return this.heap.length;
  }
  push(at: number, run: () => void): void {
    assert(this.heap.length < EVENTS_PENDING_MAX, 'simulator event queue past its bound');
    const e = { at, seq: this.seq++, run };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, e)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }
  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    if (top === undefined) return undefined;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && less(h[r]!, h[l]!) ? r : l;
        if (less(last, h[c]!)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
function less(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

interface SimNode {
  id: NodeId;
  peer: NodeId;
  storage: Map<StorageKey, number>;
  node: ReplicaNode | null;
  channel: Channel | null;
  pausedUntil: number;
  prng: Prng;
  drift: number;
  offsetMs: number;
}

interface Link {
  inFlight: number;
  cutUntil: number;
  recent: Uint8Array[];
}

interface SimClient {
  id: number;
  next: number; // next request id to issue
  outstanding: { reqId: number; body: Uint8Array; attempts: number; target: NodeId } | null;
  answered: Map<number, number>;
  done: boolean;
}

class Simulation {
  now = 0;
  private readonly q = new EventQueue();
  private readonly rng: Prng;
  private readonly netRng: Prng;
  private readonly faultRng: Prng;
  private readonly clientRng: Prng;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly links = new Map<string, Link>();
  private readonly clients: SimClient[] = [];
  readonly checker: Checker;
  private traceHash = 0x811c9dc5;
  readonly trace: string[] | null;
  private events = 0;
  private readonly faultEndMs: number;
  private faultsActive = 0;
  private nextFaultAt = 0;
  private lossP: number;
  private dupP: number;
  stats: ScheduleResult['stats'] = {
    roles: {},
    simMs: 0,
    events: 0,
    requests: 0,
    answered: 0,
    releases: 0,
    outputsReleased: 0,
    promotions: 0,
    soloReleases: 0,
    excused: 0,
    faults: { crash: 0, pause: 0, partition: 0, oneway: 0 },
    framesRefused: 0,
    attacks: 0,
    coverage: {},
  };

  constructor(
    readonly spec: ScheduleSpec,
    withTrace: boolean,
  ) {
    this.checker = new Checker(spec.mode === 'budget');
    this.rng = new Prng(spec.seed);
    this.netRng = this.rng.fork();
    this.faultRng = this.rng.fork();
    this.clientRng = this.rng.fork();
    this.trace = withTrace ? [] : null;
    this.faultEndMs = spec.faultPhaseMs;
    this.lossP = spec.lossP;
    this.dupP = spec.dupP;
    for (const id of NODE_IDS) {
      const peer = NODE_IDS.find((p) => p !== id)!;
      const n: SimNode = { id, peer, storage: new Map(), node: null, channel: null, pausedUntil: 0, prng: this.rng.fork(), drift: 1 + (this.rng.next() - 0.5) * 0.04, offsetMs: this.rng.int(0, 10_000) };
      this.nodes.set(id, n);
      this.links.set(`${id}>${peer}`, { inFlight: 0, cutUntil: 0, recent: [] });
      this.start(n);
      this.q.push(this.rng.int(0, SIM_TICK_MS - 1), () => this.tick(n));
    }
    for (let c = 1; c <= spec.clients; c++) {
      const cl: SimClient = { id: c, next: 1, outstanding: null, answered: new Map(), done: false };
      this.clients.push(cl);
      this.q.push(this.clientRng.int(10, 100), () => this.issue(cl));
    }
    if (spec.script !== undefined) {
      for (const f of spec.script) {
        this.q.push(f.atMs, () => {
          const who = [...this.nodes.values()].find((n) => {
            const r = n.node?.roleName;
            return f.who === 'primary' ? r === 'primary' || r === 'deposed' : r === 'backup' || r === 'syncing';
          });
          if (who !== undefined) this.inject(f.kind, who.id, f.ms);
          else this.note(`script:no ${f.who} for ${f.kind}`);
        });
      }
      this.q.push(spec.faultPhaseMs, () => this.faultDriver());
    } else {
      this.q.push(0, () => this.faultDriver());
    }
  }

  private note(line: string, ...nums: number[]): void {
    let h = this.traceHash;
    for (const x of nums) h = Math.imul(h ^ (x | 0), 0x01000193) >>> 0;
    for (let i = 0; i < line.length; i++) h = Math.imul(h ^ line.charCodeAt(i), 0x01000193) >>> 0;
    this.traceHash = h;
    if (this.trace !== null && this.trace.length < TRACE_LINES_MAX) this.trace.push(`${this.now} ${line} ${nums.join(' ')}`);
  }

  // ---- nodes ----

  private start(n: SimNode): void {
    const storage: NodeStorage = { get: (k) => n.storage.get(k), set: (k, v) => void n.storage.set(k, v) };
    const sim = this;
    n.node = null; // the constructor may send (it does not today); nothing addresses the node before it exists
    const node = new ReplicaNode({
      id: n.id,
      peer: n.peer,
      config: this.spec.config,
      createMachine: () => new KvMachine(),
      bootstrap: n.id === NODE_IDS[0] ? new KvMachine() : undefined,
      bootstrapSolo: this.spec.bootstrapSolo,
      env: {
        now: () => Math.floor(sim.now * n.drift) + n.offsetMs,
        send: (to, msg) => sim.sendNode(n.id, to, msg),
        random: () => n.prng.next(),
        storage,
        log: (e) => sim.onLog(e),
        release: (r) => sim.onRelease(n.id, r),
      },
    });
    n.node = node;
    n.channel = this.spec.wire === 'frames' ? new Channel(n.id, SIM_KEY, [n.peer], new NonceCounter(n.storage.get('nonceReserved') ?? 0, (v) => void n.storage.set('nonceReserved', v))) : null;
    this.note('start', n.id, node.incarnation);
  }

  private tick(n: SimNode): void {
    this.q.push(this.now + SIM_TICK_MS, () => this.tick(n));
    const node = n.node;
    if (node === null || this.now < n.pausedUntil) return;
    node.onTick(Math.floor(this.now * n.drift) + n.offsetMs);
    // The guest writes some log output now and then, while it runs.
    if (node.status().guestRunnable && n.prng.chance(0.02)) node.onOutput({ kind: 'log', stream: 'stdout', body: Uint8Array.of(n.id, this.now & 0xff) });
  }

  private onLog(e: ReplEvent): void {
    const cov = this.stats.coverage;
    const what = e.kind === 'role' || e.kind === 'refused' || e.kind === 'stale' ? `${e.kind}:${e.detail.replace(/[0-9]+/g, 'N').slice(0, 48)}` : e.kind;
    cov[what] = (cov[what] ?? 0) + 1;
    if (e.kind === 'role' || e.kind === 'promoted' || e.kind === 'deposed' || e.kind === 'resumed') {
      const list = (this.stats.roles[e.node] ??= []);
      const role = this.nodes.get(e.node)?.node?.roleName ?? (e.kind === 'role' && e.detail.startsWith('started') ? 'idle' : 'starting');
      const label = e.kind === 'role' ? role : e.kind;
      if (list.length < 64 && list[list.length - 1] !== label) list.push(label);
    }
    if (e.kind === 'applied') this.checker.onApplied(e.epochTerm!, e.seq!);
    if (e.kind === 'solo') {
      this.checker.onSolo(e.node, this.nodes.get(e.node)!.node!.incarnation, e.epochTerm!, e.seq!);
      this.stats.soloReleases += 1;
    }
    if (e.kind === 'promoted') this.stats.promotions += 1;
    if (e.kind === 'role' || e.kind === 'promoted' || e.kind === 'deposed' || e.kind === 'resumed' || e.kind === 'term') this.note(`${e.kind}:${e.detail}`, e.node, e.term);
  }

  private onRelease(id: NodeId, r: Release): void {
    this.note('release', id, r.term, r.epochTerm, r.epochSeq, r.outputs.length);
    const n = this.nodes.get(id)!;
    const peer = this.nodes.get(n.peer)!.node;
    this.checker.onRelease(id, n.node!.incarnation, r, peer !== null && peer.roleName === 'backup');
    for (const o of r.outputs) {
      if (o.kind !== 'response') continue;
      const cl = this.clients[o.client - 1];
      if (cl === undefined) continue;
      const v = kvResponseValue(o.body);
      this.transmit(() => this.onAnswer(cl, o.reqId, v));
    }
  }

  // ---- the network ----

  /** Schedules a delivery with this network's loss, delay, reordering and duplication. */
  private transmit(deliver: () => void, link?: Link): boolean {
    const r = this.netRng;
    if (r.chance(this.lossP)) return false;
    const copies = r.chance(this.dupP) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (link !== undefined) {
        if (link.inFlight >= LINK_IN_FLIGHT_MAX) return i > 0;
        link.inFlight += 1;
      }
      let delay = r.int(this.spec.delayMinMs, this.spec.delayMaxMs);
      if (r.chance(this.spec.reorderP)) delay += r.int(1, 30);
      this.q.push(this.now + delay, deliver);
    }
    return true;
  }

  private sendNode(from: NodeId, to: NodeId, msg: Message): void {
    if (msg.type === 'reject' && (msg.reason === 'diverged' || msg.reason === 'delta-invalid')) this.checker.violation(`node ${from} refused a delta: ${msg.detail} (seed=${this.spec.seed})`);
    const sender = this.nodes.get(from)!;
    if (msg.type === 'epoch' || msg.type === 'sync-done') this.checker.onEpochMade(from, sender.node?.incarnation ?? 0, msg.term, msg.seq);
    const link = this.links.get(`${from}>${to}`)!;
    if (this.now < link.cutUntil) return;
    let payload: Message | Uint8Array = msg;
    if (sender.channel !== null) {
      const bytes = sender.channel.seal(msg);
      payload = bytes;
      link.recent.push(bytes);
      if (link.recent.length > REPLAY_RING_FRAMES) link.recent.shift();
      if (this.netRng.chance(this.spec.attackP)) this.attack(link, from, to, bytes);
    }
    this.transmit(() => this.deliver(link, from, to, payload), link);
  }

  /** Frames mode: a replayed, forged or corrupted frame must be refused by the receiver. */
  private attack(link: Link, from: NodeId, to: NodeId, bytes: Uint8Array): void {
    this.stats.attacks += 1;
    const r = this.netRng;
    const kind = r.int(0, 2);
    let evil: Uint8Array;
    if (kind === 0) {
      evil = r.pick(link.recent); // replay (possibly of a frame the receiver never got: then it is just late)
    } else if (kind === 1) {
      const forger = new Channel(from, WRONG_KEY, [to], new NonceCounter(r.int(0, 1 << 20), () => {}));
      evil = forger.seal({ type: 'ack', term: 1 << 20, session: 1, seq: 1 << 20 });
    } else {
      evil = bytes.slice();
      const at = r.int(0, evil.length - 1);
      evil[at] = evil[at]! ^ (1 << r.int(0, 7));
    }
    const mustRefuse = kind !== 0;
    this.transmit(() => {
      link.inFlight -= 1;
      const recv = this.nodes.get(to)!;
      if (recv.node === null || recv.channel === null) return;
      const opened = recv.channel.open(evil);
      if (!opened.ok) {
        this.stats.framesRefused += 1;
        recv.node.log('refused', `frame: ${opened.error.code}`);
        return;
      }
      if (mustRefuse) {
        // A flipped bit in the header's sequence/term that still authenticates is impossible; anything accepted is a bug.
        this.checker.violation(`an ${kind === 1 ? 'forged' : 'altered'} frame was accepted (seed=${this.spec.seed}); header ${FRAME_HEADER_BYTES} bytes`);
      }
      this.note('replayed-late', from, to);
      if (this.now >= recv.pausedUntil) recv.node.onMessage(opened.from, opened.msg);
    }, link);
  }

  private deliver(link: Link, from: NodeId, to: NodeId, payload: Message | Uint8Array): void {
    const recv = this.nodes.get(to)!;
    if (recv.node === null) {
      link.inFlight -= 1;
      return;
    }
    if (this.now < recv.pausedUntil) {
      this.q.push(recv.pausedUntil, () => this.deliver(link, from, to, payload));
      return;
    }
    link.inFlight -= 1;
    let msg: Message;
    if (payload instanceof Uint8Array) {
      const opened = recv.channel!.open(payload);
      if (!opened.ok) {
        this.stats.framesRefused += 1;
        recv.node.log('refused', `frame: ${opened.error.code}`);
        this.note('frame-refused', from, to);
        return;
      }
      msg = opened.msg;
    } else {
      msg = payload;
    }
    this.note(msg.type, from, to, msg.term, 'seq' in msg ? msg.seq : 0);
    recv.node.onMessage(from, msg);
  }

  // ---- clients ----

  private issue(cl: SimClient): void {
    if (cl.next > this.spec.requestsPerClient) {
      cl.done = true;
      return;
    }
    assert(cl.next <= KV_REQUESTS_PER_CLIENT_MAX);
    const reqId = cl.next++;
    cl.outstanding = { reqId, body: kvRequestBody(this.clientRng.int(0, KV_KEYS - 1), this.clientRng.int(1, 9)), attempts: 0, target: NODE_IDS[this.clientRng.int(0, 1)]! };
    this.stats.requests += 1;
    this.attempt(cl, reqId);
  }

  private attempt(cl: SimClient, reqId: number): void {
    const o = cl.outstanding;
    if (o === null || o.reqId !== reqId) return; // answered meanwhile
    if (o.attempts >= CLIENT_ATTEMPTS_MAX) {
      cl.outstanding = null;
      cl.done = true; // gives up: counted unanswered
      return;
    }
    o.attempts += 1;
    if (o.attempts > 1) o.target = o.target === NODE_IDS[0] ? NODE_IDS[1]! : NODE_IDS[0]!;
    const target = o.target;
    const body = o.body;
    this.transmit(() => this.deliverRequest(target, cl.id, reqId, body));
    const wait = Math.min(CLIENT_RETRY_MS_MAX, CLIENT_RETRY_MS * 1.5 ** Math.min(o.attempts - 1, 10));
    this.q.push(this.now + Math.floor(wait), () => this.attempt(cl, reqId));
  }

  private deliverRequest(to: NodeId, client: number, reqId: number, body: Uint8Array): void {
    const n = this.nodes.get(to)!;
    if (n.node === null) return;
    if (this.now < n.pausedUntil) {
      this.q.push(n.pausedUntil, () => this.deliverRequest(to, client, reqId, body));
      return;
    }
    this.note('request', to, client, reqId);
    n.node.onRequest(client, reqId, body);
  }

  private onAnswer(cl: SimClient, reqId: number, value: number): void {
    this.note('answer', cl.id, reqId, value);
    const before = cl.answered.get(reqId);
    if (before !== undefined) return; // a second copy of an answer counts once (the checker compares values)
    cl.answered.set(reqId, value);
    if (cl.outstanding?.reqId === reqId) {
      cl.outstanding = null;
      this.stats.answered += 1;
      const think = this.clientRng.int(0, Math.floor((2 * this.spec.faultPhaseMs) / this.spec.requestsPerClient));
      this.q.push(this.now + think, () => this.issue(cl));
    }
  }

  // ---- faults ----

  /** A primary with a synced backup that acknowledged, both up, nothing cut. */
  healthy(): boolean {
    if (this.faultsActive > 0) return false;
    const [a, b] = NODE_IDS.map((id) => this.nodes.get(id)!.node);
    if (!a || !b) return false;
    for (const [p, q] of [
      [a, b],
      [b, a],
    ] as const) {
      const sp = p.status();
      const sq = q.status();
      if (sp.role === 'primary' && sp.protected && sq.role === 'backup' && sq.term === sp.term && sq.session === sp.session) return true;
    }
    return false;
  }

  private faultDriver(): void {
    if (this.now >= this.faultEndMs) {
      // Faults stop: the network becomes reliable (still slow and reordering).
      this.lossP = 0;
      this.dupP = 0;
      return;
    }
    this.q.push(this.now + 10, () => this.faultDriver());
    const r = this.faultRng;
    if (this.spec.mode === 'budget') {
      if (!this.healthy()) {
        this.nextFaultAt = Math.max(this.nextFaultAt, this.now + r.int(0, this.spec.faultGapMsMax));
        return;
      }
      if (this.now < this.nextFaultAt) return;
    } else if (this.now < this.nextFaultAt) {
      return;
    }
    this.nextFaultAt = this.now + r.int(10, Math.max(10, this.spec.faultGapMsMax));
    this.inject(r.pick(this.spec.faultKinds));
  }

  private inject(kind: FaultKind, chosen?: NodeId, chosenMs?: number): void {
    const r = this.faultRng;
    const id = chosen ?? NODE_IDS[r.int(0, 1)]!;
    const n = this.nodes.get(id)!;
    const ms = chosenMs ?? r.int(20, FAULT_MS_MAX);
    this.stats.faults[kind] += 1;
    this.note(`fault:${kind}`, id, ms);
    this.faultsActive += 1;
    const end = (): void => {
      this.faultsActive -= 1;
      this.note(`heal:${kind}`, id);
    };
    switch (kind) {
      case 'crash':
        if (n.node === null) {
          this.faultsActive -= 1; // already down (chaos)
          return;
        }
        this.checker.onCrash(id);
        n.node = null;
        n.channel = null;
        n.pausedUntil = 0;
        this.q.push(this.now + ms, () => {
          this.start(n);
          end();
        });
        break;
      case 'pause':
        n.pausedUntil = Math.max(n.pausedUntil, this.now + ms);
        this.q.push(n.pausedUntil, end);
        break;
      case 'partition':
      case 'oneway': {
        const dirs = kind === 'partition' ? [`${id}>${n.peer}`, `${n.peer}>${id}`] : [`${id}>${n.peer}`];
        for (const d of dirs) {
          const l = this.links.get(d)!;
          l.cutUntil = Math.max(l.cutUntil, this.now + ms);
        }
        this.q.push(this.now + ms, end);
        break;
      }
    }
  }

  // ---- running ----

  private finished(): boolean {
    if (this.now < this.faultEndMs || this.faultsActive > 0) return false;
    if (!this.clients.every((c) => c.done && c.outstanding === null)) return false;
    return this.spec.mode === 'chaos' || this.healthy();
  }

  run(): ScheduleResult {
    const endMs = this.faultEndMs + this.spec.quietMsMax;
    let checkAt = 0;
    for (;;) {
      const e = this.q.pop();
      if (e === undefined || e.at > endMs) break;
      this.now = e.at;
      e.run();
      this.events += 1;
      if (this.events >= EVENTS_PER_SCHEDULE_MAX) {
        this.checker.violation(`schedule ran past ${EVENTS_PER_SCHEDULE_MAX} events (seed=${this.spec.seed})`);
        break;
      }
      if (this.now >= checkAt) {
        checkAt = this.now + 50;
        if (this.finished()) break;
      }
    }
    const unanswered = this.clients.reduce((n, c) => n + (c.next - 1 - c.answered.size), 0);
    const budget = this.spec.mode === 'budget';
    if (budget && !this.healthy()) this.checker.violation(`not protected at the end: ${[...this.nodes.values()].map((n) => n.node?.describe() ?? `node ${n.id} down`).join('; ')}`);
    this.checker.finish(this.survivor(), budget ? unanswered : 0);
    this.stats.simMs = this.now;
    this.stats.events = this.events;
    this.stats.releases = this.checker.releases;
    this.stats.outputsReleased = this.checker.outputsReleased;
    this.stats.excused = this.checker.excused;
    return {
      seed: this.spec.seed,
      spec: this.spec,
      counts: this.checker.counts,
      violations: this.checker.violations,
      ok: this.checker.ok,
      stats: this.stats,
      traceHash: this.traceHash,
      trace: this.trace,
    };
  }

  /** The machine that carries the service on: the primary of the newest term, else the newest replica. */
  private survivor(): KvMachine | null {
    const rank = (role: string): number => (role === 'primary' ? 3 : role === 'deposed' ? 2 : role === 'backup' ? 1 : 0);
    let best: { m: KvMachine; term: number; rank: number } | null = null;
    for (const n of this.nodes.values()) {
      const node = n.node;
      const m = node?.machine;
      if (!node || !(m instanceof KvMachine)) continue;
      const s = node.status();
      const k = rank(s.role);
      if (k === 0) continue;
      if (best === null || s.term > best.term || (s.term === best.term && k > best.rank)) best = { m, term: s.term, rank: k };
    }
    return best?.m ?? null;
  }
}

export function runSchedule(seed: number, o: { spec?: Partial<ScheduleSpec>; trace?: boolean } = {}): ScheduleResult {
  const spec = { ...specFor(seed), ...o.spec, seed };
  return new Simulation(spec, o.trace ?? false).run();
}

/** Runs a seed's schedule again, exactly, with its trace. */
export function replaySchedule(seed: number, spec?: Partial<ScheduleSpec>): ScheduleResult {
  return runSchedule(seed, { spec, trace: true });
}

export function describeFailure(r: ScheduleResult): string {
  const c = r.counts;
  return (
    `seed=${r.seed} (${r.spec.mode}, ${r.spec.wire}, faults ${r.spec.script ? 'scripted' : r.spec.faultKinds.join('+')}): ` +
    `ackedLost=${c.ackedLost} effectsTwice=${c.effectsTwice} unanswered=${c.unanswered} unackedReleases=${c.unackedReleases}; ` +
    `${r.violations.slice(0, 5).join(' | ')} — replay with replaySchedule(${r.seed})`
  );
}
