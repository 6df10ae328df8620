// A chained hash table: each operation inserts a random key from HASH_KEYS
// at the head of its bucket's chain or, when the key is there, replaces its
// value. A fixed array of HASH_BUCKETS buckets (allocated at init, never
// resized: 10,000 operations leave ~1 node per bucket).
//
// Node (12 bytes, a 16-byte block): next u32 @0, key u32 @4, value u32 @8 -> value block
// [length u32][bytes]. Bucket of key k: fmix32(k) & (HASH_BUCKETS - 1). Header: root0 = bucket
// array, root1 = HASH_BUCKETS, count = nodes. A new node is allocated before its value; an update
// frees the old value before allocating the new one.
import { H, Rng, alloc, corrupt, fillValue, fmix32, free, isBlock, roundToGrain, type ArenaHeader } from './layout.js';
import { Workload, type Block, type Entry, type OpRecord } from './workload.js';

export const HASH_BUCKETS = 8192;
/** Keys are drawn from [0, HASH_KEYS): 10,000 operations insert ~8,600 keys and update the rest. */
export const HASH_KEYS = 1 << 15;
export const HASH_NODE_BYTES = 12;

export class HashWorkload extends Workload {
  readonly name = 'hash' as const;

  protected initStructure(): void {
    const a = this.arena;
    const buckets = alloc(a, 4 * HASH_BUCKETS);
    a.setBytes(buckets, new Uint8Array(4 * HASH_BUCKETS));
    a.setU32(H.root0, buckets);
    a.setU32(H.root1, HASH_BUCKETS);
  }

  protected validateRoots(h: ArenaHeader): void {
    if (h.roots[1] !== HASH_BUCKETS) throw corrupt(`${h.roots[1]} hash buckets, the layout has ${HASH_BUCKETS}`);
    if (!isBlock(h.roots[0], h.bump) || h.roots[0] + 4 * HASH_BUCKETS > h.bump) throw corrupt(`bucket array at ${h.roots[0]} is not a block`);
  }

  protected operate(rng: Rng): OpRecord {
    const a = this.arena;
    const key = rng.next() & (HASH_KEYS - 1);
    const length = rng.valueBytes();
    const value = fillValue(rng.next(), length);
    const bucket = a.u32(H.root0) + 4 * (fmix32(key) & (HASH_BUCKETS - 1));
    const count = a.u32(H.count);
    let n = a.u32(bucket);
    for (let steps = 0; n !== 0; steps++) {
      if (steps >= count) throw corrupt('a hash chain is longer than the count');
      if (a.u32(n + 4) === key) {
        const old = a.u32(n + 8);
        free(a, old, 4 + this.valueBytesAt(old));
        a.setU32(n + 8, this.allocValue(value));
        return { kind: 'update', key, value };
      }
      n = a.u32(n);
    }
    const node = alloc(a, HASH_NODE_BYTES);
    a.setU32(node, a.u32(bucket));
    a.setU32(node + 4, key);
    a.setU32(node + 8, this.allocValue(value));
    a.setU32(bucket, node);
    a.setU32(H.count, count + 1);
    return { kind: 'insert', key, value };
  }

  /** The value stored under `key`, or null. */
  lookup(key: number): Uint8Array | null {
    const a = this.arena;
    let n = a.u32(a.u32(H.root0) + 4 * (fmix32(key >>> 0) & (HASH_BUCKETS - 1)));
    for (let steps = 0; n !== 0; steps++) {
      if (steps > a.u32(H.count)) throw corrupt('a hash chain is longer than the count');
      if (a.u32(n + 4) === key) return this.readValue(a.u32(n + 8));
      n = a.u32(n);
    }
    return null;
  }

  private walk(h: ArenaHeader, visit: (node: number) => void): void {
    const a = this.arena;
    const keys = new Set<number>();
    for (let b = 0; b < HASH_BUCKETS; b++) {
      let n = a.u32(h.roots[0] + 4 * b);
      while (n !== 0) {
        if (!isBlock(n, h.bump)) throw corrupt(`hash node ${n} is not a block`);
        if (keys.size >= h.count) throw corrupt(`the table has more nodes than its count ${h.count}`);
        const key = a.u32(n + 4);
        if ((fmix32(key) & (HASH_BUCKETS - 1)) !== b) throw corrupt(`key ${key} is chained in bucket ${b}`);
        if (keys.has(key)) throw corrupt(`key ${key} is in the table twice`);
        keys.add(key);
        visit(n);
        n = a.u32(n);
      }
    }
    if (keys.size !== h.count) throw corrupt(`the table has ${keys.size} nodes; the header counts ${h.count}`);
  }

  protected liveBlocks(h: ArenaHeader): Block[] {
    const blocks: Block[] = [[h.roots[0], roundToGrain(4 * HASH_BUCKETS)]];
    this.walk(h, (n) => {
      const v = this.arena.u32(n + 8);
      if (!isBlock(v, h.bump)) throw corrupt(`hash value ${v} is not a block`);
      blocks.push([n, roundToGrain(HASH_NODE_BYTES)], [v, this.valueBlockBytes(v)]);
    });
    return blocks;
  }

  /** In key order. */
  contents(): Entry[] {
    const out: Entry[] = [];
    this.walk(this.header(), (n) => out.push({ key: this.arena.u32(n + 4), value: this.readValue(this.arena.u32(n + 8)) }));
    return out.sort((x, y) => x.key - y.key);
  }
}
