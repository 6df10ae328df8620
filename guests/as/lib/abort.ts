// The `abort` AssemblyScript calls on a failed assertion, a bad cast or an
// out-of-bounds access. Built with `--use abort=guests/as/lib/abort/abortToStderr`
// (scripts/build-guests.mjs), so guests do not import env.abort: the message
// goes to stderr through WASI and the guest traps.

import { STDERR, writeBytes } from "./wasi";

// The message is copied into a static buffer, never allocated: abort may be
// running because allocation failed.
const MESSAGE_BYTES_MAX: i32 = 512;
const MESSAGE = memory.data(MESSAGE_BYTES_MAX);

let used: i32 = 0;

// Appends one byte, keeping the last one free for the newline.
function putByte(b: u8): void {
  if (used < MESSAGE_BYTES_MAX - 1) {
    store<u8>(MESSAGE + <usize>used, b);
    used++;
  }
}

function put(text: string | null): void {
  if (text === null) text = "?";
  for (let i = 0; i < text.length && used < MESSAGE_BYTES_MAX - 1; i++) {
    const c = text.charCodeAt(i);
    putByte(c < 0x20 || c > 0x7e ? 0x3f : <u8>c);
  }
}

function putU32(v: u32): void {
  let scale: u32 = 1;
  while (v / scale >= 10) scale *= 10;
  for (; scale > 0; scale /= 10) putByte(<u8>(0x30 + (v / scale) % 10));
}

export function abortToStderr(message: string | null, fileName: string | null, line: u32, column: u32): void {
  used = 0;
  put("abort: ");
  put(message);
  put(" at ");
  put(fileName);
  put(":");
  putU32(line);
  put(":");
  putU32(column);
  store<u8>(MESSAGE + <usize>used, 0x0a);
  used++;
  writeBytes(STDERR, MESSAGE, <usize>used);
  unreachable();
}
