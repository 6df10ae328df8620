// The status block a collect write leaves for the guest's thread (shared by
// collect.ts and its writer thread, collect-worker.ts, which may not import
// each other: the worker's module runs only inside the worker).
export const COLLECT_STATUS_BYTES = 24;
export const STATUS_WRITING = 0;
export const STATUS_WRITTEN = 1;
export const STATUS_FAILED = 2;

/** flag[0]: STATUS_*; numbers: [fileBytes, writeMs], set before the flag. */
export function statusViews(status: SharedArrayBuffer): { flag: Int32Array; numbers: Float64Array } {
  return { flag: new Int32Array(status, 0, 1), numbers: new Float64Array(status, 8, 2) };
}

