// clock_* syscalls.
import { ERRNO_SUCCESS } from './constants.js';
import type { Core } from './core.js';

function clock_res_get(core: Core, clockId: number, resPtr: number): number {
  const mem = core.mem();
  mem.check(resPtr, 8);
  mem.setU64(resPtr, core.clocks.resolution(clockId));
  return ERRNO_SUCCESS;
}

/** `precision` is a hint; every clock answers at its best resolution. */
function clock_time_get(core: Core, clockId: number, _precision: bigint, timePtr: number): number {
  const mem = core.mem();
  mem.check(timePtr, 8);
  mem.setU64(timePtr, core.clocks.now(clockId));
  return ERRNO_SUCCESS;
}

export const clockCalls = { clock_res_get, clock_time_get };
