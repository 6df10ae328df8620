import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { CheckpointFile, writeCheckpointFile } from './file.js';
import { HEADER_BYTES, SectionKind, FORMAT_MAJOR, isReadableVersion } from './format.js';
import { isUnderstudyError, type ErrorCode } from '../errors.js';
import { native } from '../native.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'us-format-'));
let n = 0;
function fresh(): string {
  return path.join(tmp, `f${n++}.usck`);
}

function readAll(file: string): Map<number, Buffer> {
  const f = CheckpointFile.open(file);
  try {
    return new Map(f.layout.sections.map((s) => [s.kind, Buffer.from(f.read(s.kind))]));
  } finally {
    f.close();
  }
}

const CKPT_CODES: ErrorCode[] = ['ERR_CKPT_TRUNCATED', 'ERR_CKPT_MAGIC', 'ERR_CKPT_VERSION', 'ERR_CKPT_CHECKSUM', 'ERR_CKPT_MALFORMED', 'ERR_CKPT_TOO_LARGE'];
function isCkptError(e: unknown): boolean {
  return CKPT_CODES.some((c) => isUnderstudyError(e, c));
}

test('sections round-trip; memory lands 4 KiB aligned', () => {
  const file = fresh();
  const memory = new Uint8Array(3 * 65536).map((_, i) => (i * 7) & 0xff);
  writeCheckpointFile(file, [
    { kind: SectionKind.Meta, data: Uint8Array.of(1, 2, 3) },
    { kind: SectionKind.Memory, data: memory },
    { kind: SectionKind.Vcpu, data: new Uint8Array(0) },
  ]);
  const f = CheckpointFile.open(file);
  assert.equal(f.require(SectionKind.Memory).offset % 4096, 0);
  f.close();
  const back = readAll(file);
  assert.deepEqual([...back.get(SectionKind.Meta)!], [1, 2, 3]);
  assert.ok(back.get(SectionKind.Memory)!.equals(memory));
  assert.equal(back.get(SectionKind.Vcpu)!.length, 0);
  assert.deepEqual(fs.readdirSync(tmp).filter((x) => x.includes('.tmp-')), [], 'no temporary file is left behind');
});

test('every single-byte mutation (padding included) and every truncation is refused with a checkpoint error', () => {
  const file = fresh();
  writeCheckpointFile(file, [
    { kind: SectionKind.Meta, data: Uint8Array.from({ length: 100 }, (_, i) => i) },
    { kind: SectionKind.Memory, data: new Uint8Array(8192).fill(9) },
  ]);
  const good = fs.readFileSync(file);
  const bad = fresh();
  fc.assert(
    fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), (at, xor) => {
      const copy = Buffer.from(good);
      copy[at]! ^= xor;
      fs.writeFileSync(bad, copy);
      assert.throws(() => readAll(bad), (e) => isCkptError(e), `mutation at ${at} was accepted`);
    }),
    { numRuns: 400 },
  );
  for (const len of [0, 10, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 31, good.length - 1]) {
    fs.writeFileSync(bad, good.subarray(0, len));
    assert.throws(() => readAll(bad), (e) => isUnderstudyError(e, 'ERR_CKPT_TRUNCATED'), `truncated to ${len}`);
  }
});

test('a foreign file is refused as ERR_CKPT_MAGIC', () => {
  const file = fresh();
  fs.writeFileSync(file, Buffer.alloc(200, 'x'));
  assert.throws(() => CheckpointFile.open(file), (e) => isUnderstudyError(e, 'ERR_CKPT_MAGIC'));
});

test('a newer major version is refused as ERR_CKPT_VERSION; the rule is same major', () => {
  assert.ok(isReadableVersion(FORMAT_MAJOR, 0));
  assert.ok(isReadableVersion(FORMAT_MAJOR, 99));
  assert.ok(!isReadableVersion(FORMAT_MAJOR + 1, 0));
  const file = fresh();
  writeCheckpointFile(file, [{ kind: SectionKind.Meta, data: Uint8Array.of(1) }]);
  const bytes = fs.readFileSync(file);
  bytes.writeUInt16LE(FORMAT_MAJOR + 1, 8);
  bytes.writeUInt32LE(native.crc32c(bytes.subarray(0, 60)), 60);
  fs.writeFileSync(file, bytes);
  assert.throws(() => CheckpointFile.open(file), (e) => isUnderstudyError(e, 'ERR_CKPT_VERSION'));
});

test('an unknown optional section is skipped, an unknown required one refused', () => {
  const file = fresh();
  writeCheckpointFile(file, [
    { kind: SectionKind.Meta, data: Uint8Array.of(1) },
    { kind: 77 as SectionKind, flags: 1, data: Uint8Array.of(5, 5) },
  ]);
  assert.deepEqual([...readAll(file).get(SectionKind.Meta)!], [1]);
  const file2 = fresh();
  writeCheckpointFile(file2, [{ kind: 77 as SectionKind, flags: 0, data: Uint8Array.of(5) }]);
  assert.throws(() => CheckpointFile.open(file2), (e) => isUnderstudyError(e, 'ERR_CKPT_VERSION'));
});

test('crc32c matches the standard check value and chains over pieces', () => {
  assert.equal(native.crc32c(Buffer.from('123456789')), 0xe3069283);
  const data = Buffer.from('hello, understudy checkpoint');
  assert.equal(native.crc32c(data.subarray(7), native.crc32c(data.subarray(0, 7))), native.crc32c(data));
});
