import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Env, Release, ReplicaConfig, StorageKey } from './env.js';
import { DEFAULT_CONFIG, validateConfig } from './env.js';
import { isReplicateError } from './codes.js';
import type { Message, NodeId } from './messages.js';
import { ReplicaNode } from './node.js';
import { KvMachine, kvRequestBody, kvResponseValue } from './sim/kv-machine.js';

/** Two nodes, a hand-cranked clock and a message queue the test can filter. */
class Pair {
  now = 0;
  queue: { from: NodeId; to: NodeId; msg: Message }[] = [];
  released: { node: NodeId; r: Release }[] = [];
  storage = new Map<NodeId, Map<StorageKey, number>>([
    [1, new Map()],
    [2, new Map()],
  ]);
  nodes = new Map<NodeId, ReplicaNode>();
  drop: (m: { from: NodeId; to: NodeId; msg: Message }) => boolean = () => false;
  constructor(readonly config: Partial<ReplicaConfig> = {}) {
    this.start(1);
    this.start(2);
  }
  env(id: NodeId): Env {
    const st = this.storage.get(id)!;
    let seed = id * 7919;
    return {
      now: () => this.now,
      send: (to, msg) => this.queue.push({ from: id, to, msg }),
      random: () => ((seed = (seed * 48271) % 0x7fffffff) / 0x7fffffff),
      storage: { get: (k) => st.get(k), set: (k, v) => void st.set(k, v) },
      log: () => {},
      release: (r) => this.released.push({ node: id, r }),
    };
  }
  start(id: NodeId): ReplicaNode {
    const n = new ReplicaNode({ id, peer: id === 1 ? 2 : 1, env: this.env(id), config: this.config, createMachine: () => new KvMachine(), bootstrap: id === 1 ? new KvMachine() : undefined });
    this.nodes.set(id, n);
    return n;
  }
  node(id: NodeId): ReplicaNode {
    return this.nodes.get(id)!;
  }
  /** Delivers queued messages (and what they cause) until none is left, bounded. */
  flush(rounds = 100): void {
    for (let i = 0; i < rounds && this.queue.length > 0; i++) {
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) if (!this.drop(m) && this.nodes.has(m.to)) this.node(m.to).onMessage(m.from, m.msg);
    }
  }
  /** Advances the clock tick by tick, delivering everything in between. */
  run(ms: number, step = 5): void {
    for (let t = 0; t < ms; t += step) {
      this.now += step;
      for (const n of this.nodes.values()) n.onTick(this.now);
      this.flush();
    }
  }
  responses(): Map<string, number> {
    const m = new Map<string, number>();
    for (const { r } of this.released) for (const o of r.outputs) if (o.kind === 'response') m.set(`${o.client}:${o.reqId}`, kvResponseValue(o.body));
    return m;
  }
}

test('bootstrap, sync, then epochs: outputs are released only after the backup acknowledges', () => {
  const p = new Pair();
  p.run(100);
  assert.equal(p.node(1).roleName, 'primary');
  assert.equal(p.node(2).roleName, 'backup');
  assert.ok(p.node(1).status().protected);
  // Hold every ack: the response must not leave.
  p.drop = (m) => m.from === 2;
  assert.equal(p.node(1).onRequest(1, 1, kvRequestBody(0, 5)), 'queued');
  p.run(60);
  assert.equal(p.responses().size, 0, 'no output before the ack');
  assert.ok(p.node(1).status().epochsInFlight >= 1);
  p.drop = () => false;
  p.run(100);
  assert.equal(p.responses().get('1:1'), 1);
  // The backup's replica equals the primary's.
  assert.equal(p.node(2).machine!.digest(), p.node(1).machine!.digest());
});

test('back-pressure: past epochsInFlightMax the guest pauses and the request queue is bounded', () => {
  const p = new Pair({ epochsInFlightMax: 2, requestQueueMax: 3, epochOutputsMax: 1, backupTimeoutMs: 10_000, primaryTimeoutMs: 10_000 });
  p.run(100);
  p.drop = (m) => m.from === 2 && m.msg.type !== 'hello';
  let reqId = 1;
  const verdicts: string[] = [];
  for (let i = 0; i < 12; i++) {
    verdicts.push(p.node(1).onRequest(1, reqId, kvRequestBody(1, 1)));
    if (verdicts[verdicts.length - 1] === 'queued') reqId++;
    p.run(30);
  }
  const s = p.node(1).status();
  assert.equal(s.epochsInFlight, 2, 'never more than epochsInFlightMax epochs unacknowledged');
  assert.equal(s.guestRunnable, false);
  assert.ok(verdicts.includes('busy'), 'a full queue refuses rather than grows');
  assert.equal(p.responses().size, 0);
  p.drop = () => false;
  p.run(1000);
  assert.equal(p.responses().size, reqId - 1, 'every queued request answered once the backup catches up');
});

test('duplicate and reordered acks release each epoch once, in order', () => {
  const p = new Pair({ epochsInFlightMax: 4, backupTimeoutMs: 10_000, primaryTimeoutMs: 10_000 });
  p.run(100);
  const acks: Message[] = [];
  p.drop = (m) => {
    if (m.from === 2 && m.msg.type === 'ack') {
      acks.push(m.msg);
      return true;
    }
    return m.from === 2 && m.msg.type === 'heartbeat';
  };
  for (let i = 1; i <= 3; i++) {
    p.node(1).onRequest(1, i, kvRequestBody(2, 1));
    p.run(25);
  }
  assert.equal(p.responses().size, 0);
  const distinct = acks.filter((a, i) => acks.findIndex((b) => b.type === 'ack' && a.type === 'ack' && b.seq === a.seq) === i);
  assert.ok(distinct.length >= 3);
  const last = distinct[distinct.length - 1]!;
  const first = distinct[0]!;
  const before = p.released.length;
  p.drop = () => true;
  p.node(1).onMessage(2, last); // a later ack first: cumulative
  p.node(1).onMessage(2, first); // then an older one: nothing
  p.node(1).onMessage(2, last); // and a duplicate: nothing
  const seqs = p.released.slice(before).map((x) => x.r.epochSeq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, seqs.length, 'each epoch released once');
  assert.deepEqual([...p.responses().keys()].sort(), ['1:1', '1:2', '1:3']);
});

test('the backup promotes when the primary falls silent, in a newer term it owns, and releases what was not released', () => {
  const p = new Pair({ primaryTimeoutMs: 200, backupTimeoutMs: 150 });
  p.run(100);
  const oldTerm = p.node(2).term;
  // The backup applies and acks, but the primary never hears the ack: it never releases.
  p.drop = (m) => m.from === 2;
  p.node(1).onRequest(3, 1, kvRequestBody(4, 4));
  p.run(60);
  assert.equal(p.responses().size, 0);
  p.nodes.delete(1); // the primary dies
  p.run(300);
  const b = p.node(2);
  assert.equal(b.roleName, 'primary');
  assert.ok(b.term > oldTerm && b.term % 2 === 1, 'node 2 (the higher id) owns odd terms');
  assert.equal(p.responses().get('3:1'), 1, 'the promoted backup released the answer the old primary held');
  assert.ok(p.released.every((x) => x.node === 2));
  // A retry after failover gets the same answer, not a second effect.
  p.drop = () => false;
  b.onRequest(3, 1, kvRequestBody(4, 4));
  const restarted = p.start(1); // the old primary restarts empty and becomes the new backup
  p.run(400);
  assert.equal(restarted.roleName, 'backup');
  assert.ok(b.status().protected, 'protection resumes');
  const after = p.released.filter((x) => x.r.outputs.some((o) => o.kind === 'response' && o.client === 3)).map((x) => x.r.outputs);
  assert.ok(after.length >= 2);
  assert.equal((b.machine as KvMachine).client(3).applied, 1, 'the effect happened once');
});

test('after a failover the promoted backup serves alone at once (unprotected), and waits for acks again once a new backup synced', () => {
  const p = new Pair({ primaryTimeoutMs: 200, backupTimeoutMs: 150 });
  p.run(100);
  p.nodes.delete(1); // the primary dies
  p.run(210);
  const b = p.node(2);
  assert.equal(b.roleName, 'primary');
  assert.equal(b.status().solo, true, 'reported as serving alone');
  assert.equal(p.storage.get(2)!.get('soloTerm'), undefined, 'nothing released alone yet');
  // A request is answered at once: no backup to wait for.
  b.onRequest(5, 1, kvRequestBody(1, 3));
  const solo = p.released.filter((x) => x.r.solo);
  assert.equal(solo.length, 1);
  assert.equal(solo[0]!.r.term, b.term);
  assert.equal(solo[0]!.r.epochTerm, b.term, 'a solo epoch belongs to its own term');
  assert.equal(p.storage.get(2)!.get('soloTerm'), b.term, 'the solo term is durable before the release');
  assert.equal(p.responses().get('5:1'), 1, 'the answer is the effect count after it');
  // A replacement joins: once its sync is done, output waits for its acknowledgements again.
  p.start(1);
  p.run(200);
  assert.equal(p.node(1).roleName, 'backup');
  assert.equal(b.status().solo, false);
  assert.ok(b.status().protected);
  p.drop = (m) => m.from === 1;
  const before = p.released.length;
  b.onRequest(5, 2, kvRequestBody(1, 1));
  p.run(60);
  assert.equal(p.released.length, before, 'protected again: nothing leaves without the ack');
  p.drop = () => false;
  p.run(100);
  assert.equal(p.responses().get('5:2'), 2);
  assert.ok(p.released.slice(before).every((x) => !x.r.solo));
});

test('a double failure stops the service: the old primary does not resume from state older than what the promoted backup released alone', () => {
  const p = new Pair({ primaryTimeoutMs: 150, backupTimeoutMs: 100 });
  p.run(100);
  p.drop = () => true; // partition: the backup promotes, the primary is deposed
  p.run(200);
  const b = p.node(2);
  assert.equal(b.roleName, 'primary');
  assert.equal(p.node(1).roleName, 'deposed');
  b.onRequest(7, 1, kvRequestBody(2, 9)); // released alone
  assert.equal(p.responses().get('7:1'), 1);
  const releases = p.released.length;
  p.nodes.delete(2); // the second fault: the only copy of that answer is gone
  const again = p.start(2); // restarts idle, remembering it released alone in its term
  assert.equal(again.roleName, 'idle');
  p.drop = () => false;
  p.run(400);
  assert.equal(p.node(1).roleName, 'idle', 'the old primary stepped down instead of serving older state');
  assert.equal(p.released.length, releases, 'nothing was released after the loss');
  assert.equal(p.node(1).onRequest(7, 2, kvRequestBody(2, 1)), 'not-primary');
});

test('the same partition without a solo release: the old primary keeps the service (it holds everything released)', () => {
  const p = new Pair({ primaryTimeoutMs: 150, backupTimeoutMs: 100 });
  p.run(100);
  p.drop = () => true;
  p.run(200);
  assert.equal(p.node(2).roleName, 'primary');
  p.nodes.delete(2); // crashes before answering anyone alone
  p.start(2);
  p.drop = () => false;
  p.run(600);
  assert.equal(p.node(1).roleName, 'primary', 'rule 6: stay primary in a newer term');
  assert.ok(p.node(1).term > p.node(2).term - 1);
  assert.equal(p.node(2).roleName, 'backup');
});

test('a backup that restarts: the primary serves alone (it knows no replica exists) until the backup has synced again', () => {
  const p = new Pair({ primaryTimeoutMs: 10_000, backupTimeoutMs: 150 });
  p.run(100);
  assert.ok(p.node(1).status().protected);
  p.nodes.delete(2);
  p.run(200);
  assert.equal(p.node(1).roleName, 'deposed', 'a silent backup might have taken over: no output');
  assert.equal(p.node(1).onRequest(1, 1, kvRequestBody(0, 2)), 'not-primary');
  p.start(2); // its Hello says it holds nothing
  p.drop = (m) => m.from === 1 && m.msg.type !== 'hello'; // hold the resync back
  p.run(20);
  assert.equal(p.node(1).status().solo, true);
  p.node(1).onRequest(1, 1, kvRequestBody(0, 2));
  assert.equal(p.responses().get('1:1'), 1, 'answered alone while the backup resyncs');
  p.drop = () => false;
  p.run(200);
  assert.equal(p.node(1).status().solo, false);
  assert.ok(p.node(1).status().protected);
});

test('a late copy of a Hello sent before the backup synced is no evidence it lost its replica: the primary does not serve alone', () => {
  const p = new Pair({ primaryTimeoutMs: 10_000, backupTimeoutMs: 5_000 });
  let idle: Message | null = null;
  // The primary never hears the backup's Hellos after its first (idle) one: the sync starts on its sync-acks.
  p.drop = (m) => {
    if (m.from !== 2 || m.msg.type !== 'hello') return false;
    if (idle === null && m.msg.role === 'idle') {
      idle = m.msg;
      return false;
    }
    return true;
  };
  p.run(200);
  assert.ok(p.node(1).status().protected);
  assert.ok(idle !== null);
  p.node(1).onMessage(2, idle); // the same Hello again, late
  assert.equal(p.node(1).status().solo, false, 'the backup may still hold its replica and take over');
});

test('an old primary that finds a newer term steps down and becomes the backup', () => {
  const p = new Pair({ primaryTimeoutMs: 150, backupTimeoutMs: 100 });
  p.run(100);
  // Partition: each side times out.
  p.drop = () => true;
  p.run(300);
  assert.equal(p.node(1).roleName, 'deposed', 'the primary stopped releasing');
  assert.equal(p.node(2).roleName, 'primary');
  const releasedBefore = p.released.length;
  p.node(1).onRequest(1, 1, kvRequestBody(0, 1)); // refused while deposed
  p.drop = () => false;
  p.run(300);
  assert.equal(p.node(1).roleName, 'backup');
  assert.equal(p.node(1).term, p.node(2).term);
  assert.ok(p.released.slice(releasedBefore).every((x) => x.node === 2));
});

test('a message from an older term is answered with a Reject, and stale terms never release', () => {
  const p = new Pair();
  p.run(100);
  p.queue = [];
  p.node(2).onMessage(1, { type: 'epoch', term: 0, session: 1, seq: 99, delta: new Uint8Array(4), outputs: [], digest: 0, releasedThrough: 0 });
  const rej = p.queue.find((m) => m.msg.type === 'reject');
  assert.ok(rej && rej.msg.type === 'reject' && rej.msg.reason === 'stale-term');
  // A message from a node that is not our peer is ignored.
  p.queue = [];
  p.node(2).onMessage(3, { type: 'ack', term: 99, session: 1, seq: 1 });
  assert.equal(p.node(2).term, p.node(1).term);
});

test('a restarted node that once bootstrapped does not bootstrap again', () => {
  const p = new Pair();
  p.run(50);
  p.nodes.delete(1);
  p.nodes.delete(2);
  const again = p.start(1);
  assert.equal(again.roleName, 'idle');
  assert.equal(again.incarnation, 2);
});

test('configurations whose bounds contradict each other are refused', () => {
  assert.doesNotThrow(() => validateConfig({ ...DEFAULT_CONFIG }));
  for (const bad of [{ heartbeatMs: 100 }, { backupTimeoutMs: 400 }, { epochsInFlightMax: 0 }, { epochOutputsMax: 4096 }, { syncChunkPages: 100_000 }]) {
    assert.throws(() => validateConfig({ ...DEFAULT_CONFIG, ...bad }), (e) => isReplicateError(e, 'ERR_REPL_CONFIG'), JSON.stringify(bad));
  }
});

test('the kv machine: deltas reproduce the state, bad deltas apply nothing, request ids dedup', () => {
  const a = new KvMachine();
  const b = new KvMachine();
  for (let i = 0; i < 32; i++) b.writePage(i, a.readPage(i));
  a.collectDirtyPages();
  const r1 = kvResponseValue(a.handleRequest(1, 1, kvRequestBody(3, 7)));
  assert.equal(kvResponseValue(a.handleRequest(1, 1, kvRequestBody(3, 7))), r1, 'a repeated id answers the same');
  assert.equal(a.client(1).applied, 1);
  const delta = a.captureDelta();
  b.applyDelta(delta);
  assert.equal(b.digest(), a.digest());
  const before = b.digest();
  const bad = delta.slice(0, delta.length - 1);
  assert.throws(() => b.applyDelta(bad), (e) => isReplicateError(e, 'ERR_REPL_DELTA'));
  const outOfRange = delta.slice();
  new DataView(outOfRange.buffer).setUint32(4, 999, true);
  assert.throws(() => b.applyDelta(outOfRange), (e) => isReplicateError(e, 'ERR_REPL_DELTA'));
  assert.equal(b.digest(), before, 'a refused delta changed nothing');
});
