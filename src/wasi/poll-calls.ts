// poll_oneoff: clock subscriptions (relative or absolute, realtime or
// monotonic) and fd_read / fd_write readiness. Only stdin and the clocks can
// be "not ready": memfs files and stdout/stderr are always ready.
//
// When nothing is ready the call either blocks the thread (canSuspend false)
// or records a wait and leaves its clock deadlines in core.pendingPoll, so
// the retry — possibly in a device restored from a checkpoint taken while
// the guest waited — keeps the original deadline instead of restarting it.
import { assert } from '../util/assert.js';
import {
  CLOCKID_MONOTONIC, CLOCKID_REALTIME, ERRNO_AGAIN, ERRNO_BADF, ERRNO_INVAL, ERRNO_ISDIR, ERRNO_NOTCAPABLE,
  ERRNO_SUCCESS, EVENT, EVENT_SIZE, EVENTRWFLAGS_HANGUP, EVENTTYPE_CLOCK, EVENTTYPE_FD_READ,
  EVENTTYPE_FD_WRITE, RIGHTS_POLL_FD_READWRITE, SUBCLOCKFLAGS_ABSTIME, SUBSCRIPTION, SUBSCRIPTION_SIZE,
} from './constants.js';
import type { Core, PendingPoll } from './core.js';
import { WasiErrno, check } from './errno.js';
import { hasRights } from './fd-table.js';
import { POLL_SLICE_MS, POLL_SUBSCRIPTIONS_MAX, SLEEP_SLICE_MS_MAX, STDIN_READ_BYTES_MAX } from './limits.js';

/** setTimeout's largest delay; a longer wait simply retries and waits again. */
const TIMER_MS_MAX = 2 ** 31 - 1;
/** What fd_write readiness reports as writable bytes (nothing downstream is bounded). */
const WRITABLE_BYTES = 65_536n;

interface Subscription {
  userdata: bigint;
  tag: number;
  clockId: number;
  timeoutNs: bigint;
  flags: number;
  fd: number;
}

interface Event {
  userdata: bigint;
  error: number;
  type: number;
  nbytes: bigint;
  flags: number;
}

function parse(bytes: Uint8Array, nsubs: number): Subscription[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const subs: Subscription[] = [];
  for (let i = 0; i < nsubs; i++) {
    const at = i * SUBSCRIPTION_SIZE;
    subs.push({
      userdata: v.getBigUint64(at + SUBSCRIPTION.userdata, true),
      tag: v.getUint8(at + SUBSCRIPTION.tag),
      clockId: v.getUint32(at + SUBSCRIPTION.clockId, true),
      timeoutNs: v.getBigUint64(at + SUBSCRIPTION.clockTimeout, true),
      flags: v.getUint16(at + SUBSCRIPTION.clockFlags, true),
      fd: v.getUint32(at + SUBSCRIPTION.fd, true),
    });
  }
  return subs;
}

function isPollClock(id: number): boolean {
  return id === CLOCKID_REALTIME || id === CLOCKID_MONOTONIC;
}

/** Absolute deadline of a clock subscription on its own clock; null when the clock id is not one poll supports. */
function deadlineOf(core: Core, s: Subscription): bigint | null {
  if (!isPollClock(s.clockId)) return null;
  if (s.flags & SUBCLOCKFLAGS_ABSTIME) return s.timeoutNs;
  return core.clocks.now(s.clockId) + s.timeoutNs;
}

function samePending(p: PendingPoll, inPtr: number, outPtr: number, nsubs: number, neventsPtr: number, subs: Uint8Array): boolean {
  if (p.inPtr !== inPtr || p.outPtr !== outPtr || p.nsubs !== nsubs || p.neventsPtr !== neventsPtr) return false;
  if (p.subs.length !== subs.length) return false;
  for (let i = 0; i < subs.length; i++) if (p.subs[i] !== subs[i]) return false;
  return true;
}

/** Events for every subscription ready now. Pulls stdin into its read-ahead (not a guest-visible effect). */
function readyEvents(core: Core, subs: Subscription[], deadlines: (bigint | null)[]): Event[] {
  const events: Event[] = [];
  subs.forEach((s, i) => {
    const ev = (error: number, nbytes = 0n, flags = 0): void => {
      events.push({ userdata: s.userdata, error, type: s.tag, nbytes, flags });
    };
    if (s.tag === EVENTTYPE_CLOCK) {
      const d = deadlines[i];
      if (d === null || d === undefined) ev(ERRNO_INVAL);
      else if (core.clocks.now(s.clockId) >= d) ev(ERRNO_SUCCESS);
      return;
    }
    const e = core.fds.entries.get(s.fd);
    if (e === undefined) return ev(ERRNO_BADF);
    if (!hasRights(e, RIGHTS_POLL_FD_READWRITE)) return ev(ERRNO_NOTCAPABLE);
    if (s.tag === EVENTTYPE_FD_READ) {
      if (e.kind === 'stdio') {
        if (e.stream !== 'stdin') return ev(ERRNO_BADF);
        if (!core.stdin.ready(STDIN_READ_BYTES_MAX)) return;
        return core.stdin.atEof ? ev(ERRNO_SUCCESS, 0n, EVENTRWFLAGS_HANGUP) : ev(ERRNO_SUCCESS, BigInt(core.stdin.available));
      }
      const node = core.fs.get(e.ino);
      if (node.kind !== 'file') return ev(ERRNO_ISDIR);
      return ev(ERRNO_SUCCESS, BigInt(Math.max(0, node.size - e.offset)));
    }
    // fd_write
    if (e.kind === 'stdio' && e.stream === 'stdin') return ev(ERRNO_BADF);
    if (e.kind === 'inode' && core.fs.get(e.ino).kind !== 'file') return ev(ERRNO_ISDIR);
    return ev(ERRNO_SUCCESS, WRITABLE_BYTES);
  });
  return events;
}

/** Milliseconds until the earliest clock deadline (null: no clock subscription). */
function msToEarliest(core: Core, subs: Subscription[], deadlines: (bigint | null)[]): number | null {
  let best: number | null = null;
  subs.forEach((s, i) => {
    const d = deadlines[i];
    if (s.tag !== EVENTTYPE_CLOCK || d === null || d === undefined) return;
    const ms = Math.max(0, Number(d - core.clocks.now(s.clockId)) / 1e6);
    if (best === null || ms < best) best = ms;
  });
  return best;
}

function poll_oneoff(core: Core, inPtr: number, outPtr: number, nsubs: number, neventsPtr: number): number {
  const mem = core.mem();
  check(nsubs > 0 && nsubs <= POLL_SUBSCRIPTIONS_MAX, ERRNO_INVAL);
  const subsBytes = mem.bytes(inPtr, nsubs * SUBSCRIPTION_SIZE).slice();
  mem.check(outPtr, nsubs * EVENT_SIZE);
  mem.check(neventsPtr, 4);
  const subs = parse(subsBytes, nsubs);
  for (const s of subs) check(s.tag <= EVENTTYPE_FD_WRITE, ERRNO_INVAL);

  const pending = core.pendingPoll;
  core.pendingPoll = null;
  const deadlines = pending !== null && samePending(pending, inPtr, outPtr, nsubs, neventsPtr, subsBytes)
    ? pending.deadlinesNs
    : subs.map((s) => (s.tag === EVENTTYPE_CLOCK ? deadlineOf(core, s) : null));
  const watchesStdin = subs.some((s) => {
    const e = core.fds.entries.get(s.fd);
    return s.tag === EVENTTYPE_FD_READ && e?.kind === 'stdio' && e.stream === 'stdin';
  });

  let events = readyEvents(core, subs, deadlines);
  if (events.length === 0) {
    const ms = msToEarliest(core, subs, deadlines);
    // Not ready means some clock is in the future or stdin has nothing yet.
    assert(ms !== null || watchesStdin, 'an unready poll waits on a clock or stdin');
    if (core.canSuspend) {
      core.pendingPoll = { inPtr, outPtr, nsubs, neventsPtr, subs: subsBytes, deadlinesNs: deadlines };
      core.recordWait(waitFor(core, ms, watchesStdin));
      throw new WasiErrno(ERRNO_AGAIN);
    }
    events = blockUntilReady(core, subs, deadlines, ms, watchesStdin);
  }

  const out = mem.bytes(outPtr, nsubs * EVENT_SIZE);
  out.fill(0, 0, events.length * EVENT_SIZE);
  events.forEach((ev, i) => {
    const at = outPtr + i * EVENT_SIZE;
    mem.setU64(at + EVENT.userdata, ev.userdata);
    mem.setU16(at + EVENT.error, ev.error);
    mem.setU8(at + EVENT.type, ev.type);
    mem.setU64(at + EVENT.nbytes, ev.nbytes);
    mem.setU16(at + EVENT.flags, ev.flags);
  });
  mem.setU32(neventsPtr, events.length);
  return ERRNO_SUCCESS;
}

/** The wait the runtime awaits before the retry: the earliest deadline, or stdin becoming readable. */
function waitFor(core: Core, ms: number | null, watchesStdin: boolean): Promise<void> {
  const waits: Promise<void>[] = [];
  let timer: NodeJS.Timeout | undefined;
  if (ms !== null) {
    waits.push(new Promise((resolve) => { timer = setTimeout(resolve, Math.min(Math.ceil(ms), TIMER_MS_MAX)); }));
  }
  if (watchesStdin) waits.push(core.stdin.whenReadable());
  // The timer is owned here and cleared as soon as either side wins.
  return Promise.race(waits).finally(() => clearTimeout(timer));
}

/** Blocks the thread until something is ready (guests that cannot suspend). */
function blockUntilReady(
  core: Core, subs: Subscription[], deadlines: (bigint | null)[], ms0: number | null, watchesStdin: boolean,
): Event[] {
  // Each round sleeps one slice or blocks in readSync; the bound allows for
  // sleeps that wake slightly early.
  const sliceMs = watchesStdin ? POLL_SLICE_MS : SLEEP_SLICE_MS_MAX;
  const roundsMax = ms0 === null ? 2 : Math.ceil(ms0 / sliceMs) * 2 + 100;
  for (let round = 0; round < roundsMax; round++) {
    const ms = msToEarliest(core, subs, deadlines);
    if (ms === null) {
      core.stdin.fillSync(STDIN_READ_BYTES_MAX);
    } else if (ms > 0) {
      core.clocks.host.sleepSync(Math.min(ms, sliceMs));
    }
    const events = readyEvents(core, subs, deadlines);
    if (events.length > 0) return events;
  }
  assert(false, 'a blocking poll finishes within its round bound');
}

export const pollCalls = { poll_oneoff };
