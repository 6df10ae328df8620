// Stable error codes of src/wasi (see src/errors.ts). Only add, never rename.
export type WasiErrorCode =
  /** A saved device state that cannot be restored (wrong shape, type, bound or structure). */
  | 'ERR_WASI_STATE'
  /** A preopen that cannot be set up (bad guest path, host path missing or too large for the memfs). */
  | 'ERR_WASI_PREOPEN'
  /** A WasiConfig that is not usable (args or env with NUL, '=' in a key, too large). */
  | 'ERR_WASI_CONFIG'
  /** A guest path given by the host (readFile, exportTree) that does not name what it must. */
  | 'ERR_WASI_PATH'
  /** Copying a guest tree out to the host failed. */
  | 'ERR_WASI_HOST_IO';
