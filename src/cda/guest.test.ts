// The hypercalls from real guests: a C command (guests/c/cdatest.c) that
// suspends in cda_end until its cycle is committed, in every mode, and
// restarts from disk; an AssemblyScript reactor (guests/as/cdanotes.ts)
// whose response waits for its cycle; and the store instrumentation of mode
// emul on a hand-written module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import binaryen from 'binaryen';
import { Guest } from '../guest/guest.js';
import { loadGuestModule } from '../guest/module.js';
import { CollectedOutput, OutputGate } from '../output/gate.js';
import { WasiDevice } from '../wasi/index.js';
import { guestPath, tempDir } from '../testing/fixtures.js';
import { probeTrackers } from '../track/tracker.js';
import { GuestCda } from './guest.js';
import type { CdaMode, CdaOptions } from './service.js';

const cacheDir = tempDir('cda-cache');
const supported = (kind: string) => probeTrackers().find((p) => p.kind === kind)?.supported ?? false;
const MODES: CdaMode[] = (['wp-async', 'wp-sync', 'hash', 'diff', 'emul'] as const).filter((m) => (m === 'wp-async' || m === 'wp-sync' ? supported(m) : true));

async function runCommand(mode: CdaMode, args: string[], options: CdaOptions): Promise<{ stdout: string; exitCode: number | null; error: unknown; cda: GuestCda; guest: Guest }> {
  // Unoptimised: the rewrite takes a fraction of the time, and these runs are a few cycles long.
  const module = await loadGuestModule(guestPath('cdatest'), { cacheDir, cdaStores: mode === 'emul', optimize: false });
  const out = new CollectedOutput();
  const wasi = WasiDevice.create({ args: ['cdatest', ...args], env: [], preopens: [], output: new OutputGate(out) });
  const cda = new GuestCda({ mode, ...options });
  await cda.ready;
  const guest = await Guest.create(module, { wasi, hypercalls: cda.hypercalls, storeRecorder: cda.storeRecorder, yieldEveryMs: 1000 });
  let exitCode: number | null = null;
  let error: unknown = null;
  try {
    exitCode = await guest.run();
  } catch (e) {
    error = e;
  }
  await cda.close();
  return { stdout: out.text('stdout'), exitCode, error, cda, guest };
}

for (const mode of MODES) {
  test(`C command, ${mode}: cda_end suspends until committed; aborts leave no trace; a restart from disk recovers`, async () => {
    const dir = tempDir(`cda-guest-${mode}`);
    // One mode commits on the worker thread, the others inline (a worker costs ~50 ms to start).
    const inline = mode !== MODES[0];
    const first = await runCommand(mode, ['10'], { target: { kind: 'disk', dir }, inline });
    assert.equal(first.exitCode, 0, first.stdout);
    assert.match(first.stdout, /^recovered cycle=0 counter=0 sum=0$/m);
    assert.match(first.stdout, /^done cycle=7 counter=7 sum=28 aborted=3$/m);
    assert.equal(first.cda.commits.length, 7);
    assert.ok(first.guest.safePointCounts.wait >= 7, `the guest waited in cda_end (${first.guest.safePointCounts.wait} waits)`);
    // A crash right after cycle 9 committed (trap), then a restart.
    const crashed = await runCommand(mode, ['5', '9'], { target: { kind: 'disk', dir }, inline });
    assert.ok(crashed.error, 'the guest trapped');
    assert.match(crashed.stdout, /^recovered cycle=7 counter=7 sum=28$/m);
    const again = await runCommand(mode, ['1'], { target: { kind: 'disk', dir }, inline });
    assert.equal(again.exitCode, 0, again.stdout);
    assert.match(again.stdout, /^recovered cycle=9 counter=9 sum=45$/m);
    assert.match(again.stdout, /^done cycle=10 counter=10 sum=55 aborted=0$/m);
  });
}

async function notes(options: CdaOptions, mode: CdaMode = 'hash') {
  const module = await loadGuestModule(guestPath('cdanotes'), { cacheDir, cdaStores: mode === 'emul' });
  const wasi = WasiDevice.create({ args: [], env: [], preopens: [], output: new OutputGate(new CollectedOutput()) });
  const cda = new GuestCda({ mode, inline: true, ...options });
  await cda.ready;
  const guest = await Guest.create(module, { wasi, hypercalls: cda.hypercalls, storeRecorder: cda.storeRecorder });
  const ask = (line: string) => Buffer.from(guest.request('handle', Buffer.from(line))).toString();
  return { cda, guest, ask };
}

test('AssemblyScript reactor: the response of a cycle waits for its commit; a failed commit withholds it and leaves no trace', async () => {
  let fail = false;
  const dir = tempDir('cda-notes');
  const r = await notes({ target: { kind: 'disk', dir }, failCommit: () => fail });
  assert.equal(r.ask('RECOVER'), 'RECOVERED 0 0');
  assert.equal(await r.cda.settle(), null, 'no cycle ended');
  assert.equal(r.ask('ADD hello'), 'OK 1');
  assert.equal(r.cda.service.cycleState, 'committing', 'the cycle is not yet durable when the call returns');
  const s1 = await r.cda.settle();
  assert.ok(s1?.ok);
  assert.equal(r.cda.service.committedCycle, 1);
  assert.equal(r.ask('DRAFT scratch'), 'DROPPED');
  assert.equal(r.ask('COUNT'), '1 7');
  fail = true;
  assert.equal(r.ask('ADD lost'), 'OK 2', 'a reactor answers the number its cycle will have');
  const s2 = await r.cda.settle();
  assert.ok(s2 && !s2.ok && s2.error.code === 'ERR_CDA_IO', 'and the host learns the commit failed');
  assert.equal(r.ask('COUNT'), '1 7', 'the areas are back as at begin');
  fail = false;
  assert.equal(r.ask('ADD world'), 'OK 2');
  assert.ok((await r.cda.settle())?.ok);
  const digest = r.ask('DIGEST');
  await r.cda.close();
  // A new instance over the same target recovers the notes.
  for (const mode of ['hash', 'emul'] as const) {
    const again = await notes({ target: { kind: 'disk', dir } }, mode);
    assert.equal(again.ask('COUNT'), '0 0');
    assert.equal(again.ask('RECOVER'), 'RECOVERED 2 2');
    assert.equal(again.ask('DIGEST'), digest);
    await again.cda.close();
  }
});

test('emul instrumentation: every store, fill and copy inside the bounds is recorded, nothing outside', async () => {
  const m = binaryen.parseText(`(module
    (memory (export "memory") 2)
    (func (export "stores") (param $p i32)
      (i32.store offset=4 (local.get $p) (i32.const 1))
      (i64.store8 offset=100 (local.get $p) (i64.const 2))
      (v128.store (i32.add (local.get $p) (i32.const 200)) (v128.const i32x4 1 2 3 4))
      (f64.store offset=300 (local.get $p) (f64.const 1.5)))
    (func (export "bulk") (param $d i32) (param $n i32)
      (memory.fill (local.get $d) (i32.const 7) (local.get $n))
      (memory.copy (i32.add (local.get $d) (i32.const 1000)) (local.get $d) (local.get $n))))`);
  m.setFeatures(binaryen.Features.All);
  const bytes = m.emitBinary();
  m.dispose();
  const module = await loadGuestModule(bytes, { cacheDir: null, kind: 'reactor', cdaStores: true });
  assert.equal(module.layout.cdaStores, true);
  const wasi = WasiDevice.create({ args: [], env: [], preopens: [], output: new OutputGate(new CollectedOutput()) });
  const cda = new GuestCda({ mode: 'emul', inline: true });
  await cda.ready;
  const seen: [number, number][] = [];
  const recorder = cda.storeRecorder!;
  const guest = await Guest.create(module, {
    wasi,
    hypercalls: cda.hypercalls,
    storeRecorder: (a, n) => {
      seen.push([a >>> 0, n]);
      recorder(a, n);
    },
  });
  guest.call('stores', 5000);
  assert.deepEqual(seen, [], 'no area yet: bounds [0, 0) record nothing');
  // Register an area through the hypercall path the guest would use.
  cda.hypercalls.cda_register!(guest, 4096, 8192);
  guest.call('stores', 5000);
  assert.deepEqual(seen, [[5004, 4], [5100, 1], [5200, 16], [5300, 8]]);
  seen.length = 0;
  guest.call('stores', 20000); // outside [4096, 12288)
  guest.call('bulk', 6000, 50);
  assert.deepEqual(seen, [[6000, 50], [7000, 50]]);
  await cda.close();
});
