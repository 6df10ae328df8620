// The understudy package: what programs import.
export { UnderstudyError, isUnderstudyError, type ErrorCode } from './errors.js';
export { loadGuestModule, type GuestModule } from './guest/module.js';
export { Guest, type GuestOptions, type GuestStatus } from './guest/guest.js';
export { WasiDevice, ProcExit, type WasiConfig, type InputSource, type OutputSink } from './wasi/index.js';
export { OutputGate, CollectedOutput, processOutput, type OutputTarget } from './output/gate.js';
export { BytesInput, StreamInput } from './io/input.js';
export { writeFullCheckpoint, openCheckpoint, restoreFromCheckpoint, type CheckpointMeta } from './checkpoint/snapshot.js';
export { Checkpointer, listCheckpoints } from './checkpoint/checkpointer.js';
export { startSession, restoreSession } from './runtime/session.js';
export { createTracker, probeTrackers, type DirtyTracker, type TrackerKind } from './track/tracker.js';
export * as model from './model/index.js';
export {
  criticalArea,
  fetchCdaAreas,
  startCdaBackupProcess,
  CriticalAreaService,
  CdaBackupServer,
  GuestCda,
  readCdaDir,
  CDA_MODES,
  CdaAnswer,
  type CdaMode,
  type CdaOptions,
  type CdaTargetSpec,
  type CommitStats,
  type CdaServiceStats,
  type CommittedArea,
  type CdaBackupProcess,
} from './cda/index.js';
