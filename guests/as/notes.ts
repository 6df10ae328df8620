// understudy: reactor
//
// notes — an AssemblyScript reactor that keeps text notes (garbage-collected
// strings in an Array) and drops them again; with the balloon SDK
// (sdk/as/balloon.ts).
//
//   ADD <n> <bytes>  -> OK         appends n notes of <bytes> characters
//   CLEAR            -> OK         drops every note (garbage)
//   COUNT            -> <notes>
//   DIGEST           -> <16 hex>   over every note, in order

export { us_request_buffer } from "../sdk/as/understudy";
export { us_balloon_stats, us_balloon_inflate, us_balloon_deflate, us_balloon_set_reporting } from "../sdk/as/balloon";
import { requestText, respond } from "../sdk/as/understudy";

let notes = new Array<string>();

function note(i: i32, bytes: i32): string {
  const s = "note-" + i.toString() + ":" + String.fromCharCode(97 + (i % 26)).repeat(bytes);
  return s.substring(0, bytes);
}

function digest(): u64 {
  let h: u64 = 1469598103934665603;
  for (let i = 0; i < notes.length; i++) {
    const s = notes[i];
    for (let j = 0; j < s.length; j++) h = (h ^ <u64>s.charCodeAt(j)) * 1099511628211;
  }
  return h;
}

export function handle(len: i32): i64 {
  const text = requestText(len);
  if (text === null) return respond("ERR request length");
  const words = text.trim().split(" ");
  const cmd = words[0];
  if (cmd == "ADD" && words.length == 3) {
    const n = I32.parseInt(words[1]);
    const bytes = I32.parseInt(words[2]);
    if (n < 0 || n > 1000000 || bytes < 1 || bytes > 65536) return respond("ERR usage: ADD <n> <bytes>");
    for (let i = 0; i < n; i++) notes.push(note(notes.length, bytes));
    return respond("OK");
  }
  if (cmd == "CLEAR") {
    notes = new Array<string>();
    return respond("OK");
  }
  if (cmd == "COUNT") return respond(notes.length.toString());
  if (cmd == "DIGEST") return respond(digest().toString(16));
  return respond("ERR unknown command");
}
