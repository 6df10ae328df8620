import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ARENA_BYTES_MIN, ArenaView, HASH_KEYS, HashWorkload, HEADER_BYTES, LIST_TARGET, QUEUE_TARGET, TREE_KEYS, WORKLOAD_NAMES,
  createWorkload, digest, measureWorkload, runReference, type Entry, type OpRecord, type Workload, type WorkloadName,
} from './index.js';
import { H, fillValue } from './layout.js';

// Small arenas keep the tests fast: a few hundred operations use < 64 KiB
// except the hash table's 32 KiB bucket array plus its nodes.
const ARENA = 256 * 1024;

function fresh(name: WorkloadName, seed: number, bytes = ARENA): Workload {
  const w = createWorkload(name, ArenaView.allocate(bytes), { seed });
  w.init();
  return w;
}

/** The logical contents the operations' records imply, built without the arena. */
class Model {
  private readonly entries: Entry[] = [];
  private readonly byKey = new Map<number, Uint8Array>();
  constructor(private readonly name: WorkloadName) {}

  apply(r: OpRecord): void {
    switch (r.kind) {
      case 'add': {
        // After every equal key: equal keys keep insertion order.
        let i = this.entries.findIndex((e) => e.key > r.key);
        if (i < 0) i = this.entries.length;
        this.entries.splice(i, 0, { key: r.key, value: r.value });
        break;
      }
      case 'delete': {
        const i = this.entries.findIndex((e) => e.key === r.key && Buffer.from(e.value).equals(r.value));
        assert.ok(i >= 0, `deleted ${r.key}, which the model does not hold`);
        this.entries.splice(i, 1);
        break;
      }
      case 'enqueue':
        this.entries.push({ key: r.key, value: r.value });
        break;
      case 'dequeue': {
        const head = this.entries.shift();
        assert.ok(head, 'dequeued from an empty model');
        assert.equal(r.key, head.key, 'FIFO order');
        assert.deepEqual(r.value, head.value);
        break;
      }
      case 'insert':
        assert.ok(!this.byKey.has(r.key), `inserted ${r.key}, which the model already holds`);
        this.byKey.set(r.key, r.value);
        break;
      case 'update':
        assert.ok(this.byKey.has(r.key), `updated ${r.key}, which the model does not hold`);
        this.byKey.set(r.key, r.value);
        break;
    }
  }

  contents(): Entry[] {
    if (this.name === 'tree' || this.name === 'hash') return [...this.byKey].map(([key, value]) => ({ key, value })).sort((x, y) => x.key - y.key);
    return this.entries;
  }
}

test('every workload keeps its invariants and the contents its operations imply (property)', () => {
  fc.assert(
    fc.property(fc.constantFrom(...WORKLOAD_NAMES), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 700 }), (name, seed, ops) => {
      const w = fresh(name, seed);
      const model = new Model(name);
      const kinds = new Set<string>();
      for (let i = 0; i < ops; i++) {
        const r = w.step();
        kinds.add(r.kind);
        model.apply(r);
        if (i % 97 === 0) w.check();
      }
      w.check();
      assert.equal(w.ops, ops);
      assert.deepEqual(w.contents(), model.contents());
      assert.equal(w.count, model.contents().length);
      if (name === 'hash') for (const e of model.contents()) assert.deepEqual((w as HashWorkload).lookup(e.key), e.value);
    }),
    { numRuns: 40 },
  );
});

test('the bounded structures oscillate around their targets; tree and hash both insert and update', () => {
  const list = fresh('list', 3);
  const queue = fresh('queue', 3);
  let listMax = 0;
  let queueMax = 0;
  for (let i = 0; i < 3000; i++) {
    list.step();
    queue.step();
    listMax = Math.max(listMax, list.count);
    queueMax = Math.max(queueMax, queue.count);
  }
  assert.ok(list.count >= LIST_TARGET - 1 && listMax <= 2 * LIST_TARGET, `list ${list.count}, max ${listMax}`);
  assert.ok(queue.count >= QUEUE_TARGET - 1 && queueMax <= 2 * QUEUE_TARGET, `queue ${queue.count}, max ${queueMax}`);
  list.check();
  queue.check();
  for (const name of ['tree', 'hash'] as const) {
    const w = fresh(name, 11, 1024 * 1024);
    const kinds = { insert: 0, update: 0 };
    for (let i = 0; i < 3000; i++) kinds[w.step().kind as 'insert' | 'update']++;
    assert.ok(kinds.update > 0 && kinds.insert > 2500, `${name}: ${JSON.stringify(kinds)}`);
    assert.ok(w.contents().every((e) => e.key < (name === 'tree' ? TREE_KEYS : HASH_KEYS)));
    w.check();
  }
});

test('attach() to a copy resumes exactly: N ops, copy, attach, M more == N + M ops (property)', () => {
  fc.assert(
    fc.property(fc.constantFrom(...WORKLOAD_NAMES), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 }), (name, seed, n, m) => {
      const straight = fresh(name, seed);
      for (let i = 0; i < n + m; i++) straight.step();
      const first = fresh(name, seed);
      for (let i = 0; i < n; i++) first.step();
      // Another backing and another base offset: the bytes are position-independent.
      const backing = new Uint8Array(ARENA + 4096);
      backing.set(first.arena.raw(), 4096);
      const resumed = createWorkload(name, new ArenaView(backing.buffer, 4096, ARENA), { seed: (seed ^ 1) >>> 0 });
      resumed.attach();
      for (let i = 0; i < m; i++) resumed.step();
      assert.ok(Buffer.from(resumed.arena.raw()).equals(Buffer.from(straight.arena.raw())));
      assert.equal(digest(resumed.arena), digest(straight.arena));
    }),
    { numRuns: 30 },
  );
});

test('runReference: cycles of opt operations, the cycle counter in the header; the same seed gives the same bytes', () => {
  for (const name of WORKLOAD_NAMES) {
    const a = runReference(name, { opt: 5, cycles: 40, seed: 9, arenaBytes: ARENA });
    const b = runReference(name, { opt: 1, cycles: 200, seed: 9, arenaBytes: ARENA });
    const view = new ArenaView(a, 0, ARENA);
    assert.equal(view.u64(H.ops), 200);
    assert.equal(view.u64(H.cycles), 40);
    // The same 200 operations; only the cycle counter differs.
    const cyclesAt = H.cycles;
    assert.ok(Buffer.from(a.subarray(cyclesAt + 8)).equals(Buffer.from(b.subarray(cyclesAt + 8))));
    assert.ok(Buffer.from(a.subarray(0, cyclesAt)).equals(Buffer.from(b.subarray(0, cyclesAt))));
    assert.notEqual(digest(runReference(name, { opt: 5, cycles: 40, seed: 10, arenaBytes: ARENA })), digest(a));
    const w = createWorkload(name, view);
    w.attach();
    w.check();
  }
  assert.equal(new ArenaView(runReference('list', { opt: 1, cycles: 0, arenaBytes: ARENA }), 0, ARENA).u32(H.bump), HEADER_BYTES);
});

test('a corrupted or foreign arena is refused with a typed error', () => {
  const base = fresh('tree', 5);
  for (let i = 0; i < 200; i++) base.step();
  const copy = (): ArenaView => new ArenaView(base.arena.snapshot(), 0, ARENA);
  const attach = (a: ArenaView, name: WorkloadName = 'tree'): void => createWorkload(name, a).attach();

  const zero = ArenaView.allocate(ARENA);
  assert.throws(() => attach(zero), { code: 'ERR_CDA_ARENA_CORRUPT', message: /magic/ });
  const badVersion = copy();
  badVersion.setU32(H.version, 99);
  assert.throws(() => attach(badVersion), { code: 'ERR_CDA_ARENA_CORRUPT', message: /version 99/ });
  assert.throws(() => attach(copy(), 'hash'), { code: 'ERR_CDA_ARENA_MISMATCH', message: /holds the tree workload/ });
  const badBump = copy();
  badBump.setU32(H.bump, ARENA + 16);
  assert.throws(() => attach(badBump), { code: 'ERR_CDA_ARENA_CORRUPT', message: /bump/ });
  const badRoot = copy();
  badRoot.setU32(H.root0, 17);
  assert.throws(() => attach(badRoot), { code: 'ERR_CDA_ARENA_CORRUPT', message: /tree root/ });
  const badFree = copy();
  badFree.setU32(H.free + 4, ARENA - 16);
  assert.throws(() => attach(badFree), { code: 'ERR_CDA_ARENA_CORRUPT', message: /free list/ });
  // A different size than the header records.
  const bigger = new Uint8Array(ARENA * 2);
  bigger.set(base.arena.raw());
  assert.throws(() => createWorkload('tree', new ArenaView(bigger, 0, ARENA * 2)).attach(), { code: 'ERR_CDA_ARENA_MISMATCH' });

  // Damage inside the structure passes attach() and is found by check().
  const badHeight = copy();
  const root = badHeight.u32(H.root0);
  badHeight.setU32(root + 12, 40);
  const w = createWorkload('tree', badHeight);
  w.attach();
  assert.throws(() => w.check(), { code: 'ERR_CDA_ARENA_CORRUPT', message: /height/ });
  const leak = copy();
  leak.setU32(H.liveBytes, leak.u32(H.liveBytes) - 16);
  assert.throws(() => createWorkload('tree', leak).check(), { code: 'ERR_CDA_ARENA_CORRUPT', message: /live|header says/ });
  const badLink = copy();
  badLink.setU32(badLink.u32(H.root0), ARENA * 4);
  const wl = createWorkload('tree', badLink);
  wl.attach();
  assert.throws(() => { for (let i = 0; i < 50; i++) wl.step(); }, { code: 'ERR_CDA_ARENA_RANGE' });
});

test('bad options and a full arena are typed errors', () => {
  assert.throws(() => createWorkload('stack' as WorkloadName, ArenaView.allocate(ARENA)), { code: 'ERR_CDA_WORKLOAD_OPTIONS' });
  assert.throws(() => createWorkload('list', ArenaView.allocate(ARENA_BYTES_MIN - 4096)), { code: 'ERR_CDA_WORKLOAD_OPTIONS' });
  assert.throws(() => createWorkload('list', ArenaView.allocate(ARENA + 100)), { code: 'ERR_CDA_WORKLOAD_OPTIONS', message: /pages/ });
  assert.throws(() => createWorkload('list', ArenaView.allocate(ARENA), { seed: -1 }), { code: 'ERR_CDA_WORKLOAD_OPTIONS' });
  assert.throws(() => runReference('list', { opt: 0, cycles: 1 }), { code: 'ERR_CDA_WORKLOAD_OPTIONS' });
  assert.throws(() => new ArenaView(new ArrayBuffer(100), 64, 64), { code: 'ERR_CDA_ARENA_RANGE' });
  const w = fresh('tree', 1, ARENA_BYTES_MIN);
  assert.throws(() => { for (let i = 0; i < 5000; i++) w.step(); }, { code: 'ERR_CDA_ARENA_FULL' });
});

test('the write hook sees every store, in arena offsets, and the view follows a growing memory', () => {
  const memory = new WebAssembly.Memory({ initial: 5 });
  const base = 65536;
  const seen: [number, number][] = [];
  const arena = new ArenaView(memory, base, ARENA, { onWrite: (o, n) => seen.push([o, n]) });
  const w = createWorkload('hash', arena, { seed: 2 });
  w.init();
  seen.length = 0;
  arena.resetCounters();
  const r = w.step();
  assert.equal(arena.writes, seen.length);
  assert.equal(arena.bytesWritten, seen.reduce((s, [, n]) => s + n, 0));
  assert.ok(seen.some(([o, n]) => n === r.value.length && Buffer.from(new Uint8Array(memory.buffer, base + o, n)).equals(r.value)), 'the value store is one write');
  assert.ok(seen.every(([o, n]) => o >= 0 && o + n <= ARENA));
  memory.grow(2);
  w.step();
  w.check();
  assert.equal(digest(arena), digest(new Uint8Array(memory.buffer, base, ARENA)));
});

test('measureWorkload: transactions of 5 store about 5x the writes of 1 but touch fewer than 5x the pages (Table 2)', () => {
  for (const name of WORKLOAD_NAMES) {
    const one = measureWorkload(name, { opt: 1, ops: 500, timingRuns: 1, arenaBytes: 1024 * 1024 });
    const five = measureWorkload(name, { opt: 5, ops: 500, timingRuns: 1, arenaBytes: 1024 * 1024 });
    assert.equal(one.transactions, 500);
    assert.equal(five.transactions, 100);
    assert.ok(five.writesPerTx > 4 * one.writesPerTx && five.writesPerTx < 5.5 * one.writesPerTx, `${name} writes ${one.writesPerTx} -> ${five.writesPerTx}`);
    assert.ok(five.pagesPerTx < 4 * one.pagesPerTx, `${name} pages ${one.pagesPerTx} -> ${five.pagesPerTx}`);
    assert.ok(one.pagesPerTx >= 1 && one.bytesPerTx > 16);
  }
});

test('fillValue is the documented LCG', () => {
  assert.deepEqual([...fillValue(0, 6)], [0x5f, 0xf3, 0x6e, 0x3c, 0x32, 0x29]);
});
