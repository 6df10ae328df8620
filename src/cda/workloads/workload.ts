// What every data-structure workload shares: the header's life cycle (init,
// attach), one operation per step() with the PRNG state and op counter
// written back to the header, the cycle counter, and the full consistency
// check (the structure's own invariants, then that live and free blocks tile
// the allocated part of the arena exactly).
import { assert } from '../../util/assert.js';
import type { ArenaView } from './arena.js';
import {
  ALLOC_CLASSES, ALLOC_GRAIN_BYTES, ARENA_MAGIC, ARENA_VERSION, H, HEADER_BYTES, Rng, VALUE_BYTES_MAX, VALUE_BYTES_MIN, WORKLOAD_IDS,
  alloc, corrupt, isBlock, readHeader, roundToGrain, validateHeader, type ArenaHeader, type WorkloadName,
} from './layout.js';

export type OpKind = 'add' | 'delete' | 'insert' | 'update' | 'enqueue' | 'dequeue';

/** What one step() did: the key (the queue's sequence number) and the value written or removed. */
export interface OpRecord {
  kind: OpKind;
  key: number;
  value: Uint8Array;
}

/** One element of a structure, in the structure's order (the hash table's: by key). */
export interface Entry {
  key: number;
  value: Uint8Array;
}

/** A live block: offset and allocated (rounded) size. */
export type Block = readonly [offset: number, bytes: number];

export abstract class Workload {
  abstract readonly name: WorkloadName;
  private ready = false;

  constructor(
    readonly arena: ArenaView,
    /** The seed init() writes; an attached arena keeps its own. */
    readonly seed: number,
  ) {}

  /** Formats a fresh arena (zero-filled: bytes past the allocator's bump are not cleared). */
  init(): void {
    const a = this.arena;
    a.setBytes(0, new Uint8Array(HEADER_BYTES));
    a.setU32(H.magic, ARENA_MAGIC);
    a.setU32(H.version, ARENA_VERSION);
    a.setU32(H.workload, WORKLOAD_IDS[this.name]);
    a.setU32(H.arenaBytes, a.byteLength);
    a.setU32(H.seed, this.seed);
    a.setU32(H.prng, this.seed);
    a.setU32(H.bump, HEADER_BYTES);
    this.initStructure();
    this.ready = true;
  }

  /** Takes over an arena that holds this workload (a recovered or copied one); checks its header and roots. */
  attach(): void {
    const h = validateHeader(this.arena, this.name);
    this.validateRoots(h);
    this.ready = true;
  }

  /** One operation. */
  step(): OpRecord {
    assert(this.ready, 'step() before init() or attach()');
    const a = this.arena;
    const rng = new Rng(a.u32(H.prng));
    const record = this.operate(rng);
    a.setU32(H.prng, rng.state);
    a.setU64(H.ops, a.u64(H.ops) + 1);
    return record;
  }

  /** Counts a checkpoint cycle in the arena: call it as a transaction's last change, before the commit. Returns the count. */
  endCycle(): number {
    assert(this.ready, 'endCycle() before init() or attach()');
    const cycles = this.arena.u64(H.cycles) + 1;
    this.arena.setU64(H.cycles, cycles);
    return cycles;
  }

  get ops(): number {
    return this.arena.u64(H.ops);
  }

  get cycles(): number {
    return this.arena.u64(H.cycles);
  }

  get count(): number {
    return this.arena.u32(H.count);
  }

  header(): ArenaHeader {
    return readHeader(this.arena);
  }

  /**
   * Checks everything: the header, the structure's invariants (sorted list,
   * AVL balance and heights, keys in their buckets, queue order), the element
   * count, and that live and free blocks tile [HEADER_BYTES, bump) with the
   * header's live-byte count. ERR_CDA_ARENA_CORRUPT on the first violation.
   */
  check(): void {
    const h = validateHeader(this.arena, this.name);
    this.validateRoots(h);
    const live = this.liveBlocks(h);
    const blocks: Block[] = [...live];
    let liveBytes = 0;
    for (const [, bytes] of live) liveBytes += bytes;
    if (liveBytes !== h.liveBytes) throw corrupt(`the structure holds ${liveBytes} bytes of blocks; the header says ${h.liveBytes}`);
    const freeMax = (h.bump - HEADER_BYTES) / ALLOC_GRAIN_BYTES;
    for (let cls = 1; cls <= ALLOC_CLASSES; cls++) {
      let f = h.freeHeads[cls - 1]!;
      for (let steps = 0; f !== 0; steps++) {
        if (steps > freeMax || !isBlock(f, h.bump)) throw corrupt(`free list ${cls} reaches ${f}`);
        blocks.push([f, cls * ALLOC_GRAIN_BYTES]);
        f = this.arena.u32(f);
      }
    }
    blocks.sort((x, y) => x[0] - y[0]);
    let at = HEADER_BYTES;
    for (const [offset, bytes] of blocks) {
      if (offset !== at) throw corrupt(offset < at ? `block at ${offset} overlaps the one before it` : `bytes [${at}, ${offset}) are neither live nor free`);
      at = offset + bytes;
    }
    if (at !== h.bump) throw corrupt(`blocks end at ${at}, the allocator's bump is at ${h.bump}`);
  }

  /** The elements, in the structure's order. */
  abstract contents(): Entry[];

  protected abstract initStructure(): void;
  protected abstract validateRoots(h: ArenaHeader): void;
  protected abstract operate(rng: Rng): OpRecord;
  /** Every live block, after checking the structure's invariants and its count. */
  protected abstract liveBlocks(h: ArenaHeader): Block[];

  protected root(offset: number, h: ArenaHeader, what: string): number {
    const p = this.arena.u32(offset);
    if (p !== 0 && !isBlock(p, h.bump)) throw corrupt(`${what} ${p} is not a block`);
    return p;
  }

  /** A stored value length, checked: freeing with a wrong length would break the allocator. */
  protected valueBytesAt(offset: number): number {
    const n = this.arena.u32(offset);
    if (n < VALUE_BYTES_MIN || n > VALUE_BYTES_MAX) throw corrupt(`value length ${n} at ${offset} outside [${VALUE_BYTES_MIN}, ${VALUE_BYTES_MAX}]`);
    return n;
  }

  // Value blocks (tree and hash): [length u32][bytes].
  protected allocValue(value: Uint8Array): number {
    const v = alloc(this.arena, 4 + value.length);
    this.arena.setU32(v, value.length);
    this.arena.setBytes(v + 4, value);
    return v;
  }

  protected valueBlockBytes(v: number): number {
    return roundToGrain(4 + this.valueBytesAt(v));
  }

  protected readValue(v: number): Uint8Array {
    return this.arena.bytes(v + 4, this.valueBytesAt(v));
  }
}
