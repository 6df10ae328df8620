// Takes full checkpoints of a guest into a directory: on demand (a control
// request, SIGUSR2) or every `everyMs` at the next safe point, numbering them
// and keeping the newest `keep`.
import fs from 'node:fs';
import path from 'node:path';
import { UnderstudyError } from '../errors.js';
import type { Guest } from '../guest/guest.js';
import type { OutputGate } from '../output/gate.js';
import { assert } from '../util/assert.js';
import { type CheckpointMeta } from './snapshot.js';
import { writeBalloonedCheckpoint } from '../balloon/manager.js';
import { pollsBalloon, requestBalloonedSnapshot } from '../balloon/poll.js';
import type { Progress } from './file.js';

export const CHECKPOINT_SUFFIX = '.usck';
/** Keep at least this many by default: a checkpoint can be found corrupt, and the one before it is the fallback. */
export const KEEP_DEFAULT = 2;

export interface CheckpointerOptions {
  dir: string;
  /** Take one every this many ms (at the next safe point); 0 or undefined: only on demand. */
  everyMs?: number;
  /** How many to keep (oldest deleted first). */
  keep?: number;
  /** First sequence number (a restored run continues the numbering). */
  firstSequence?: number;
  /** Called after each checkpoint is durable. */
  onCheckpoint?: (taken: TakenCheckpoint) => void;
  onProgress?: Progress;
}

export interface TakenCheckpoint {
  path: string;
  meta: CheckpointMeta;
  fileBytes: number;
  /** Time the guest was stopped for it. */
  pauseMs: number;
}

export function checkpointFileName(sequence: number): string {
  return `ckpt-${String(sequence).padStart(6, '0')}${CHECKPOINT_SUFFIX}`;
}

/** Checkpoint files in a directory, oldest first. */
export function listCheckpoints(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^ckpt-\d{6,}\.usck$/.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

export class Checkpointer {
  private sequence: number;
  private lastAtMs = performance.now();
  private readonly keep: number;
  readonly taken: TakenCheckpoint[] = [];

  constructor(
    private readonly guest: Guest,
    private readonly output: OutputGate,
    private readonly options: CheckpointerOptions,
  ) {
    this.sequence = options.firstSequence ?? 1;
    this.keep = options.keep ?? KEEP_DEFAULT;
    if (!Number.isInteger(this.keep) || this.keep < 1) throw new UnderstudyError('ERR_USAGE', '--keep must be a positive integer');
    fs.mkdirSync(options.dir, { recursive: true });
    const every = options.everyMs ?? 0;
    if (every > 0 && guest.kind === 'command') {
      guest.onSafePoint(() => {
        if (this.balloonPending || performance.now() - this.lastAtMs < every) return;
        if (pollsBalloon(guest)) void this.take().catch(() => undefined);
        else this.takeNow();
      });
    }
  }

  /** A command's ballooned snapshot is waiting for the guest's poll. */
  private balloonPending = false;

  /**
   * Takes a checkpoint at the guest's next safe point; a command that polls its balloon SDK is
   * asked to inflate first, at its next poll (src/balloon/poll.ts).
   */
  async take(): Promise<TakenCheckpoint> {
    if (!pollsBalloon(this.guest) || this.balloonPending) return this.guest.atSafePoint(() => this.takeNow());
    this.balloonPending = true;
    try {
      return (await requestBalloonedSnapshot(this.guest, () => this.takeNow())).result;
    } finally {
      this.balloonPending = false;
    }
  }

  /** For reactors driven by a timer: take one if the interval has passed (the caller ensures no call is running). */
  takeIfDue(): TakenCheckpoint | null {
    const every = this.options.everyMs ?? 0;
    if (every <= 0 || performance.now() - this.lastAtMs < every) return null;
    return this.takeNow();
  }

  private takeNow(): TakenCheckpoint {
    assert(this.guest.atRest, 'checkpoint while the guest runs');
    const started = performance.now();
    const file = path.join(this.options.dir, checkpointFileName(this.sequence));
    // A guest with the balloon SDK is asked to give back its free pages first (seed 004); others are written as they are.
    const { meta, fileBytes } = writeBalloonedCheckpoint(file, { guest: this.guest, output: this.output, sequence: this.sequence, onProgress: this.options.onProgress });
    this.sequence++;
    const taken: TakenCheckpoint = { path: file, meta, fileBytes, pauseMs: performance.now() - started };
    this.lastAtMs = performance.now();
    this.taken.push(taken);
    this.prune();
    this.options.onCheckpoint?.(taken);
    return taken;
  }

  private prune(): void {
    const all = listCheckpoints(this.options.dir);
    for (const old of all.slice(0, Math.max(0, all.length - this.keep))) fs.rmSync(old, { force: true });
  }
}
