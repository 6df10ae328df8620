// The memfs on its own: data buffers, link counts, resolution, renames,
// bounds, and its save/restore through persist.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ERRNO_EXIST, ERRNO_INVAL, ERRNO_ISDIR, ERRNO_NAMETOOLONG, ERRNO_NOENT, ERRNO_NOTCAPABLE, ERRNO_NOTDIR,
  ERRNO_NOTEMPTY,
} from './constants.js';
import { WasiErrno } from './errno.js';
import { NAME_BYTES_MAX, PATH_BYTES_MAX } from './limits.js';
import { MemFs, type FileInode } from './memfs.js';
import { restoreMemFs, saveMemFs } from './persist.js';

function fresh(): { fs: MemFs; root: number } {
  let t = 100n;
  const fs = new MemFs(() => t++);
  return { fs, root: fs.newRoot() };
}

function errno(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    if (e instanceof WasiErrno) return e.errno;
    throw e;
  }
  return 0;
}

const text = (b: Uint8Array) => Buffer.from(b).toString();

test('file buffers grow by doubling, reads stop at size, save copies exact length', () => {
  const { fs, root } = fresh();
  const ino = fs.createFile(root, 'f');
  const one = new Uint8Array([7]);
  const capacities = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    fs.write(ino, i, one);
    capacities.add((fs.get(ino) as FileInode).data.length);
  }
  const f = fs.get(ino) as FileInode;
  assert.equal(f.size, 1000);
  assert.ok(f.data.length >= 1000 && f.data.length < 2000, 'capacity within 2x');
  assert.ok(capacities.size <= 6, `few reallocations (${capacities.size})`);
  const buf = new Uint8Array(10);
  assert.equal(fs.read(ino, 995, buf), 5);
  assert.equal(fs.read(ino, 2000, buf), 0);
  const saved = saveMemFs(fs);
  const data = ((saved.inodes as { data?: Uint8Array }[]).find((n) => n.data !== undefined))!.data!;
  assert.equal(data.length, 1000);
  assert.equal(fs.bytesUsed, 1000);
});

test('shrinking then growing a file exposes zeros, not old bytes', () => {
  const { fs, root } = fresh();
  const ino = fs.createFile(root, 'f');
  fs.write(ino, 0, Buffer.from('abcdefgh'));
  fs.setSize(ino, 2);
  fs.setSize(ino, 8);
  assert.deepEqual([...fs.contents(ino)], [97, 98, 0, 0, 0, 0, 0, 0]);
  fs.write(ino, 12, Buffer.from('z'));
  assert.deepEqual([...fs.contents(ino)].slice(8), [0, 0, 0, 0, 122]);
  assert.equal(fs.bytesUsed, 13);
  // A big file cut to a sliver gives its memory back.
  fs.write(ino, 0, new Uint8Array(100_000));
  fs.setSize(ino, 10);
  assert.ok((fs.get(ino) as FileInode).data.length < 1000);
  assert.equal(fs.bytesUsed, 10);
});

test('names: exists, too long, dot entries', () => {
  const { fs, root } = fresh();
  fs.createFile(root, 'a');
  assert.equal(errno(() => fs.createFile(root, 'a')), ERRNO_EXIST);
  assert.equal(errno(() => fs.mkdir(root, 'x'.repeat(NAME_BYTES_MAX + 1))), ERRNO_NAMETOOLONG);
  assert.equal(errno(() => fs.mkdir(root, 'é'.repeat(128))), ERRNO_NAMETOOLONG); // 256 bytes in UTF-8
  assert.equal(errno(() => fs.mkdir(root, 'x'.repeat(NAME_BYTES_MAX))), 0);
  assert.equal(errno(() => fs.resolve(root, 'a/'.repeat(PATH_BYTES_MAX / 2 + 1), false)), ERRNO_NAMETOOLONG);
  assert.equal(errno(() => fs.mkdir(root, '.')), ERRNO_EXIST);
  assert.equal(errno(() => fs.rmdir(root, '.')), ERRNO_INVAL);
  assert.equal(errno(() => fs.unlink(root, '..')), ERRNO_ISDIR);
});

test('resolve: intermediate non-directories, missing parents, trailing slash, escapes', () => {
  const { fs, root } = fresh();
  const d = fs.mkdir(root, 'd');
  fs.createFile(d, 'f');
  assert.equal(errno(() => fs.resolve(root, 'd/f/x', false)), ERRNO_NOTDIR);
  assert.equal(errno(() => fs.resolve(root, 'nope/x', false)), ERRNO_NOENT);
  assert.equal(errno(() => fs.resolve(root, 'd/f/', false)), ERRNO_NOTDIR);
  assert.equal(errno(() => fs.resolve(root, '..', false)), ERRNO_NOTCAPABLE);
  assert.equal(errno(() => fs.resolve(d, '..', false)), ERRNO_NOTCAPABLE); // d as base is a capability
  const r = fs.resolve(root, 'd/./../d/new', false);
  assert.deepEqual(r, { dir: d, name: 'new', ino: null, trailingSlash: false });
  assert.equal(fs.resolve(root, 'd/..', false).ino, root);
  fs.symlink(d, 'ln', '../d');
  assert.equal(errno(() => fs.lookup(d, 'ln/f', true)), ERRNO_NOTCAPABLE); // from d, '../d' leaves d
  assert.equal(fs.lookup(root, 'd/ln/f', true), fs.lookup(root, 'd/f', true));
});

test('rename: replace file, refuse dir over file / file over dir / non-empty dir / own subtree', () => {
  const { fs, root } = fresh();
  const a = fs.createFile(root, 'a');
  const b = fs.createFile(root, 'b');
  const d = fs.mkdir(root, 'd');
  const e = fs.mkdir(root, 'e');
  fs.createFile(e, 'x');
  assert.equal(errno(() => fs.rename(root, 'd', root, 'a')), ERRNO_NOTDIR);
  assert.equal(errno(() => fs.rename(root, 'a', root, 'd')), ERRNO_ISDIR);
  assert.equal(errno(() => fs.rename(root, 'd', root, 'e')), ERRNO_NOTEMPTY);
  const sub = fs.mkdir(d, 'sub');
  assert.equal(errno(() => fs.rename(root, 'd', sub, 'loop')), ERRNO_INVAL);
  assert.equal(errno(() => fs.rename(root, 'missing', root, 'z')), ERRNO_NOENT);
  fs.rename(root, 'a', root, 'b');
  assert.equal(fs.inodes.has(b), false, 'replaced file is freed');
  assert.equal(fs.lookup(root, 'b', false), a);
  fs.rename(root, 'd', e, 'd2');
  assert.equal(fs.lookup(root, 'e/d2/sub', false), sub);
  assert.equal(fs.list(d)[1]!.ino, e, '.. of a moved directory is its new parent');
});

test('inode lifetime: links and opens keep it, the last release frees it', () => {
  const { fs, root } = fresh();
  const f = fs.createFile(root, 'f');
  fs.write(f, 0, Buffer.from('12345'));
  fs.link(f, root, 'g');
  assert.equal(fs.stat(f).nlink, 2);
  fs.retain(f);
  fs.unlink(root, 'f');
  fs.unlink(root, 'g');
  assert.equal(fs.stat(f).nlink, 0);
  assert.equal(text(fs.contents(f)), '12345');
  assert.equal(fs.bytesUsed, 5);
  fs.release(f);
  assert.equal(fs.inodes.has(f), false);
  assert.equal(fs.bytesUsed, 0);
  const d = fs.mkdir(root, 'd');
  fs.retain(d);
  fs.rmdir(root, 'd');
  assert.equal(errno(() => fs.createFile(d, 'x')), ERRNO_NOENT); // removed directories stay empty
  fs.release(d);
  assert.equal(fs.inodes.has(d), false);
});

test('memfs save → restore → save is identity, and restore deep-copies data', () => {
  const { fs, root } = fresh();
  const d = fs.mkdir(root, 'd');
  const f = fs.createFile(d, 'f');
  fs.write(f, 0, Buffer.from('content'));
  fs.link(f, root, 'hard');
  fs.symlink(root, 'sym', 'd/f');
  const orphan = fs.createFile(root, 'orphan');
  fs.retain(orphan);
  fs.unlink(root, 'orphan');
  const s1 = saveMemFs(fs);
  const restored = restoreMemFs(s1, new Set([root]), new Set([orphan]), () => 0n);
  assert.deepEqual(saveMemFs(restored), s1);
  assert.equal(restored.stat(f).nlink, 2);
  assert.equal(restored.bytesUsed, 7);
  // Restored data is not the saved array.
  const savedData = (s1.inodes as { ino: number; data?: Uint8Array }[]).find((n) => n.ino === f)!.data!;
  savedData[0] = 0;
  assert.equal(text(restored.contents(f)), 'content');
  // The orphan is only legal while open.
  assert.throws(() => restoreMemFs(s1, new Set([root]), new Set(), () => 0n), { code: 'ERR_WASI_STATE' });
});
