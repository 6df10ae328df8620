// Public surface of the WASI preview1 device.
export { WasiDevice, PREVIEW1_FUNCTIONS } from './device.js';
export { ProcExit } from './types.js';
export type {
  InputSource, OutputSink, OutputStream, PreopenConfig, WasiClock, WasiConfig, WasiHostEnv,
} from './types.js';
export type { WasiErrorCode } from './codes.js';
export { STATE_VERSION } from './persist.js';
