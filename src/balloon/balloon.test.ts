// Ballooning with the guest's help: C and AssemblyScript guests inflate and deflate; ballooned
// pages are discarded and left out of the checkpoint; the restored guest works with its whole
// configured memory; guests without the SDK are unaffected; waits are bounded; bad hypercall
// arguments are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Guest } from '../guest/guest.js';
import { loadGuestModule } from '../guest/module.js';
import { CollectedOutput, OutputGate } from '../output/gate.js';
import { WasiDevice } from '../wasi/index.js';
import { guestPath, tempDir } from '../testing/fixtures.js';
import { native, PAGE_BYTES } from '../native.js';
import { openCheckpoint, restoreFromCheckpoint, writeFullCheckpoint } from '../checkpoint/snapshot.js';
import { isUnderstudyError } from '../errors.js';
import { BalloonAnswer, BalloonState, balloonState } from './hypercalls.js';
import { Checkpointer } from '../checkpoint/checkpointer.js';
import { balloonTarget, checkpointWithBalloon, deflate, deflateAfterRestore, hasBalloon, inflate, readStats } from './manager.js';

const dir = tempDir('balloon');
const MiB = 2 ** 20;
const text = (b: Uint8Array): string => Buffer.from(b).toString();

async function start(name: string, requests: string[], configuredMiB: number): Promise<{ guest: Guest; output: OutputGate }> {
  const output = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(await loadGuestModule(guestPath(name)), { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output }) });
  for (const r of requests) assert.doesNotMatch(text(guest.request('handle', Buffer.from(r))), /^ERR/);
  const grow = configuredMiB * MiB - guest.memory.buffer.byteLength;
  if (grow > 0) guest.memory.grow(grow / 65536);
  return { guest, output };
}

const storedBytes = (g: Guest): number => native.storedPages(new Uint8Array(g.memory.buffer)).pages.length * PAGE_BYTES;

async function restore(file: string): Promise<Guest> {
  const opened = openCheckpoint(file);
  try {
    return (await restoreFromCheckpoint(opened, { host: {}, outputTarget: new CollectedOutput() })).guest;
  } finally {
    opened.close();
  }
}

for (const c of [
  { lang: 'C', name: 'compress', fill: ['RUN 24 3', 'KEEP 2'], probe: 'RUN 2 9' },
  { lang: 'AssemblyScript', name: 'notes', fill: ['ADD 20000 800', 'CLEAR', 'ADD 500 100'], probe: 'DIGEST' },
]) {
  test(`a ${c.lang} guest inflates and deflates; ballooned pages are left out of the checkpoint and the restored guest has its whole memory`, async () => {
    const { guest, output } = await start(c.name, c.fill, 128);
    const expected = text(guest.request('handle', Buffer.from(c.probe)));
    const before = storedBytes(guest);
    const stats = readStats(guest)!;
    assert.equal(stats.totalPages, (128 * MiB) / PAGE_BYTES);
    assert.ok(stats.freePages > stats.inUsePages, `freed memory is free: ${JSON.stringify(stats)}`);
    const inflated = inflate(guest, balloonTarget(stats));
    assert.ok(!inflated.timedOut && !inflated.refused);
    // Free blocks smaller than 64 KiB stay with the allocator (fragmentation after CLEAR + ADD).
    assert.ok(inflated.balloonPages > 0.75 * stats.freePages, `balloon took ${inflated.balloonPages} of ${stats.freePages} free pages`);
    assert.equal(balloonState(guest).balloonPages, inflated.balloonPages);
    const after = storedBytes(guest);
    assert.ok(after < 0.25 * before, `stored ${before} -> ${after} bytes`);
    const file = path.join(dir, `${c.name}.usck`);
    const written = writeFullCheckpoint(file, { guest, output, sequence: 1 });
    assert.ok(written.fileBytes < after + MiB, 'the file holds what is stored, not the balloon');
    const released = deflate(guest);
    assert.equal(released.releasedPages, inflated.balloonPages);
    assert.equal(balloonState(guest).balloonPages, 0);
    assert.equal(text(guest.request('handle', Buffer.from(c.probe))), expected, 'the guest works after deflating');

    const back = await restore(file);
    assert.equal(back.memory.buffer.byteLength, 128 * MiB, 'restore gives back the configured memory');
    assert.equal(deflateAfterRestore(back), inflated.balloonPages);
    assert.equal(readStats(back)!.balloonPages, 0);
    assert.equal(text(back.request('handle', Buffer.from(c.probe))), expected, 'the restored guest works');
    assert.equal(text(back.request('handle', Buffer.from(c.fill[0]!))).startsWith('ERR'), false, 'and can use the memory the balloon held');
  });
}

test('the checkpoint manager asks, inflates, snapshots and deflates; the file follows the memory really used', async () => {
  const { guest, output } = await start('docstore', ['FILL 60000', 'DELRANGE 0 45000'], 64);
  const plain = path.join(dir, 'doc-plain.usck');
  const ballooned = path.join(dir, 'doc-balloon.usck');
  const plainBytes = writeFullCheckpoint(plain, { guest, output, sequence: 1 }).fileBytes;
  const presentBefore = native.presentPages(new Uint8Array(guest.memory.buffer)).length;
  const r = await checkpointWithBalloon(ballooned, { guest, output, sequence: 2 });
  assert.ok(r.stats && r.inflate && !r.inflate.timedOut);
  const usedBytes = r.stats.inUsePages * PAGE_BYTES;
  // The SDK zeroes what the program frees, so even the plain checkpoint leaves the freed memory
  // out (zero pages, zero runs); the balloon gave that memory back to the host besides.
  // At most what is used (plus the module and tables), at least its non-zero bytes (zero bytes
  // inside live data are left out too).
  const mem = new Uint8Array(guest.memory.buffer);
  let nonZeroBytes = 0;
  for (const page of native.storedPages(mem).pages) for (const b of mem.subarray(page * PAGE_BYTES, (page + 1) * PAGE_BYTES)) nonZeroBytes += b === 0 ? 0 : 1;
  assert.ok(r.fileBytes < usedBytes * 1.05 + 512 * 1024 && r.fileBytes > nonZeroBytes, `file ${r.fileBytes} vs used ${usedBytes}, non-zero ${nonZeroBytes}`);
  assert.ok(plainBytes < usedBytes * 1.05 + 512 * 1024, `plain file ${plainBytes} vs used ${usedBytes}`);
  const presentAfter = native.presentPages(new Uint8Array(guest.memory.buffer)).length;
  assert.ok(presentAfter < presentBefore * 0.6, `present pages ${presentBefore} -> ${presentAfter}`);
  assert.equal(balloonState(guest).balloonPages, 0, 'deflated after the snapshot');
  const back = await restore(ballooned);
  deflateAfterRestore(back);
  assert.equal(text(back.request('handle', Buffer.from('COUNT'))), '15000');
  assert.equal(text(back.request('handle', Buffer.from('FIND tag t5'))), text(guest.request('handle', Buffer.from('FIND tag t5'))));
});

test('a guest without the SDK is unaffected: exclusion alone, no calls into it', async () => {
  const { guest, output } = await start('kvstore', ['FILL 2000 100'], 32);
  assert.equal(hasBalloon(guest), false);
  assert.equal(readStats(guest), null);
  const file = path.join(dir, 'kv.usck');
  const r = await checkpointWithBalloon(file, { guest, output, sequence: 1 });
  assert.equal(r.stats, null);
  assert.equal(r.balloonMs, 0);
  const back = await restore(file);
  assert.equal(deflateAfterRestore(back), 0);
  assert.equal(text(back.request('handle', Buffer.from('COUNT'))), '2000');
  assert.equal(back.memory.buffer.byteLength, 32 * MiB);
});

test('a bounded wait times out cleanly: the snapshot is taken with the balloon as it is, then deflated', async () => {
  const { guest, output } = await start('compress', ['RUN 8 1'], 32);
  const r = await checkpointWithBalloon(path.join(dir, 'bounded.usck'), { guest, output, sequence: 1 }, { stepPagesMax: 16, waitMsMax: 0 });
  assert.ok(r.inflate!.timedOut, 'the deadline passed');
  assert.equal(r.inflate!.calls, 1);
  assert.ok(r.inflate!.balloonPages > 0 && r.inflate!.balloonPages < r.inflate!.targetPages);
  assert.equal(balloonState(guest).balloonPages, 0);
  assert.match(text(guest.request('handle', Buffer.from('RUN 1 1'))), /^1048576 /);
});

test('free page reporting: a guest that reports freed blocks leaves little to store, without a balloon', async () => {
  const { guest } = await start('compress', [], 32);
  assert.equal(guest.call('us_balloon_set_reporting', 65536), 0);
  guest.request('handle', Buffer.from('RUN 8 1'));
  const stats = readStats(guest)!;
  assert.ok(stats.reportedPages > 2000, `reported ${stats.reportedPages} pages`);
  assert.ok(storedBytes(guest) < 6 * MiB, `stored ${storedBytes(guest)} bytes`);
  assert.match(text(guest.request('handle', Buffer.from('RUN 8 1'))), /^8388608 /, 'reused pages read as zero and the job still runs');
});

test('bad hypercall arguments are refused and change nothing', () => {
  const memory = new WebAssembly.Memory({ initial: 2 });
  const bytes = new Uint8Array(memory.buffer);
  bytes.fill(7);
  const s = new BalloonState();
  assert.equal(s.give(memory, 2 * 65536, 4096), BalloonAnswer.range);
  assert.equal(s.give(memory, 65536, 65536 + 4096), BalloonAnswer.range);
  assert.equal(s.give(memory, -4096, 4096), BalloonAnswer.range);
  assert.equal(s.give(memory, 100, 4096), BalloonAnswer.align);
  assert.equal(s.give(memory, 4096, 100), BalloonAnswer.align);
  assert.equal(s.give(memory, 'x', 4096), BalloonAnswer.range);
  assert.equal(s.reportFree(memory, 0, 3 * 65536), BalloonAnswer.range);
  assert.equal(s.refused, 7);
  assert.ok(bytes.every((b) => b === 7), 'nothing was discarded');
  assert.equal(s.give(memory, 8192, 8192), BalloonAnswer.ok);
  assert.equal(s.balloonPages, 2);
  assert.ok(bytes.subarray(8192, 16384).every((b) => b === 0) && bytes[8191] === 7 && bytes[16384] === 7, 'exactly the given pages read as zero');
  assert.equal(s.give(memory, 12288, 8192), BalloonAnswer.state, 'a page already in the balloon');
  assert.equal(s.reportFree(memory, 8192, 4096), BalloonAnswer.state, 'balloon pages are not the allocator\'s');
  assert.equal(s.take(memory, 8192, 8192), BalloonAnswer.ok);
  assert.equal(s.take(memory, 8192, 4096), BalloonAnswer.state);
  assert.equal(s.balloonPages, 0);
  for (const [first, count] of [[32, 1], [-1, 1], [0, 33], [0.5, 1]] as const)
    assert.throws(() => native.discardPages(bytes, first, count), (e) => isUnderstudyError(e) || (e as { code?: string }).code === 'ERR_NATIVE_RANGE');
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('periodic and on-demand checkpoints (the Checkpointer) balloon a guest with the SDK', async () => {
  const { guest, output } = await start('docstore', ['FILL 60000', 'DELRANGE 0 45000'], 64);
  const plainBytes = writeFullCheckpoint(path.join(dir, 'cp-plain.usck'), { guest, output, sequence: 1 }).fileBytes;
  const presentBefore = native.presentPages(new Uint8Array(guest.memory.buffer)).length;
  const cp = new Checkpointer(guest, output, { dir: path.join(dir, 'cp'), keep: 5 });
  const taken = await cp.take();
  assert.ok(taken.fileBytes <= plainBytes, `${plainBytes} -> ${taken.fileBytes}`);
  const presentAfter = native.presentPages(new Uint8Array(guest.memory.buffer)).length;
  assert.ok(presentAfter < presentBefore * 0.6, `the balloon gave the freed memory back: present pages ${presentBefore} -> ${presentAfter}`);
  assert.equal(balloonState(guest).balloonPages, 0, 'deflated after the snapshot');
  assert.equal(text(guest.request('handle', Buffer.from('COUNT'))), '15000', 'the guest goes on');
});
