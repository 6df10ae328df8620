// Save and restore of a guest's "vCPU": its globals, tables, memory size and
// (for a command stopped at a safe point) the captured wasm stack. The memory
// bytes themselves travel separately (they are large and go straight to and
// from the file).
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';
import type { Plain, PlainObject } from '../util/plain.js';
import type { Guest } from './guest.js';

export const WASM_PAGE_BYTES = 65536;
/** wasm32 memories have at most 65536 pages (4 GiB). */
export const MEMORY_PAGES_MAX = 65536;
/** Bounds on what a saved vCPU may claim, checked before anything is applied. */
export const GLOBALS_MAX = 1 << 16;
export const TABLE_ENTRIES_MAX = 1 << 24;

export interface VcpuState {
  memoryPages: number;
  /** Values of layout.globals in order; null for immutable globals (fixed by the module). */
  globals: (number | bigint | null)[];
  /** Per table: each entry an index into layout.tableFunctions, or -1 for null. */
  tables: number[][];
  /** Asyncify data of a command stopped at a safe point; null between calls or before start. */
  stack: Uint8Array | null;
  started: boolean;
}

export function captureVcpuState(guest: Guest, stack: Uint8Array | null, started: boolean): VcpuState {
  const { layout } = guest.module;
  const ex = guest.exports;
  const globals = layout.globals.map((g) => {
    if (!g.mutable) return null;
    const glob = ex[g.exportName];
    assert(glob instanceof WebAssembly.Global, `missing global export ${g.exportName}`);
    return glob.value as number | bigint;
  });
  const fnIndex = new Map<unknown, number>();
  layout.tableFunctions.forEach((name, k) => fnIndex.set(ex[name], k));
  const tables = layout.tables.map((t) => {
    const table = ex[t.exportName];
    assert(table instanceof WebAssembly.Table, `missing table export ${t.exportName}`);
    const entries: number[] = new Array(table.length);
    for (let i = 0; i < table.length; i++) {
      const f = table.get(i);
      if (f === null) entries[i] = -1;
      else {
        const k = fnIndex.get(f);
        if (k === undefined) throw new UnderstudyError('ERR_GUEST_STATE', `table ${t.exportName}[${i}] holds a function that is in no element segment`);
        entries[i] = k;
      }
    }
    return entries;
  });
  return { memoryPages: guest.memory.buffer.byteLength / WASM_PAGE_BYTES, globals, tables, stack, started };
}

/**
 * Applies a validated VcpuState to a freshly instantiated guest, or (inPlace,
 * for rollback) to the running guest it was captured from: there memory may
 * have grown since (wasm memories cannot shrink; the caller zeroes the tail).
 */
export function applyVcpuState(guest: Guest, state: VcpuState, fillMemory: (memory: Uint8Array) => void, options: { inPlace?: boolean } = {}): void {
  const { layout } = guest.module;
  const ex = guest.exports;
  if (state.globals.length !== layout.globals.length) throw mismatch(`${state.globals.length} globals saved, module has ${layout.globals.length}`);
  if (state.tables.length !== layout.tables.length) throw mismatch(`${state.tables.length} tables saved, module has ${layout.tables.length}`);
  const current = guest.memory.buffer.byteLength / WASM_PAGE_BYTES;
  if (state.memoryPages < current && !options.inPlace) throw mismatch(`memory of ${state.memoryPages} pages is smaller than the module's initial ${current}`);
  if (layout.memory.maxPages !== null && state.memoryPages > layout.memory.maxPages) throw mismatch(`memory of ${state.memoryPages} pages exceeds the module's maximum`);
  // Check everything before changing anything.
  layout.globals.forEach((g, i) => {
    const v = state.globals[i];
    if (!g.mutable) {
      if (v !== null) throw mismatch(`immutable global ${i} has a saved value`);
      return;
    }
    if (g.type === 'i64' ? typeof v !== 'bigint' : typeof v !== 'number') throw mismatch(`global ${i} (${g.type}) has a value of the wrong type`);
  });
  state.tables.forEach((entries) => {
    for (const k of entries) if (k < -1 || k >= layout.tableFunctions.length) throw mismatch(`table entry ${k} names no function`);
  });

  if (state.memoryPages > current) guest.memory.grow(state.memoryPages - current);
  fillMemory(new Uint8Array(guest.memory.buffer));
  layout.globals.forEach((g, i) => {
    if (!g.mutable) return;
    (ex[g.exportName] as WebAssembly.Global).value = state.globals[i];
  });
  layout.tables.forEach((t, ti) => {
    const table = ex[t.exportName] as WebAssembly.Table;
    const entries = state.tables[ti]!;
    if (entries.length > table.length) table.grow(entries.length - table.length);
    entries.forEach((k, i) => table.set(i, k < 0 ? null : (ex[layout.tableFunctions[k]!] as any)));
  });
}

function mismatch(what: string): UnderstudyError {
  return new UnderstudyError('ERR_CKPT_MODULE_MISMATCH', `saved state does not fit the module: ${what}`);
}

// ---- plain-data form (for the checkpoint file) ----

export function vcpuToPlain(s: VcpuState): PlainObject {
  return { memoryPages: s.memoryPages, globals: s.globals, tables: s.tables, stack: s.stack, started: s.started };
}

function bad(what: string): UnderstudyError {
  return new UnderstudyError('ERR_CKPT_MALFORMED', `vCPU state: ${what}`);
}

/** Validates untrusted plain data into a VcpuState (types and bounds only; fit to the module is checked on apply). */
export function vcpuFromPlain(p: Plain): VcpuState {
  if (p === null || typeof p !== 'object' || Array.isArray(p) || p instanceof Uint8Array) throw bad('not an object');
  const o = p as PlainObject;
  const pages = o.memoryPages;
  if (typeof pages !== 'number' || !Number.isInteger(pages) || pages < 0 || pages > MEMORY_PAGES_MAX) throw bad('memoryPages out of range');
  if (!Array.isArray(o.globals) || o.globals.length > GLOBALS_MAX) throw bad('globals is not a bounded list');
  const globals = o.globals.map((g) => {
    if (g === null || typeof g === 'number' || typeof g === 'bigint') return g;
    throw bad('a global value is neither number, bigint nor null');
  });
  if (!Array.isArray(o.tables)) throw bad('tables is not a list');
  let entries = 0;
  const tables = o.tables.map((t) => {
    if (!Array.isArray(t)) throw bad('a table is not a list');
    entries += t.length;
    if (entries > TABLE_ENTRIES_MAX) throw bad('too many table entries');
    return t.map((k) => {
      if (typeof k !== 'number' || !Number.isInteger(k)) throw bad('a table entry is not an integer');
      return k;
    });
  });
  const stack = o.stack;
  if (stack !== null && !(stack instanceof Uint8Array)) throw bad('stack is neither bytes nor null');
  if (typeof o.started !== 'boolean') throw bad('started is not a boolean');
  return { memoryPages: pages, globals, tables, stack, started: o.started };
}
