// Ballooning a command guest through its poll: a snapshot taken mid-run leaves the freed burst out,
// the run's output is unchanged by it, and a restore of that snapshot finishes the run exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Guest } from '../guest/guest.js';
import { loadGuestModule, type GuestModule } from '../guest/module.js';
import { CollectedOutput, OutputGate } from '../output/gate.js';
import { WasiDevice } from '../wasi/index.js';
import { guestPath, tempDir } from '../testing/fixtures.js';
import { openCheckpoint, restoreFromCheckpoint, writeFullCheckpoint } from '../checkpoint/snapshot.js';
import { Checkpointer } from '../checkpoint/checkpointer.js';
import { deflateAtNextPoll, hasPollingBalloon, pollsBalloon, requestBalloonedSnapshot } from './poll.js';
import { balloonState } from './hypercalls.js';
import { native } from '../native.js';

const dir = tempDir('balloon-poll');
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

const ARGS = ['churn', '10', '16', '128'];

async function start(module: GuestModule, args = ARGS): Promise<{ guest: Guest; output: OutputGate; sink: CollectedOutput }> {
  const sink = new CollectedOutput();
  const output = new OutputGate(sink);
  // Frequent safe points, so the test sees the lines it waits for while the guest still runs.
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args, env: [], preopens: [], output }), yieldEveryMs: 1 });
  return { guest, output, sink };
}

/** Runs `fn` at the first safe point after the guest printed `line`, with the guest stopped there. */
function atLine<T>(guest: Guest, sink: CollectedOutput, line: string, fn: () => T): Promise<T> {
  return new Promise((resolve, reject) => {
    let done = false;
    guest.onSafePoint(() => {
      if (done || !sink.text().includes(line)) return;
      done = true;
      try {
        resolve(fn());
      } catch (e) {
        reject(e);
      }
    });
  });
}

test('a command that polls is ballooned before a snapshot, transparently, and restores to the same end', async () => {
  const module = await loadGuestModule(guestPath('churn'));
  const reference = await start(module);
  assert.equal(await reference.guest.run(), 0);
  const expected = reference.sink.text();
  assert.match(expected, /round 9 .*\ndone\n$/);

  const { guest, output, sink } = await start(module);
  assert.ok(hasPollingBalloon(guest));
  const cp = new Checkpointer(guest, output, { dir: path.join(dir, 'cp'), keep: 4 });
  // The same instant, twice: without the balloon (written as it is), then with it (at the next poll).
  const stopped = atLine(guest, sink, 'round 4 ', () => {
    assert.ok(pollsBalloon(guest), 'the guest has polled');
    const presentBefore = native.presentPages(new Uint8Array(guest.memory.buffer)).length;
    return { plain: writeFullCheckpoint(path.join(dir, 'plain.usck'), { guest, output, sequence: 99 }), taking: cp.take(), presentBefore };
  });
  const running = guest.run();
  const { plain, taking, presentBefore } = await stopped;
  const ballooned = await taking;
  const inBalloon = balloonState(guest).balloonPages;
  assert.ok(inBalloon * 4096 > 8 * 2 ** 20, `the freed burst went into the balloon (${inBalloon} pages)`);
  // Given back to the host while in the balloon (the SDK zeroes freed memory, so the plain file
  // already leaves it out; the balloon never makes a file larger).
  const presentInBalloon = native.presentPages(new Uint8Array(guest.memory.buffer)).length;
  assert.ok(presentInBalloon <= presentBefore - inBalloon * 0.9, `present pages ${presentBefore} -> ${presentInBalloon} with ${inBalloon} in the balloon`);
  assert.ok(ballooned.fileBytes <= plain.fileBytes, `ballooned ${ballooned.fileBytes} B vs plain ${plain.fileBytes} B`);
  assert.equal(await running, 0);
  assert.equal(sink.text(), expected, 'the balloon did not change what the program did');
  assert.equal(balloonState(guest).balloonPages, 0, 'deflated at the next poll');

  // Restore the ballooned snapshot: the run finishes with the reference's remaining lines.
  const opened = openCheckpoint(ballooned.path);
  const restoredSink = new CollectedOutput();
  const restored = await restoreFromCheckpoint(opened, { host: {}, outputTarget: restoredSink });
  opened.close();
  deflateAtNextPoll(restored.guest);
  assert.equal(await restored.guest.run(), 0);
  const printedBefore = Buffer.from(expected).subarray(0, restored.output.save().stdoutBytes - Buffer.byteLength(restoredSink.text())).toString();
  assert.equal(printedBefore + restoredSink.text(), expected);
  assert.equal(balloonState(restored.guest).balloonPages, 0);
});

test('a command that stops polling is snapshotted after the bounded wait, without a balloon', async () => {
  const module = await loadGuestModule(guestPath('churn'));
  const { guest, output, sink } = await start(module, ['churn', '40', '8', '64', '2']); // polls in rounds 0 and 1 only
  const t0 = performance.now();
  const requested = atLine(guest, sink, 'round 3 ', () => {
    assert.ok(pollsBalloon(guest));
    return { pending: requestBalloonedSnapshot(guest, () => writeFullCheckpoint(path.join(dir, 'late.usck'), { guest, output, sequence: 1 }), { waitMsMax: 50 }) };
  });
  const running = guest.run();
  const { result, inflate } = await (await requested).pending;
  assert.equal(inflate, null, 'no balloon: the guest did not poll');
  assert.ok(performance.now() - t0 >= 50, 'it waited for the poll, boundedly');
  assert.ok(result.fileBytes > 0);
  assert.equal(balloonState(guest).balloonPages, 0);
  assert.equal(await running, 0);
  assert.match(sink.text(), /round 39 .*\ndone\n$/);
});

test('a guest without the SDK is not waited for', async () => {
  const module = await loadGuestModule(guestPath('logcounter'));
  const output = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: ['logcounter'], env: [], preopens: [], output }) });
  assert.equal(hasPollingBalloon(guest), false);
  assert.equal(pollsBalloon(guest), false);
});
