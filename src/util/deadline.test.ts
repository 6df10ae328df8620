import assert from 'node:assert/strict';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { native } from '../native.js';
import { DEADLINE_THREAD_MIN_MS, Deadline, type DeadlinePath } from './deadline.js';

/** Generous: the machine is shared, and a wake-up can lag by a scheduler slice or more. */
const PASS_WITHIN_MS = 5000;

/** Waits until d passes; the milliseconds from `since`. */
async function waitPassed(d: Deadline, since: number): Promise<number> {
  while (!d.passed) {
    assert.ok(performance.now() - since < PASS_WITHIN_MS, 'the deadline never passed');
    await sleep(1);
  }
  return performance.now() - since;
}

function timerThreads(): number {
  return fs.readdirSync('/proc/self/task').filter((t) => {
    try {
      return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'us-deadline';
    } catch {
      return false; // the task ended while we looked
    }
  }).length;
}

for (const path of ['timer-thread', 'clock'] as DeadlinePath[]) {
  describe(`Deadline (${path})`, () => {
    it('is not passed until armed, nor before its delay, and is passed after it', async () => {
      const d = Deadline.create(path);
      assert.equal(d.path, path);
      assert.equal(d.passed, false);
      const t0 = performance.now();
      d.arm(30);
      assert.equal(d.passed, false);
      const waited = await waitPassed(d, t0);
      assert.ok(waited >= 30 - 0.01, `passed after ${waited} ms, before its 30 ms`);
      d.close();
    });

    it('never passes with an infinite or absurd delay (until re-armed)', async () => {
      const d = Deadline.create(path);
      for (const delay of [Infinity, 1e13]) {
        d.arm(0);
        d.arm(delay);
        await sleep(20);
        assert.equal(d.passed, false);
      }
      d.arm(0);
      assert.equal(d.passed, true);
      d.close();
    });

    it('honours a delay under a millisecond at once, without waiting for a wake-up', () => {
      const d = Deadline.create(path);
      assert.ok(0.05 < DEADLINE_THREAD_MIN_MS);
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        d.arm(0.05);
        while (performance.now() - t0 < 0.1); // past the delay, but well inside a thread's wake-up
        assert.equal(d.passed, true);
      }
      d.close();
    });

    it('passes at once for a delay of 0 or less, and a re-arm replaces the deadline', () => {
      const d = Deadline.create(path);
      d.arm(0);
      assert.equal(d.passed, true);
      d.arm(60_000);
      assert.equal(d.passed, false);
      d.arm(-5);
      assert.equal(d.passed, true);
      d.arm(60_000);
      assert.equal(d.passed, false);
      d.close();
    });

    it('keeps its last answer after close, which is idempotent; arming a closed one is a bug', () => {
      const d = Deadline.create(path);
      d.arm(0);
      d.close();
      d.close();
      assert.equal(d.passed, true);
      assert.throws(() => d.arm(1), { name: 'AssertionError' });
    });

    it('several deadlines pass each at its own time (property)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 6 }), async (delays) => {
          const ds = delays.map(() => Deadline.create(path));
          const t0 = performance.now();
          ds.forEach((d, i) => d.arm(delays[i]!));
          // None passes before its delay: checked at each poll until all have passed.
          const passedAt: number[] = delays.map(() => -1);
          while (passedAt.includes(-1)) {
            const now = performance.now() - t0;
            assert.ok(now < PASS_WITHIN_MS, 'a deadline never passed');
            ds.forEach((d, i) => {
              if (passedAt[i] === -1 && d.passed) passedAt[i] = performance.now() - t0;
            });
            await sleep(1);
          }
          delays.forEach((delay, i) => assert.ok(passedAt[i]! >= delay - 0.01, `deadline ${i} passed at ${passedAt[i]} ms, before its ${delay} ms`));
          for (const d of ds) d.close();
        }),
        { numRuns: 15 },
      );
    });
  });
}

describe('Deadline timer thread', () => {
  it('runs while a deadline is open and is gone when the last one closes, then starts again', async () => {
    // Other suites in this process may hold deadlines; start from none.
    assert.equal(timerThreads(), 0, 'a deadline is still open in this process');
    for (let round = 0; round < 3; round++) {
      const a = Deadline.create();
      const b = Deadline.create();
      assert.equal(a.path, 'timer-thread', 'this Linux build has the timer thread');
      assert.equal(timerThreads(), 1);
      const t0 = performance.now();
      a.arm(5);
      b.arm(60_000);
      await waitPassed(a, t0);
      assert.equal(b.passed, false);
      a.close();
      assert.equal(timerThreads(), 1, 'b still needs the thread');
      b.close();
      assert.equal(timerThreads(), 0, 'the last close joins the thread');
    }
  });

  it('refuses a closed deadline, a foreign buffer and a bad delay with ERR_NATIVE_ARG', () => {
    const buffer = native.deadlineCreate();
    assert.ok(buffer instanceof ArrayBuffer && buffer.byteLength === 4);
    assert.throws(() => native.deadlineArm(buffer, Number.NaN), { code: 'ERR_NATIVE_ARG' });
    assert.throws(() => native.deadlineArm(new ArrayBuffer(4), 1), { code: 'ERR_NATIVE_ARG' });
    assert.throws(() => native.deadlineArm({} as ArrayBuffer, 1), { code: 'ERR_NATIVE_ARG' });
    native.deadlineClose(buffer);
    native.deadlineClose(buffer);
    assert.throws(() => native.deadlineArm(buffer, 1), { code: 'ERR_NATIVE_ARG', message: /not a live deadline/ });
    assert.equal(new Int32Array(buffer)[0], 0, 'a closed deadline keeps its memory for readers');
  });
});
