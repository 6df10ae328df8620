// One replica as a real process: a ReplicaNode over a GuestMachine, wired to
// the system clock, a TCP link to the peer (authenticated frames), a file for
// its durable numbers, a tick timer, and optionally the HTTP gateway and an
// event log. ReplicaProcess owns all of them; close() disposes each.
import fs from 'node:fs';
import { assert } from '../../util/assert.js';
import type { GuestModule } from '../../guest/module.js';
import type { TrackerKind } from '../../track/tracker.js';
import { Channel } from '../channel.js';
import { useCrc32c } from '../crc32c.js';
import { native } from '../../native.js';
import type { Env, ReplEvent, Release, ReplicaConfig } from '../env.js';
import { NonceCounter } from '../frame.js';
import { GuestMachine } from '../guest-machine.js';
import type { NodeId } from '../messages.js';
import { ReplicaNode } from '../node.js';
import { Gateway } from './gateway.js';
import { PeerLink, type Address } from './link.js';
import { FileStorage } from './storage.js';

// Frames carry a CRC-32C of their payload; a real process has the native addon, ~100x faster than the portable one.
useCrc32c((bytes, previous) => native.crc32c(bytes, previous) >>> 0);

/** The node's clock is read and its timers run this often. */
export const TICK_MS = 2;
/** Epoch round trips kept for the statistics (the newest). */
export const RTT_SAMPLES_MAX = 4096;
/** Epochs sent and not yet acknowledged that the statistics remember (the protocol bounds them far lower). */
const EPOCHS_TIMED_MAX = 1024;

/** What replication costs this process, for GET /stats and the benchmarks. Times in ms, sums unless named. */
export interface ReplicaStats {
  machine: GuestMachine['stats'] | null;
  sealMs: number;
  framesSent: number;
  bytesSent: number;
  epochsSent: number;
  /** Epoch sent -> its acknowledgement arrived (includes the backup's apply), newest samples. */
  epochAckMs: number[];
  /** This process's CPU time so far (user + system), for cost per request. */
  cpuMs: number;
}

export interface ReplicaProcessOptions {
  nodeId: NodeId;
  peerId: NodeId;
  module: GuestModule;
  handler: string;
  key: Uint8Array;
  stateDir: string;
  listen?: Address;
  dial?: Address;
  serve?: Address;
  /** Start as the first primary (unless this state dir says this node already did once). */
  bootstrap: boolean;
  /** The first primary answers at once, unprotected, until its first backup has synced. */
  bootstrapSolo?: boolean;
  config?: Partial<ReplicaConfig>;
  tracker?: TrackerKind | 'auto';
  digest?: boolean;
  /** Epochs as changed byte runs (default true). */
  diff?: boolean;
  /** JSON lines: every protocol event and every release (what the fault harness checks). */
  eventsFile?: string;
  say?: (line: string) => void;
  /** Where released log output of the guest goes (default: this process's stdout/stderr). */
  writeLog?: (stream: 'stdout' | 'stderr', bytes: Uint8Array) => void;
}

export class ReplicaProcess {
  readonly node: ReplicaNode;
  readonly link: PeerLink;
  readonly gateway: Gateway | null;
  linkPort: number | null = null;
  servePort: number | null = null;
  private readonly machines = new Set<GuestMachine>();
  private ticker: NodeJS.Timeout | null = null;
  private eventsFd: number | null;
  private readonly channel: Channel;
  private readonly t0 = performance.now();
  private readonly epochSentAt = new Map<number, number>();
  private readonly stats = { sealMs: 0, epochsSent: 0, epochAckMs: [] as number[] };

  private constructor(private readonly o: ReplicaProcessOptions, bootstrap: GuestMachine | undefined) {
    const storage = new FileStorage(o.stateDir);
    this.eventsFd = o.eventsFile !== undefined ? fs.openSync(o.eventsFile, 'a') : null;
    this.channel = new Channel(o.nodeId, o.key, [o.peerId], new NonceCounter(storage.get('nonceReserved') ?? 0, (r) => storage.set('nonceReserved', r)));
    this.link = new PeerLink({
      listen: o.listen,
      dial: o.dial,
      onFrame: (f) => this.onFrame(f),
      onEvent: (what) => o.say?.(what),
    });
    const env: Env = {
      now: () => performance.now() - this.t0,
      send: (_to, msg) => {
        const t = performance.now();
        const frame = this.channel.seal(msg);
        this.stats.sealMs += performance.now() - t;
        if (msg.type === 'epoch' && !this.epochSentAt.has(msg.seq) && this.epochSentAt.size < EPOCHS_TIMED_MAX) {
          this.epochSentAt.set(msg.seq, t);
          this.stats.epochsSent++;
        }
        this.link.send(frame);
      },
      random: () => Math.random(),
      storage,
      log: (e) => this.onEvent(e),
      release: (r) => this.onRelease(r),
    };
    if (bootstrap) this.machines.add(bootstrap);
    this.node = new ReplicaNode({
      id: o.nodeId,
      peer: o.peerId,
      env,
      config: o.config,
      createMachine: () => this.newMachine(),
      bootstrap,
      bootstrapSolo: o.bootstrapSolo,
    });
    this.gateway =
      o.serve !== undefined
        ? new Gateway({
            onRequest: (c, r, b) => this.node.onRequest(c, r, b),
            status: () => this.node.status(),
            stats: () => this.replicaStats(),
            // A synced backup may be about to take over: hold a request as long as a takeover can take.
            takeoverWaitMs: () => (this.node.roleName === 'backup' ? this.node.config.primaryTimeoutMs + this.node.config.heartbeatMs : 0),
          })
        : null;
  }

  static async start(o: ReplicaProcessOptions): Promise<ReplicaProcess> {
    const boot = o.bootstrap ? await GuestMachine.create(machineOptions(o)) : undefined;
    const p = new ReplicaProcess(o, boot);
    boot?.setLog((stream, body) => p.node.primary?.onOutput({ kind: 'log', stream, body }));
    try {
      p.linkPort = (await p.link.start()).port;
      if (p.gateway !== null) p.servePort = await p.gateway.listen(o.serve!.host, o.serve!.port);
    } catch (e) {
      p.close();
      throw e;
    }
    p.ticker = setInterval(() => p.tick(), TICK_MS);
    return p;
  }

  close(): void {
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    this.link.close();
    this.gateway?.close();
    for (const m of this.machines) m.dispose();
    this.machines.clear();
    if (this.eventsFd !== null) fs.closeSync(this.eventsFd);
    this.eventsFd = null;
  }

  private newMachine(): GuestMachine {
    const m = GuestMachine.empty(machineOptions(this.o));
    m.setLog((stream, body) => this.node.primary?.onOutput({ kind: 'log', stream, body }));
    this.machines.add(m);
    return m;
  }

  private tick(): void {
    this.node.onTick(this.now());
    this.gateway?.retryParked();
    // The process owns every machine it made; one the node no longer holds is released here.
    const held = this.node.machine;
    for (const m of this.machines) {
      if (m !== held) {
        m.dispose();
        this.machines.delete(m);
      }
    }
    assert(this.machines.size <= 1, 'at most the held machine survives a tick');
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  private onFrame(frame: Uint8Array): boolean {
    const opened = this.channel.open(frame);
    if (!opened.ok) {
      this.record({ kind: 'refused-frame', code: opened.error.code, detail: opened.error.message });
      return false;
    }
    if (opened.msg.type === 'ack' && this.epochSentAt.size > 0) this.timeAcks(opened.msg.seq);
    this.node.onMessage(opened.from, opened.msg);
    return true;
  }

  private timeAcks(through: number): void {
    const now = performance.now();
    for (const [seq, at] of this.epochSentAt) {
      if (seq > through) continue;
      this.epochSentAt.delete(seq);
      const s = this.stats.epochAckMs;
      if (s.length >= RTT_SAMPLES_MAX) s.shift();
      s.push(now - at);
    }
  }

  /** Where replication spent its time (GET /stats). */
  replicaStats(): ReplicaStats {
    const m = this.node.machine;
    return {
      machine: m instanceof GuestMachine ? { ...m.stats } : null,
      sealMs: this.stats.sealMs,
      framesSent: this.link.stats.framesSent,
      bytesSent: this.link.stats.bytesSent,
      epochsSent: this.stats.epochsSent,
      epochAckMs: [...this.stats.epochAckMs],
      cpuMs: ((u) => (u.user + u.system) / 1000)(process.cpuUsage()),
    };
  }

  private onEvent(e: ReplEvent): void {
    if (this.eventsFd !== null) this.record({ ...e });
    if (e.kind === 'role' || e.kind === 'promoted' || e.kind === 'deposed' || e.kind === 'resumed' || e.kind === 'term') this.o.say?.(`[node ${e.node} term ${e.term}] ${e.kind}: ${e.detail}`);
  }

  private onRelease(r: Release): void {
    // Recorded before anything leaves, so the log never misses a release a client saw.
    // (Serving alone releases once per request: build nothing when there is no log.)
    if (this.eventsFd !== null) this.record({
      kind: 'release',
      node: this.o.nodeId,
      term: r.term,
      epochTerm: r.epochTerm,
      seq: r.epochSeq,
      solo: r.solo,
      responses: r.outputs.flatMap((o) => (o.kind === 'response' ? [[o.client, o.reqId]] : [])),
    });
    this.gateway?.release(r);
    for (const o of r.outputs) {
      if (o.kind === 'log') (this.o.writeLog ?? writeProcessLog)(o.stream, o.body);
    }
  }

  private record(e: Record<string, unknown>): void {
    if (this.eventsFd === null) return;
    // t: ms since this process started; wall: ms since the epoch (comparable across the processes of one host).
    fs.writeSync(this.eventsFd, JSON.stringify({ t: Math.round(this.now() * 1000) / 1000, wall: Math.round((performance.timeOrigin + performance.now()) * 1000) / 1000, node: this.o.nodeId, ...e }) + '\n');
  }
}

function machineOptions(o: ReplicaProcessOptions) {
  return { module: o.module, handler: o.handler, tracker: o.tracker, digest: o.digest, diff: o.diff };
}

function writeProcessLog(stream: 'stdout' | 'stderr', bytes: Uint8Array): void {
  (stream === 'stdout' ? process.stdout : process.stderr).write(bytes);
}
