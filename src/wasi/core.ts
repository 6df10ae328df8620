// Everything a WASI device holds, in one place the syscall groups share.
// The device (device.ts) owns one Core; persist.ts saves and rebuilds it.
import { assert } from '../util/assert.js';
import type { DeviceClocks } from './clocks.js';
import type { FdTable } from './fd-table.js';
import { GuestMemory, utf8Encoder } from './memory.js';
import type { MemFs } from './memfs.js';
import type { Stdin } from './stdin.js';
import type { OutputSink } from './types.js';

export interface Preopen {
  guestPath: string;
  /** Root directory of this preopen's tree; pinned for the device's life. */
  ino: number;
}

/**
 * A poll_oneoff that found nothing ready and asked the runtime to wait. Its
 * clock deadlines are fixed at the first call so the retry (same arguments,
 * same subscription bytes) does not restart a relative timeout.
 */
export interface PendingPoll {
  inPtr: number;
  outPtr: number;
  nsubs: number;
  neventsPtr: number;
  subs: Uint8Array;
  /** Per subscription: absolute deadline on its clock, or null (fd subscriptions, bad clock ids). */
  deadlinesNs: (bigint | null)[];
}

export interface CoreParts {
  args: string[];
  env: [string, string][];
  fs: MemFs;
  fds: FdTable;
  preopens: Preopen[];
  clocks: DeviceClocks;
  stdin: Stdin;
  output: OutputSink;
  restoreGeneration: number;
  pendingPoll: PendingPoll | null;
}

export class Core {
  readonly args: string[];
  readonly env: [string, string][];
  /** args and "KEY=VALUE" strings, UTF-8 with their NUL, as the guest receives them. */
  readonly argsEncoded: Uint8Array[];
  readonly envEncoded: Uint8Array[];
  readonly fs: MemFs;
  readonly fds: FdTable;
  readonly preopens: Preopen[];
  readonly clocks: DeviceClocks;
  readonly stdin: Stdin;
  readonly output: OutputSink;
  readonly restoreGeneration: number;
  pendingPoll: PendingPoll | null;
  canSuspend = false;
  wait: Promise<void> | null = null;
  memory: GuestMemory | null = null;

  constructor(p: CoreParts) {
    this.args = p.args;
    this.env = p.env;
    this.argsEncoded = p.args.map((a) => utf8Encoder.encode(a + '\0'));
    this.envEncoded = p.env.map(([k, v]) => utf8Encoder.encode(`${k}=${v}\0`));
    this.fs = p.fs;
    this.fds = p.fds;
    this.preopens = p.preopens;
    this.clocks = p.clocks;
    this.stdin = p.stdin;
    this.output = p.output;
    this.restoreGeneration = p.restoreGeneration;
    this.pendingPoll = p.pendingPoll;
  }

  mem(): GuestMemory {
    assert(this.memory !== null, 'bindMemory() before the guest calls an import');
    return this.memory;
  }

  /** Records that the current call did not happen and must be retried after `p`. */
  recordWait(p: Promise<void>): void {
    assert(this.canSuspend, 'waits are recorded only when the guest can suspend');
    assert(this.wait === null, 'one wait per call');
    this.wait = p;
  }
}
