// The simulator's judge: it watches every epoch made, applied and released,
// and at the end compares what clients were told with the surviving state.
// The four counts (all must be 0) and the invariants:
//   ackedLost        a released response the surviving state does not hold (state a client saw was lost)
//   effectsTwice     a request whose effect happened twice: two different answers released for one id,
//                    or the surviving machine applied a client's requests more often than it sent them
//   unanswered       a request never answered (liveness; checked only when faults stayed within the budget)
//   unackedReleases  an output released from an epoch no backup had applied and acknowledged —
//                    or, for a solo release, from an epoch its node did not close alone in its own
//                    term, or while its peer held a replica (a solo term's output counts as
//                    acknowledged by its own epoch only while no other replica exists)
//   violations       two nodes releasing in one term; a replica that diverged; a forged frame accepted;
//                    in budget schedules, solo output lost (that takes a second fault)
//
// Double failures are out of scope: solo output is held by one node until a
// backup syncs from it, so if that node crashes first the output is lost with
// it. Such answers are *excused* (not counted as lost) — in chaos schedules
// only; and no epoch made after such a loss may be released (the older copy
// must not resume as if nothing happened). A solo release is covered (safe)
// once a backup applies an epoch that the same node incarnation made after
// it; a loss is judged at the end, since a sync already on the wire when the
// node crashed may still carry the state.
import type { Release } from '../env.js';
import type { NodeId } from '../messages.js';
import { KV_CLIENTS_MAX, KvMachine, kvResponseValue } from './kv-machine.js';

/** Who made an epoch (term:seq), and when, on the checker's own event count. */
interface Maker {
  node: NodeId;
  incarnation: number;
  at: number;
}

/** Solo answers ("client:reqId=value") one node incarnation released, not yet covered by a replica. */
interface AtRisk {
  incarnation: number;
  at: number;
  answers: string[];
}

export interface Counts {
  ackedLost: number;
  effectsTwice: number;
  unanswered: number;
  unackedReleases: number;
}

/** Violation messages kept per schedule (the first ones explain; the rest would be noise). */
const VIOLATIONS_KEPT_MAX = 20;

export class Checker {
  private readonly acked = new Set<string>();
  private readonly releaserByTerm = new Map<number, NodeId>();
  /** (client, reqId) -> the response values released for it (one, unless a history was lost). */
  private readonly releasedAnswers = new Map<string, number[]>();
  private readonly doubleAnswered = new Set<string>();
  private readonly makers = new Map<string, Maker>();
  /** node:term:seq of epochs closed alone. */
  private readonly soloClosed = new Set<string>();
  /** Per node: solo releases no replica covers yet (what its crash would lose). */
  private readonly atRisk = new Map<NodeId, AtRisk[]>();
  /** Solo releases of crashed nodes not (yet) covered: lost, unless a sync made before the crash still arrives. */
  private readonly crashed: { at: number; node: NodeId; entries: AtRisk[] }[] = [];
  /** Answers ("client:reqId=value") released from an acknowledged epoch, or solo and later covered by a replica. */
  private readonly safeAnswers = new Set<string>();
  private readonly releasedEpochs: { node: NodeId; epoch: string }[] = [];
  private events = 0;
  readonly counts: Counts = { ackedLost: 0, effectsTwice: 0, unanswered: 0, unackedReleases: 0 };
  readonly violations: string[] = [];
  releases = 0;
  outputsReleased = 0;
  /** Solo answers lost with their only copy (chaos schedules: double failures). */
  excused = 0;

  constructor(private readonly budget: boolean) {}

  violation(v: string): void {
    if (this.violations.length < VIOLATIONS_KEPT_MAX) this.violations.push(v);
  }

  /** A primary sent epoch (or SyncDone) term:seq for the first time. */
  onEpochMade(node: NodeId, incarnation: number, term: number, seq: number): void {
    const key = `${term}:${seq}`;
    if (!this.makers.has(key)) this.makers.set(key, { node, incarnation, at: this.events++ });
  }

  /** A primary serving alone closed epoch term:seq. */
  onSolo(node: NodeId, incarnation: number, term: number, seq: number): void {
    this.onEpochMade(node, incarnation, term, seq);
    this.soloClosed.add(`${node}:${term}:${seq}`);
  }

  onApplied(epochTerm: number, seq: number): void {
    const key = `${epochTerm}:${seq}`;
    this.acked.add(key);
    // A replica of an epoch holds every solo release its maker made before it, in the same incarnation.
    const m = this.makers.get(key);
    if (m === undefined) return;
    this.cover(this.atRisk.get(m.node) ?? [], m);
    for (const c of this.crashed) if (c.node === m.node) this.cover(c.entries, m);
  }

  private cover(list: AtRisk[], m: Maker): void {
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i]!;
      if (e.incarnation !== m.incarnation || e.at > m.at) continue;
      for (const a of e.answers) this.safeAnswers.add(a);
      list.splice(i, 1);
    }
  }

  /** A node lost everything volatile. */
  onCrash(node: NodeId): void {
    const list = this.atRisk.get(node) ?? [];
    if (list.length > 0) this.crashed.push({ at: this.events++, node, entries: list.splice(0) });
  }

  /** `peerHoldsReplica`: at this instant the releasing node's peer is a synced backup (of any session). */
  onRelease(node: NodeId, incarnation: number, r: Release, peerHoldsReplica: boolean): void {
    this.releases += 1;
    this.outputsReleased += r.outputs.length;
    const owner = this.releaserByTerm.get(r.term);
    if (owner === undefined) this.releaserByTerm.set(r.term, node);
    else if (owner !== node) this.violation(`nodes ${owner} and ${node} both released output in term ${r.term}`);
    const epoch = `${r.epochTerm}:${r.epochSeq}`;
    if (r.solo) {
      if (r.epochTerm !== r.term || !this.soloClosed.has(`${node}:${epoch}`) || peerHoldsReplica) {
        this.counts.unackedReleases += r.outputs.length;
        this.violation(`node ${node} released ${r.outputs.length} outputs alone from epoch ${epoch} in term ${r.term}${peerHoldsReplica ? ' while its peer held a replica' : ', an epoch it did not close alone in that term'}`);
      }
    } else if (!this.acked.has(epoch)) {
      this.counts.unackedReleases += r.outputs.length;
      this.violation(`node ${node} released ${r.outputs.length} outputs of epoch ${epoch}, which no backup applied`);
    }
    this.releasedEpochs.push({ node, epoch });
    const answers: string[] = [];
    for (const o of r.outputs) {
      if (o.kind !== 'response') continue;
      const key = `${o.client}:${o.reqId}`;
      const v = kvResponseValue(o.body);
      if (r.solo) answers.push(`${key}=${v}`);
      else this.safeAnswers.add(`${key}=${v}`);
      const before = this.releasedAnswers.get(key);
      if (before === undefined) this.releasedAnswers.set(key, [v]);
      else if (!before.includes(v)) {
        before.push(v);
        if (!this.doubleAnswered.has(key)) {
          this.doubleAnswered.add(key);
          this.counts.effectsTwice += 1;
          this.violation(`request ${key} answered ${before[0]} and ${v}: its effect happened in two histories`);
        }
      }
    }
    if (answers.length > 0) {
      const list = this.atRisk.get(node) ?? [];
      list.push({ incarnation, at: this.events++, answers });
      this.atRisk.set(node, list);
    }
  }

  /** Judges losses to double failures, then compares every released answer with the surviving machine. */
  finish(survivor: KvMachine | null, unanswered: number): void {
    this.counts.unanswered = unanswered;
    const excused = new Set<string>();
    let lostAt = Infinity;
    for (const c of this.crashed) {
      const lost = c.entries.flatMap((e) => e.answers).filter((a) => !this.safeAnswers.has(a));
      if (lost.length === 0) continue;
      for (const a of lost) excused.add(a);
      this.excused += lost.length;
      lostAt = Math.min(lostAt, c.at);
      if (this.budget) this.violation(`node ${c.node} crashed holding ${lost.length} solo answers no replica had: one fault lost released output`);
    }
    for (const r of this.releasedEpochs) {
      const made = this.makers.get(r.epoch)?.at ?? -1;
      if (made > lostAt) this.violation(`node ${r.node} released epoch ${r.epoch}, made after a double failure lost solo output: an older copy resumed`);
    }
    if (survivor === null) return;
    for (const [key, values] of this.releasedAnswers) {
      const [c, s] = key.split(':').map(Number) as [number, number];
      const st = survivor.client(c);
      for (const v of values) {
        if (excused.has(`${key}=${v}`)) continue; // lost with its only copy: a double failure
        if (st.lastSeq < s || st.responses[s - 1] !== v) {
          this.counts.ackedLost += 1;
          this.violation(`request ${key} was answered ${v}, but the surviving state says ${st.lastSeq < s ? 'it never ran' : st.responses[s - 1]}`);
        }
      }
    }
    for (let c = 1; c <= KV_CLIENTS_MAX; c++) {
      const st = survivor.client(c);
      if (st.applied > st.lastSeq) {
        this.counts.effectsTwice += st.applied - st.lastSeq;
        this.violation(`client ${c}: ${st.applied} effects for ${st.lastSeq} requests`);
      }
    }
  }

  get ok(): boolean {
    const c = this.counts;
    return c.ackedLost === 0 && c.effectsTwice === 0 && c.unanswered === 0 && c.unackedReleases === 0 && this.violations.length === 0;
  }
}
