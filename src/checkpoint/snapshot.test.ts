import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { openCheckpoint, writeCheckpointParts, type CheckpointMeta } from './snapshot.js';
import { encodePlain } from './plain-codec.js';
import { vcpuToPlain, type VcpuState } from '../guest/persist.js';
import { tempDir } from '../testing/fixtures.js';
import { isUnderstudyError, type ErrorCode } from '../errors.js';
import type { Plain } from '../util/plain.js';
import { sha256Hex } from '../guest/module.js';

const MODULE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0);

const dir = tempDir('snapshot');
let n = 0;

const vcpuArb: fc.Arbitrary<VcpuState> = fc.record({
  memoryPages: fc.integer({ min: 1, max: 3 }),
  globals: fc.array(fc.oneof(fc.constant(null), fc.integer(), fc.double({ noNaN: true }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })), { maxLength: 20 }),
  tables: fc.array(fc.array(fc.integer({ min: -1, max: 500 }), { maxLength: 30 }), { maxLength: 2 }),
  stack: fc.option(fc.uint8Array({ maxLength: 2000 }), { nil: null }),
  started: fc.boolean(),
});

// Device state of any plain shape: the container must carry it exactly.
const devicesArb: fc.Arbitrary<Plain> = fc.record({
  wasi: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.uint8Array({ maxLength: 300 }), fc.bigInt())),
  output: fc.record({ stdoutBytes: fc.nat(), stderrBytes: fc.nat() }),
}) as fc.Arbitrary<Plain>;

function metaFor(vcpu: VcpuState, seq: number): CheckpointMeta {
  return {
    sequence: seq,
    createdAtMs: 1_700_000_000_000 + seq,
    moduleSha256: sha256Hex(MODULE),
    guestKind: vcpu.stack ? 'command' : 'reactor',
    rewriteVersion: 1,
    memoryBytes: vcpu.memoryPages * 65536,
    restoreGeneration: seq % 3,
    output: { stdoutBytes: seq, stderrBytes: 0 },
    stdinBytesConsumed: 0,
  };
}

const CODES: ErrorCode[] = ['ERR_CKPT_TRUNCATED', 'ERR_CKPT_MAGIC', 'ERR_CKPT_VERSION', 'ERR_CKPT_CHECKSUM', 'ERR_CKPT_MALFORMED', 'ERR_CKPT_TOO_LARGE', 'ERR_CKPT_MODULE_MISMATCH'];

test('random guest states and device states round-trip through the checkpoint format', () => {
  fc.assert(
    fc.property(vcpuArb, devicesArb, fc.uint8Array({ minLength: 64, maxLength: 64 }), (vcpu, devices, seed) => {
      const file = path.join(dir, `rt${n++}.usck`);
      const memory = new Uint8Array(vcpu.memoryPages * 65536);
      for (let i = 0; i < memory.length; i += 997) memory[i] = seed[i % seed.length]!;
      const meta = metaFor(vcpu, n);
      writeCheckpointParts(file, { meta, module: MODULE, memory, vcpu: encodePlain(vcpuToPlain(vcpu)), devices: encodePlain(devices) });
      const opened = openCheckpoint(file);
      try {
        assert.deepEqual({ ...opened.meta }, meta);
        assert.deepEqual({ ...opened.vcpu }, { ...vcpu });
        assert.deepEqual(JSON.parse(JSON.stringify(opened.wasi, (_k, v) => (typeof v === 'bigint' ? `n${v}` : v instanceof Uint8Array ? [...v] : v))), JSON.parse(JSON.stringify((devices as { wasi: Plain }).wasi, (_k, v) => (typeof v === 'bigint' ? `n${v}` : v instanceof Uint8Array ? [...v] : v))));
        const back = new Uint8Array(memory.length);
        opened.fillMemory(back);
        assert.ok(Buffer.from(back).equals(Buffer.from(memory)));
      } finally {
        opened.close();
        fs.rmSync(file);
      }
    }),
    { numRuns: 60 },
  );
});

test('any mutated byte of a guest checkpoint is refused before the state is used', () => {
  const vcpu: VcpuState = { memoryPages: 1, globals: [5, null, 7n], tables: [[0, -1, 2]], stack: Uint8Array.of(1, 2, 3, 4), started: true };
  const file = path.join(dir, 'mut.usck');
  const memory = new Uint8Array(65536).map((_, i) => i & 0xff);
  writeCheckpointParts(file, { meta: metaFor(vcpu, 1), module: MODULE, memory, vcpu: encodePlain(vcpuToPlain(vcpu)), devices: encodePlain({ wasi: { a: 1 }, output: { stdoutBytes: 0, stderrBytes: 0 } }) });
  const good = fs.readFileSync(file);
  const bad = path.join(dir, 'mut-bad.usck');
  fc.assert(
    fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), (at, xor) => {
      const copy = Buffer.from(good);
      copy[at]! ^= xor;
      fs.writeFileSync(bad, copy);
      assert.throws(
        () => {
          const opened = openCheckpoint(bad);
          try {
            opened.fillMemory(new Uint8Array(opened.meta.memoryBytes));
          } finally {
            opened.close();
          }
        },
        (e) => CODES.some((c) => isUnderstudyError(e, c)),
        `mutation at ${at}`,
      );
    }),
    { numRuns: 300 },
  );
});
