// Stable error codes of src/wasi (see src/errors.ts). Only add, never rename.
export type WasiErrorCode = 'ERR_WASI_STATE' | 'ERR_WASI_PREOPEN';
