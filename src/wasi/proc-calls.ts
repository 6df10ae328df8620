// args, environment, process, randomness, and the unsupported socket calls.
import { randomFillSync } from 'node:crypto';
import { ERRNO_INVAL, ERRNO_NOSYS, ERRNO_SUCCESS } from './constants.js';
import type { Core } from './core.js';
import { check } from './errno.js';
import type { GuestMemory } from './memory.js';
import { ProcExit } from './types.js';

function sizes(mem: GuestMemory, strings: Uint8Array[], countPtr: number, bytesPtr: number): number {
  mem.check(countPtr, 4);
  mem.check(bytesPtr, 4);
  let bytes = 0;
  for (const s of strings) bytes += s.length;
  mem.setU32(countPtr, strings.length);
  mem.setU32(bytesPtr, bytes);
  return ERRNO_SUCCESS;
}

/** Writes the pointer array and the NUL-terminated strings, both checked first. */
function strings(mem: GuestMemory, strs: Uint8Array[], ptrsPtr: number, bufPtr: number): number {
  let bytes = 0;
  for (const s of strs) bytes += s.length;
  mem.check(ptrsPtr, strs.length * 4);
  mem.check(bufPtr, bytes);
  let at = bufPtr;
  strs.forEach((s, i) => {
    mem.setU32(ptrsPtr + i * 4, at);
    mem.bytes(at, s.length).set(s);
    at += s.length;
  });
  return ERRNO_SUCCESS;
}

function args_sizes_get(core: Core, argcPtr: number, bufSizePtr: number): number {
  return sizes(core.mem(), core.argsEncoded, argcPtr, bufSizePtr);
}
function args_get(core: Core, argvPtr: number, bufPtr: number): number {
  return strings(core.mem(), core.argsEncoded, argvPtr, bufPtr);
}
function environ_sizes_get(core: Core, countPtr: number, bufSizePtr: number): number {
  return sizes(core.mem(), core.envEncoded, countPtr, bufSizePtr);
}
function environ_get(core: Core, environPtr: number, bufPtr: number): number {
  return strings(core.mem(), core.envEncoded, environPtr, bufPtr);
}

function proc_exit(_core: Core, code: number): never {
  throw new ProcExit(code);
}

/** Signal 0 is the "may I signal" probe and succeeds; delivering real signals is not supported. */
function proc_raise(_core: Core, sig: number): number {
  const SIGNAL_MAX = 30; // preview1 defines signals 0 (none) .. 30 (SIGSYS)
  check(sig <= SIGNAL_MAX, ERRNO_INVAL);
  return sig === 0 ? ERRNO_SUCCESS : ERRNO_NOSYS;
}

function sched_yield(_core: Core): number {
  return ERRNO_SUCCESS; // one guest thread: nobody to yield to
}

/** Bytes drawn per randomFillSync call. */
const RANDOM_CHUNK_BYTES = 1 << 20;

/**
 * From the host CSPRNG on every call, so nothing about it is in a checkpoint:
 * two restores of one checkpoint draw independent bytes.
 */
function random_get(core: Core, ptr: number, len: number): number {
  const out = core.mem().bytes(ptr, len);
  // randomFillSync takes at most 2^31-1 bytes per call; a wasm32 buffer can be larger.
  for (let at = 0; at < len; at += RANDOM_CHUNK_BYTES) randomFillSync(out.subarray(at, Math.min(len, at + RANDOM_CHUNK_BYTES)));
  return ERRNO_SUCCESS;
}

const nosys = (): number => ERRNO_NOSYS;

export const procCalls = {
  args_sizes_get, args_get, environ_sizes_get, environ_get, proc_exit, proc_raise, sched_yield, random_get,
  sock_accept: nosys, sock_recv: nosys, sock_send: nosys, sock_shutdown: nosys,
};
