// Stable error codes of src/track (see src/errors.ts). Only add, never rename.
export type TrackErrorCode =
  | 'ERR_TRACKER_UNSUPPORTED' // this machine lacks what the tracker needs (the message says what)
  | 'ERR_TRACKER' // a tracking syscall failed unexpectedly
  | 'ERR_TRACKER_DISPOSED' // the tracker was used after dispose()
  | 'ERR_TRACKER_BUSY' // the memory is already tracked by another kernel tracker
  | 'ERR_TRACKER_MEMORY' // the memory cannot be tracked (no pages, moved, misaligned)
  | 'ERR_TRACKER_PREIMAGES_INCOMPLETE' // more pages were written than the pre-image store holds
  | 'ERR_TRACKER_SCAN'; // a collect scan (full image while the guest runs) failed or was stopped
