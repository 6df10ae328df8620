// The device's clocks. Realtime is the host's. Monotonic and CPU time are
// device clocks: they start from a base (0 for a new device, the saved value
// after a restore) and advance with the host, so after a restore they continue
// from where the checkpoint left them and never run backwards.
import { performance } from 'node:perf_hooks';
import {
  CLOCKID_MONOTONIC, CLOCKID_PROCESS_CPUTIME, CLOCKID_REALTIME, CLOCKID_THREAD_CPUTIME, ERRNO_INVAL,
} from './constants.js';
import { WasiErrno } from './errno.js';
import type { WasiClock } from './types.js';

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

export const hostClock: WasiClock = {
  // timeOrigin + now() is a double of ms with µs resolution, exact below 2^53 µs.
  realtimeNs: () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n,
  monotonicNs: () => process.hrtime.bigint(),
  cputimeNs: () => {
    const u = process.cpuUsage();
    return BigInt(u.user + u.system) * 1000n;
  },
  sleepSync: (ms) => {
    // Nobody notifies this cell: the wait always runs to its timeout.
    if (ms > 0) Atomics.wait(sleepCell, 0, 0, ms);
  },
};

/** Resolution reported by clock_res_get, per clock. */
const REALTIME_RES_NS = 1000n;
const MONOTONIC_RES_NS = 1n;
const CPUTIME_RES_NS = 1000n;

export interface ClocksState {
  monotonicNs: bigint;
  cputimeNs: bigint;
}

export class DeviceClocks {
  readonly host: WasiClock;
  private readonly monotonicBaseNs: bigint;
  private readonly cputimeBaseNs: bigint;
  private readonly hostMonotonicStartNs: bigint;
  private readonly hostCputimeStartNs: bigint;
  /** Highest values handed out: a host clock that steps back cannot make ours. */
  private monotonicLastNs: bigint;
  private cputimeLastNs: bigint;

  constructor(host: WasiClock, state: ClocksState) {
    this.host = host;
    this.monotonicBaseNs = state.monotonicNs;
    this.cputimeBaseNs = state.cputimeNs;
    this.monotonicLastNs = state.monotonicNs;
    this.cputimeLastNs = state.cputimeNs;
    this.hostMonotonicStartNs = host.monotonicNs();
    this.hostCputimeStartNs = host.cputimeNs();
  }

  monotonicNs(): bigint {
    const v = this.monotonicBaseNs + (this.host.monotonicNs() - this.hostMonotonicStartNs);
    if (v > this.monotonicLastNs) this.monotonicLastNs = v;
    return this.monotonicLastNs;
  }

  cputimeNs(): bigint {
    const v = this.cputimeBaseNs + (this.host.cputimeNs() - this.hostCputimeStartNs);
    if (v > this.cputimeLastNs) this.cputimeLastNs = v;
    return this.cputimeLastNs;
  }

  realtimeNs(): bigint {
    return this.host.realtimeNs();
  }

  /** clock_time_get for a guest clock id (EINVAL for an unknown one). */
  now(clockId: number): bigint {
    switch (clockId) {
      case CLOCKID_REALTIME: return this.realtimeNs();
      case CLOCKID_MONOTONIC: return this.monotonicNs();
      case CLOCKID_PROCESS_CPUTIME:
      case CLOCKID_THREAD_CPUTIME: return this.cputimeNs(); // one guest thread: both are the same
      default: throw new WasiErrno(ERRNO_INVAL);
    }
  }

  resolution(clockId: number): bigint {
    switch (clockId) {
      case CLOCKID_REALTIME: return REALTIME_RES_NS;
      case CLOCKID_MONOTONIC: return MONOTONIC_RES_NS;
      case CLOCKID_PROCESS_CPUTIME:
      case CLOCKID_THREAD_CPUTIME: return CPUTIME_RES_NS;
      default: throw new WasiErrno(ERRNO_INVAL);
    }
  }

  save(): ClocksState {
    return { monotonicNs: this.monotonicNs(), cputimeNs: this.cputimeNs() };
  }
}
