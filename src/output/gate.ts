// The one place guest output leaves understudy. Every byte a guest writes to
// stdout or stderr passes through an OutputGate; replication will hold it here
// until the epoch that produced it is acknowledged. The gate counts what it
// has released, so a checkpoint records how much output precedes it and a
// restored run continues the stream exactly there.
import type { OutputSink, OutputStream } from '../wasi/index.js';
import type { PlainObject } from '../util/plain.js';
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';

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

/** Bound of output held back while it may still be rolled back; past it the guest is told ERR_OUTPUT_HELD_FULL. */
export const HELD_OUTPUT_BYTES_MAX = 64 * 1024 * 1024;

export class OutputGate implements OutputSink {
  private stdoutBytes = 0;
  private stderrBytes = 0;
  /** Holding (in-memory rollback): writes wait here until release(); held[i] is write number heldBase + i. */
  private holding = false;
  private held: { stream: OutputStream; bytes: Uint8Array }[] = [];
  private heldBase = 0;
  private heldBytes = 0;
  /** Stream positions of writes let out since the start or the last restart, and the furthest
   * position ever let out: after a restart, a replay's writes before it are not let out twice. */
  private emitted = { stdout: 0, stderr: 0 };
  private emittedMax = { stdout: 0, stderr: 0 };

  constructor(private readonly target: OutputTarget = processOutput, state?: OutputGateState) {
    if (state) {
      this.stdoutBytes = state.stdoutBytes;
      this.stderrBytes = state.stderrBytes;
    }
  }

  write(stream: OutputStream, bytes: Uint8Array): void {
    if (stream === 'stdout') this.stdoutBytes += bytes.length;
    else this.stderrBytes += bytes.length;
    if (this.holding) {
      if (this.heldBytes + bytes.length > HELD_OUTPUT_BYTES_MAX) {
        throw new UnderstudyError('ERR_OUTPUT_HELD_FULL', `more than ${HELD_OUTPUT_BYTES_MAX} bytes of output wait for their epochs to commit`);
      }
      this.held.push({ stream, bytes });
      this.heldBytes += bytes.length;
      return;
    }
    this.emit(stream, bytes);
  }

  private emit(stream: OutputStream, bytes: Uint8Array): void {
    const start = this.emitted[stream];
    const end = start + bytes.length;
    this.emitted[stream] = end;
    if (end <= this.emittedMax[stream]) return;
    const skip = Math.max(0, this.emittedMax[stream] - start);
    this.emittedMax[stream] = end;
    this.target.write(stream, skip ? bytes.subarray(skip) : bytes);
  }

  save(): OutputGateState {
    return { stdoutBytes: this.stdoutBytes, stderrBytes: this.stderrBytes };
  }

  // ---- holding, for in-memory rollback (src/rollback/) ----

  /** From now on output is held until release(). */
  hold(): void {
    this.holding = true;
  }

  /** The number of the next write: a position to release through or discard from. */
  mark(): number {
    return this.heldBase + this.held.length;
  }

  /** Lets out every held write before `mark` (its epoch can no longer be rolled back). */
  release(mark: number): void {
    assert(mark >= this.heldBase && mark <= this.mark(), 'release mark out of range');
    const n = mark - this.heldBase;
    for (const w of this.held.splice(0, n)) {
      this.heldBytes -= w.bytes.length;
      this.emit(w.stream, w.bytes);
    }
    this.heldBase = mark;
  }

  /** Rollback: drops held writes from `mark` on and puts the counters back to `state`. Released output cannot be taken back. */
  rollback(mark: number, state: OutputGateState): void {
    assert(mark >= this.heldBase && mark <= this.mark(), 'rollback mark behind released output');
    for (const w of this.held.splice(mark - this.heldBase)) this.heldBytes -= w.bytes.length;
    this.stdoutBytes = state.stdoutBytes;
    this.stderrBytes = state.stderrBytes;
  }

  /** Restart from the beginning: everything held is dropped, and output already let out is not let out again when the (deterministic) replay writes it. */
  restart(): void {
    this.held = [];
    this.heldBytes = 0;
    this.heldBase = this.mark();
    this.emitted = { stdout: 0, stderr: 0 };
    this.stdoutBytes = 0;
    this.stderrBytes = 0;
  }

  /** Bytes let out, per stream (over the gate's life, across restarts). */
  releasedBytes(): { stdout: number; stderr: number } {
    return { ...this.emittedMax };
  }

  /** Bytes held back now. */
  get heldByteCount(): number {
    return this.heldBytes;
  }
}
