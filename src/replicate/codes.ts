// Stable error codes of src/replicate (see src/errors.ts). Only add, never rename.
// Every code answers untrusted input (a frame off the wire, a message, a delta)
// or a configuration mistake; invariants of our own code are asserts instead.
import { UnderstudyError } from '../errors.js';

export type ReplicateErrorCode =
  | 'ERR_REPL_FRAME_TRUNCATED' // fewer bytes than the header says (or than a header)
  | 'ERR_REPL_FRAME_MAGIC' // not a replication frame
  | 'ERR_REPL_FRAME_VERSION' // a protocol version this build does not speak
  | 'ERR_REPL_FRAME_MALFORMED' // a header field out of its domain (flags, type, a counter past 2^53, trailing bytes)
  | 'ERR_REPL_FRAME_TOO_LARGE' // the payload length is past FRAME_PAYLOAD_BYTES_MAX
  | 'ERR_REPL_FRAME_CHECKSUM' // the payload CRC-32C does not match
  | 'ERR_REPL_AUTH' // the AEAD tag does not verify: forged frame, wrong key, or tampering
  | 'ERR_REPL_REPLAY' // the frame's counter was already seen (or is older than the replay window)
  | 'ERR_REPL_PEER' // a frame from a node id that is not a configured peer
  | 'ERR_REPL_MESSAGE' // the payload is not a well-formed message of its type
  | 'ERR_REPL_DELTA' // an epoch delta or sync page that cannot be applied to the replica
  | 'ERR_REPL_CONFIG'; // a configuration value out of its domain (key length, limits)

export function replicateError(code: ReplicateErrorCode, message: string, options?: { cause?: unknown }): UnderstudyError {
  return new UnderstudyError(code, message, options);
}

export function isReplicateError(e: unknown, code?: ReplicateErrorCode): e is UnderstudyError {
  return e instanceof UnderstudyError && (code === undefined || e.code === code);
}
