// CRC-32C (Castagnoli) in TypeScript, so the protocol core and its simulator
// do not load the native addon. A test checks it equals native.crc32c. The
// real wiring (process/replica.ts) installs the native one, which is about a
// hundred times faster (a byte-at-a-time table in JS runs at ~160 MB/s: 1 ms
// for one epoch frame of 180 KiB, on both sides of every epoch).
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export type Crc32c = (bytes: Uint8Array, previous?: number) => number;

export const crc32cPortable: Crc32c = (bytes, previous = 0) => {
  let c = ~previous >>> 0;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
};

let impl: Crc32c = crc32cPortable;

export function crc32c(bytes: Uint8Array, previous = 0): number {
  return impl(bytes, previous);
}

/** Installs a faster implementation of the same function (the native addon's). */
export function useCrc32c(f: Crc32c): void {
  impl = f;
}
