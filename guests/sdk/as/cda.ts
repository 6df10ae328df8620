// Application-assisted checkpointing for AssemblyScript guests: critical data
// areas and checkpoint cycles. The C header guests/sdk/understudy_cda.h
// describes every call and answer; this is the same ABI.
//
//   import { cdaRegister, cdaRecover, cdaBegin, cdaEnd, cdaAbort } from "../sdk/as/cda";
//   const arena = heap.alloc(1 << 20);        // or memory the program manages itself
//   cdaRegister(arena, 1 << 20);
//   const cycle = cdaRecover();               // 0: fresh start
//   cdaBegin(); /* change the area */ cdaEnd();

// @ts-ignore: decorator
@external("understudy", "cda_register") declare function hcRegister(ptr: u32, len: u32): i32;
// @ts-ignore: decorator
@external("understudy", "cda_unregister") declare function hcUnregister(id: i32): i32;
// @ts-ignore: decorator
@external("understudy", "cda_begin") declare function hcBegin(): i32;
// @ts-ignore: decorator
@external("understudy", "cda_end") declare function hcEnd(): i64;
// @ts-ignore: decorator
@external("understudy", "cda_abort") declare function hcAbort(): i32;
// @ts-ignore: decorator
@external("understudy", "cda_recover") declare function hcRecover(): i64;

export const CDA_ERANGE: i32 = -1;
export const CDA_ELIMIT: i32 = -2;
export const CDA_ESTATE: i32 = -3;
export const CDA_EIO: i32 = -4;
export const CDA_ELAYOUT: i32 = -5;

/** Declares [ptr, ptr+len) a critical data area; its id (>= 1) or a negative CDA_E*. */
export function cdaRegister(ptr: usize, len: u32): i32 { return hcRegister(<u32>ptr, len); }
export function cdaUnregister(id: i32): i32 { return hcUnregister(id); }
/** Opens a cycle. */
export function cdaBegin(): i32 { return hcBegin(); }
/** Commits the cycle; its number once the target holds it, or a negative CDA_E*. */
export function cdaEnd(): i64 { return hcEnd(); }
/** Ends the cycle without committing; the areas are back as of cdaBegin. */
export function cdaAbort(): i32 { return hcAbort(); }
/** Fills the registered areas as of the last committed cycle; its number, 0 if none. */
export function cdaRecover(): i64 { return hcRecover(); }
