// The C guest (guests/c/cdabench.c) and the TypeScript workloads hold the
// same arena bytes after the same operations, and the guest resumes from a
// recovered arena exactly. The guest runs under the project's Guest runtime
// with a minimal test-only CDA hypercall table (the real one lives in
// src/cda/): it records the area, numbers the cycles and, when asked, fills
// the area with a given arena on cda_recover or fails one commit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Guest, type Hypercalls } from '../../guest/guest.js';
import { loadGuestModule, type GuestModule } from '../../guest/module.js';
import { WasiDevice } from '../../wasi/index.js';
import { CollectedOutput } from '../../output/gate.js';
import { guestPath, tempDir } from '../../testing/fixtures.js';
import { WORKLOAD_NAMES, digest, runReference, type WorkloadName } from './index.js';

const ARENA = 256 * 1024;
const OPS = 300;
const SEED = 7;
const US_CDA_EIO = -4n;

// Without safe points the rewrite skips Asyncify (seconds on a busy machine)
// and the guest runs straight through; the hypercalls are called the same way.
let modulePromise: Promise<GuestModule> | null = null;
function cdabench(): Promise<GuestModule> {
  modulePromise ??= loadGuestModule(guestPath('cdabench'), { cacheDir: tempDir('cache'), safePoints: false });
  return modulePromise;
}

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The registered area's bytes after the run. */
  area: Uint8Array | null;
  calls: { register: number; begin: number; end: number; recover: number };
}

interface RunOptions {
  /** cda_recover fills the area with `bytes` and answers `cycle`. */
  recover?: { cycle: number; bytes: Uint8Array };
  /** cda_end of this cycle number fails once (US_CDA_EIO), putting the area back as of cda_begin. */
  failCommit?: number;
}

async function runGuest(args: string[], options: RunOptions = {}): Promise<Run> {
  const out = new CollectedOutput();
  const wasi = WasiDevice.create({ args: ['cdabench', ...args], env: [], preopens: [], output: out });
  let area: { ptr: number; len: number } | null = null;
  let cycle = 0;
  let failed = false;
  let atBegin: Uint8Array | null = null;
  const calls = { register: 0, begin: 0, end: 0, recover: 0 };
  const bytesOf = (g: Guest): Uint8Array => new Uint8Array(g.memory.buffer, area!.ptr, area!.len);
  const hypercalls: Hypercalls = {
    cda_register: (_g, ptr: number, len: number) => {
      calls.register++;
      area = { ptr: ptr >>> 0, len: len >>> 0 };
      return 1;
    },
    cda_unregister: () => 0,
    cda_begin: (g) => {
      calls.begin++;
      if (options.failCommit === cycle + 1 && !failed) atBegin = bytesOf(g).slice();
      return 0;
    },
    cda_end: (g) => {
      calls.end++;
      if (atBegin) {
        bytesOf(g).set(atBegin);
        atBegin = null;
        failed = true;
        return US_CDA_EIO;
      }
      return BigInt(++cycle);
    },
    cda_abort: () => 0,
    cda_recover: (g) => {
      calls.recover++;
      if (!options.recover) return 0n;
      bytesOf(g).set(options.recover.bytes);
      cycle = options.recover.cycle;
      return BigInt(cycle);
    },
  };
  const guest = await Guest.create(await cdabench(), { wasi, hypercalls });
  const exitCode = await guest.run();
  const registered = area as { ptr: number; len: number } | null;
  return {
    exitCode,
    stdout: out.text('stdout'),
    stderr: out.text('stderr'),
    area: registered ? new Uint8Array(guest.memory.buffer, registered.ptr, registered.len).slice() : null,
    calls,
  };
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function argsFor(name: WorkloadName, opt: number, ops = OPS): string[] {
  return [name, '--opt', String(opt), '--ops', String(ops), '--seed', String(SEED), '--arena-bytes', String(ARENA)];
}

test('cdabench (C) and the TypeScript workloads hold identical arenas at OPT=1 and OPT=5', async () => {
  for (const name of WORKLOAD_NAMES) {
    for (const opt of [1, 5]) {
      const run = await runGuest(argsFor(name, opt));
      assert.equal(run.exitCode, 0, run.stderr);
      const expected = runReference(name, { opt, cycles: OPS / opt, seed: SEED, arenaBytes: ARENA });
      assert.ok(run.area && run.area.length === ARENA);
      assert.ok(Buffer.from(run.area).equals(Buffer.from(expected)), `${name} opt=${opt}: arena bytes differ`);
      assert.match(run.stdout, new RegExp(`^done workload=${name} ops=${OPS} cycles=${OPS / opt} count=\\d+ digest=${hex(digest(expected))}$`, 'm'));
      assert.deepEqual(run.calls, { register: 1, begin: OPS / opt, end: OPS / opt, recover: 1 });
    }
  }
});

test('cdabench --no-cda makes no hypercall and ends with the same digest', async () => {
  const run = await runGuest([...argsFor('hash', 5), '--no-cda']);
  assert.equal(run.exitCode, 0, run.stderr);
  assert.deepEqual(run.calls, { register: 0, begin: 0, end: 0, recover: 0 });
  assert.match(run.stdout, /cda=off/);
  assert.match(run.stdout, new RegExp(`digest=${hex(digest(runReference('hash', { opt: 5, cycles: OPS / 5, seed: SEED, arenaBytes: ARENA })))}$`, 'm'));
});

test('cdabench resumes from a recovered arena at cycle N and ends exactly where an uninterrupted run does', async () => {
  for (const name of WORKLOAD_NAMES) {
    const opt = name === 'tree' || name === 'queue' ? 5 : 1;
    const cycles = OPS / opt;
    const at = Math.floor(cycles / 3);
    const run = await runGuest(argsFor(name, opt), { recover: { cycle: at, bytes: runReference(name, { opt, cycles: at, seed: SEED, arenaBytes: ARENA }) } });
    assert.equal(run.exitCode, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^recovered cycle=${at} ops=${at * opt}$`, 'm'));
    assert.equal(run.calls.end, cycles - at, 'only the remaining cycles run');
    assert.ok(Buffer.from(run.area!).equals(Buffer.from(runReference(name, { opt, cycles, seed: SEED, arenaBytes: ARENA }))), `${name}: resumed arena differs`);
  }
});

test('cdabench runs a cycle again when its commit fails (US_CDA_EIO) and still ends exactly', async () => {
  const run = await runGuest(argsFor('tree', 1), { failCommit: 100 });
  assert.equal(run.exitCode, 0, run.stderr);
  assert.equal(run.calls.end, OPS + 1);
  assert.ok(Buffer.from(run.area!).equals(Buffer.from(runReference('tree', { opt: 1, cycles: OPS, seed: SEED, arenaBytes: ARENA }))));
});

test('cdabench refuses a recovered arena of another workload, or one its counters contradict', async () => {
  const list = runReference('list', { opt: 1, cycles: 10, seed: SEED, arenaBytes: ARENA });
  const wrong = await runGuest(argsFor('queue', 1), { recover: { cycle: 10, bytes: list } });
  assert.equal(wrong.exitCode, 1);
  assert.match(wrong.stderr, /another workload/);
  const counts = await runGuest(argsFor('list', 5), { recover: { cycle: 10, bytes: list } });
  assert.equal(counts.exitCode, 1);
  assert.match(counts.stderr, /counts do not match/);
  const corrupt = list.slice();
  corrupt[0] = corrupt[0]! ^ 0xff;
  const bad = await runGuest(argsFor('list', 1), { recover: { cycle: 10, bytes: corrupt } });
  assert.equal(bad.exitCode, 1);
  assert.match(bad.stderr, /corrupt arena: bad magic/);
  // A link pointing outside the arena passes the header checks and is caught when an operation follows it.
  const tree = runReference('tree', { opt: 1, cycles: 50, seed: SEED, arenaBytes: ARENA });
  const view = new DataView(tree.buffer, tree.byteOffset, tree.byteLength);
  const root = view.getUint32(52, true);
  view.setUint32(root, ARENA * 4, true);
  view.setUint32(root + 4, ARENA * 4, true);
  const link = await runGuest(argsFor('tree', 1), { recover: { cycle: 50, bytes: tree } });
  assert.equal(link.exitCode, 1);
  assert.match(link.stderr, /corrupt arena: an offset points outside it/);
  assert.ok(link.calls.end === 0, 'the cycle that met the bad link was not committed');
  const usage = await runGuest(['list', '--opt', '3', '--ops', '10']);
  assert.equal(usage.exitCode, 2);
});
