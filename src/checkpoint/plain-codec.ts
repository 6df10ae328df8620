// A small tagged binary encoding for Plain data (src/util/plain.ts): the
// payload of every state section of a checkpoint. It is self-describing, keeps
// key order, carries bytes without base64, and decodes untrusted input with
// every length checked against what remains before it is used.
import { UnderstudyError } from '../errors.js';
import type { Plain, PlainObject } from '../util/plain.js';

const enum Tag {
  Null = 0,
  False = 1,
  True = 2,
  Int32 = 3,
  Float64 = 4,
  String = 5,
  BigInt = 6,
  Bytes = 7,
  Array = 8,
  Object = 9,
}

/** Nesting deeper than this is refused: no state of ours nests past ~10. */
export const PLAIN_DEPTH_MAX = 64;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Scratch sizes: most states encode to a few hundred bytes; large blobs are referenced, not copied. */
const SCRATCH_BYTES_INITIAL = 1024;
const INLINE_BLOB_BYTES_MAX = 4096;

class Writer {
  private chunks: Uint8Array[] = [];
  private scratch = new Uint8Array(SCRATCH_BYTES_INITIAL);
  private view = new DataView(this.scratch.buffer);
  private used = 0;
  private total = 0;

  private reserve(bytes: number): void {
    if (this.used + bytes <= this.scratch.length) return;
    // Grow the scratch rather than start a new chunk: small states stay one contiguous buffer.
    const grown = new Uint8Array(Math.max(this.scratch.length * 2, this.used + bytes));
    grown.set(this.scratch.subarray(0, this.used));
    this.scratch = grown;
    this.view = new DataView(grown.buffer);
  }
  private flush(): void {
    if (this.used === 0) return;
    this.chunks.push(this.scratch.slice(0, this.used));
    this.total += this.used;
    this.used = 0;
  }
  u8(v: number): void {
    this.reserve(1);
    this.scratch[this.used++] = v;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.used, v, true);
    this.used += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.used, v, true);
    this.used += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.used, v, true);
    this.used += 8;
  }
  bytes(b: Uint8Array): void {
    if (b.length <= INLINE_BLOB_BYTES_MAX) {
      this.reserve(b.length);
      this.scratch.set(b, this.used);
      this.used += b.length;
    } else {
      // Large blobs (file contents, page deltas) are referenced, not copied into scratch.
      this.flush();
      this.chunks.push(b);
      this.total += b.length;
    }
  }
  /** A length-prefixed UTF-8 string, encoded straight into the scratch. */
  text(s: string): void {
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    this.reserve(4 + s.length * 3);
    const { written } = textEncoder.encodeInto(s, this.scratch.subarray(this.used + 4));
    this.view.setUint32(this.used, written, true);
    this.used += 4 + written;
  }
  finish(): Uint8Array {
    if (this.chunks.length === 0) return this.scratch.slice(0, this.used);
    this.flush();
    const out = new Uint8Array(this.total);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

function encodeValue(w: Writer, v: Plain, depth: number): void {
  if (depth > PLAIN_DEPTH_MAX) throw new TypeError('plain value nests too deeply');
  if (v === null) return w.u8(Tag.Null);
  switch (typeof v) {
    case 'boolean':
      return w.u8(v ? Tag.True : Tag.False);
    case 'number':
      if (Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff && !Object.is(v, -0)) {
        w.u8(Tag.Int32);
        return w.i32(v);
      }
      w.u8(Tag.Float64);
      return w.f64(v);
    case 'string':
      w.u8(Tag.String);
      return w.text(v);
    case 'bigint': {
      const negative = v < 0n;
      let m = negative ? -v : v;
      const digits: number[] = [];
      while (m > 0n) {
        digits.push(Number(m & 0xffn));
        m >>= 8n;
      }
      w.u8(Tag.BigInt);
      w.u8(negative ? 1 : 0);
      w.u32(digits.length);
      return w.bytes(Uint8Array.from(digits));
    }
    case 'object':
      break;
    default:
      throw new TypeError(`not plain data: ${typeof v}`);
  }
  if (v instanceof Uint8Array) {
    w.u8(Tag.Bytes);
    w.u32(v.length);
    return w.bytes(v);
  }
  if (Array.isArray(v)) {
    w.u8(Tag.Array);
    w.u32(v.length);
    for (const item of v) encodeValue(w, item, depth + 1);
    return;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) throw new TypeError('not plain data: class instance');
  const keys = Object.keys(v);
  w.u8(Tag.Object);
  w.u32(keys.length);
  for (const k of keys) {
    w.text(k);
    const item = (v as PlainObject)[k];
    if (item === undefined) throw new TypeError(`not plain data: undefined at key ${k}`);
    encodeValue(w, item, depth + 1);
  }
}

export function encodePlain(v: Plain): Uint8Array {
  const w = new Writer();
  encodeValue(w, v, 0);
  return w.finish();
}

function malformed(what: string): UnderstudyError {
  return new UnderstudyError('ERR_CKPT_MALFORMED', `state encoding is malformed: ${what}`);
}

class Reader {
  at = 0;
  private readonly view: DataView;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(bytes: number, what: string): void {
    if (bytes > this.buf.length - this.at) throw malformed(`${what} runs past the end (${bytes} bytes at ${this.at} of ${this.buf.length})`);
  }
  u8(): number {
    this.need(1, 'tag');
    return this.buf[this.at++]!;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }
  i32(): number {
    this.need(4, 'int32');
    const v = this.view.getInt32(this.at, true);
    this.at += 4;
    return v;
  }
  f64(): number {
    this.need(8, 'float64');
    const v = this.view.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }
  take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  text(what: string): string {
    const n = this.u32(`${what} length`);
    try {
      return textDecoder.decode(this.take(n, what));
    } catch (e) {
      if (e instanceof UnderstudyError) throw e;
      throw malformed(`${what} is not valid UTF-8`);
    }
  }
}

function decodeValue(r: Reader, depth: number): Plain {
  if (depth > PLAIN_DEPTH_MAX) throw malformed('nesting too deep');
  const tag = r.u8();
  switch (tag) {
    case Tag.Null:
      return null;
    case Tag.False:
      return false;
    case Tag.True:
      return true;
    case Tag.Int32:
      return r.i32();
    case Tag.Float64:
      return r.f64();
    case Tag.String:
      return r.text('string');
    case Tag.BigInt: {
      const sign = r.u8();
      if (sign > 1) throw malformed('bigint sign');
      const n = r.u32('bigint length');
      const digits = r.take(n, 'bigint digits');
      let v = 0n;
      for (let i = digits.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(digits[i]!);
      return sign ? -v : v;
    }
    case Tag.Bytes: {
      const n = r.u32('bytes length');
      // A copy, so decoded state never aliases the file buffer.
      return r.take(n, 'bytes').slice();
    }
    case Tag.Array: {
      const n = r.u32('array length');
      r.need(n, 'array items'); // every item is at least one byte
      const out: Plain[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = decodeValue(r, depth + 1);
      return out;
    }
    case Tag.Object: {
      const n = r.u32('object size');
      r.need(n * 5, 'object entries'); // key length + tag at least
      const out: PlainObject = Object.create(null);
      for (let i = 0; i < n; i++) {
        const k = r.text('key');
        if (Object.prototype.hasOwnProperty.call(out, k)) throw malformed(`duplicate key ${JSON.stringify(k)}`);
        out[k] = decodeValue(r, depth + 1);
      }
      // Null-prototype objects: a key such as "__proto__" (a file name, say)
      // stays an ordinary key.
      return out;
    }
    default:
      throw malformed(`unknown tag ${tag} at offset ${r.at - 1}`);
  }
}

export function decodePlain(bytes: Uint8Array): Plain {
  const r = new Reader(bytes);
  const v = decodeValue(r, 0);
  if (r.at !== bytes.length) throw malformed(`${bytes.length - r.at} trailing bytes`);
  return v;
}
