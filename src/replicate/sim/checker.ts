// The simulator's judge: it watches every release and every applied epoch,
// and at the end compares what clients were told with the surviving state.
// The four counts (all must be 0) and the invariants:
//   ackedLost        a released response the surviving state does not hold (state a client saw was lost)
//   effectsTwice     a request whose effect happened twice: two different answers released for one id,
//                    or the surviving machine applied a client's requests more often than it sent them
//   unanswered       a request never answered (liveness; checked only when faults stayed within the budget)
//   unackedReleases  an output released from an epoch no backup had applied and acknowledged
//   violations       two nodes releasing in one term; a replica that diverged; a forged frame accepted
import type { Release } from '../env.js';
import type { NodeId } from '../messages.js';
import { KV_CLIENTS_MAX, KvMachine, kvResponseValue } from './kv-machine.js';

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
  /** (client, reqId) -> the response value released for it. */
  private readonly releasedAnswers = new Map<string, number>();
  private readonly doubleAnswered = new Set<string>();
  readonly counts: Counts = { ackedLost: 0, effectsTwice: 0, unanswered: 0, unackedReleases: 0 };
  readonly violations: string[] = [];
  releases = 0;
  outputsReleased = 0;

  violation(v: string): void {
    if (this.violations.length < VIOLATIONS_KEPT_MAX) this.violations.push(v);
  }

  onApplied(epochTerm: number, seq: number): void {
    this.acked.add(`${epochTerm}:${seq}`);
  }

  onRelease(node: NodeId, r: Release): void {
    this.releases += 1;
    this.outputsReleased += r.outputs.length;
    const owner = this.releaserByTerm.get(r.term);
    if (owner === undefined) this.releaserByTerm.set(r.term, node);
    else if (owner !== node) this.violation(`nodes ${owner} and ${node} both released output in term ${r.term}`);
    if (!this.acked.has(`${r.epochTerm}:${r.epochSeq}`)) {
      this.counts.unackedReleases += r.outputs.length;
      this.violation(`node ${node} released ${r.outputs.length} outputs of epoch ${r.epochTerm}:${r.epochSeq}, which no backup applied`);
    }
    for (const o of r.outputs) {
      if (o.kind !== 'response') continue;
      const key = `${o.client}:${o.reqId}`;
      const v = kvResponseValue(o.body);
      const before = this.releasedAnswers.get(key);
      if (before === undefined) this.releasedAnswers.set(key, v);
      else if (before !== v && !this.doubleAnswered.has(key)) {
        this.doubleAnswered.add(key);
        this.counts.effectsTwice += 1;
        this.violation(`request ${key} answered ${before} and ${v}: its effect happened in two histories`);
      }
    }
  }

  /** Compares every released answer with the surviving machine. */
  finish(survivor: KvMachine | null, unanswered: number): void {
    this.counts.unanswered = unanswered;
    if (survivor === null) return;
    for (const [key, v] of this.releasedAnswers) {
      const [c, s] = key.split(':').map(Number) as [number, number];
      const st = survivor.client(c);
      if (st.lastSeq < s || st.responses[s - 1] !== v) {
        this.counts.ackedLost += 1;
        this.violation(`request ${key} was answered ${v}, but the surviving state says ${st.lastSeq < s ? 'it never ran' : st.responses[s - 1]}`);
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
