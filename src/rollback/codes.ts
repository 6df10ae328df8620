// Error codes of in-memory rollback and its detectors (stable: add, never rename).
export type RollbackErrorCode =
  | 'ERR_GUEST_HANG' // a handler or epoch ran past the watchdog limit and was stopped
  | 'ERR_GUEST_REPORTED' // the guest reported an error through understudy.report_error
  | 'ERR_GUEST_ASSERTION' // a host-side assertion on guest-visible state failed
  | 'ERR_ROLLBACK_CORRUPT' // a kept checkpoint failed its checksum
  | 'ERR_ROLLBACK_FAILED' // no checkpoint and no restart could recover the guest
  | 'ERR_ROLLBACK_INPUT_LOG_FULL' // more input than the replay log holds arrived since the oldest checkpoint
  | 'ERR_OUTPUT_HELD_FULL'; // more output than the gate holds waits for its epochs to commit
