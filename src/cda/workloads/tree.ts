// An AVL tree keyed by u32: each operation inserts a random key from
// TREE_KEYS (or, when the key is there, replaces its value). Insertion walks
// down recording the path, links a new leaf, then walks back up fixing
// heights and rotating, and stops at the first node whose subtree height did
// not change — so it stores only what changed (the writes the seed's
// tree-insert workload makes).
//
// Node (20 bytes, a 32-byte block): left u32 @0, right u32 @4, key u32 @8, height u32 @12
// (a leaf is 1), value u32 @16 -> value block [length u32][bytes]. Header: root0 = root, count = nodes.
// A new node is allocated before its value; an update frees the old value before allocating the new one.
import { H, Rng, alloc, corrupt, fillValue, free, isBlock, roundToGrain, type ArenaHeader } from './layout.js';
import { Workload, type Block, type Entry, type OpRecord } from './workload.js';

/** Keys are drawn from [0, TREE_KEYS): 10,000 operations insert ~9,300 keys and update the rest. */
export const TREE_KEYS = 1 << 16;
export const TREE_NODE_BYTES = 20;
/** An AVL tree of 2^32 nodes is less than 46 high: a longer path is a corrupt arena. */
export const TREE_HEIGHT_MAX = 48;

export class TreeWorkload extends Workload {
  readonly name = 'tree' as const;
  // The insertion path, reused across steps.
  private readonly path = new Uint32Array(TREE_HEIGHT_MAX);
  private readonly dirs = new Uint8Array(TREE_HEIGHT_MAX);

  protected initStructure(): void {}

  protected validateRoots(h: ArenaHeader): void {
    this.root(H.root0, h, 'tree root');
    if ((h.roots[0] === 0) !== (h.count === 0)) throw corrupt(`tree root ${h.roots[0]} with ${h.count} nodes`);
  }

  private height(n: number): number {
    return n === 0 ? 0 : this.arena.u32(n + 12);
  }

  private fixHeight(n: number): void {
    const a = this.arena;
    const h = 1 + Math.max(this.height(a.u32(n)), this.height(a.u32(n + 4)));
    if (a.u32(n + 12) !== h) a.setU32(n + 12, h);
  }

  private rotateRight(p: number): number {
    const a = this.arena;
    const l = a.u32(p);
    a.setU32(p, a.u32(l + 4));
    a.setU32(l + 4, p);
    this.fixHeight(p);
    this.fixHeight(l);
    return l;
  }

  private rotateLeft(p: number): number {
    const a = this.arena;
    const r = a.u32(p + 4);
    a.setU32(p + 4, a.u32(r));
    a.setU32(r, p);
    this.fixHeight(p);
    this.fixHeight(r);
    return r;
  }

  /** The subtree's new root after restoring p's balance. */
  private rebalance(p: number): number {
    const a = this.arena;
    const l = a.u32(p);
    const r = a.u32(p + 4);
    const hl = this.height(l);
    const hr = this.height(r);
    if (hl > hr + 1) {
      if (this.height(a.u32(l)) < this.height(a.u32(l + 4))) a.setU32(p, this.rotateLeft(l));
      return this.rotateRight(p);
    }
    if (hr > hl + 1) {
      if (this.height(a.u32(r + 4)) < this.height(a.u32(r))) a.setU32(p + 4, this.rotateRight(r));
      return this.rotateLeft(p);
    }
    this.fixHeight(p);
    return p;
  }

  protected operate(rng: Rng): OpRecord {
    const a = this.arena;
    const key = rng.next() & (TREE_KEYS - 1);
    const length = rng.valueBytes();
    const value = fillValue(rng.next(), length);
    let depth = 0;
    let n = a.u32(H.root0);
    while (n !== 0) {
      const k = a.u32(n + 8);
      if (k === key) {
        const old = a.u32(n + 16);
        free(a, old, 4 + this.valueBytesAt(old));
        a.setU32(n + 16, this.allocValue(value));
        return { kind: 'update', key, value };
      }
      if (depth === TREE_HEIGHT_MAX) throw corrupt(`a tree path longer than ${TREE_HEIGHT_MAX}`);
      const dir = key < k ? 0 : 1;
      this.path[depth] = n;
      this.dirs[depth] = dir;
      depth++;
      n = a.u32(n + 4 * dir);
    }
    const node = alloc(a, TREE_NODE_BYTES);
    a.setU32(node, 0);
    a.setU32(node + 4, 0);
    a.setU32(node + 8, key);
    a.setU32(node + 12, 1);
    a.setU32(node + 16, this.allocValue(value));
    let child = node;
    let settled = false;
    for (let i = depth - 1; i >= 0; i--) {
      const p = this.path[i]!;
      const link = p + 4 * this.dirs[i]!;
      if (a.u32(link) !== child) a.setU32(link, child);
      const before = a.u32(p + 12);
      const top = this.rebalance(p);
      if (top === p && a.u32(p + 12) === before) {
        settled = true;
        break;
      }
      child = top;
    }
    if (!settled && a.u32(H.root0) !== child) a.setU32(H.root0, child);
    a.setU32(H.count, a.u32(H.count) + 1);
    return { kind: 'insert', key, value };
  }

  /** In-order walk checking order, heights and balance; visits each node. Returns the node count. */
  private walk(h: ArenaHeader, visit: (node: number) => void): void {
    const a = this.arena;
    let seen = 0;
    let last = -1;
    const rec = (n: number, depth: number): number => {
      if (n === 0) return 0;
      if (depth > TREE_HEIGHT_MAX || !isBlock(n, h.bump)) throw corrupt(`tree node ${n} at depth ${depth} is not a block`);
      if (++seen > h.count) throw corrupt(`the tree has more nodes than its count ${h.count}`);
      const hl = rec(a.u32(n), depth + 1);
      const key = a.u32(n + 8);
      if (key <= last) throw corrupt(`tree keys out of order: ${key} after ${last}`);
      last = key;
      visit(n);
      const hr = rec(a.u32(n + 4), depth + 1);
      if (Math.abs(hl - hr) > 1) throw corrupt(`node ${n} (key ${key}) is out of balance: ${hl} vs ${hr}`);
      const height = 1 + Math.max(hl, hr);
      if (a.u32(n + 12) !== height) throw corrupt(`node ${n} (key ${key}) records height ${a.u32(n + 12)}, is ${height}`);
      return height;
    };
    rec(h.roots[0], 0);
    if (seen !== h.count) throw corrupt(`the tree has ${seen} nodes; the header counts ${h.count}`);
  }

  protected liveBlocks(h: ArenaHeader): Block[] {
    const blocks: Block[] = [];
    this.walk(h, (n) => {
      const v = this.arena.u32(n + 16);
      if (!isBlock(v, h.bump)) throw corrupt(`tree value ${v} is not a block`);
      blocks.push([n, roundToGrain(TREE_NODE_BYTES)], [v, this.valueBlockBytes(v)]);
    });
    return blocks;
  }

  /** In key order. */
  contents(): Entry[] {
    const out: Entry[] = [];
    this.walk(this.header(), (n) => out.push({ key: this.arena.u32(n + 8), value: this.readValue(this.arena.u32(n + 16)) }));
    return out;
  }
}
