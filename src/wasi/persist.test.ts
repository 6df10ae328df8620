// Save/restore of the whole device: round trips, deep copies, clocks and
// generations, refusal of damaged states, and a property test over random
// file-system operation sequences.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Plain, PlainObject } from '../util/plain.js';
import { CLOCKID_MONOTONIC, OFLAGS_DIRECTORY, RIGHTS_ALL } from './constants.js';
import { WasiDevice } from './index.js';
import { FILE_BYTES_MAX } from './limits.js';
import { FakeClock, Harness, assertPlain, captureSink } from './testkit.js';

function populated(clock = new FakeClock()): Harness {
  const h = Harness.create({ args: ['prog', 'x'], env: [['K', 'V']], clock });
  assert.equal(h.pathCall('path_create_directory', 'dir'), 0);
  const f = h.create('dir/file');
  h.write(f, 'file contents');
  assert.equal(h.symlink('dir/file', 'link'), 0);
  const orphan = h.create('orphan');
  h.write(orphan, 'still here');
  assert.equal(h.pathCall('path_unlink_file', 'orphan'), 0);
  return h;
}

function withoutGeneration(s: PlainObject): PlainObject {
  return { ...s, restoreGeneration: 0 };
}

test('save is plain data; save → restore → save is equal but for the generation', () => {
  const clock = new FakeClock();
  const h = populated(clock);
  const s1 = h.device.save();
  assertPlain(s1);
  assert.equal(s1.restoreGeneration, 0);
  const d2 = WasiDevice.restore(s1, { output: captureSink(), clock: new FakeClock(0n, 0n) });
  assert.equal(d2.restoreGeneration, 1);
  const s2 = d2.save();
  assert.equal(s2.restoreGeneration, 1);
  assert.deepEqual(withoutGeneration(s2), withoutGeneration(s1));
  assert.equal(WasiDevice.restore(s2, { output: captureSink() }).restoreGeneration, 2);
  // The orphan survived: still readable through its descriptor in the restored device.
  const h2 = new Harness(d2);
  h2.seek(5, 0n, 0);
  assert.equal(Buffer.from(h2.read(5, 50).data).toString(), 'still here');
  assert.equal(Buffer.from(d2.readFile('/sandbox/link')).toString(), 'file contents');
});

test('save is a deep copy in both directions', () => {
  const h = populated();
  const s1 = h.device.save();
  const before = structuredClone(s1);
  const fd = h.open('dir/file').fd;
  h.write(fd, 'CHANGED');
  h.call('fd_close', fd);
  assert.deepEqual(s1, before, 'device changes do not reach a taken state');
  const d2 = WasiDevice.restore(s1, { output: captureSink() });
  const fileNode = ((s1.fs as PlainObject).inodes as PlainObject[]).find((n) => n.data instanceof Uint8Array && (n.data as Uint8Array).length === 13)!;
  (fileNode.data as Uint8Array).fill(0);
  (s1.args as Plain[])[0] = 'mutated';
  assert.equal(Buffer.from(d2.readFile('/sandbox/dir/file')).toString(), 'file contents');
  assert.deepEqual((d2.save().args as Plain[])[0], 'prog');
});

test('the monotonic clock continues from the saved value after restore', () => {
  const h = Harness.create();
  const state = h.device.save();
  (state.clocks as PlainObject).monotonicNs = 1_000_000_000_000_000n;
  const h2 = new Harness(WasiDevice.restore(state, { output: captureSink() }));
  const p = h2.alloc(8);
  assert.equal(h2.call('clock_time_get', CLOCKID_MONOTONIC, 0n, p), 0);
  const t = h2.u64(p);
  assert.ok(t >= 1_000_000_000_000_000n && t < 1_000_000_000_000_000n + 60_000_000_000n, `continues (${t})`);
  // And a host clock that steps back cannot make it go backwards.
  const clock = new FakeClock();
  const h3 = Harness.create({ clock });
  h3.call('clock_time_get', CLOCKID_MONOTONIC, 0n, p);
  const a = h3.u64(p);
  clock.monoNs -= 1_000_000n;
  h3.call('clock_time_get', CLOCKID_MONOTONIC, 0n, p);
  assert.ok(h3.u64(p) >= a);
});

test('restore refuses damaged states with ERR_WASI_STATE and leaves the input alone', () => {
  const base = populated().device.save();
  type S = Record<string, any>;
  const inodes = (s: S) => s.fs.inodes as S[];
  const dirOf = (s: S): S => inodes(s).find((n) => n.kind === 'dir' && n.entries.some((e: any) => e[0] === 'dir'))!;
  const fileNode = (s: S) => inodes(s).find((n) => n.kind === 'file')!;
  const mutations: [string, (s: S) => unknown][] = [
    ['not an object', () => null],
    ['an array', () => []],
    ['future version', (s) => { s.version = 2; }],
    ['version as string', (s) => { s.version = '1'; }],
    ['missing field', (s) => { delete s.env; }],
    ['unknown field', (s) => { s.extra = 1; }],
    ['arg not a string', (s) => { s.args[0] = 5; }],
    ['arg with NUL', (s) => { s.args[0] = 'a\0'; }],
    ['env key with =', (s) => { s.env[0][0] = 'A=B'; }],
    ['env entry of 3', (s) => { s.env[0].push('x'); }],
    ['fd twice', (s) => { s.fds.push({ ...s.fds[0] }); }],
    ['fd out of range', (s) => { s.fds[0].fd = 5000; }],
    ['fd to missing inode', (s) => { s.fds[3].ino = 999; }],
    ['fd negative offset', (s) => { s.fds[3].offset = -1; }],
    ['fd fractional offset', (s) => { s.fds[3].offset = 1.5; }],
    ['fd rights beyond preview1', (s) => { s.fds[3].rightsBase = 1n << 40n; }],
    ['fd rights as number', (s) => { s.fds[3].rightsBase = 1; }],
    ['fd unknown fdflags', (s) => { s.fds[3].flags = 1 << 9; }],
    ['stdio unknown stream', (s) => { s.fds[0].stream = 'stdweird'; }],
    ['fd kind unknown', (s) => { s.fds[0].kind = 'socket'; }],
    ['fd preopen name mismatch', (s) => { s.fds[3].preopen = '/elsewhere'; }],
    ['preopen root not a dir', (s) => { s.preopens[0].ino = fileNode(s).ino; }],
    ['inode kind unknown', (s) => { inodes(s)[0]!.kind = 'fifo'; }],
    ['inode twice', (s) => { inodes(s).push(structuredClone(inodes(s)[1]!)); }],
    ['inode number >= inoNext', (s) => { s.fs.inoNext = 2; }],
    ['negative time', (s) => { inodes(s)[0]!.mtimNs = -1n; }],
    ['time as number', (s) => { inodes(s)[0]!.mtimNs = 5; }],
    ['file data not bytes', (s) => { fileNode(s).data = [1, 2, 3]; }],
    ['entry to missing inode', (s) => { dirOf(s).entries.push(['ghost', 999]); }],
    ['entry named ..', (s) => { dirOf(s).entries[0][0] = '..'; }],
    ['entry name with slash', (s) => { dirOf(s).entries[0][0] = 'a/b'; }],
    ['duplicate entry name', (s) => { dirOf(s).entries.push([...dirOf(s).entries[0]]); }],
    ['directory with two parents', (s) => {
      const d = dirOf(s);
      const sub = d.entries.find((e: any) => e[0] === 'dir');
      d.entries.push(['again', sub[1]]);
    }],
    ['directory cycle', (s) => {
      const d = dirOf(s);
      const subIno = d.entries.find((e: any) => e[0] === 'dir')[1];
      const sub = inodes(s).find((n) => n.ino === subIno)!;
      sub.entries.push(['up', d.ino]);
    }],
    ['unreachable, unopened inode', (s) => { s.fds.pop(); }], // the orphan's descriptor
    ['empty symlink target', (s) => { inodes(s).find((n) => n.kind === 'symlink')!.target = ''; }],
    ['restoreGeneration negative', (s) => { s.restoreGeneration = -1; }],
    ['stdinBytesConsumed fractional', (s) => { s.stdinBytesConsumed = 0.5; }],
    ['clock as number', (s) => { s.clocks.monotonicNs = 0; }],
    ['pendingPoll bad subs length', (s) => {
      s.pendingPoll = { inPtr: 0, outPtr: 0, nsubs: 1, neventsPtr: 0, subs: new Uint8Array(47), deadlinesNs: [null] };
    }],
    ['pendingPoll deadlines count', (s) => {
      s.pendingPoll = { inPtr: 0, outPtr: 0, nsubs: 1, neventsPtr: 0, subs: new Uint8Array(48), deadlinesNs: [] };
    }],
  ];
  // Sanity: the unmutated base restores, and a valid pendingPoll does too.
  WasiDevice.restore(structuredClone(base), { output: captureSink() });
  const okPoll = structuredClone(base) as S;
  okPoll.pendingPoll = { inPtr: 0, outPtr: 0, nsubs: 1, neventsPtr: 0, subs: new Uint8Array(48), deadlinesNs: [5n] };
  WasiDevice.restore(okPoll as Plain, { output: captureSink() });
  for (const [name, mutate] of mutations) {
    const s = structuredClone(base) as S;
    const replaced = mutate(s);
    const state = (replaced === undefined ? s : replaced) as Plain;
    const snapshot = structuredClone(state);
    assert.throws(() => WasiDevice.restore(state, { output: captureSink() }), (e: any) => {
      assert.equal(e.code, 'ERR_WASI_STATE', `${name}: ${e.message}`);
      return true;
    }, name);
    assert.deepEqual(state, snapshot, `${name}: input left unchanged`);
  }
});

test('restore refuses a file larger than FILE_BYTES_MAX before copying it', () => {
  const s = Harness.create().device.save() as Record<string, any>;
  const root = s.fs.inodes[0];
  root.entries.push(['big', 50]);
  s.fs.inodes.push({ ino: 50, kind: 'file', atimNs: 0n, mtimNs: 0n, ctimNs: 0n, data: new Uint8Array(FILE_BYTES_MAX + 1) });
  s.fs.inoNext = 51;
  assert.throws(() => WasiDevice.restore(s as Plain, { output: captureSink() }), { code: 'ERR_WASI_STATE' });
});

// ----------------------------------------------------------- property test
const PATHS = ['a', 'b', 'd', 'd/a', 'd/e', 'd/e/b', 'd/../b', 'ln', 'ln/a', 'd/'];
const arbPath = fc.constantFrom(...PATHS);
const arbFd = fc.integer({ min: 3, max: 7 });
const arbData = fc.uint8Array({ minLength: 1, maxLength: 40 });
// Weighted towards opening and writing, so that sequences usually end with
// open descriptors at non-zero offsets (the state a checkpoint must keep).
const arbOp = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('open' as const), path: arbPath, oflags: fc.constantFrom(0, 1, 1, 1, 2, 5, 9, 15), fdflags: fc.constantFrom(0, 1) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('write' as const), fd: arbFd, data: arbData }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('pwrite' as const), fd: arbFd, off: fc.integer({ min: 0, max: 100 }), data: arbData }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('read' as const), fd: arbFd, n: fc.integer({ min: 0, max: 64 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('seek' as const), fd: arbFd, off: fc.integer({ min: -20, max: 100 }), whence: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('close' as const), fd: arbFd }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('truncate' as const), fd: arbFd, size: fc.integer({ min: 0, max: 100 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constantFrom('mkdir' as const, 'rmdir' as const, 'unlink' as const, 'stat' as const), path: arbPath }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constantFrom('rename' as const, 'link' as const, 'symlink' as const), from: arbPath, to: arbPath }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('readdir' as const), path: fc.constantFrom('.', 'd', 'd/e') }) },
);
type Op = typeof arbOp extends fc.Arbitrary<infer T> ? T : never;

function run(h: Harness, op: Op): unknown {
  switch (op.k) {
    case 'open': return h.open(op.path, op.oflags, op.fdflags);
    case 'write': return h.write(op.fd, op.data);
    case 'pwrite': return h.write(op.fd, op.data, 'fd_pwrite', BigInt(op.off));
    case 'read': return h.read(op.fd, op.n);
    case 'seek': return h.seek(op.fd, BigInt(op.off), op.whence);
    case 'close': return h.call('fd_close', op.fd);
    case 'truncate': return h.call('fd_filestat_set_size', op.fd, BigInt(op.size));
    case 'mkdir': return h.pathCall('path_create_directory', op.path);
    case 'rmdir': return h.pathCall('path_remove_directory', op.path);
    case 'unlink': return h.pathCall('path_unlink_file', op.path);
    case 'stat': return h.stat(op.path);
    case 'rename': return h.rename(op.from, op.to);
    case 'link': return h.link(op.from, op.to);
    case 'symlink': return h.symlink(op.from, op.to);
    case 'readdir': {
      const r = h.open(op.path, OFLAGS_DIRECTORY, 0, RIGHTS_ALL);
      if (r.errno !== 0) return r.errno;
      const list = h.readdir(r.fd);
      h.call('fd_close', r.fd);
      return list;
    }
  }
}

test('property: save → restore → save is stable, and the restored device behaves identically', () => {
  fc.assert(
    fc.property(fc.array(arbOp, { minLength: 5, maxLength: 40, size: 'max' }), fc.array(arbOp, { maxLength: 20, size: 'max' }), (before, after) => {
      const a = Harness.create({ clock: new FakeClock() });
      for (const op of before) run(a, op);
      const s1 = a.device.save();
      const b = new Harness(WasiDevice.restore(s1, { output: captureSink(), clock: new FakeClock() }));
      assert.deepEqual(withoutGeneration(b.device.save()), withoutGeneration(s1));
      const ra = after.map((op) => run(a, op));
      const rb = after.map((op) => run(b, op));
      assert.deepEqual(rb, ra);
      assert.deepEqual(withoutGeneration(b.device.save()), withoutGeneration(a.device.save()));
    }),
    { numRuns: 150 },
  );
});

test('restore accepts null-prototype objects (what the checkpoint codec decodes to)', () => {
  const nullProto = (v: Plain): Plain => {
    if (Array.isArray(v)) return v.map(nullProto);
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
    const o = Object.create(null) as PlainObject;
    for (const [k, x] of Object.entries(v)) o[k] = nullProto(x);
    return o;
  };
  const s1 = populated().device.save();
  const d2 = WasiDevice.restore(nullProto(s1), { output: captureSink(), clock: new FakeClock() });
  assert.deepEqual(withoutGeneration(d2.save()), withoutGeneration(s1));
});
