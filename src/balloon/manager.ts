// The checkpoint manager's side of ballooning (seed 004, Figure 1): before a disk snapshot ask
// the guest's performance monitor for its usage, set the balloon's target to the allocator's free
// pages, inflate (bounded in pages per step and in time), snapshot, deflate.
//
// A reactor is asked between calls: its wasm stack is empty and its allocator idle, so the host
// calls the SDK's exports. A command is asked only where it says it may be: at its calls to the
// SDK's us_balloon_poll (src/balloon/poll.ts), where the host calls the same exports on top of the
// guest's stack. A command stopped at any other safe point may be inside its allocator. Guests
// without the SDK get exclusion without help.
import type { Guest } from '../guest/guest.js';
import { UnderstudyError } from '../errors.js';
import { PAGE_BYTES } from '../native.js';
import { writeFullCheckpoint, type CheckpointSource } from '../checkpoint/snapshot.js';
import type { CheckpointMeta } from '../checkpoint/snapshot.js';
import { balloonState } from './hypercalls.js';

/** The guest's performance monitor (guests/sdk/understudy_balloon.h, us_balloon_stats), in 4 KiB pages. */
export interface GuestMemoryStats {
  totalPages: number;
  heapPages: number;
  inUsePages: number;
  freePages: number;
  balloonPages: number;
  reportedPages: number;
}

export interface BalloonPolicy {
  /** Free pages left to the allocator (default 0: the guest does not run while the snapshot is written). */
  reservePages?: number;
  /** Pages the guest may add per inflate call (default 16,384 = 64 MiB): bounds one call into the guest. */
  stepPagesMax?: number;
  /** How long the manager keeps inflating before it snapshots with what it has (default 400 ms, seed 004's budget). */
  waitMsMax?: number;
}

export const BALLOON_STEP_PAGES_DEFAULT = 16_384;
export const BALLOON_WAIT_MS_DEFAULT = 400;
const STATS_WORDS = 8;
const STATS_VERSION = 1;
/** Inflate calls at most, whatever the clock says (a guest that adds a page per call cannot keep the manager). */
const INFLATE_CALLS_MAX = 4096;

const EXPORTS = ['us_balloon_stats', 'us_balloon_inflate', 'us_balloon_deflate'] as const;

/** True when the guest carries the balloon SDK's exports. */
export function hasBalloonExports(guest: Guest): boolean {
  return EXPORTS.every((e) => typeof guest.exports[e] === 'function');
}

/** True when the guest carries the balloon SDK and can be asked now (a reactor between calls). */
export function hasBalloon(guest: Guest): boolean {
  return guest.kind === 'reactor' && hasBalloonExports(guest);
}

/** Calls an SDK export: a reactor between calls, a command from inside its us_balloon_poll. */
function callSdk(guest: Guest, name: (typeof EXPORTS)[number], ...args: number[]): number {
  return Number(guest.kind === 'reactor' ? guest.call(name, ...args) : guest.callNested(name, ...args));
}

/** Asks the guest's performance monitor; null for a guest without the SDK. */
export function readStats(guest: Guest): GuestMemoryStats | null {
  if (!hasBalloonExports(guest)) return null;
  const ptr = callSdk(guest, 'us_balloon_stats') >>> 0;
  const bytes = guest.memory.buffer.byteLength;
  if (ptr % 4 || ptr + STATS_WORDS * 4 > bytes) throw new UnderstudyError('ERR_BALLOON_STATS', `the guest's statistics [${ptr}, +${STATS_WORDS * 4}) lie outside memory`);
  const w = new Uint32Array(guest.memory.buffer, ptr, STATS_WORDS);
  if (w[0] !== STATS_VERSION) throw new UnderstudyError('ERR_BALLOON_STATS', `the guest's statistics are version ${w[0]}, not ${STATS_VERSION}`);
  const stats = { totalPages: w[1]!, heapPages: w[2]!, inUsePages: w[3]!, freePages: w[4]!, balloonPages: w[5]!, reportedPages: w[6]! };
  const memoryPages = bytes / PAGE_BYTES;
  if (stats.totalPages !== memoryPages || stats.heapPages > memoryPages || stats.inUsePages > memoryPages || stats.freePages + stats.balloonPages > stats.heapPages)
    throw new UnderstudyError('ERR_BALLOON_STATS', `the guest's statistics do not add up: ${JSON.stringify(stats)} of ${memoryPages} pages`);
  return stats;
}

/** The balloon's target: every free page of the allocator but the reserve. */
export function balloonTarget(stats: GuestMemoryStats, policy: BalloonPolicy = {}): number {
  return Math.max(0, stats.balloonPages + stats.freePages - (policy.reservePages ?? 0));
}

export interface InflateResult {
  targetPages: number;
  balloonPages: number;
  calls: number;
  ms: number;
  /** The deadline (or the call bound) passed before the target was met. */
  timedOut: boolean;
  /** The host refused a hand-over (a guest bug); the balloon stays as it is. */
  refused: boolean;
}

/** Inflates towards `targetPages`, `stepPagesMax` pages per call, until met, stalled or out of time. */
export function inflate(guest: Guest, targetPages: number, policy: BalloonPolicy = {}): InflateResult {
  const step = policy.stepPagesMax ?? BALLOON_STEP_PAGES_DEFAULT;
  const deadline = performance.now() + (policy.waitMsMax ?? BALLOON_WAIT_MS_DEFAULT);
  const t0 = performance.now();
  let pages = balloonState(guest).balloonPages;
  let calls = 0;
  let refused = false;
  while (pages < targetPages && calls < INFLATE_CALLS_MAX) {
    const got = callSdk(guest, 'us_balloon_inflate', targetPages, step);
    calls++;
    if (got < 0) {
      refused = true;
      break;
    }
    const stalled = got <= pages;
    pages = got;
    if (stalled || performance.now() >= deadline) break;
  }
  return { targetPages, balloonPages: pages, calls, ms: performance.now() - t0, timedOut: pages < targetPages && !refused && (calls >= INFLATE_CALLS_MAX || performance.now() >= deadline), refused };
}

/** Gives every balloon page back to the guest's allocator. */
export function deflate(guest: Guest): { releasedPages: number; ms: number } {
  const t0 = performance.now();
  const releasedPages = callSdk(guest, 'us_balloon_deflate');
  return { releasedPages, ms: performance.now() - t0 };
}

export interface BalloonCheckpoint {
  fileBytes: number;
  /** Null when the guest has no balloon (exclusion alone). */
  stats: GuestMemoryStats | null;
  inflate: InflateResult | null;
  deflateMs: number;
  snapshotMs: number;
  /** Asking + inflating + deflating: the cost of ballooning itself. */
  balloonMs: number;
}

/**
 * Seed 004's flow for one disk snapshot, for a guest already stopped at a safe point:
 * usage → target → inflate (bounded) → snapshot → deflate. A guest without the SDK is
 * snapshotted as it is (exclusion alone).
 */
export function writeBalloonedCheckpoint(filePath: string, src: CheckpointSource, policy: BalloonPolicy = {}): BalloonCheckpoint & { meta: CheckpointMeta } {
  const { guest } = src;
  if (!hasBalloon(guest)) {
    const w = writeFullCheckpoint(filePath, src);
    return { meta: w.meta, fileBytes: w.fileBytes, stats: null, inflate: null, deflateMs: 0, snapshotMs: w.writeMs, balloonMs: 0 };
  }
  const t0 = performance.now();
  const stats = readStats(guest)!;
  const inflated = inflate(guest, balloonTarget(stats, policy), policy);
  const askMs = performance.now() - t0;
  let w: ReturnType<typeof writeFullCheckpoint>;
  let deflateMs = 0;
  try {
    w = writeFullCheckpoint(filePath, src);
  } finally {
    deflateMs = deflate(guest).ms;
  }
  return { meta: w.meta, fileBytes: w.fileBytes, stats, inflate: inflated, deflateMs, snapshotMs: w.writeMs, balloonMs: askMs + deflateMs };
}

/** The same flow at the guest's next safe point. */
export async function checkpointWithBalloon(filePath: string, src: CheckpointSource, policy: BalloonPolicy = {}): Promise<BalloonCheckpoint> {
  return src.guest.atSafePoint(() => writeBalloonedCheckpoint(filePath, src, policy));
}

/** After a restore: the snapshot was taken with the balloon inflated, so the guest's list still holds
 * those chunks (their pages read as zero). Deflating returns them to its allocator: the guest has its
 * whole configured memory again. A guest without the SDK is left alone. */
export function deflateAfterRestore(guest: Guest): number {
  if (!hasBalloon(guest)) return 0;
  return deflate(guest).releasedPages;
}
