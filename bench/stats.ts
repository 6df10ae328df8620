// Small helpers for benchmarks: medians of repeated runs and machine facts.
import os from 'node:os';
import { native } from '../src/native.js';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Appends `value` to the list `key` maps to (a new list for a new key). */
export function append<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Lower quartile, median, upper quartile (linear interpolation). */
export function quartiles(xs: number[]): [number, number, number] {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => {
    const i = q * (s.length - 1);
    const lo = Math.floor(i);
    return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (i - lo);
  };
  return [at(0.25), at(0.5), at(0.75)];
}

export function time<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const r = f();
  return [r, performance.now() - t0];
}

export async function timeAsync<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, performance.now() - t0];
}

/**
 * Milliseconds the calling thread has run on a CPU (CLOCK_THREAD_CPUTIME_ID through the addon;
 * NaN without it). Time the thread waited for a CPU, and in a virtual machine time the hypervisor
 * gave its CPU to another guest (steal), are not in it: on a shared machine it moves far less
 * between identical runs than wall time does. Exact to the nanosecond, unlike
 * /proc/thread-self/schedstat, which moves in scheduler ticks (4 ms here).
 */
export function threadCpuMs(): number {
  return native.threadCpuMs();
}

/**
 * Orders in which to run n variants, one per round, so that over a full cycle each variant runs
 * in each position equally often and follows every other variant equally often (a Williams
 * design: n orders for even n, 2n for odd n). What a run leaves behind then weighs on every
 * variant alike; a plain rotation of three variants has one of them follow another twice as often.
 */
export function balancedOrders(n: number): number[][] {
  const first = Array.from({ length: n }, (_, j) => (j % 2 === 0 ? j / 2 : n - (j + 1) / 2));
  const orders = Array.from({ length: n }, (_, r) => first.map((v) => (v + r) % n));
  return n % 2 === 0 ? orders : [...orders, ...orders.map((o) => [...o].reverse())];
}

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, Node ${process.version}`;
}

export function table(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
