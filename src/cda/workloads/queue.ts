// A linked FIFO queue of records: each operation enqueues a record at the
// tail or dequeues the head. Below QUEUE_TARGET records it only enqueues;
// from there to twice that it enqueues or dequeues with even odds; at twice
// it only dequeues.
//
// Node (12 + value bytes): next u32 @0, sequence number u32 @4, value length u32 @8, value @12.
// Header: root0 = head, root1 = tail, aux0 = next sequence number to enqueue,
// aux1 = next to dequeue; count = aux0 - aux1 records, with consecutive numbers.
import { H, Rng, alloc, corrupt, fillValue, free, isBlock, roundToGrain, type ArenaHeader } from './layout.js';
import { Workload, type Block, type Entry, type OpRecord } from './workload.js';

export const QUEUE_TARGET = 256;
export const QUEUE_NODE_BYTES = 12;

export class QueueWorkload extends Workload {
  readonly name = 'queue' as const;

  protected initStructure(): void {}

  protected validateRoots(h: ArenaHeader): void {
    const head = this.root(H.root0, h, 'queue head');
    const tail = this.root(H.root1, h, 'queue tail');
    if ((head === 0) !== (h.count === 0) || (tail === 0) !== (h.count === 0)) throw corrupt(`queue head ${head}, tail ${tail} with ${h.count} records`);
    if (((h.roots[2] - h.roots[3]) >>> 0) !== h.count) throw corrupt(`queue sequence numbers [${h.roots[3]}, ${h.roots[2]}) do not match ${h.count} records`);
  }

  protected operate(rng: Rng): OpRecord {
    const a = this.arena;
    const count = a.u32(H.count);
    const c = rng.next();
    const enqueue = count < QUEUE_TARGET || (count < 2 * QUEUE_TARGET && (c & 1) === 0);
    if (enqueue) {
      const length = rng.valueBytes();
      const value = fillValue(rng.next(), length);
      const node = alloc(a, QUEUE_NODE_BYTES + length);
      const seq = a.u32(H.aux0);
      a.setU32(node, 0);
      a.setU32(node + 4, seq);
      a.setU32(node + 8, length);
      a.setBytes(node + 12, value);
      const tail = a.u32(H.root1);
      a.setU32(tail === 0 ? H.root0 : tail, node);
      a.setU32(H.root1, node);
      a.setU32(H.aux0, (seq + 1) >>> 0);
      a.setU32(H.count, count + 1);
      return { kind: 'enqueue', key: seq, value };
    }
    const head = a.u32(H.root0);
    const seq = a.u32(head + 4);
    if (seq !== a.u32(H.aux1)) throw corrupt(`the queue's head holds record ${seq}, expected ${a.u32(H.aux1)}`);
    const length = this.valueBytesAt(head + 8);
    const value = a.bytes(head + 12, length);
    const next = a.u32(head);
    a.setU32(H.root0, next);
    if (next === 0) a.setU32(H.root1, 0);
    a.setU32(H.aux1, (seq + 1) >>> 0);
    free(a, head, QUEUE_NODE_BYTES + length);
    a.setU32(H.count, count - 1);
    return { kind: 'dequeue', key: seq, value };
  }

  private walk(h: ArenaHeader, visit: (node: number, length: number) => void): void {
    const a = this.arena;
    let n = h.roots[0];
    let expect = h.roots[3];
    let last = 0;
    let seen = 0;
    while (n !== 0) {
      if (!isBlock(n, h.bump)) throw corrupt(`queue node ${n} is not a block`);
      if (++seen > h.count) throw corrupt(`the queue is longer than its count ${h.count}`);
      if (a.u32(n + 4) !== expect) throw corrupt(`queue record ${a.u32(n + 4)} where ${expect} belongs`);
      expect = (expect + 1) >>> 0;
      visit(n, this.valueBytesAt(n + 8));
      last = n;
      n = a.u32(n);
    }
    if (seen !== h.count) throw corrupt(`the queue has ${seen} records; the header counts ${h.count}`);
    if (last !== h.roots[1]) throw corrupt(`the queue ends at ${last}; its tail is ${h.roots[1]}`);
  }

  protected liveBlocks(h: ArenaHeader): Block[] {
    const blocks: Block[] = [];
    this.walk(h, (n, length) => blocks.push([n, roundToGrain(QUEUE_NODE_BYTES + length)]));
    return blocks;
  }

  /** Records from head to tail; `key` is the sequence number. */
  contents(): Entry[] {
    const out: Entry[] = [];
    this.walk(this.header(), (n, length) => out.push({ key: this.arena.u32(n + 4), value: this.arena.bytes(n + 12, length) }));
    return out;
  }
}
