import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { CODEC_DEFAULT, CodecId, type CodecName, codecName, compress, decompress } from './compress.js';
import { isUnderstudyError } from '../errors.js';

const CODECS = Object.keys(CodecId) as CodecName[];
const refused = (e: unknown) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED');
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
const withId = (id: number, payload: Uint8Array) => new Uint8Array(Buffer.concat([Uint8Array.of(id), payload]));

/** Bytes that look like a page delta: headers, small runs, repeated structure. */
function deltaLike(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = i % 64 < 8 ? (i >> 6) & 0xff : (i * 7) % 13;
  return out;
}

test('round trip for each codec, on compressible, incompressible and empty data', () => {
  for (const codec of CODECS) {
    for (const raw of [new Uint8Array(0), Uint8Array.of(1), deltaLike(100_000), new Uint8Array(randomBytes(10_000))]) {
      const record = compress(raw, codec);
      assert.ok(codecName(record[0]!), 'the first byte names a codec');
      assert.ok(record.length <= raw.length + 1, 'never more than one byte of overhead');
      assert.ok(sameBytes(decompress(record, raw.length), raw), `${codec}, ${raw.length} bytes`);
    }
  }
  assert.equal(compress(deltaLike(100_000))[0], CodecId[CODEC_DEFAULT]);
  assert.ok(compress(deltaLike(100_000)).length < 25_000, 'the default codec compresses');
});

test('property: round trip of arbitrary bytes with every codec', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 5000 }), fc.constantFrom(...CODECS), (raw, codec) => {
      assert.ok(sameBytes(decompress(compress(raw, codec), raw.length), raw));
    }),
    { numRuns: 200 },
  );
});

test('incompressible data is stored, not expanded', () => {
  const raw = new Uint8Array(randomBytes(4096));
  for (const codec of CODECS) assert.equal(compress(raw, codec)[0], CodecId.none);
});

test('corrupt records are refused: unknown codec, truncation, wrong size, trailing bytes', () => {
  const raw = deltaLike(50_000);
  assert.throws(() => decompress(new Uint8Array(0), 0), refused, 'empty record');
  assert.throws(() => decompress(Uint8Array.of(200, 1, 2), 2), refused, 'unknown codec');
  for (const codec of ['deflateRaw', 'brotli'] as const) {
    const record = compress(raw, codec);
    assert.equal(record[0], CodecId[codec]);
    for (const n of [1, 2, 10, record.length >> 1, record.length - 1]) assert.throws(() => decompress(record.subarray(0, n), raw.length), refused, `${codec} truncated to ${n}`);
    assert.throws(() => decompress(record, raw.length - 1), refused, `${codec}: decodes to more than rawBytes`);
    assert.throws(() => decompress(record, raw.length + 1), refused, `${codec}: decodes to fewer than rawBytes`);
    const trailing = new Uint8Array(record.length + 3);
    trailing.set(record);
    assert.throws(() => decompress(trailing, raw.length), refused, `${codec}: bytes after the stream`);
  }
  const stored = compress(new Uint8Array(randomBytes(100)), 'none');
  assert.throws(() => decompress(stored, 99), refused, 'none: wrong size');
});

test('property: a mutated record either decodes to exactly rawBytes bytes or is refused', () => {
  const raw = deltaLike(20_000);
  const records = CODECS.map((c) => compress(raw, c));
  fc.assert(
    fc.property(fc.nat(records.length - 1), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (which, edits) => {
      const record = records[which]!.slice();
      for (const [at, v] of edits) record[at % record.length] = v;
      try {
        assert.equal(decompress(record, raw.length).length, raw.length);
      } catch (e) {
        assert.ok(refused(e), String(e));
      }
    }),
    { numRuns: 500 },
  );
});

test('a decompression bomb is refused at rawBytes without allocating its output', () => {
  const bombBytes = 64 * 2 ** 20;
  const zeros = new Uint8Array(bombBytes);
  const bombs = [
    withId(CodecId.deflateRaw, zlib.deflateRawSync(zeros, { level: 9 })),
    withId(CodecId.brotli, zlib.brotliCompressSync(zeros, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } })),
  ];
  for (const bomb of bombs) {
    assert.ok(bomb.length < bombBytes / 500);
    const before = process.memoryUsage().arrayBuffers;
    assert.throws(() => decompress(bomb, 4096), refused);
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 4 * 2 ** 20, `held ${grown} bytes decoding a ${bombBytes}-byte bomb with rawBytes 4096`);
  }
});
