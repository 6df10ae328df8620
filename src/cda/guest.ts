// The critical-data-area hypercalls for wasm guests (guests/sdk/understudy_cda.h,
// guests/sdk/as/cda.ts): the host side of exactly that ABI, over one
// CriticalAreaService bound to the guest's memory at its first call.
//
// cda_end must not answer before the target holds the cycle:
//   command  the call suspends (Guest.suspendHostCall: the guest stops at it,
//            the event loop turns, the commit completes) and runs again after
//            the rewind, answering the cycle number or US_CDA_EIO
//   reactor  a call cannot wait, so cda_end answers the number the cycle
//            will have, and the host holds the call's response (and its
//            output) until `settle()` says the commit is durable; if it
//            failed, the areas are back as at cda_begin and the response is
//            not released (runtime/session.ts)
import type { Guest, Hypercalls } from '../guest/guest.js';
import { isUnderstudyError, type UnderstudyError } from '../errors.js';
import { answerOf, CdaAnswer, cdaError } from './codes.js';
import { EMUL_HI_GLOBAL, EMUL_LO_GLOBAL } from './instrument.js';
import { CriticalAreaService, type CdaOptions, type CommitStats } from './service.js';

export type Settled = { ok: true; stats: CommitStats } | { ok: false; error: UnderstudyError };

export class GuestCda {
  readonly service: CriticalAreaService;
  private guest: Guest | null = null;
  /** Command: the answer the re-run of a suspended cda_end returns. */
  private delivering: bigint | null = null;
  /** Reactor: the commit the last call ended, until the host settles it. */
  private pending: Promise<Settled> | null = null;
  /** Every commit's stats, in order (tests, the CLI's summary). */
  readonly commits: CommitStats[] = [];

  constructor(options: CdaOptions = {}) {
    this.service = new CriticalAreaService({
      ...options,
      onBounds: (lo, hi) => this.setBounds(lo, hi),
      onCommit: (s) => {
        this.commits.push(s);
        options.onCommit?.(s);
      },
    });
  }

  /** Resolves once the target's last committed state is read; a guest runs only after it. */
  get ready(): Promise<void> {
    return this.service.ready;
  }

  /** For GuestOptions.storeRecorder: where instrumented stores report (mode emul), else undefined. */
  get storeRecorder(): ((address: number, length: number) => void) | undefined {
    return this.service.mode === 'emul' ? this.service.recordStore : undefined;
  }

  private setBounds(lo: number, hi: number): void {
    const exports = this.guest?.exports;
    const g = (name: string) => exports?.[name] as WebAssembly.Global | undefined;
    const loG = g(EMUL_LO_GLOBAL);
    const hiG = g(EMUL_HI_GLOBAL);
    if (loG && hiG) {
      loG.value = lo | 0;
      hiG.value = hi | 0;
    }
  }

  private bind(guest: Guest): CriticalAreaService {
    if (this.guest === guest) return this.service;
    if (this.guest !== null) throw cdaError('ERR_CDA_STATE', 'one GuestCda serves one guest');
    if (this.service.mode === 'emul' && !guest.module.layout.cdaStores) {
      throw cdaError('ERR_CDA_MODE', 'mode emul needs the guest rewritten with its stores instrumented (loadGuestModule(..., { cdaStores: true }))');
    }
    if (guest.kind === 'command' && !guest.module.layout.asyncify) {
      throw cdaError('ERR_CDA_MODE', 'a command guest ends checkpoint cycles by suspending in cda_end: it needs safe points');
    }
    this.guest = guest;
    this.service.bindMemory(guest.memory);
    return this.service;
  }

  /** Runs one hypercall: a refusal the ABI names becomes its negative answer; anything else ends the guest. */
  private call(guest: Guest, wide: boolean, body: (s: CriticalAreaService) => number | bigint): number | bigint {
    try {
      return body(this.bind(guest));
    } catch (e) {
      const answer = answerOf(e);
      if (answer === null) throw e;
      return wide ? BigInt(answer) : answer;
    }
  }

  get hypercalls(): Hypercalls {
    return {
      cda_register: (guest, ptr: number, len: number) => this.call(guest, false, (s) => s.register(ptr >>> 0, len >>> 0)),
      cda_unregister: (guest, id: number) =>
        this.call(guest, false, (s) => {
          s.unregister(id);
          return 0;
        }),
      cda_begin: (guest) =>
        this.call(guest, false, (s) => {
          s.begin();
          return 0;
        }),
      cda_abort: (guest) =>
        this.call(guest, false, (s) => {
          s.abort();
          return 0;
        }),
      cda_recover: (guest: Guest) => this.call(guest, true, (s) => BigInt(s.recoverNow())),
      cda_end: (guest: Guest) => this.call(guest, true, (s) => this.end(guest, s)),
    };
  }

  private end(guest: Guest, s: CriticalAreaService): bigint {
    if (this.delivering !== null) {
      // The re-run of a cda_end that suspended: its answer.
      const answer = this.delivering;
      this.delivering = null;
      return answer;
    }
    const { cycle, done } = s.end();
    const settled: Promise<Settled> = done.then(
      (stats) => ({ ok: true, stats }),
      (e: unknown) => ({ ok: false, error: isUnderstudyError(e) ? e : cdaError('ERR_CDA_IO', String(e)) }),
    );
    if (guest.kind === 'command') {
      const answered = settled.then((r) => {
        this.delivering = r.ok ? BigInt(r.stats.cycle) : BigInt(answerOf(r.error) ?? CdaAnswer.io);
      });
      if (guest.suspendHostCall(answered)) return 0n; // not seen by the guest: the call runs again
    }
    this.pending = settled;
    return BigInt(cycle);
  }

  /** Reactors, after each call: the outcome of the commit the call ended (null when it ended none). */
  async settle(): Promise<Settled | null> {
    const p = this.pending;
    this.pending = null;
    return p;
  }

  async close(): Promise<void> {
    await this.service.close();
  }
}
