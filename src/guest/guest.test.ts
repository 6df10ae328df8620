import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Guest } from './guest.js';
import { loadGuestModule, type GuestModule } from './module.js';
import { writeFullCheckpoint, openCheckpoint, restoreFromCheckpoint } from '../checkpoint/snapshot.js';
import { CollectedOutput, OutputGate } from '../output/gate.js';
import { WasiDevice } from '../wasi/index.js';
import { BytesInput } from '../io/input.js';
import { compileC, guestPath, tempDir } from '../testing/fixtures.js';
import { isUnderstudyError } from '../errors.js';
import binaryen from 'binaryen';

const cacheDir = tempDir('cache');
const EMPTY = new Uint8Array(0);

interface CommandRun {
  stdout: Buffer;
  exitCode: number;
  guest: Guest;
  checkpoints: { file: string; stdoutBytes: number }[];
}

async function runCommand(module: GuestModule, args: string[], opts: { yieldEveryMs: number; checkpointEvery?: number; dir?: string; stdin?: Uint8Array }): Promise<CommandRun> {
  const out = new CollectedOutput();
  const gate = new OutputGate(out);
  const wasi = WasiDevice.create({ args, env: [['LANG', 'C']], preopens: [{ guestPath: '/out' }], stdin: new BytesInput(opts.stdin ?? EMPTY), output: gate });
  const guest = await Guest.create(module, { wasi, yieldEveryMs: opts.yieldEveryMs });
  const checkpoints: CommandRun['checkpoints'] = [];
  let pauses = 0;
  if (opts.checkpointEvery) {
    guest.onSafePoint((g) => {
      if (pauses++ % opts.checkpointEvery! !== 0) return;
      const file = path.join(opts.dir!, `c${checkpoints.length}.usck`);
      const { meta } = writeFullCheckpoint(file, { guest: g, output: gate, sequence: checkpoints.length + 1 });
      checkpoints.push({ file, stdoutBytes: meta.output.stdoutBytes });
    });
  }
  const exitCode = await guest.run();
  return { stdout: Buffer.from(out.text('stdout')), exitCode, guest, checkpoints };
}

async function restoreAndFinish(module: GuestModule, file: string, stdin = EMPTY): Promise<{ stdout: Buffer; exitCode: number; guest: Guest }> {
  const opened = openCheckpoint(file);
  const out = new CollectedOutput();
  try {
    const { guest } = await restoreFromCheckpoint(opened, { module, host: { stdin: new BytesInput(stdin) }, outputTarget: out, guestOptions: { yieldEveryMs: 5 } });
    const exitCode = await guest.run();
    return { stdout: Buffer.from(out.text('stdout')), exitCode, guest };
  } finally {
    opened.file.close();
  }
}

test('rewrite exports globals, tables and table functions, and keeps the guest working', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const { layout } = module;
  assert.equal(layout.kind, 'command');
  assert.ok(layout.asyncify);
  assert.ok(layout.globals.some((g) => g.mutable && g.type === 'i32'), 'the shadow stack pointer is a mutable i32 global');
  assert.ok(layout.tables.length >= 1);
  assert.ok(layout.tableFunctions.length >= 1, 'printf reaches stdout through a function pointer');
  const again = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  assert.ok(again.rewrite.cached, 'the second load comes from the cache');
  assert.deepEqual(again.layout, layout);
});

test('heapwalk: checkpoint at many safe points; each restore finishes with identical output and files', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const args = ['heapwalk', '3', '12', '/out/heapwalk.txt'];
  const plain = await runCommand(module, args, { yieldEveryMs: 1e9 });
  assert.equal(plain.exitCode, 0);
  assert.match(plain.stdout.toString(), /done checksum=/);
  const dir = tempDir('hw');
  const stopped = await runCommand(module, args, { yieldEveryMs: 0, checkpointEvery: 2, dir });
  assert.ok(stopped.guest.safePointCounts.yield >= 12, 'the guest was stopped at every host call');
  assert.ok(stopped.stdout.equals(plain.stdout), 'stopping at safe points does not change the output');
  assert.ok(stopped.checkpoints.length >= 5);
  const resultFile = Buffer.from(plain.guest.wasi.readFile('/out/heapwalk.txt'));
  for (const c of stopped.checkpoints) {
    const r = await restoreAndFinish(module, c.file);
    assert.equal(r.exitCode, 0);
    const combined = Buffer.concat([plain.stdout.subarray(0, c.stdoutBytes), r.stdout]);
    assert.ok(combined.equals(plain.stdout), `restore of ${path.basename(c.file)} continued exactly (${c.stdoutBytes} B before)`);
    assert.ok(Buffer.from(r.guest.wasi.readFile('/out/heapwalk.txt')).equals(resultFile), 'result file identical');
    assert.equal(r.guest.wasi.restoreGeneration, 1);
  }
});

const MEMORY_PROBE_C = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  unsigned *a = malloc(1 << 20);
  unsigned x = 7;
  for (int r = 0; r < 30; r++) {
    for (int i = 0; i < (1 << 18); i++) { x = x * 1103515245u + 12345u; a[i] ^= x; }
    printf("r %d %u\\n", r, a[r * 77]);
  }
  return 0;
}`;

test('a guest stopped at every host call ends with memory byte-identical to one never stopped', async () => {
  const module = await loadGuestModule(compileC(MEMORY_PROBE_C), { cacheDir });
  const digest = (g: Guest) => createHash('sha256').update(new Uint8Array(g.memory.buffer)).digest('hex');
  const a = await runCommand(module, ['probe'], { yieldEveryMs: 1e9 });
  const b = await runCommand(module, ['probe'], { yieldEveryMs: 0 });
  assert.ok(b.guest.safePointCounts.yield > 0);
  assert.ok(a.stdout.equals(b.stdout));
  assert.equal(digest(a.guest), digest(b.guest));
});

test('stdin is read across a checkpoint; --replay-stdin style skipping continues exactly', async () => {
  const module = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
  const input = Buffer.from(Array.from({ length: 60 }, (_, i) => `line number ${i} ${'x'.repeat(150 + i)}\n`).join(''));
  const args = ['heapwalk', '--stdin', '2', '30'];
  const plain = await runCommand(module, args, { yieldEveryMs: 1e9, stdin: input });
  const dir = tempDir('stdin');
  const stopped = await runCommand(module, args, { yieldEveryMs: 0, checkpointEvery: 3, dir, stdin: input });
  assert.ok(stopped.stdout.equals(plain.stdout));
  const middle = stopped.checkpoints[Math.floor(stopped.checkpoints.length / 2)]!;
  const opened = openCheckpoint(middle.file);
  const consumed = opened.meta.stdinBytesConsumed;
  opened.file.close();
  assert.ok(consumed > 0 && consumed < input.length, 'the checkpoint lies inside the input');
  const r = await restoreAndFinish(module, middle.file, input.subarray(consumed));
  assert.ok(Buffer.concat([plain.stdout.subarray(0, middle.stdoutBytes), r.stdout]).equals(plain.stdout));
});

const RANDOM_C = `
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  unsigned char b[16];
  printf("before\\n");
  fflush(stdout);
  arc4random_buf(b, sizeof b);
  for (int i = 0; i < 16; i++) printf("%02x", b[i]);
  printf("\\n");
  return 0;
}`;

test('two restores of one checkpoint never hand out the same random bytes', async () => {
  const module = await loadGuestModule(compileC(RANDOM_C), { cacheDir });
  const dir = tempDir('rand');
  const run = await runCommand(module, ['rand'], { yieldEveryMs: 0, checkpointEvery: 1, dir });
  const first = run.checkpoints[0]!;
  const a = await restoreAndFinish(module, first.file);
  const b = await restoreAndFinish(module, first.file);
  assert.notEqual(a.stdout.toString(), b.stdout.toString());
  assert.match(a.stdout.toString(), /[0-9a-f]{32}/);
});

test('reactor kvstore: checkpoint between requests, restore, continue: same answers', async () => {
  const module = await loadGuestModule(guestPath('kvstore'), { cacheDir });
  assert.equal(module.layout.kind, 'reactor');
  assert.ok(!module.layout.asyncify, 'reactors need no instrumentation');
  const requests = ['FILL 3000 40', 'SET alpha one', 'GET alpha', 'DEL fill:7', 'GET fill:7', 'SET beta two', 'COUNT', 'SUM', 'FILL 500 100', 'GET fill:3100', 'SUM', 'STATS'];
  const fresh = async () => {
    const gate = new OutputGate(new CollectedOutput());
    const wasi = WasiDevice.create({ args: ['kvstore'], env: [], preopens: [], output: gate });
    return { guest: await Guest.create(module, { wasi }), gate };
  };
  const ask = (g: Guest, r: string) => Buffer.from(g.request('handle', Buffer.from(r))).toString();
  const { guest: ref } = await fresh();
  const expected = requests.map((r) => ask(ref, r));
  assert.equal(expected[2], 'one');
  assert.equal(expected[4], 'NOT_FOUND');
  const dir = tempDir('kv');
  for (const k of [0, 1, 5, requests.length - 1]) {
    const { guest, gate } = await fresh();
    const got = requests.slice(0, k).map((r) => ask(guest, r));
    const file = path.join(dir, `kv${k}.usck`);
    writeFullCheckpoint(file, { guest, output: gate, sequence: k });
    const opened = openCheckpoint(file);
    const { guest: back } = await restoreFromCheckpoint(opened, { module, host: {} });
    opened.file.close();
    got.push(...requests.slice(k).map((r) => ask(back, r)));
    assert.deepEqual(got, expected, `checkpoint after ${k} requests`);
  }
});

test('reactor in AssemblyScript (ledger): state in GC objects survives a checkpoint', async () => {
  const module = await loadGuestModule(guestPath('ledger'), { cacheDir });
  const gate = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output: gate }) });
  const ask = (g: Guest, r: string) => Buffer.from(g.request('handle', Buffer.from(r))).toString();
  ask(guest, 'FILL 200 1000');
  ask(guest, 'OPEN alice 100');
  ask(guest, 'OPEN bob 5');
  assert.equal(ask(guest, 'XFER alice bob 30'), 'OK');
  const digest = ask(guest, 'DIGEST');
  const file = path.join(tempDir('ledger'), 'l.usck');
  writeFullCheckpoint(file, { guest, output: gate, sequence: 1 });
  const opened = openCheckpoint(file);
  const { guest: back } = await restoreFromCheckpoint(opened, { module, host: {} });
  opened.file.close();
  assert.equal(ask(back, 'DIGEST'), digest);
  assert.equal(ask(back, 'BAL bob'), '35');
  assert.equal(ask(back, 'XFER bob alice 35'), ask(guest, 'XFER bob alice 35'));
  assert.equal(ask(back, 'DIGEST'), ask(guest, 'DIGEST'));
});

test('a checkpoint of one module is refused for another', async () => {
  const kv = await loadGuestModule(guestPath('kvstore'), { cacheDir });
  const ledger = await loadGuestModule(guestPath('ledger'), { cacheDir });
  const gate = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(kv, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output: gate }) });
  const file = path.join(tempDir('mismatch'), 'kv.usck');
  writeFullCheckpoint(file, { guest, output: gate, sequence: 1 });
  const opened = openCheckpoint(file);
  await assert.rejects(restoreFromCheckpoint(opened, { module: ledger, host: {} }), (e) => isUnderstudyError(e, 'ERR_CKPT_MODULE_MISMATCH'));
  opened.file.close();
});

test('a trapping guest is reported as ERR_GUEST_TRAP and marked crashed', async () => {
  const module = await loadGuestModule(compileC('#include <stdio.h>\nint main(void){ printf("x\\n"); fflush(stdout); __builtin_trap(); }'), { cacheDir });
  const gate = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output: gate }) });
  await assert.rejects(guest.run(), (e) => isUnderstudyError(e, 'ERR_GUEST_TRAP'));
  assert.equal(guest.status, 'crashed');
  assert.throws(() => guest.captureVcpu(), (e) => isUnderstudyError(e, 'ERR_GUEST_NOT_AT_SAFE_POINT'));
});

test('a module with an import understudy does not provide is refused clearly', async () => {
  const module = await loadGuestModule(compileC('extern int mystery(int); int main(void){ return mystery(1); }', ['-Wl,--allow-undefined']), { cacheDir });
  const gate = new OutputGate(new CollectedOutput());
  await assert.rejects(Guest.create(module, { wasi: WasiDevice.create({ args: [], env: [], preopens: [], output: gate }) }), (e) => isUnderstudyError(e, 'ERR_MODULE_UNSUPPORTED') && /env\.mystery/.test((e as Error).message));
});

test('bytes that are not a module are refused as ERR_MODULE_INVALID', async () => {
  await assert.rejects(loadGuestModule(Uint8Array.of(0, 97, 115, 109, 9, 9), { cacheDir: null }), (e) => isUnderstudyError(e, 'ERR_MODULE_INVALID'));
});

test('a command stopped in a hypercall that returns i64 or f64 answers a zero of that type, and resumes with the real value', async () => {
  // _start calls understudy.big (i64) and understudy.real (f64) 50 times each and stores the sums.
  const wat = `(module
    (import "understudy" "big" (func $big (param i32) (result i64)))
    (import "understudy" "real" (func $real (result f64)))
    (memory (export "memory") 1)
    (func (export "_start") (local $i i32) (local $s i64) (local $r f64)
      (loop $l
        (local.set $s (i64.add (local.get $s) (call $big (local.get $i))))
        (local.set $r (f64.add (local.get $r) (call $real)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 50))))
      (i64.store (i32.const 1024) (local.get $s))
      (f64.store (i32.const 1032) (local.get $r))))`;
  const mod = binaryen.parseText(wat);
  const bytes = mod.emitBinary();
  mod.dispose();
  const module = await loadGuestModule(bytes, { cacheDir: null });
  const output = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, {
    wasi: WasiDevice.create({ args: [], env: [], preopens: [], output }),
    yieldEveryMs: 0, // every hypercall stops the guest first
    hypercalls: { big: (_g: Guest, i: number) => BigInt(i) * 10_000_000_000n, real: () => 0.5 },
  });
  assert.equal(await guest.run(), 0);
  const view = new DataView(guest.memory.buffer);
  assert.equal(view.getBigInt64(1024, true), 1225n * 10_000_000_000n);
  assert.equal(view.getFloat64(1032, true), 25);
  assert.ok(guest.safePointCounts.yield >= 100, 'the guest was stopped at the calls');
});
