// collect (seed 003 §3.1): a full checkpoint written while the guest keeps
// running is byte-identical to a checkpoint of the guest stopped at the
// collect's instant, and restores like one.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Guest } from '../guest/guest.js';
import { loadGuestModule, type GuestModule } from '../guest/module.js';
import { CollectedOutput, OutputGate } from '../output/gate.js';
import { WasiDevice } from '../wasi/index.js';
import { hostClock } from '../wasi/clocks.js';
import { guestPath, tempDir } from '../testing/fixtures.js';
import { probeTrackers } from '../track/tracker.js';
import { openCheckpoint, restoreFromCheckpoint, writeFullCheckpoint } from '../checkpoint/snapshot.js';
import { RollbackEngine } from './engine.js';

const probe = probeTrackers().find((p) => p.kind === 'wp-sync');
const skip = probe?.supported ? false : (probe?.reason ?? 'wp-sync not probed');
const enc = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const CREATED_AT_MS = 1_700_000_000_000;

let kvstore: GuestModule;
before(async () => {
  kvstore = await loadGuestModule(guestPath('kvstore'), { cacheDir: tempDir('collect-cache') });
});

// The device's clocks are part of its state; frozen, two captures a moment apart read the same
// instant (which is what "a checkpoint of the guest stopped at that instant" means).
const frozenClock = { ...hostClock, realtimeNs: () => 1n, monotonicNs: () => 2n, cputimeNs: () => 3n };

async function reactor(): Promise<{ guest: Guest; gate: OutputGate }> {
  const gate = new OutputGate(new CollectedOutput());
  const wasi = WasiDevice.create({ args: ['kv'], env: [], preopens: [], output: gate, clock: frozenClock });
  return { guest: await Guest.create(kvstore, { wasi }), gate };
}

describe('collect', { skip }, () => {
  for (const strategy of ['cowb', 'cowp'] as const) {
    it(`${strategy}: the collected file equals, byte for byte, a checkpoint of the guest stopped at its instant, though the guest wrote on through several epochs`, async () => {
      const dir = tempDir('collect');
      const { guest, gate } = await reactor();
      const engine = RollbackEngine.attach(guest, gate, {
        epochMs: 1e9,
        strategy,
        histase: strategy === 'cowp',
        collect: { dir: path.join(dir, 'collected'), everyMs: 1e9, createdAtMs: () => CREATED_AT_MS },
      });
      try {
        guest.request('handle', enc('FILL 3000 200'));
        engine.checkpoint();
        guest.request('handle', enc('FILL 2000 900'));
        // The instant: a checkpoint of the stopped guest, then the collect starts at the same point.
        const stopped = path.join(dir, 'stopped.usck');
        writeFullCheckpoint(stopped, { guest, output: gate, sequence: 1, createdAtMs: CREATED_AT_MS });
        engine.checkpoint({ collect: true });
        // The guest runs on: rewrites what the scan is copying, grows, and several epochs pass.
        for (let e = 0; e < 6; e++) {
          guest.request('handle', enc(`FILL ${1500 + 500 * e} ${300 + e}`));
          guest.request('handle', enc(`SET k${e} ${'v'.repeat(1000 * e)}`));
          guest.request('handle', enc(`DEL fill:${e * 7}`));
          engine.checkpoint();
          await new Promise((r) => setTimeout(r, 2));
        }
        await engine.drainCollect();
        const written = engine.collector!.written;
        assert.equal(written.length, 1);
        const collected = written[0]!.path;
        assert.equal(path.basename(collected), 'ckpt-000001.usck');
        assert.ok(fs.readFileSync(collected).equals(fs.readFileSync(stopped)), 'byte-identical to the stopped-guest checkpoint');
        // It restores, and the restored guest is the guest as it was at the instant.
        const opened = openCheckpoint(collected);
        try {
          const restored = await restoreFromCheckpoint(opened, { host: {}, outputTarget: new CollectedOutput() });
          const sum = (g: Guest) => Buffer.from(g.request('handle', enc('SUM'))).toString();
          const fresh = await reactor();
          fresh.guest.request('handle', enc('FILL 3000 200'));
          fresh.guest.request('handle', enc('FILL 2000 900'));
          assert.equal(sum(restored.guest), sum(fresh.guest));
        } finally {
          opened.close();
        }
      } finally {
        await engine.close();
      }
    });
  }

  it('a rollback abandons the collect in progress (its instant may hold the error); the next one completes', async () => {
    const dir = tempDir('collect-rb');
    const { guest, gate } = await reactor();
    const engine = RollbackEngine.attach(guest, gate, { epochMs: 1e9, collect: { dir, everyMs: 1e9 } });
    try {
      guest.request('handle', enc('FILL 3000 200'));
      engine.checkpoint({ collect: true });
      guest.request('handle', enc('FILL 3000 300'));
      assert.ok(engine.recover('test', 'newest'));
      assert.deepEqual(engine.collector!.abandoned, ['a rollback']);
      engine.checkpoint({ collect: true });
      guest.request('handle', enc('FILL 100 1'));
      await engine.drainCollect();
      assert.equal(engine.collector!.written.length, 1);
      assert.equal(openCheckpoint(engine.collector!.written[0]!.path).meta.sequence, 1);
    } finally {
      await engine.close();
    }
  });
});
