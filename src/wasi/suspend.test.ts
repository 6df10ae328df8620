// Suspension (canSuspend = true): a call that cannot complete records a
// wait, has no side effect, and its retry keeps the original semantics —
// also when the device is checkpointed and restored while the guest waits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CLOCKID_MONOTONIC, ERRNO_AGAIN, EVENT_SIZE, EVENTTYPE_CLOCK, EVENTTYPE_FD_READ, FDFLAGS_NONBLOCK,
  SUBSCRIPTION, SUBSCRIPTION_SIZE,
} from './constants.js';
import { WasiDevice } from './index.js';
import { FakeClock, Harness, ManualInput, assertPlain, captureSink } from './testkit.js';

// Fixed addresses below the harness scratch area.
const SUBS = 64;
const EVENTS = SUBS + 2 * SUBSCRIPTION_SIZE;
const NEVENTS = EVENTS + 2 * EVENT_SIZE;
const SENTINEL = 0xabababab;

function clockSub(h: Harness, at: number, userdata: bigint, timeoutNs: bigint): void {
  h.bytes.fill(0, at, at + SUBSCRIPTION_SIZE);
  h.view.setBigUint64(at + SUBSCRIPTION.userdata, userdata, true);
  h.view.setUint8(at + SUBSCRIPTION.tag, EVENTTYPE_CLOCK);
  h.view.setUint32(at + SUBSCRIPTION.clockId, CLOCKID_MONOTONIC, true);
  h.view.setBigUint64(at + SUBSCRIPTION.clockTimeout, timeoutNs, true);
}

function stdinSub(h: Harness, at: number, userdata: bigint): void {
  h.bytes.fill(0, at, at + SUBSCRIPTION_SIZE);
  h.view.setBigUint64(at + SUBSCRIPTION.userdata, userdata, true);
  h.view.setUint8(at + SUBSCRIPTION.tag, EVENTTYPE_FD_READ);
  h.view.setUint32(at + SUBSCRIPTION.fd, 0, true);
}

function timeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

test('stdin read with no data records a wait, changes nothing, and the retry reads', async () => {
  const input = new ManualInput();
  const h = Harness.create({ stdin: input });
  h.device.canSuspend = true;
  const buf = 300;
  const iov = 400;
  const nread = 420;
  h.view.setUint32(iov, buf, true);
  h.view.setUint32(iov + 4, 16, true);
  h.view.setUint32(nread, SENTINEL, true);
  assert.equal(h.call('fd_read', 0, iov, 1, nread), ERRNO_AGAIN);
  const wait = h.device.takeWait();
  assert.ok(wait instanceof Promise);
  assert.equal(h.device.takeWait(), null, 'a wait is taken once');
  assert.equal(h.u32(nread), SENTINEL, 'nothing written');
  assert.equal(h.device.stdinBytesConsumed, 0);

  input.push('typed');
  await wait;
  assert.equal(h.call('fd_read', 0, iov, 1, nread), 0);
  assert.equal(h.device.takeWait(), null);
  assert.equal(h.u32(nread), 5);
  assert.equal(Buffer.from(h.bytes.subarray(buf, buf + 5)).toString(), 'typed');
  assert.equal(h.device.stdinBytesConsumed, 5);

  input.end();
  assert.equal(h.call('fd_read', 0, iov, 1, nread), 0);
  assert.equal(h.u32(nread), 0);
});

test('a non-blocking stdin answers EAGAIN without recording a wait', () => {
  const h = Harness.create({ stdin: new ManualInput() });
  h.device.canSuspend = true;
  assert.equal(h.call('fd_fdstat_set_flags', 0, FDFLAGS_NONBLOCK), 0);
  assert.equal(h.read(0, 8).errno, ERRNO_AGAIN);
  assert.equal(h.device.takeWait(), null);
});

// The waits these tests take run on real timers (the fake clock only drives
// deadlines); each test awaits what it took, so no timer outlives its test.
function take(h: Harness, owned: Promise<void>[]): void {
  const w = h.device.takeWait();
  assert.ok(w instanceof Promise, 'a wait was recorded');
  owned.push(w);
}

test('a relative sleep keeps its deadline across a checkpoint taken while waiting', async () => {
  const owned: Promise<void>[] = [];
  const clock = new FakeClock();
  const h = Harness.create({ clock });
  h.device.canSuspend = true;
  clockSub(h, SUBS, 1n, 50_000_000n); // 50 ms
  h.view.setUint32(NEVENTS, SENTINEL, true);
  assert.equal(h.call('poll_oneoff', SUBS, EVENTS, 1, NEVENTS), ERRNO_AGAIN);
  take(h, owned);
  assert.equal(h.u32(NEVENTS), SENTINEL);

  clock.advanceMs(30);
  const state = h.device.save();
  assertPlain(state);
  assert.notEqual(state.pendingPoll, null);

  // Restore on a host whose clock reads something else entirely.
  const clock2 = new FakeClock(1n, 777n);
  const h2 = new Harness(WasiDevice.restore(state, { output: captureSink(), clock: clock2 }), h.memory);
  h2.device.canSuspend = true;
  assert.equal(h2.call('poll_oneoff', SUBS, EVENTS, 1, NEVENTS), ERRNO_AGAIN, '30 of 50 ms passed');
  take(h2, owned);
  clock2.advanceMs(25); // 55 ms since the first call; a restarted sleep would need 80
  assert.equal(h2.call('poll_oneoff', SUBS, EVENTS, 1, NEVENTS), 0);
  assert.equal(h2.device.takeWait(), null);
  assert.equal(h2.u32(NEVENTS), 1);
  assert.equal(h2.u64(EVENTS), 1n);
  assert.equal(h2.device.save().pendingPoll, null, 'a completed poll leaves nothing pending');

  // The next, separate sleep with identical arguments starts afresh.
  assert.equal(h2.call('poll_oneoff', SUBS, EVENTS, 1, NEVENTS), ERRNO_AGAIN);
  take(h2, owned);
  await Promise.all(owned);
});

test('a different poll after a pending one computes its own deadline', async () => {
  const owned: Promise<void>[] = [];
  const clock = new FakeClock();
  const h = Harness.create({ clock });
  h.device.canSuspend = true;
  clockSub(h, SUBS, 1n, 10_000_000n);
  assert.equal(h.call('poll_oneoff', SUBS, EVENTS, 1, NEVENTS), ERRNO_AGAIN);
  take(h, owned);
  clock.advanceMs(8);
  clockSub(h, SUBS, 2n, 10_000_000n); // new userdata: not the retry
  assert.equal(h.call('poll_oneoff', SUBS, EVENTS, 1, NEVENTS), ERRNO_AGAIN);
  take(h, owned);
  clock.advanceMs(5); // 13 ms after the first, 5 after the second
  assert.equal(h.call('poll_oneoff', SUBS, EVENTS, 1, NEVENTS), ERRNO_AGAIN);
  take(h, owned);
  await Promise.all(owned);
});

test('poll on stdin and a long clock wakes on input and clears its timer', async () => {
  const input = new ManualInput();
  const h = Harness.create({ stdin: input });
  h.device.canSuspend = true;
  stdinSub(h, SUBS, 5n);
  clockSub(h, SUBS + SUBSCRIPTION_SIZE, 6n, 3_600_000_000_000n); // an hour
  const timersBefore = timeouts();
  assert.equal(h.call('poll_oneoff', SUBS, EVENTS, 2, NEVENTS), ERRNO_AGAIN);
  const wait = h.device.takeWait()!;
  assert.equal(timeouts(), timersBefore + 1);
  setTimeout(() => input.push('x'), 5);
  await wait;
  await new Promise((r) => setImmediate(r));
  assert.equal(timeouts(), timersBefore, 'the hour-long timer is gone');
  assert.equal(h.call('poll_oneoff', SUBS, EVENTS, 2, NEVENTS), 0);
  assert.equal(h.u32(NEVENTS), 1);
  assert.equal(h.u64(EVENTS), 5n);
  assert.equal(h.u64(EVENTS + 16), 1n); // one byte readable
});
