// Ballooning a command guest (seed 004's flow, with the guest's cooperation). A command's
// allocator may be mid-operation at any safe point, so the host calls the balloon SDK's exports
// only where the guest says it may: inside its `understudy.balloon_poll` hypercall, which the SDK's
// us_balloon_poll() makes from the program's main loop (guests/sdk/understudy_balloon.h).
//
// One snapshot, as the guest sees it:
//   poll #1   the host asks the performance monitor, inflates the balloon (nested calls, bounded),
//             asks for a stop at the next safe point, and answers "call again" (1);
//   poll #2   the guest stops before the call runs: the snapshot is written with the balloon full;
//             then the call runs: the host deflates and answers "done" (0).
// A guest that does not poll within the policy's wait is snapshotted without the balloon at the
// next safe point (exclusion alone), exactly as a guest without the SDK.
import type { Guest, Hypercalls } from '../guest/guest.js';
import { assert } from '../util/assert.js';
import { BALLOON_WAIT_MS_DEFAULT, balloonTarget, deflate, hasBalloonExports, inflate, readStats, type BalloonPolicy, type InflateResult } from './manager.js';

/** What balloon_poll answers: nothing to do (return to the program), or call again at once. */
export const PollAnswer = { done: 0, again: 1 } as const;

type Phase =
  /** Nothing asked. */
  | 'idle'
  /** A snapshot wants the balloon; the next poll inflates. */
  | 'asked'
  /** Inflated; the snapshot runs at the next safe point. */
  | 'inflated'
  /** The snapshot was written (or a restore happened with the balloon full); the next poll deflates. */
  | 'deflate';

interface Pending<T> {
  write: () => T;
  resolve: (v: { result: T; inflate: InflateResult | null }) => void;
  reject: (e: unknown) => void;
  /** Fires when the guest has not polled within the policy's wait. */
  timer: NodeJS.Timeout;
  policy: BalloonPolicy;
}

class CommandBalloon {
  phase: Phase = 'idle';
  polls = 0;
  pending: Pending<unknown> | null = null;

  constructor(private readonly guest: Guest) {}

  poll(): number {
    this.polls++;
    switch (this.phase) {
      case 'idle':
      case 'inflated': // the stop is requested; the guest reaches it at its next safe point
        return PollAnswer.done;
      case 'deflate':
        this.phase = 'idle';
        deflate(this.guest);
        return PollAnswer.done;
      case 'asked': {
        const p = this.pending;
        assert(p, 'asked with a pending snapshot');
        clearTimeout(p.timer);
        const stats = readStats(this.guest)!;
        const inflated = inflate(this.guest, balloonTarget(stats, p.policy), p.policy);
        this.phase = 'inflated';
        this.snapshotAtSafePoint(p, inflated);
        return PollAnswer.again;
      }
    }
  }

  /** Asks for a ballooned snapshot; `write` runs at a safe point (inflated, or after the wait without). */
  request<T>(write: () => T, policy: BalloonPolicy): Promise<{ result: T; inflate: InflateResult | null }> {
    assert(this.pending === null, 'one ballooned snapshot at a time');
    return new Promise((resolve, reject) => {
      const p: Pending<T> = {
        write,
        resolve,
        reject,
        policy,
        // The wait is bounded: past it the snapshot is written at the next safe point, balloon or not.
        timer: setTimeout(() => {
          if (this.pending === (p as Pending<unknown>) && this.phase === 'asked') this.snapshotAtSafePoint(p as Pending<unknown>, null);
        }, policy.waitMsMax ?? BALLOON_WAIT_MS_DEFAULT),
      };
      this.pending = p as Pending<unknown>;
      this.phase = 'asked';
    });
  }

  private snapshotAtSafePoint(p: Pending<unknown>, inflated: InflateResult | null): void {
    this.guest
      .atSafePoint(() => this.snapshot(inflated))
      .catch((e: unknown) => {
        // The guest ended before a safe point: no snapshot.
        if (this.pending !== p) return;
        this.pending = null;
        this.phase = 'idle';
        p.reject(e);
      });
  }

  private snapshot(inflated: InflateResult | null): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    // Deflated at the next poll when the balloon was inflated; nothing to give back otherwise.
    this.phase = inflated ? 'deflate' : 'idle';
    try {
      p.resolve({ result: p.write(), inflate: inflated });
    } catch (e) {
      p.reject(e);
    }
  }
}

const states = new WeakMap<Guest, CommandBalloon>();

function stateOf(guest: Guest): CommandBalloon {
  let s = states.get(guest);
  if (!s) {
    s = new CommandBalloon(guest);
    states.set(guest, s);
  }
  return s;
}

/** True when `guest` is a command with the balloon SDK that imports the poll hypercall. */
export function hasPollingBalloon(guest: Guest): boolean {
  return guest.kind === 'command' && hasBalloonExports(guest) && guest.importsHypercall('balloon_poll');
}

/** True once the guest has polled (a guest that never polls is not waited for). */
export function pollsBalloon(guest: Guest): boolean {
  return hasPollingBalloon(guest) && stateOf(guest).polls > 0;
}

/** Writes a snapshot of a polling command guest with its balloon inflated (see the top of this file). */
export function requestBalloonedSnapshot<T>(guest: Guest, write: () => T, policy: BalloonPolicy = {}): Promise<{ result: T; inflate: InflateResult | null }> {
  return stateOf(guest).request(write, policy);
}

/** After a restore of a command whose snapshot had the balloon full: its next poll deflates. */
export function deflateAtNextPoll(guest: Guest): void {
  if (hasPollingBalloon(guest)) stateOf(guest).phase = 'deflate';
}

export const BALLOON_POLL_HYPERCALLS: Hypercalls = {
  balloon_poll: (guest) => (guest.kind === 'command' && hasBalloonExports(guest) ? stateOf(guest).poll() : PollAnswer.done),
};
