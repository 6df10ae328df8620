// Stable error codes of src/track (see src/errors.ts). Only add, never rename.
export type TrackErrorCode = 'ERR_TRACKER_UNSUPPORTED' | 'ERR_TRACKER';
