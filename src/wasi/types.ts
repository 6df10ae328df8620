// The device's public types: what the guest runtime hands in and catches.

export type OutputStream = 'stdout' | 'stderr';

/** The one place guest output leaves the device. `bytes` is a fresh copy the sink may keep. */
export interface OutputSink {
  write(stream: OutputStream, bytes: Uint8Array): void;
}

/** Where stdin comes from. */
export interface InputSource {
  /** Non-blocking: bytes available now (1..maxBytes), null at end of input, or 'empty' when none yet. */
  read(maxBytes: number): Uint8Array | null | 'empty';
  /** Resolves when read() would no longer return 'empty'. */
  whenReadable(): Promise<void>;
  /** Blocking read for guests that cannot suspend (null at end). */
  readSync(maxBytes: number): Uint8Array | null;
}

/**
 * Time as the device sees it, a parameter so a test or simulator can drive
 * it. Optional everywhere: the default is the host's clocks.
 */
export interface WasiClock {
  /** Wall-clock time, ns since 1970. */
  realtimeNs(): bigint;
  /** Host monotonic time, ns from an arbitrary origin (the device adds its own offset). */
  monotonicNs(): bigint;
  /** CPU time used by the host process, ns. */
  cputimeNs(): bigint;
  /** Blocks the thread for `ms` milliseconds (a fake clock advances instead). */
  sleepSync(ms: number): void;
}

export interface PreopenConfig {
  guestPath: string;
  hostPath?: string;
}

export interface WasiConfig {
  args: string[];
  env: [string, string][];
  /** Directories the guest sees as preopens, in order (fd 3, 4, ...). hostPath, when given, is copied recursively into the in-memory FS at create(). */
  preopens: PreopenConfig[];
  /** Absent: stdin is empty (EOF). */
  stdin?: InputSource;
  output: OutputSink;
  /** Absent: the host's clocks. */
  clock?: WasiClock;
}

export interface WasiHostEnv {
  /** Must continue the input at byte `stdinBytesConsumed` of the saved device (bytes read ahead but not handed to the guest are not saved). */
  stdin?: InputSource;
  output: OutputSink;
  clock?: WasiClock;
}

/** Thrown from proc_exit; the runtime catches it. */
export class ProcExit extends Error {
  readonly exitCode: number;
  constructor(exitCode: number) {
    super(`guest called proc_exit(${exitCode})`);
    this.name = 'ProcExit';
    this.exitCode = exitCode;
  }
}
