// The understudy reactor handler ABI for AssemblyScript guests; the C
// version, with the full description, is guests/sdk/understudy.h.
//
//   us_request_buffer(len: i32) -> i32   a guest-owned buffer of >= len bytes
//                                        for the request (0 if len is negative
//                                        or above REQUEST_BYTES_MAX)
//   <handler>(len: i32) -> i64           ((u64)respPtr << 32) | respLen
//
// An entry file re-exports the buffer and defines its handlers:
//
//   export { us_request_buffer } from "../sdk/as/understudy";
//   import { requestText, respond } from "../sdk/as/understudy";
//   export function handle(len: i32): i64 {
//     const text = requestText(len);
//     if (text === null) return respond("ERR request length");
//     return respond("OK");
//   }
//
// Both buffers live outside the garbage-collected heap (heap.alloc), so the
// collector never moves or frees them. Running out of memory aborts (traps),
// where the C helpers answer 0 or an error.
//
// The import module "understudy" is reserved for hypercalls (none yet).

// Largest request accepted: bounds what the host can make the guest allocate.
export const REQUEST_BYTES_MAX: i32 = 64 << 20;
// Largest response built; a larger one is a guest bug and aborts.
export const RESPONSE_BYTES_MAX: i32 = 64 << 20;
const BUFFER_BYTES_MIN: i32 = 256;

let requestPtr: usize = 0;
let requestCap: i32 = 0;
let responsePtr: usize = 0;
let responseCap: i32 = 0;

function capacityFor(need: i32): i32 {
  let cap = BUFFER_BYTES_MIN;
  while (cap < need) cap <<= 1;
  return cap;
}

export function us_request_buffer(len: i32): i32 {
  if (len < 0 || len > REQUEST_BYTES_MAX) return 0;
  if (requestPtr == 0 || len > requestCap) {
    requestCap = capacityFor(len);
    requestPtr = requestPtr == 0 ? heap.alloc(<usize>requestCap) : heap.realloc(requestPtr, <usize>requestCap);
  }
  return <i32>requestPtr;
}

// The request's bytes as a string (UTF-8), or null if `len` does not fit
// the request buffer.
export function requestText(len: i32): string | null {
  if (len < 0 || len > requestCap) return null;
  return String.UTF8.decodeUnsafe(requestPtr, <usize>len);
}

// The request's bytes, copied.
export function requestBytes(len: i32): Uint8Array | null {
  if (len < 0 || len > requestCap) return null;
  const bytes = new Uint8Array(len);
  memory.copy(bytes.dataStart, requestPtr, <usize>len);
  return bytes;
}

function reserveResponse(need: i32): void {
  assert(need >= 0 && need <= RESPONSE_BYTES_MAX, "response too large");
  if (responsePtr == 0 || need > responseCap) {
    responseCap = capacityFor(need);
    responsePtr = responsePtr == 0 ? heap.alloc(<usize>responseCap) : heap.realloc(responsePtr, <usize>responseCap);
  }
}

function pack(len: i32): i64 {
  return (<i64>(<u32>responsePtr) << 32) | <i64>(<u32>len);
}

// Sets the response to `text` (UTF-8) and returns the handler's result.
export function respond(text: string): i64 {
  const len = String.UTF8.byteLength(text);
  reserveResponse(len);
  const written = String.UTF8.encodeUnsafe(changetype<usize>(text), text.length, responsePtr);
  assert(<i32>written == len);
  return pack(len);
}

// Sets the response to `len` bytes at `ptr` and returns the handler's result.
export function respondBytes(ptr: usize, len: i32): i64 {
  reserveResponse(len);
  memory.copy(responsePtr, ptr, <usize>len);
  return pack(len);
}
