// Mixing and printing helpers shared by the AssemblyScript guests' digests.

// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
export function fmix64(x: u64): u64 {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccd;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53;
  x ^= x >> 33;
  return x;
}

// 16 lower-case hex digits, zero-padded.
export function hex64(v: u64): string {
  const s = v.toString(16);
  return "0000000000000000".slice(s.length) + s;
}
