// understudy: reactor
//
// cdanotes — an AssemblyScript reactor that keeps short notes in a critical
// data area (sdk/as/cda.ts): a fixed arena outside the garbage-collected
// heap, committed in one checkpoint cycle per change.
//
//   ADD <text>    -> OK <cycle>       appends a note in a cycle (the response
//                                     is released once the cycle is durable)
//   DRAFT <text>  -> DROPPED          appends, then aborts the cycle
//   COUNT         -> <notes> <bytes>
//   DIGEST        -> <16 hex>         over the arena's used bytes
//   RECOVER       -> RECOVERED <cycle> <notes>
//
// The arena is registered when the module starts; the host recovers nothing
// by itself: RECOVER asks for the areas as of the last committed cycle.

export { us_request_buffer } from "../sdk/as/understudy";
import { requestText, respond } from "../sdk/as/understudy";
import { cdaAbort, cdaBegin, cdaEnd, cdaRecover, cdaRegister } from "../sdk/as/cda";
import { fmix64, hex64 } from "./lib/hash";

const ARENA_BYTES: i32 = 3 * 4096;
// [u32 notes][u32 used bytes][notes: u16 length + bytes ...]
const ARENA: usize = memory.data(ARENA_BYTES, 4096);
const HEAD: i32 = 8;

const id = cdaRegister(ARENA, <u32>ARENA_BYTES);
assert(id == 1, "cda_register");

function append(text: string): bool {
  const len = String.UTF8.byteLength(text);
  const used = load<u32>(ARENA, 4);
  if (<i32>used + HEAD + 2 + len > ARENA_BYTES) return false;
  const at = ARENA + HEAD + used;
  store<u16>(at, <u16>len);
  String.UTF8.encodeUnsafe(changetype<usize>(text), text.length, at + 2);
  store<u32>(ARENA, load<u32>(ARENA) + 1);
  store<u32>(ARENA, used + 2 + <u32>len, 4);
  return true;
}

function digest(): u64 {
  let h: u64 = 0x9e3779b97f4a7c15;
  const used = load<u32>(ARENA, 4);
  for (let i: u32 = 0; i < used + HEAD; i++) h = fmix64(h ^ <u64>load<u8>(ARENA + i));
  return h;
}

export function handle(len: i32): i64 {
  const text = requestText(len);
  if (text === null) return respond("ERR request length");
  const space = text.indexOf(" ");
  const cmd = space < 0 ? text : text.substring(0, space);
  const arg = space < 0 ? "" : text.substring(space + 1);
  if (cmd == "ADD" || cmd == "DRAFT") {
    if (cdaBegin() != 0) return respond("ERR begin");
    if (!append(arg)) {
      cdaAbort();
      return respond("ERR full");
    }
    if (cmd == "DRAFT") return respond(cdaAbort() == 0 ? "DROPPED" : "ERR abort");
    const cycle = cdaEnd();
    return respond(cycle > 0 ? "OK " + cycle.toString() : "ERR end " + cycle.toString());
  }
  if (cmd == "COUNT") return respond(load<u32>(ARENA).toString() + " " + load<u32>(ARENA, 4).toString());
  if (cmd == "DIGEST") return respond(hex64(digest()));
  if (cmd == "RECOVER") {
    const cycle = cdaRecover();
    return respond("RECOVERED " + cycle.toString() + " " + load<u32>(ARENA).toString());
  }
  return respond("ERR unknown command");
}
