// One error class for the whole product, with a stable machine-readable code.
// Codes are part of the public interface: never rename one, only add. Each
// subsystem owns the list of its own codes in its codes.ts.
import type { WasiErrorCode } from './wasi/codes.js';
import type { TrackErrorCode } from './track/codes.js';
import type { ModelErrorCode } from './model/codes.js';
import type { ReplicateErrorCode } from './replicate/codes.js';
import type { RollbackErrorCode } from './rollback/codes.js';
import type { CdaErrorCode } from './cda/codes.js';
import type { WorkloadErrorCode } from './cda/workloads/codes.js';

export type CoreErrorCode =
  // checkpoint files
  | 'ERR_CKPT_TRUNCATED'
  | 'ERR_CKPT_MAGIC'
  | 'ERR_CKPT_VERSION'
  | 'ERR_CKPT_CHECKSUM'
  | 'ERR_CKPT_MALFORMED'
  | 'ERR_CKPT_TOO_LARGE'
  | 'ERR_CKPT_MODULE_MISMATCH'
  | 'ERR_CKPT_IO'
  // modules and guests
  | 'ERR_MODULE_INVALID'
  | 'ERR_MODULE_UNSUPPORTED'
  | 'ERR_GUEST_TRAP'
  | 'ERR_GUEST_STATE'
  | 'ERR_GUEST_EXPORT'
  | 'ERR_GUEST_NOT_AT_SAFE_POINT'
  | 'ERR_STACK_OVERFLOW'
  | 'ERR_BALLOON_STATS'
  // command line and control
  | 'ERR_USAGE'
  | 'ERR_CONTROL'
  // native addon
  | 'ERR_NATIVE';

export type ErrorCode = CoreErrorCode | WasiErrorCode | TrackErrorCode | ModelErrorCode | ReplicateErrorCode | RollbackErrorCode | CdaErrorCode | WorkloadErrorCode;

export class UnderstudyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnderstudyError';
    this.code = code;
  }
}

export function isUnderstudyError(e: unknown, code?: ErrorCode): e is UnderstudyError {
  return e instanceof UnderstudyError && (code === undefined || e.code === code);
}
