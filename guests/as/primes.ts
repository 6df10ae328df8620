// primes — an AssemblyScript command guest: a segmented sieve that keeps
// every prime it finds in a growing heap array and prints progress.
//
// usage: primes [limit [segment]]
//
// Sieves [2, limit) (default 40000000, at most 400000000) in segments of
// `segment` numbers (default 1000000, at least 1000), printing after each
//     segment 7/40 high=7000000 primes=476648 hash=HEX
// and at the end
//     done primes=N hash=HEX
// where hash is a running digest of every prime in order. Output is a pure
// function of the arguments. Exits through proc_exit: 0 done, 2 usage.
//
// Exports: memory, _start (runs the module's top-level code). Imports:
// wasi_snapshot_preview1 args_sizes_get, args_get, fd_write, proc_exit, and
// env.abort (AssemblyScript's abort, provided by understudy).

import { args, exit, STDERR, STDOUT, write } from "./lib/wasi";
import { fmix64, hex64 } from "./lib/hash";

const LIMIT_DEFAULT: u32 = 40_000_000;
// 400 M keeps the found primes (~21 M, 4 bytes each) far inside wasm32 memory.
const LIMIT_MAX: u32 = 400_000_000;
const SEGMENT_DEFAULT: u32 = 1_000_000;
const SEGMENT_MIN: u32 = 1_000;
const SEGMENT_MAX: u32 = 1 << 26;

// Strict decimal in [min, max]; -1 if not one.
function parseArg(s: string, min: u32, max: u32): i64 {
  if (s.length == 0 || s.length > 10) return -1;
  let v: i64 = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + <i64>(c - 0x30);
  }
  return v < <i64>min || v > <i64>max ? -1 : v;
}

function usage(): void {
  write(STDERR, "usage: primes [limit 2.." + LIMIT_MAX.toString() + " [segment " +
    SEGMENT_MIN.toString() + ".." + SEGMENT_MAX.toString() + "]]\n");
  exit(2);
}

// Primes below `bound`, by a plain sieve (bound is at most sqrt(LIMIT_MAX)+1).
function smallPrimes(bound: u32): u32[] {
  const composite = new Uint8Array(<i32>bound);
  const found = new Array<u32>();
  for (let i: u32 = 2; i < bound; i++) {
    if (composite[i]) continue;
    found.push(i);
    for (let j: u64 = <u64>i * i; j < <u64>bound; j += i) composite[<i32>j] = 1;
  }
  return found;
}

const argv = args();
let limit = LIMIT_DEFAULT;
let segment = SEGMENT_DEFAULT;
if (argv.length > 3) usage();
if (argv.length > 1) {
  const v = parseArg(argv[1], 2, LIMIT_MAX);
  if (v < 0) usage();
  limit = <u32>v;
}
if (argv.length > 2) {
  const v = parseArg(argv[2], SEGMENT_MIN, SEGMENT_MAX);
  if (v < 0) usage();
  segment = <u32>v;
}

let root: u32 = 1;
while (<u64>root * root < <u64>limit) root++;
const base = smallPrimes(root + 1);
const primes = new Array<u32>();
const sieve = new Uint8Array(<i32>segment);
const segments = (limit + segment - 1) / segment;
let hash: u64 = 0;

for (let s: u32 = 0; s < segments; s++) {
  const low = s * segment;
  const high = limit - low < segment ? limit : low + segment;
  sieve.fill(0);
  for (let k = 0; k < base.length; k++) {
    const p = base[k];
    if (<u64>p * p >= <u64>high) break;
    let start = <u64>p * p;
    if (start < <u64>low) start = (<u64>low + p - 1) / p * p;
    for (let m = start; m < <u64>high; m += p) sieve[<i32>(m - low)] = 1;
  }
  for (let n: u32 = low < 2 ? 2 : low; n < high; n++) {
    if (sieve[<i32>(n - low)]) continue;
    primes.push(n);
    hash = fmix64(hash ^ <u64>n);
  }
  write(STDOUT, "segment " + (s + 1).toString() + "/" + segments.toString() +
    " high=" + high.toString() + " primes=" + primes.length.toString() +
    " hash=" + hex64(hash) + "\n");
}

write(STDOUT, "done primes=" + primes.length.toString() + " hash=" + hex64(hash) + "\n");
exit(0);
