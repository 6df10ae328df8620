// Word-level tracking by emulation for wasm guests (the paper's Emul): every
// instruction that writes linear memory is rewritten to report the address
// and length it writes, before it writes them, when they fall inside the
// bounds of the guest's critical data areas.
//
//   (i32.store offset=8 (P) (V))
//     -> (i32.store offset=8 (call $__us_cda_note (P) (i32.const 8) (i32.const 4)) (V))
//   (memory.fill (D) (V) (N))          memory.copy and memory.init alike
//     -> (memory.fill (local.tee $d (D)) (V) (call $__us_cda_note_len (local.get $d) (N)))
//
//   $__us_cda_note(ptr, off, len) -> ptr: addr = ptr + off; if addr < hi && addr + len > lo,
//       calls understudy_emul.store(addr, len)
//
// lo and hi are two exported globals (__us_cda_lo, __us_cda_hi) the host sets
// to the lowest address and highest end of all areas; outside them a store
// costs a call and two compares. The import is deliberately not in the
// `understudy` module: it is not a safe point (Asyncify must not instrument
// every function that stores), and it never suspends. Stores, atomic
// read-modify-writes, SIMD lane stores, memory.fill, memory.copy and
// memory.init are covered; an expression kind this walker does not know is
// refused (ERR_MODULE_UNSUPPORTED) rather than left unrecorded.
import binaryen from 'binaryen';
import { UnderstudyError } from '../errors.js';

export const EMUL_IMPORT_MODULE = 'understudy_emul';
export const EMUL_IMPORT_NAME = 'store';
export const EMUL_LO_GLOBAL = '__us_cda_lo';
export const EMUL_HI_GLOBAL = '__us_cda_hi';
const NOTE = '__us_cda_note';
const NOTE_LEN = '__us_cda_note_len';
const STORE_IMPORT = '__us_cda_store';

// binaryen.js has these at run time; its typings do not list them.
type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const B = binaryen as Any;

/** Expression kinds with no children. */
const LEAVES: ReadonlySet<number> = new Set(
  [B.ConstId, B.LocalGetId, B.GlobalGetId, B.NopId, B.UnreachableId, B.PopId, B.MemorySizeId, B.AtomicFenceId, B.DataDropId, B.RefNullId, B.RefFuncId, B.TableSizeId, B.RethrowId].map(Number),
);

/** Children of each expression kind (the fields of getExpressionInfo that are expressions). */
function childrenOf(info: Any): number[] {
  const id = info.id;
  const one = (...names: string[]) => names.map((n) => info[n]).filter((e: number) => e !== 0 && e !== undefined);
  switch (id) {
    case B.BlockId:
      return info.children;
    case B.IfId:
      return one('condition', 'ifTrue', 'ifFalse');
    case B.LoopId:
      return one('body');
    case B.BreakId:
    case B.SwitchId:
      return one('condition', 'value');
    case B.CallId:
      return info.operands;
    case B.CallIndirectId:
      return [...info.operands, ...one('target')];
    case B.LocalSetId:
    case B.GlobalSetId:
    case B.DropId:
    case B.ReturnId:
    case B.UnaryId:
    case B.RefIsNullId:
    case B.RefAsId:
      return one('value');
    case B.LoadId:
    case B.SIMDLoadId:
      return one('ptr');
    case B.StoreId:
    case B.AtomicRMWId:
      return one('ptr', 'value');
    case B.AtomicCmpxchgId:
      return one('ptr', 'expected', 'replacement');
    case B.AtomicWaitId:
      return one('ptr', 'expected', 'timeout');
    case B.AtomicNotifyId:
      return one('ptr', 'notifyCount');
    case B.BinaryId:
    case B.RefEqId:
    case B.SIMDShuffleId:
      return one('left', 'right');
    case B.SelectId:
      return one('ifTrue', 'ifFalse', 'condition');
    case B.MemoryGrowId:
      return one('delta');
    case B.SIMDExtractId:
      return one('vec');
    case B.SIMDReplaceId:
      return one('vec', 'value');
    case B.SIMDTernaryId:
      return one('a', 'b', 'c');
    case B.SIMDShiftId:
      return one('vec', 'shift');
    case B.SIMDLoadStoreLaneId:
      return one('ptr', 'vec');
    case B.MemoryInitId:
      return one('dest', 'offset', 'size');
    case B.MemoryCopyId:
      return one('dest', 'source', 'size');
    case B.MemoryFillId:
      return one('dest', 'value', 'size');
    case B.TableGetId:
      return one('index');
    case B.TableSetId:
      return one('index', 'value');
    case B.TableGrowId:
      return one('value', 'delta');
    case B.TryId:
      return [...one('body'), ...info.catchBodies];
    case B.ThrowId:
    case B.TupleMakeId:
      return info.operands;
    case B.TupleExtractId:
      return one('tuple');
    default:
      throw new UnderstudyError('ERR_MODULE_UNSUPPORTED', `store instrumentation (emul) does not know expression kind ${id}; use a page-tracking mode for this guest`);
  }
}

/** Lane bytes of the SIMD lane stores (loads of a lane write nothing). */
function laneStoreBytes(op: number): number {
  if (op === B.Store8LaneVec128) return 1;
  if (op === B.Store16LaneVec128) return 2;
  if (op === B.Store32LaneVec128) return 4;
  if (op === B.Store64LaneVec128) return 8;
  return 0;
}

/** Rewrites `m` in place; returns how many writing instructions now report. */
export function instrumentStores(m: binaryen.Module): number {
  const mod = m as Any;
  const i32 = binaryen.i32;
  mod.addGlobal(EMUL_LO_GLOBAL, i32, true, mod.i32.const(0));
  mod.addGlobal(EMUL_HI_GLOBAL, i32, true, mod.i32.const(0));
  mod.addGlobalExport(EMUL_LO_GLOBAL, EMUL_LO_GLOBAL);
  mod.addGlobalExport(EMUL_HI_GLOBAL, EMUL_HI_GLOBAL);
  mod.addFunctionImport(STORE_IMPORT, EMUL_IMPORT_MODULE, EMUL_IMPORT_NAME, binaryen.createType([i32, i32]), binaryen.none);

  const functions: number[] = [];
  for (let i = 0; i < m.getNumFunctions(); i++) {
    const f = m.getFunctionByIndex(i);
    if (!binaryen.getFunctionInfo(f).module) functions.push(f as unknown as number);
  }
  let sites = 0;
  for (const f of functions) {
    const stack: number[] = [binaryen.getFunctionInfo(f as Any).body as unknown as number];
    while (stack.length) {
      const e = stack.pop()!;
      if (!e) continue;
      // Leaves first: binaryen.js has no info wrapper for some of them (nop, unreachable, pop...).
      if (LEAVES.has(binaryen.getExpressionId(e as Any) as number)) continue;
      const info = binaryen.getExpressionInfo(e as Any) as Any;
      for (const c of childrenOf(info)) stack.push(c);
      const note = (ptr: number, offset: number, bytes: number) => mod.call(NOTE, [ptr, mod.i32.const(offset | 0), mod.i32.const(bytes)], i32);
      switch (info.id) {
        case B.StoreId:
          B.Store.setPtr(e, note(info.ptr, info.offset, info.bytes));
          sites++;
          break;
        case B.AtomicRMWId:
          B.AtomicRMW.setPtr(e, note(info.ptr, info.offset, info.bytes));
          sites++;
          break;
        case B.AtomicCmpxchgId:
          B.AtomicCmpxchg.setPtr(e, note(info.ptr, info.offset, info.bytes));
          sites++;
          break;
        case B.SIMDLoadStoreLaneId: {
          const bytes = laneStoreBytes(info.op);
          if (bytes) {
            B.SIMDLoadStoreLane.setPtr(e, note(info.ptr, info.offset, bytes));
            sites++;
          }
          break;
        }
        case B.MemoryFillId:
        case B.MemoryCopyId:
        case B.MemoryInitId: {
          // A local per site: the destination is evaluated first, the size last.
          const local = B._BinaryenFunctionAddVar(f, i32) as number;
          const wrapper = info.id === B.MemoryFillId ? B.MemoryFill : info.id === B.MemoryCopyId ? B.MemoryCopy : B.MemoryInit;
          wrapper.setDest(e, mod.local.tee(local, info.dest, i32));
          wrapper.setSize(e, mod.call(NOTE_LEN, [mod.local.get(local, i32), info.size], i32));
          sites++;
          break;
        }
      }
    }
  }

  // note(ptr, off, len) -> ptr
  const addr = mod.i32.add(mod.local.get(0, i32), mod.local.get(1, i32));
  mod.addFunction(
    NOTE,
    binaryen.createType([i32, i32, i32]),
    i32,
    [i32],
    mod.block(null, [
      mod.local.set(3, addr),
      mod.if(
        mod.i32.and(
          mod.i32.lt_u(mod.local.get(3, i32), mod.global.get(EMUL_HI_GLOBAL, i32)),
          mod.i32.gt_u(mod.i32.add(mod.local.get(3, i32), mod.local.get(2, i32)), mod.global.get(EMUL_LO_GLOBAL, i32)),
        ),
        mod.call(STORE_IMPORT, [mod.local.get(3, i32), mod.local.get(2, i32)], binaryen.none),
      ),
      mod.local.get(0, i32),
    ], i32),
  );
  // note_len(dest, len) -> len
  mod.addFunction(
    NOTE_LEN,
    binaryen.createType([i32, i32]),
    i32,
    [],
    mod.block(null, [
      mod.if(
        mod.i32.and(
          mod.i32.lt_u(mod.local.get(0, i32), mod.global.get(EMUL_HI_GLOBAL, i32)),
          mod.i32.gt_u(mod.i32.add(mod.local.get(0, i32), mod.local.get(1, i32)), mod.global.get(EMUL_LO_GLOBAL, i32)),
        ),
        mod.call(STORE_IMPORT, [mod.local.get(0, i32), mod.local.get(1, i32)], binaryen.none),
      ),
      mod.local.get(1, i32),
    ], i32),
  );
  return sites;
}
