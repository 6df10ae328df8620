// The one place guest output leaves understudy. Every byte a guest writes to
// stdout or stderr passes through an OutputGate; replication will hold it here
// until the epoch that produced it is acknowledged. The gate counts what it
// has released, so a checkpoint records how much output precedes it and a
// restored run continues the stream exactly there.
import type { OutputSink, OutputStream } from '../wasi/index.js';
import type { PlainObject } from '../util/plain.js';

export interface OutputTarget {
  write(stream: OutputStream, bytes: Uint8Array): void;
}

/** Writes to this process's stdout/stderr (synchronous for files and pipes on Linux). */
export const processOutput: OutputTarget = {
  write(stream, bytes) {
    (stream === 'stdout' ? process.stdout : process.stderr).write(bytes);
  },
};

/** Collects output in memory (tests, the demo). */
export class CollectedOutput implements OutputTarget {
  readonly stdout: Uint8Array[] = [];
  readonly stderr: Uint8Array[] = [];
  write(stream: OutputStream, bytes: Uint8Array): void {
    (stream === 'stdout' ? this.stdout : this.stderr).push(bytes);
  }
  text(stream: OutputStream = 'stdout'): string {
    return Buffer.concat(stream === 'stdout' ? this.stdout : this.stderr).toString('utf8');
  }
}

export interface OutputGateState extends PlainObject {
  stdoutBytes: number;
  stderrBytes: number;
}

export class OutputGate implements OutputSink {
  private stdoutBytes = 0;
  private stderrBytes = 0;

  constructor(private readonly target: OutputTarget = processOutput, state?: OutputGateState) {
    if (state) {
      this.stdoutBytes = state.stdoutBytes;
      this.stderrBytes = state.stderrBytes;
    }
  }

  write(stream: OutputStream, bytes: Uint8Array): void {
    if (stream === 'stdout') this.stdoutBytes += bytes.length;
    else this.stderrBytes += bytes.length;
    this.target.write(stream, bytes);
  }

  save(): OutputGateState {
    return { stdoutBytes: this.stdoutBytes, stderrBytes: this.stderrBytes };
  }
}
