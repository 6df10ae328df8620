// One epoch's record in a delta log: the page delta of the memory and the
// guest's complete small state (vCPU, devices, counters) at the epoch's end.
import { UnderstudyError } from '../errors.js';
import type { Plain, PlainObject } from '../util/plain.js';
import { decodePlain, encodePlain } from './plain-codec.js';
import { isObject, outputState } from './snapshot.js';
import type { OutputGateState } from '../output/gate.js';
import { WASM_PAGE_BYTES, MEMORY_PAGES_MAX } from '../guest/persist.js';

export interface EpochRecord {
  /** Memory size at the end of the epoch (memory only grows). */
  memoryBytes: number;
  /** The page delta (delta-codec.ts) against the previous epoch's image. */
  pages: Uint8Array;
  /** Encoded vCPU state (guest/persist.ts plain form, plain-codec). */
  vcpu: Uint8Array;
  /** Encoded device state: { wasi, output }. */
  devices: Uint8Array;
  output: OutputGateState;
  stdinBytesConsumed: number;
  restoreGeneration: number;
}

export function encodeEpochRecord(r: EpochRecord): Uint8Array {
  const p: PlainObject = {
    memoryBytes: r.memoryBytes,
    pages: r.pages,
    vcpu: r.vcpu,
    devices: r.devices,
    output: r.output,
    stdinBytesConsumed: r.stdinBytesConsumed,
    restoreGeneration: r.restoreGeneration,
  };
  return encodePlain(p);
}

function bad(what: string): UnderstudyError {
  return new UnderstudyError('ERR_CKPT_MALFORMED', `delta record: ${what}`);
}

function count(o: PlainObject, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${key} is not a non-negative integer`);
  return v;
}

function bytes(o: PlainObject, key: string): Uint8Array {
  const v = o[key];
  if (!(v instanceof Uint8Array)) throw bad(`${key} is not bytes`);
  return v;
}

export function decodeEpochRecord(raw: Uint8Array): EpochRecord {
  const p: Plain = decodePlain(raw);
  if (!isObject(p)) throw bad('not an object');
  const memoryBytes = count(p, 'memoryBytes');
  if (memoryBytes % WASM_PAGE_BYTES !== 0 || memoryBytes > MEMORY_PAGES_MAX * WASM_PAGE_BYTES) throw bad('memory size is not a whole number of wasm pages within 4 GiB');
  return {
    memoryBytes,
    pages: bytes(p, 'pages'),
    vcpu: bytes(p, 'vcpu'),
    devices: bytes(p, 'devices'),
    output: outputState(p.output),
    stdinBytesConsumed: count(p, 'stdinBytesConsumed'),
    restoreGeneration: count(p, 'restoreGeneration'),
  };
}
