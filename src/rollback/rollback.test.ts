// In-memory rollback: the engine restores state byte-identical to a kept
// checkpoint; the runner detects errors, recovers and replays so the final
// output equals a fault-free run, and never lets out output it later rolls back.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Guest } from '../guest/guest.js';
import { loadGuestModule, type GuestModule } from '../guest/module.js';
import { CollectedOutput, OutputGate, type OutputTarget } from '../output/gate.js';
import { WasiDevice, type OutputStream } from '../wasi/index.js';
import { BytesInput } from '../io/input.js';
import { guestPath, tempDir } from '../testing/fixtures.js';
import { probeTrackers } from '../track/tracker.js';
import { RollbackEngine } from './engine.js';
import { runWithRollback, type RollbackRunOptions } from './runner.js';

const probe = probeTrackers().find((p) => p.kind === 'wp-sync');
const skip = probe?.supported ? false : (probe?.reason ?? 'wp-sync not probed');
const enc = (s: string): Uint8Array => Buffer.from(s, 'utf8');

let kvstore: GuestModule;
let checked: GuestModule;
let heapwalk: GuestModule;

before(async () => {
  const cacheDir = tempDir('rb-cache');
  kvstore = await loadGuestModule(guestPath('kvstore'), { cacheDir });
  checked = await loadGuestModule(guestPath('checked'), { cacheDir });
  heapwalk = await loadGuestModule(guestPath('heapwalk'), { cacheDir });
});

async function reactor(module: GuestModule): Promise<{ guest: Guest; gate: OutputGate; out: CollectedOutput }> {
  const out = new CollectedOutput();
  const gate = new OutputGate(out);
  const wasi = WasiDevice.create({ args: ['g'], env: [], preopens: [{ guestPath: '/data' }], output: gate });
  return { guest: await Guest.create(module, { wasi }), gate, out };
}

function snapshot(guest: Guest) {
  return { memory: new Uint8Array(guest.memory.buffer).slice(), vcpu: guest.captureVcpu(), device: guest.wasi.save() };
}

function assertAt(guest: Guest, snap: ReturnType<typeof snapshot>): void {
  const mem = new Uint8Array(guest.memory.buffer);
  assert.ok(Buffer.from(mem.subarray(0, snap.memory.length)).equals(snap.memory), 'memory byte-identical');
  assert.ok(mem.subarray(snap.memory.length).every((b) => b === 0), 'memory grown since is zero');
  assert.deepEqual(guest.captureVcpu().globals, snap.vcpu.globals);
  assert.deepEqual(guest.captureVcpu().tables, snap.vcpu.tables);
  const device = guest.wasi.save();
  assert.equal(device.restoreGeneration, (snap.device.restoreGeneration as number) + 1, 'restore generation bumped');
  // The monotonic clock continues from the value saved in the checkpoint (a moment before the
  // snapshot), so it is near the snapshot's, not equal.
  assert.deepEqual({ ...device, restoreGeneration: 0, clocks: null }, { ...snap.device, restoreGeneration: 0, clocks: null });
  const [now, then] = [device.clocks as { monotonicNs: bigint }, snap.device.clocks as { monotonicNs: bigint }];
  const drift = now.monotonicNs - then.monotonicNs;
  assert.ok(drift > -1_000_000_000n && drift < 1_000_000_000n, `monotonic clock moved ${drift} ns`);
}

const request = fc.oneof(
  fc.tuple(fc.constant('SET'), fc.nat(40), fc.string({ maxLength: 300 })).map(([c, k, v]) => `${c} k${k} ${v.replace(/\s/g, '_')}`),
  fc.tuple(fc.nat(300), fc.nat(2000)).map(([n, b]) => `FILL ${n} ${b}`),
  fc.nat(40).map((k) => `DEL k${k}`),
);

describe('rollback engine', { skip }, () => {
  for (const strategy of ['cowb', 'cowp'] as const) {
    for (const histase of [false, true]) {
      it(`${strategy}${histase ? '+histase' : ''}: memory, globals and device return byte-identical to the chosen checkpoint (property)`, async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(fc.array(request, { maxLength: 6 }), { minLength: 3, maxLength: 3 }), fc.boolean(), async ([a, b, c], older) => {
            const { guest, gate } = await reactor(kvstore);
            const engine = RollbackEngine.attach(guest, gate, { epochMs: 1e9, strategy, histase });
            try {
              for (const r of a!) guest.request('handle', enc(r));
              engine.checkpoint();
              const snapA = snapshot(guest);
              for (const r of b!) guest.request('handle', enc(r));
              engine.checkpoint();
              const snapB = snapshot(guest);
              for (const r of c!) guest.request('handle', enc(r));
              const report = engine.recover('test', older ? 'older' : 'newest');
              assert.ok(report);
              assert.equal(report.sequence, older ? 1 : 2);
              assertAt(guest, older ? snapA : snapB);
              // The guest goes on from there exactly as it would have.
              const sum = new TextDecoder().decode(guest.request('handle', enc('SUM')));
              assert.match(sum, /^[0-9a-f]{16}$/);
            } finally {
              engine.dispose();
            }
          }),
          { numRuns: 6 },
        );
      });
    }
  }

  it('keeps two checkpoints (dual) and rolls back to the older by default', async () => {
    const { guest, gate } = await reactor(kvstore);
    const engine = RollbackEngine.attach(guest, gate, { epochMs: 1e9 });
    try {
      for (let i = 0; i < 5; i++) {
        guest.request('handle', enc(`FILL 50 ${100 * i}`));
        engine.checkpoint();
      }
      assert.deepEqual(engine.checkpoints().map((c) => c.sequence), [4, 5]);
      guest.request('handle', enc('FILL 50 10'));
      assert.equal(engine.recover('test')!.sequence, 4);
      assert.deepEqual(engine.checkpoints().map((c) => c.sequence), [4]);
    } finally {
      engine.dispose();
    }
  });

  it('refuses a corrupt checkpoint: the newest falls back to the older, the older to a restart', async () => {
    const { guest, gate } = await reactor(kvstore);
    const engine = RollbackEngine.attach(guest, gate, { epochMs: 1e9 });
    try {
      guest.request('handle', enc('FILL 100 500'));
      engine.checkpoint();
      const snapOlder = snapshot(guest);
      guest.request('handle', enc('FILL 100 600'));
      engine.checkpoint();
      guest.request('handle', enc('FILL 100 700'));
      (engine.checkpoints()[1]!.state as Uint8Array)[5]! ^= 0x10;
      const refused: { sequence: number; why: string }[] = [];
      const report = engine.recover('test', 'newest', refused);
      assert.equal(report?.sequence, 1);
      assert.match(refused[0]!.why, /checkpoint 2: its state fails its checksum/);
      assertAt(guest, snapOlder);
      guest.request('handle', enc('FILL 100 800'));
      engine.checkpoint();
      guest.request('handle', enc('FILL 100 900'));
      engine.tracker.flipLogBit(engine.checkpoints()[0]!.undo!.log, 100 * 8);
      const refused2: { sequence: number; why: string }[] = [];
      assert.equal(engine.recover('test', 'older', refused2), null);
      assert.match(refused2[0]!.why, /pre-images fail their checksum/);
    } finally {
      engine.dispose();
    }
  });

});

/** Output target that records writes and can report how many bytes were let out so far. */
class Recorder implements OutputTarget {
  readonly out = new CollectedOutput();
  write(stream: OutputStream, bytes: Uint8Array): void {
    this.out.write(stream, bytes.slice());
  }
}

async function runCommand(extra: Partial<RollbackRunOptions>, stdinText: string) {
  const rec = new Recorder();
  const result = await runWithRollback({
    module: heapwalk,
    args: ['heapwalk', '--stdin', '4', '12'],
    env: [],
    preopens: [],
    stdin: new BytesInput(enc(stdinText)),
    outputTarget: rec,
    epochMs: 3,
    yieldEveryMs: 1,
    ...extra,
  });
  return { result, stdout: rec.out.text('stdout') };
}

describe('detection and recovery', { skip }, () => {
  const stdinText = Array.from({ length: 14 }, (_, i) => `line ${i} ${'x'.repeat(i * 7)}`).join('\n') + '\n';
  let reference = '';
  before(async () => {
    reference = (await runCommand({}, stdinText)).stdout;
    assert.match(reference, /done checksum=/);
  });

  it('a command guest that traps mid-run recovers (stack, stdin replayed) and its output equals a fault-free run', async () => {
    let calls = 0;
    const { result, stdout } = await runCommand(
      {
        hooks: {
          onDevice(device) {
            const write = device.imports.fd_write!;
            device.imports.fd_write = (...args: unknown[]) => {
              if (++calls === 7) throw new WebAssembly.RuntimeError('injected trap');
              return write(...args);
            };
          },
        },
      },
      stdinText,
    );
    assert.equal(result.detections.length, 1);
    assert.equal(result.detections[0]!.code, 'ERR_GUEST_TRAP');
    assert.equal(result.recoveries[0]!.sequence !== null, true);
    assert.equal(stdout, reference);
  });

  it('a hang is stopped by the watchdog and recovered', async () => {
    let calls = 0;
    const { result, stdout } = await runCommand(
      {
        watchdogMs: 1500, // far above any slice of this guest, even on a loaded machine
        hooks: {
          onDevice(device) {
            const clock = device.imports.clock_time_get!;
            device.imports.clock_time_get = (...args: unknown[]) => {
              if (++calls === 5) for (;;);
              return clock(...args);
            };
          },
        },
      },
      stdinText,
    );
    assert.deepEqual(result.detections.map((d) => d.code), ['ERR_GUEST_HANG']);
    assert.equal(stdout, reference);
  });

  it('when every kept checkpoint is corrupt, recovery restarts the guest, and output already let out is not repeated', async () => {
    let calls = 0;
    let engineRef: import('./engine.js').RollbackEngine | null = null;
    const { result, stdout } = await runCommand(
      {
        hooks: {
          onDevice(device) {
            const write = device.imports.fd_write!;
            device.imports.fd_write = (...args: unknown[]) => {
              if (++calls === 10) throw new WebAssembly.RuntimeError('injected trap');
              return write(...args);
            };
          },
          onGuest(_g, engine) {
            engineRef = engine;
          },
          onDetected() {
            for (const cp of engineRef!.checkpoints()) (cp.state as Uint8Array)[3]! ^= 0xff;
          },
        },
      },
      stdinText,
    );
    assert.equal(result.restarts, 1);
    assert.equal(result.recoveries[0]!.sequence, null);
    assert.equal(stdout, reference);
  });

  it('a reactor whose memory is hit by a bit flip reports it, is rolled back, replays its requests, and lets out no rolled-back output', async () => {
    const requests = Array.from({ length: 60 }, (_, i) => enc(i % 10 === 9 ? 'SUM' : `ADD ${i % 7} ${i * 3 + 1}`));
    const refRec = new Recorder();
    const plain = await runWithRollback({ module: checked, args: ['c'], env: [], preopens: [], requests, outputTarget: refRec, epochMs: 1e9 });
    const reference = refRec.out.text('stdout');
    assert.equal(plain.detections.length, 0);

    const rec = new Recorder();
    let guestRef: Guest | null = null;
    let releasedAtDetection = -1;
    const flipAfter = 37;
    async function* feed() {
      for (const [i, r] of requests.entries()) {
        if (i === flipAfter) {
          // Find the counters (cells 0..6 as the requests so far left them) and flip a bit in cell 1.
          const mem = new Uint8Array(guestRef!.memory.buffer);
          const view = new DataView(guestRef!.memory.buffer);
          const cells = new Array<bigint>(7).fill(0n);
          for (let k = 0; k < i; k++) if (k % 10 !== 9) cells[k % 7]! += BigInt(k * 3 + 1);
          let at = -1;
          for (let p = 0; p + 56 <= mem.length && at < 0; p += 8) if (cells.every((v, j) => view.getBigUint64(p + 8 * j, true) === v)) at = p;
          assert.ok(at >= 0, 'found the counters');
          mem[at + 8]! ^= 0x04;
        }
        yield r;
      }
    }
    const result = await runWithRollback({
      module: checked, args: ['c'], env: [], preopens: [], requests: feed(), outputTarget: rec, epochMs: 0.001,
      hooks: {
        onGuest(g) {
          guestRef = g;
        },
        onDetected() {
          releasedAtDetection = rec.out.text('stdout').split('\n').length - 1;
        },
      },
    });
    assert.deepEqual(result.detections.map((d) => d.code), ['ERR_GUEST_REPORTED']);
    const rb = result.recoveries[0]!;
    assert.ok(rb.sequence !== null);
    assert.ok(releasedAtDetection <= rb.requestIndex, `released ${releasedAtDetection} lines, rolled back to request ${rb.requestIndex}`);
    assert.equal(rec.out.text('stdout'), reference);
  });

  it('a failed host-side assertion is a detection too', async () => {
    let fail = 1;
    const rec = new Recorder();
    const requests = Array.from({ length: 20 }, (_, i) => enc(`ADD ${i} ${i}`));
    const result = await runWithRollback({
      module: checked, args: ['c'], env: [], preopens: [], requests, outputTarget: rec, epochMs: 0.001,
      assertions: [() => (fail-- === 0 ? 'counter invariant' : null)],
    });
    assert.deepEqual(result.detections.map((d) => d.code), ['ERR_GUEST_ASSERTION']);
    const ref = requests.map((_, i) => String(i)).join('\n') + '\n';
    assert.equal(rec.out.text('stdout'), ref);
  });
});

describe('error injection', { skip }, () => {
  it('a crash campaign on a command guest: every injected trap is detected and recovered, with the fault-free output', async () => {
    const { runCampaign } = await import('./inject.js');
    const stdin = enc(Array.from({ length: 6 }, (_, i) => `in ${i}`).join('\n') + '\n');
    const { trials } = await runCampaign({ module: heapwalk, args: ['heapwalk', '--stdin', '2', '6'], stdin, kind: 'crash', trials: 3, seed: 7, epochMs: 2, watchdogMs: 5000, yieldEveryMs: 1 });
    assert.equal(trials.length, 3);
    for (const t of trials) {
      assert.ok(t.injected && t.detected && t.recovered, JSON.stringify(t));
      assert.ok(t.latencyMs !== null && t.latencyMs < 1000);
    }
  });

  it('a memory bit-flip campaign on a self-checking reactor never ends with undetected wrong output in the checked cells', async () => {
    const { runCampaign } = await import('./inject.js');
    const requests = Array.from({ length: 40 }, (_, i) => enc(`ADD ${i % 5} ${i}`));
    const { trials } = await runCampaign({ module: checked, args: ['c'], requests, kind: 'bitflip-memory', trials: 4, seed: 3, epochMs: 0.001, watchdogMs: 5000 });
    for (const t of trials) {
      assert.ok(t.injected);
      if (t.detected) assert.ok(t.recovered, JSON.stringify(t));
    }
  });
});
