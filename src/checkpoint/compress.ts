// Compression of checkpoint records (page deltas, full pages). A compressed
// record is one codec id byte followed by the codec's payload, so a record
// says how it was compressed and a reader needs nothing else but the raw size,
// which the caller keeps in its own (CRC-checked) header.
//
//   compress(raw, codec?)        -> [u8 codecId][payload]
//   decompress(record, rawBytes) -> exactly rawBytes bytes, or ERR_CKPT_MALFORMED
//
// Which codec, and why: docs/compression.md (measured on real deltas of the
// example guests). Adding a codec is one entry in CODECS and one case in each
// switch; ids are part of the file format: never reuse or renumber one.
import { constants as bufferConstants } from 'node:buffer';
import zlib from 'node:zlib';
import { Compressor } from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';

/** Codec ids as stored in the first byte of a record. */
export const CodecId = {
  /** The payload is the raw bytes. */
  none: 0,
  /** RFC 1951 raw deflate (node:zlib, i.e. the zlib Node ships). */
  deflateRaw: 1,
  /** RFC 7932 brotli (node:zlib). */
  brotli: 2,
  /** RFC 8878 zstd frames (zstd-napi, libzstd built from source). */
  zstd: 3,
} as const;
export type CodecName = keyof typeof CodecId;
export type CodecIdValue = (typeof CodecId)[CodecName];

export const CODEC_ID_BYTES = 1;

/** Encoder settings per codec (the decoder needs none; the level is not stored). */
export const CODEC_LEVELS: Readonly<Record<CodecName, number>> = {
  none: 0,
  // Level 1: level 6 gains 1 % of size on page deltas for 10 % more time.
  deflateRaw: 1,
  // Quality 1: the ratio of deflate at 4x its speed on page deltas;
  // quality 4 costs 3.5x the time for no gain (docs/compression.md).
  brotli: 1,
  // Level 1: the ratio of brotli 1 and deflate 1 at 2-10x their speed (docs/compression.md).
  zstd: 1,
};

/**
 * The codec used unless a caller asks for another. Measured (docs/compression.md):
 * zstd level 1 wins outright (8 % of a core at 50 epochs/s of mean-size deltas).
 */
export const CODEC_DEFAULT: CodecName = 'zstd';

// One compressor per thread (module state is per worker), reused: a zstd context is costly to make.
const zstdCompressor = new Compressor();
zstdCompressor.setParameters({ compressionLevel: CODEC_LEVELS.zstd });

/**
 * The largest record `decompress` will produce: Node's Buffer limit. Callers
 * bound rawBytes by their own (smaller) section limits before calling, since
 * rawBytes itself comes from a file.
 */
export const DECOMPRESS_RAW_BYTES_MAX = Math.min(bufferConstants.MAX_LENGTH - 1, Number.MAX_SAFE_INTEGER);

// zlib's smallest output chunk (Z_MIN_CHUNK).
const ZLIB_CHUNK_BYTES_MIN = 64;

const CODEC_NAMES: readonly CodecName[] = Object.keys(CodecId) as CodecName[];
for (const name of CODEC_NAMES) assert(CodecId[name] >= 0 && CodecId[name] <= 255, 'a codec id is one byte');
assert(new Set(CODEC_NAMES.map((n) => CodecId[n])).size === CODEC_NAMES.length, 'codec ids are distinct');

export function codecName(id: number): CodecName | undefined {
  return CODEC_NAMES.find((n) => CodecId[n] === id);
}

/**
 * Compresses `raw` with `codec` (default CODEC_DEFAULT). When the codec does
 * not make the bytes smaller (random data), the record is stored with `none`,
 * so a record is never more than one byte larger than its raw bytes.
 */
export function compress(raw: Uint8Array, codec: CodecName = CODEC_DEFAULT): Uint8Array {
  let payload: Uint8Array | undefined;
  switch (codec) {
    case 'none':
      break;
    case 'deflateRaw':
      payload = zlib.deflateRawSync(raw, { level: CODEC_LEVELS.deflateRaw });
      break;
    case 'brotli':
      payload = zlib.brotliCompressSync(raw, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: CODEC_LEVELS.brotli,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
        },
      });
      break;
    case 'zstd':
      payload = zstdCompressor.compress(raw);
      break;
  }
  const id = payload !== undefined && payload.length < raw.length ? CodecId[codec] : CodecId.none;
  const body = id === CodecId.none ? raw : payload!;
  const record = new Uint8Array(CODEC_ID_BYTES + body.length);
  record[0] = id;
  record.set(body, CODEC_ID_BYTES);
  return record;
}

/**
 * The raw bytes of a record (untrusted: from a file or the network). Produces
 * exactly `rawBytes` bytes or throws ERR_CKPT_MALFORMED: unknown codec, corrupt
 * payload, or a payload that decodes to more or fewer bytes. The decoder's
 * output is capped at rawBytes: it never holds more than rawBytes + 1 bytes of
 * output (one output chunk of that size). For `none` the result is a view of
 * `record`, not a copy.
 */
export function decompress(record: Uint8Array, rawBytes: number): Uint8Array {
  assert(Number.isSafeInteger(rawBytes) && rawBytes >= 0, 'rawBytes is a byte count');
  if (rawBytes > DECOMPRESS_RAW_BYTES_MAX) throw malformed(`raw size ${rawBytes} exceeds ${DECOMPRESS_RAW_BYTES_MAX}`);
  if (record.length < CODEC_ID_BYTES) throw malformed('empty record');
  const id = record[0]!;
  const payload = record.subarray(CODEC_ID_BYTES);
  let out: Uint8Array;
  switch (id) {
    case CodecId.none:
      out = payload;
      break;
    case CodecId.deflateRaw:
    case CodecId.brotli: {
      // One output chunk one byte larger than expected: a stream that decodes
      // to more than rawBytes overflows maxOutputLength inside that chunk and
      // is refused before zlib allocates a second one.
      // `info` reports how much input the stream used: bytes after the end of
      // the stream are refused, so no byte of a record goes unchecked.
      const options = { maxOutputLength: Math.max(rawBytes, 1), chunkSize: Math.max(rawBytes + 1, ZLIB_CHUNK_BYTES_MIN), info: true } as const;
      let used: number;
      try {
        const r = (id === CodecId.deflateRaw ? zlib.inflateRawSync(payload, options) : zlib.brotliDecompressSync(payload, options)) as unknown as {
          buffer: Buffer;
          engine: { bytesWritten: number };
        };
        out = r.buffer;
        used = r.engine.bytesWritten;
      } catch (e) {
        throw malformed(`${codecName(id)} payload does not decode (${(e as Error).message})`, e);
      }
      if (used !== payload.length) throw malformed(`${payload.length - used} bytes after the end of the ${codecName(id)} stream`);
      break;
    }
    case CodecId.zstd: {
      // Into a buffer of exactly rawBytes: the low-level call refuses a frame that decodes to more
      // ("destination too small"), trailing bytes and corruption, and never trusts the frame's own
      // size field to allocate.
      const dst = new Uint8Array(rawBytes);
      let n: number;
      try {
        n = (zstdBinding as unknown as { decompress(dst: Uint8Array, src: Uint8Array): number }).decompress(dst, payload);
      } catch (e) {
        throw malformed(`zstd payload does not decode (${(e as Error).message})`, e);
      }
      out = dst.subarray(0, n);
      break;
    }
    default:
      throw malformed(`unknown compression codec ${id}`);
  }
  if (out.length !== rawBytes) throw malformed(`${codecName(id)} payload decodes to ${out.length} bytes, not ${rawBytes}`);
  return out;
}

function malformed(what: string, cause?: unknown): UnderstudyError {
  return new UnderstudyError('ERR_CKPT_MALFORMED', `compressed record: ${what}`, cause === undefined ? undefined : { cause });
}
