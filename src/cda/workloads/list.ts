// A sorted singly linked list: each operation adds a node with a random key
// at its place, or unlinks the node at a random position. Below LIST_TARGET
// elements it only adds; from there to twice that it adds or deletes with
// even odds; at twice it only deletes, so 10,000 operations stay bounded.
//
// Node (list node, 12 + value bytes): next u32 @0, key u32 @4, value length u32 @8, value @12.
// Header: root0 = first node, count = nodes. Equal keys keep insertion order.
import { H, Rng, alloc, corrupt, fillValue, free, isBlock, roundToGrain, type ArenaHeader } from './layout.js';
import { Workload, type Block, type Entry, type OpRecord } from './workload.js';

export const LIST_TARGET = 512;
export const LIST_NODE_BYTES = 12;

export class ListWorkload extends Workload {
  readonly name = 'list' as const;

  protected initStructure(): void {}

  protected validateRoots(h: ArenaHeader): void {
    this.root(H.root0, h, 'list head');
    if ((h.roots[0] === 0) !== (h.count === 0)) throw corrupt(`list head ${h.roots[0]} with ${h.count} nodes`);
  }

  protected operate(rng: Rng): OpRecord {
    const a = this.arena;
    const count = a.u32(H.count);
    const c = rng.next();
    const add = count < LIST_TARGET || (count < 2 * LIST_TARGET && (c & 1) === 0);
    if (add) {
      const key = rng.next();
      const length = rng.valueBytes();
      const value = fillValue(rng.next(), length);
      const node = alloc(a, LIST_NODE_BYTES + length);
      let prev = 0;
      let n = a.u32(H.root0);
      for (let steps = 0; n !== 0 && a.u32(n + 4) <= key; steps++) {
        if (steps >= count) throw corrupt('the list is longer than its count');
        prev = n;
        n = a.u32(n);
      }
      a.setU32(node, n);
      a.setU32(node + 4, key);
      a.setU32(node + 8, length);
      a.setBytes(node + 12, value);
      a.setU32(prev === 0 ? H.root0 : prev, node);
      a.setU32(H.count, count + 1);
      return { kind: 'add', key, value };
    }
    const index = rng.next() % count;
    let prev = 0;
    let n = a.u32(H.root0);
    for (let i = 0; i < index; i++) {
      if (n === 0) throw corrupt('the list is shorter than its count');
      prev = n;
      n = a.u32(n);
    }
    if (n === 0) throw corrupt('the list is shorter than its count');
    const key = a.u32(n + 4);
    const length = this.valueBytesAt(n + 8);
    const value = a.bytes(n + 12, length);
    a.setU32(prev === 0 ? H.root0 : prev, a.u32(n));
    free(a, n, LIST_NODE_BYTES + length);
    a.setU32(H.count, count - 1);
    return { kind: 'delete', key, value };
  }

  private walk(h: ArenaHeader, visit: (node: number, length: number) => void): void {
    const a = this.arena;
    let n = h.roots[0];
    let seen = 0;
    let last = -1;
    while (n !== 0) {
      if (!isBlock(n, h.bump)) throw corrupt(`list node ${n} is not a block`);
      if (++seen > h.count) throw corrupt(`the list is longer than its count ${h.count}`);
      const key = a.u32(n + 4);
      if (key < last) throw corrupt(`list keys out of order: ${key} after ${last}`);
      last = key;
      visit(n, this.valueBytesAt(n + 8));
      n = a.u32(n);
    }
    if (seen !== h.count) throw corrupt(`the list has ${seen} nodes; the header counts ${h.count}`);
  }

  protected liveBlocks(h: ArenaHeader): Block[] {
    const blocks: Block[] = [];
    this.walk(h, (n, length) => blocks.push([n, roundToGrain(LIST_NODE_BYTES + length)]));
    return blocks;
  }

  contents(): Entry[] {
    const out: Entry[] = [];
    this.walk(this.header(), (n, length) => out.push({ key: this.arena.u32(n + 4), value: this.arena.bytes(n + 12, length) }));
    return out;
  }
}
