// Byte ranges of memory, for word-level tracking: a normalised range list is
// a flat array [start0, end0, start1, end1, ...] (end exclusive), ascending,
// with no two ranges overlapping or touching.
import { assert } from '../util/assert.js';

export type Ranges = number[];

/** Normalises `n` (start, length) pairs from `log` (unsorted, overlapping, empty ones allowed). */
export function normalisePairs(log: Uint32Array | readonly number[], n: number): Ranges {
  assert(n * 2 <= log.length);
  const idx: number[] = [];
  for (let i = 0; i < n; i++) if (log[2 * i + 1]! > 0) idx.push(i);
  idx.sort((a, b) => log[2 * a]! - log[2 * b]!);
  const out: Ranges = [];
  for (const i of idx) {
    const s = log[2 * i]!;
    const e = s + log[2 * i + 1]!;
    const last = out.length - 1;
    if (last > 0 && s <= out[last]!) {
      if (e > out[last]!) out[last] = e;
    } else out.push(s, e);
  }
  return out;
}

/** The union of two normalised lists. */
export function union(a: Ranges, b: Ranges): Ranges {
  if (a.length === 0) return b.slice();
  if (b.length === 0) return a.slice();
  const out: Ranges = [];
  let i = 0;
  let j = 0;
  const push = (s: number, e: number) => {
    const last = out.length - 1;
    if (last > 0 && s <= out[last]!) {
      if (e > out[last]!) out[last] = e;
    } else out.push(s, e);
  };
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! <= b[j]!)) {
      push(a[i]!, a[i + 1]!);
      i += 2;
    } else {
      push(b[j]!, b[j + 1]!);
      j += 2;
    }
  }
  return out;
}

/** The parts of `r` inside `within` (both normalised). */
export function intersect(r: Ranges, within: Ranges): Ranges {
  const out: Ranges = [];
  let i = 0;
  let j = 0;
  while (i < r.length && j < within.length) {
    const s = Math.max(r[i]!, within[j]!);
    const e = Math.min(r[i + 1]!, within[j + 1]!);
    if (s < e) out.push(s, e);
    if (r[i + 1]! < within[j + 1]!) i += 2;
    else j += 2;
  }
  return out;
}

export function rangeBytes(r: Ranges): number {
  let n = 0;
  for (let i = 0; i < r.length; i += 2) n += r[i + 1]! - r[i]!;
  return n;
}

/** Checks the invariant (tests, and our own asserts). */
export function isNormalised(r: Ranges): boolean {
  if (r.length % 2) return false;
  for (let i = 0; i < r.length; i += 2) {
    if (!(r[i]! < r[i + 1]!)) return false;
    if (i > 0 && !(r[i - 1]! < r[i]!)) return false;
  }
  return true;
}
