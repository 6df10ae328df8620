import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Guest } from '../guest/guest.js';
import { loadGuestModule, type GuestModule } from '../guest/module.js';
import { CollectedOutput, OutputGate } from '../output/gate.js';
import { WasiDevice } from '../wasi/index.js';
import { FakeClock } from '../wasi/testkit.js';
import { BytesInput } from '../io/input.js';
import { probeTrackers, type TrackerKind } from '../track/tracker.js';
import { compileC, guestPath, tempDir } from '../testing/fixtures.js';
import { isUnderstudyError, UnderstudyError } from '../errors.js';
import { EpochCheckpointer, type EpochOptions } from './epochs.js';
import { compactChain, logFileName, openChainPoint, scanChain, baseFileName } from './chain.js';
import { restoreFromCheckpoint } from './snapshot.js';
import { restoreTuning } from './file.js';
import { LOG_HEADER_BYTES, RECORD_HEADER_BYTES } from './delta-log.js';

const cacheDir = tempDir('cache');
const SUPPORTED = probeTrackers().filter((p) => p.supported).map((p) => p.kind);
const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface ChainRun {
  dir: string;
  stdout: Buffer;
  /** sha256 of memory and stdout length at each sequence. */
  points: Map<number, { memory: string; stdoutBytes: number }>;
  ep: EpochCheckpointer;
}

async function runWithEpochs(module: GuestModule, args: string[], opts: Partial<EpochOptions> & { dir?: string }): Promise<ChainRun> {
  const out = new CollectedOutput();
  const gate = new OutputGate(out);
  // A clock that stands still: the device state (which records the clocks) is then the same in every run.
  const wasi = WasiDevice.create({ args, env: [], preopens: [], stdin: new BytesInput(new Uint8Array(0)), output: gate, clock: new FakeClock() });
  const guest = await Guest.create(module, { wasi, yieldEveryMs: 0 });
  const dir = opts.dir ?? tempDir('chain');
  const ep = await EpochCheckpointer.start(guest, gate, { dir, everySafePoints: 1, inline: true, createdAtMs: 1_000_000, ...opts });
  const points = new Map<number, { memory: string; stdoutBytes: number }>();
  const record = () => points.set(ep.lastSequence, { memory: digest(new Uint8Array(guest.memory.buffer)), stdoutBytes: gate.save().stdoutBytes });
  record();
  guest.onSafePoint(record); // runs after the epoch hook registered by start()
  assert.equal(await guest.run(), 0);
  await ep.close();
  return { dir, stdout: Buffer.from(out.text()), points, ep };
}

async function restoreAt(module: GuestModule, dir: string, sequence: number, yieldEveryMs = 5) {
  const image = openChainPoint(dir, sequence);
  const out = new CollectedOutput();
  try {
    const { guest, output } = await restoreFromCheckpoint(image, { module, host: { stdin: new BytesInput(new Uint8Array(0)), clock: new FakeClock() }, outputTarget: out, guestOptions: { yieldEveryMs } });
    return { guest, out, output, meta: image.meta };
  } finally {
    image.close();
  }
}

test('every tracker supported here produce byte-identical chains, inline or on the worker, copied by one thread or two', async () => {
  assert.ok(SUPPORTED.includes('hash'), 'the portable tracker is always supported');
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const args = ['heapwalk', '2', '8'];
  const files = new Map<string, Buffer>();
  const runs: [string, Partial<EpochOptions>][] = SUPPORTED.map((k) => [k, { tracker: k as TrackerKind }]);
  runs.push([`${SUPPORTED[0]}+worker`, { tracker: SUPPORTED[0] as TrackerKind, inline: false }]);
  runs.push([`${SUPPORTED[0]}+one-copy-thread`, { tracker: SUPPORTED[0] as TrackerKind, parallelCopyMinPages: Infinity }]);
  let reference: ChainRun | null = null;
  for (const [name, opts] of runs) {
    const run = await runWithEpochs(module, args, opts);
    assert.ok(run.ep.epochs.length >= 8, `${name}: an epoch per safe point`);
    const bytes = Buffer.concat([fs.readFileSync(path.join(run.dir, baseFileName(1))), fs.readFileSync(path.join(run.dir, logFileName(1)))]);
    files.set(name, bytes);
    reference ??= run;
    assert.ok(run.stdout.equals(reference.stdout));
  }
  const [first, ...rest] = [...files.entries()];
  for (const [name, bytes] of rest) assert.ok(bytes.equals(first![1]), `${name} chain is byte-identical to ${first![0]}'s`);
});

test('every point of a chain restores exactly that epoch, and carries on to the same end', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const run = await runWithEpochs(module, ['heapwalk', '3', '10'], {});
  const scan = scanChain(run.dir);
  assert.equal(scan.lastSequence, run.ep.lastSequence);
  assert.equal(scan.stop, null);
  for (let seq = scan.baseSequence; seq <= scan.lastSequence; seq++) {
    const { guest, out, meta } = await restoreAt(module, run.dir, seq);
    const expected = run.points.get(seq)!;
    assert.equal(digest(new Uint8Array(guest.memory.buffer)), expected.memory, `memory at ${seq}`);
    assert.equal(meta.output.stdoutBytes, expected.stdoutBytes);
    if (seq % 3 === 0 || seq === scan.lastSequence) {
      assert.equal(await guest.run(), 0);
      assert.ok(Buffer.concat([run.stdout.subarray(0, expected.stdoutBytes), Buffer.from(out.text())]).equals(run.stdout), `run on from ${seq}`);
    }
  }
});

test('the delta carries every written byte and nothing unwritten, through memory.grow', async () => {
  // Grows memory in steps between host calls, and writes a few words per page.
  const src = `
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  unsigned x = 1;
  for (int step = 0; step < 12; step++) {
    unsigned char *p = malloc(300 * 1024);
    for (int i = 0; i < 300 * 1024; i += 4096) { x = x * 1664525u + 1013904223u; p[i + (x % 4000)] = (unsigned char)x; }
    printf("step %d %u\\n", step, (unsigned)p[x % (300 * 1024)]);
  }
  return 0;
}`;
  const module = await loadGuestModule(compileC(src), { cacheDir });
  const run = await runWithEpochs(module, ['grow'], { tracker: SUPPORTED[0] as TrackerKind });
  const grew = run.ep.epochs.some((e, i) => i > 0 && e.listedPages > 0);
  assert.ok(grew);
  const sizes = new Set<number>();
  for (const [seq, p] of run.points) {
    const image = openChainPoint(run.dir, seq);
    const mem = new Uint8Array(image.meta.memoryBytes);
    image.fillMemory(mem);
    image.close();
    sizes.add(mem.length);
    assert.equal(digest(mem), p.memory, `memory at ${seq}`);
  }
  assert.ok(sizes.size > 3, `the memory grew over several epochs: ${[...sizes].join(',')}`);
  // Few words change per page: the byte-run encoding carries far less than whole pages.
  const runs = run.ep.epochs.reduce((n, e) => n + e.counts.runs, 0);
  assert.ok(runs > 0, 'some pages were sent as byte runs');
});

test('a corrupt delta is refused for every later point; earlier points still restore', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const run = await runWithEpochs(module, ['heapwalk', '2', '8'], {});
  const scan = scanChain(run.dir);
  const victim = scan.log!.entries[4]!;
  const logPath = path.join(run.dir, logFileName(1));
  const bytes = fs.readFileSync(logPath);
  bytes[victim.offset + RECORD_HEADER_BYTES + 3]! ^= 0x40;
  fs.writeFileSync(logPath, bytes);
  for (let seq = scan.baseSequence; seq <= scan.lastSequence; seq++) {
    if (seq < victim.sequence) {
      const { guest } = await restoreAt(module, run.dir, seq);
      assert.equal(digest(new Uint8Array(guest.memory.buffer)), run.points.get(seq)!.memory);
    } else {
      await assert.rejects(restoreAt(module, run.dir, seq), (e) => isUnderstudyError(e, 'ERR_CKPT_CHECKSUM'), `seq ${seq}`);
    }
  }
});

test('a gap in the log ends what can be restored; a torn tail is tolerated', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const run = await runWithEpochs(module, ['heapwalk', '2', '8'], {});
  const logPath = path.join(run.dir, logFileName(1));
  const scan = scanChain(run.dir);
  const entries = scan.log!.entries;
  const original = fs.readFileSync(logPath);
  // Remove record 3 (a gap): points up to 2 remain; 3 and later are refused.
  const cut = entries[2]!;
  const next = entries[3]!;
  fs.writeFileSync(logPath, Buffer.concat([original.subarray(0, cut.offset), original.subarray(next.offset)]));
  const gapped = scanChain(run.dir);
  assert.equal(gapped.lastSequence, cut.sequence - 1);
  assert.match(gapped.stop!.error.message, /gap/);
  await assert.rejects(restoreAt(module, run.dir, cut.sequence + 1), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'));
  assert.equal(digest(new Uint8Array((await restoreAt(module, run.dir, cut.sequence - 1)).guest.memory.buffer)), run.points.get(cut.sequence - 1)!.memory);
  // A torn tail (crash mid-append): the last whole record is the newest point.
  const last = entries[entries.length - 1]!;
  fs.writeFileSync(logPath, original.subarray(0, last.offset + RECORD_HEADER_BYTES + 5));
  const torn = scanChain(run.dir);
  assert.equal(torn.lastSequence, last.sequence - 1);
  assert.ok(torn.stop!.torn);
  const { guest } = await restoreAt(module, run.dir, last.sequence - 1);
  assert.equal(digest(new Uint8Array(guest.memory.buffer)), run.points.get(last.sequence - 1)!.memory);
  // A log of only its header is a chain holding just the base.
  fs.writeFileSync(logPath, original.subarray(0, LOG_HEADER_BYTES));
  assert.equal(scanChain(run.dir).lastSequence, 1);
});

test('compaction keeps exactly the last N points, each exact; live retention compacts as it goes', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const run = await runWithEpochs(module, ['heapwalk', '2', '10'], {});
  const last = scanChain(run.dir).lastSequence;
  const result = compactChain(run.dir, 3);
  assert.equal(result.baseSequence, last - 2);
  assert.deepEqual(fs.readdirSync(run.dir).sort(), [baseFileName(last - 2), logFileName(last - 2)]);
  for (let seq = last - 2; seq <= last; seq++) {
    const { guest } = await restoreAt(module, run.dir, seq);
    assert.equal(digest(new Uint8Array(guest.memory.buffer)), run.points.get(seq)!.memory, `seq ${seq} after compaction`);
  }
  await assert.rejects(restoreAt(module, run.dir, last - 3), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'));
  assert.equal(compactChain(run.dir, 3).mergedRecords, 0, 'compacting again changes nothing');

  const live = await runWithEpochs(module, ['heapwalk', '2', '12'], { keep: 2, inline: false });
  assert.ok(live.ep.epochs.some((e) => e.compacted !== null), 'the writer compacted while running');
  const scan = scanChain(live.dir);
  assert.ok(scan.lastSequence - scan.baseSequence + 1 < 4, 'at most 2N points remain');
  const { guest } = await restoreAt(module, live.dir, scan.lastSequence);
  assert.equal(digest(new Uint8Array(guest.memory.buffer)), live.points.get(scan.lastSequence)!.memory);
});

test('a collect that fails ends the chain: later epochs are refused rather than taken without its pages', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const gate = new OutputGate(new CollectedOutput());
  const wasi = WasiDevice.create({ args: ['heapwalk'], env: [], preopens: [], stdin: new BytesInput(new Uint8Array(0)), output: gate, clock: new FakeClock() });
  const guest = await Guest.create(module, { wasi, yieldEveryMs: 0 });
  const ep = await EpochCheckpointer.start(guest, gate, { dir: tempDir('chain'), everySafePoints: 1e9, inline: true });
  const tracker = (ep as unknown as { tracker: { collect(): Uint32Array } }).tracker;
  const collect = tracker.collect.bind(tracker);
  await ep.epoch(); // a good one first
  const good = ep.lastSequence;
  tracker.collect = () => {
    collect(); // the pages are re-protected, then the call fails
    throw new UnderstudyError('ERR_TRACKER', 'PAGEMAP_SCAN failed partway (injected)');
  };
  await assert.rejects(ep.epoch(), (e) => isUnderstudyError(e, 'ERR_TRACKER'));
  tracker.collect = collect;
  await assert.rejects(ep.epoch(), (e) => isUnderstudyError(e, 'ERR_TRACKER'));
  await assert.rejects(ep.close(), (e) => isUnderstudyError(e, 'ERR_TRACKER'));
  assert.equal(ep.lastSequence, good);
});

test('several guests checkpoint at once, each with its own tracker and worker', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const runs = await Promise.all([1, 2, 3].map((seed) => runWithEpochs(module, ['heapwalk', `--seed=${seed}`, '2', '6'], { inline: false, tracker: SUPPORTED[0] as TrackerKind })));
  assert.notEqual(runs[0]!.stdout.toString(), runs[1]!.stdout.toString());
  for (const run of runs) {
    const seq = scanChain(run.dir).lastSequence;
    const { guest } = await restoreAt(module, run.dir, seq);
    assert.equal(digest(new Uint8Array(guest.memory.buffer)), run.points.get(seq)!.memory);
  }
});

test('a guest restored onto huge pages is tracked exactly: every tracker gives the chain of a restore onto 4 KiB pages', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const args = ['heapwalk', '2', '8'];
  const run = await runWithEpochs(module, args, {});
  const chains = new Map<string, Buffer>();
  for (const hugePages of [true, false]) {
    for (const tracker of SUPPORTED) {
      restoreTuning.hugePages = hugePages;
      const { guest, out, output: gate } = await restoreAt(module, run.dir, 3, 0);
      restoreTuning.hugePages = true;
      const dir = tempDir('chain-after-restore');
      const ep = await EpochCheckpointer.start(guest, gate, { dir, everySafePoints: 1, inline: true, createdAtMs: 1_000_000, tracker: tracker as TrackerKind, firstSequence: 100 });
      assert.equal(await guest.run(), 0);
      await ep.close();
      assert.ok(ep.epochs.length >= 4, `${tracker}: ${ep.epochs.length} epochs after the restore`);
      assert.ok(Buffer.concat([run.stdout.subarray(0, run.points.get(3)!.stdoutBytes), Buffer.from(out.text())]).equals(run.stdout));
      chains.set(`${tracker} huge=${hugePages}`, Buffer.concat([fs.readFileSync(path.join(dir, baseFileName(100))), fs.readFileSync(path.join(dir, logFileName(100)))]));
    }
  }
  const [first, ...rest] = [...chains.entries()];
  for (const [name, bytes] of rest) assert.ok(bytes.equals(first![1]), `${name} chain is byte-identical to ${first![0]}'s`);
});

test('a reactor asked after each request takes an epoch once epochMs has passed since the last one, and not before', async () => {
  const module = await loadGuestModule(guestPath('kvstore'), { cacheDir });
  const gate = new OutputGate(new CollectedOutput());
  const wasi = WasiDevice.create({ args: ['kvstore'], env: [], preopens: [], output: gate });
  const guest = await Guest.create(module, { wasi });
  const epochMs = 60;
  const t0 = performance.now();
  const ep = await EpochCheckpointer.start(guest, gate, { dir: tempDir('chain'), epochMs, inline: true });
  const first = ep.lastSequence;
  let pauseEndedAt = -1;
  for (let i = 0; pauseEndedAt < 0; i++) {
    assert.ok(performance.now() - t0 < 10_000, 'no epoch came due');
    guest.request('handle', Buffer.from(`SET k${i} v${i}`));
    const sinceStart = performance.now() - t0;
    const pause = await ep.epochIfDue();
    if (pause) {
      assert.ok(sinceStart >= epochMs - 0.01, `an epoch after ${sinceStart} ms, before its ${epochMs} ms`);
      pauseEndedAt = performance.now();
    } else await new Promise((r) => setTimeout(r, 2));
  }
  assert.equal(ep.lastSequence, first + 1);
  // Re-armed when the pause ended: asking at once takes none.
  guest.request('handle', Buffer.from('SET again now'));
  if (performance.now() - pauseEndedAt < epochMs) assert.equal(await ep.epochIfDue(), null);
  await ep.close();
  assert.equal(ep.lastSequence, first + 1);
});
