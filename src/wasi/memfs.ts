// The in-memory file system behind the guest's preopened directories. It is
// a forest: each preopen is the root of its own tree, so no path can leave
// the tree it started in ('..' at the starting directory answers
// ENOTCAPABLE). Its whole state is plain data (see persist.ts).
//
// Inodes are directories (name → inode entries, one parent), regular files
// (a byte buffer that grows by doubling; bytes past `size` are always zero)
// and symlinks (a target string, resolved relative to the directory holding
// the link). An inode lives while a directory entry or an open descriptor
// refers to it, or while it is a root: an unlinked file stays readable until
// its last descriptor closes.
//
// Failures a guest can cause throw WasiErrno; broken invariants assert.
import { Buffer } from 'node:buffer';
import { assert } from '../util/assert.js';
import {
  ERRNO_EXIST, ERRNO_FBIG, ERRNO_INVAL, ERRNO_ISDIR, ERRNO_LOOP, ERRNO_NAMETOOLONG,
  ERRNO_NOENT, ERRNO_NOSPC, ERRNO_NOTCAPABLE, ERRNO_NOTDIR, ERRNO_NOTEMPTY, ERRNO_PERM,
  FILETYPE_DIRECTORY, FILETYPE_REGULAR_FILE, FILETYPE_SYMBOLIC_LINK,
} from './constants.js';
import { check } from './errno.js';
import { FILE_BYTES_MAX, FS_BYTES_MAX, INODES_MAX, NAME_BYTES_MAX, PATH_BYTES_MAX, SYMLINK_HOPS_MAX } from './limits.js';

interface InodeBase {
  readonly ino: number;
  atimNs: bigint;
  mtimNs: bigint;
  ctimNs: bigint;
  /** Directory entries naming this inode (a directory has at most one). */
  links: number;
  /** Open descriptors referring to it (maintained by the fd table, not saved). */
  opens: number;
}
export interface FileInode extends InodeBase {
  readonly kind: 'file';
  /** Capacity buffer; bytes [size, data.length) are zero. */
  data: Uint8Array;
  size: number;
}
export interface DirInode extends InodeBase {
  readonly kind: 'dir';
  readonly entries: Map<string, number>;
  /** Parent directory, 0 for a root or a removed directory. */
  parent: number;
  /** A preopen root: pinned, never removed or renamed. */
  readonly root: boolean;
}
export interface SymlinkInode extends InodeBase {
  readonly kind: 'symlink';
  readonly target: string;
}
export type Inode = FileInode | DirInode | SymlinkInode;

/** Where a path led: the directory holding the final component, and what it names (null: nothing yet). */
export interface Resolved {
  dir: number;
  /** Final component; '.' means the path named `dir` itself (also for '..' and the empty tail of 'a/'). */
  name: string;
  ino: number | null;
  /** The path ended in '/': what it names must be a directory. */
  trailingSlash: boolean;
}

export interface Stat {
  ino: number;
  filetype: number;
  nlink: number;
  size: number;
  atimNs: bigint;
  mtimNs: bigint;
  ctimNs: bigint;
}

const EMPTY = new Uint8Array(0);
/** Smallest capacity a file grows to: avoids many tiny reallocations for small appends. */
const FILE_CAPACITY_MIN = 64;
/** A file shrunk below a quarter of its capacity gives memory back, if the capacity is at least this. */
const FILE_CAPACITY_SHRINK_MIN = 4096;

export function nameBytes(name: string): number {
  return Buffer.byteLength(name, 'utf8');
}

function checkName(name: string): void {
  check(nameBytes(name) <= NAME_BYTES_MAX, ERRNO_NAMETOOLONG);
}

/** Splits a relative path; absolute paths cannot name anything inside a capability. */
function splitPath(path: string): { comps: string[]; trailingSlash: boolean } {
  check(path.length > 0, ERRNO_NOENT);
  check(!path.includes('\0'), ERRNO_INVAL);
  check(!path.startsWith('/'), ERRNO_NOTCAPABLE);
  const comps = path.split('/').filter((c) => c.length > 0);
  return { comps, trailingSlash: path.endsWith('/') };
}

export class MemFs {
  readonly inodes = new Map<number, Inode>();
  /** Next inode number to hand out; numbers are never reused. */
  inoNext = 1;
  /** Sum of all regular file sizes. */
  bytesUsed = 0;
  readonly nowNs: () => bigint;

  constructor(nowNs: () => bigint) {
    this.nowNs = nowNs;
  }

  // ------------------------------------------------------------------ inodes
  get(ino: number): Inode {
    const node = this.inodes.get(ino);
    assert(node !== undefined, `inode ${ino} is alive`);
    return node;
  }

  dir(ino: number): DirInode {
    const node = this.get(ino);
    check(node.kind === 'dir', ERRNO_NOTDIR);
    return node;
  }

  file(ino: number): FileInode {
    const node = this.get(ino);
    check(node.kind !== 'dir', ERRNO_ISDIR);
    check(node.kind === 'file', ERRNO_INVAL);
    return node;
  }

  private allocIno(): number {
    check(this.inodes.size < INODES_MAX, ERRNO_NOSPC);
    return this.inoNext++;
  }

  newRoot(): number {
    const ino = this.allocIno();
    const t = this.nowNs();
    this.inodes.set(ino, { kind: 'dir', ino, atimNs: t, mtimNs: t, ctimNs: t, links: 0, opens: 0, entries: new Map(), parent: 0, root: true });
    return ino;
  }

  /** Frees an inode nothing refers to any more. */
  private collect(ino: number): void {
    const node = this.get(ino);
    if (node.links > 0 || node.opens > 0 || (node.kind === 'dir' && node.root)) return;
    if (node.kind === 'file') {
      this.bytesUsed -= node.size;
      assert(this.bytesUsed >= 0, 'bytesUsed never negative');
    }
    if (node.kind === 'dir') assert(node.entries.size === 0, 'a freed directory is empty');
    this.inodes.delete(ino);
  }

  retain(ino: number): void {
    this.get(ino).opens++;
  }

  release(ino: number): void {
    const node = this.get(ino);
    assert(node.opens > 0, 'release matches a retain');
    node.opens--;
    this.collect(ino);
  }

  /** A directory that can still gain entries: a root or one still linked in its tree. */
  private live(dir: DirInode): boolean {
    return dir.root || dir.links > 0;
  }

  // ------------------------------------------------------------- resolution
  /**
   * Resolves `path` relative to directory `base`. Intermediate symlinks are
   * always followed; the final one only if `followFinal` (or the path ends in
   * '/'). Never leaves the tree below `base`.
   */
  resolve(base: number, path: string, followFinal: boolean): Resolved {
    check(nameBytes(path) <= PATH_BYTES_MAX, ERRNO_NAMETOOLONG);
    this.dir(base);
    const split = splitPath(path);
    const comps = split.comps;
    const trailingSlash = split.trailingSlash;
    if (comps.length === 0) comps.push('.');
    const stack = [base];
    let hops = 0;
    // Each iteration consumes one component; a symlink adds its target's
    // components but costs a hop, so the loop is bounded by
    // PATH_BYTES_MAX * (SYMLINK_HOPS_MAX + 1) iterations.
    for (;;) {
      const c = comps.shift();
      assert(c !== undefined, 'components remain');
      const last = comps.length === 0;
      const cur = stack[stack.length - 1]!;
      if (c === '.' || c === '..') {
        if (c === '..') {
          check(stack.length > 1, ERRNO_NOTCAPABLE);
          stack.pop();
        }
        if (last) {
          const at = stack[stack.length - 1]!;
          return { dir: at, name: '.', ino: at, trailingSlash };
        }
        continue;
      }
      checkName(c);
      const child = this.dir(cur).entries.get(c);
      const node = child === undefined ? undefined : this.get(child);
      if (node !== undefined && node.kind === 'symlink' && (!last || followFinal || trailingSlash)) {
        check(++hops <= SYMLINK_HOPS_MAX, ERRNO_LOOP);
        const target = splitPath(node.target);
        comps.unshift(...(target.comps.length > 0 ? target.comps : ['.']));
        continue;
      }
      if (last) {
        if (node !== undefined && trailingSlash) check(node.kind === 'dir', ERRNO_NOTDIR);
        return { dir: cur, name: c, ino: child ?? null, trailingSlash };
      }
      check(node !== undefined, ERRNO_NOENT);
      check(node.kind === 'dir', ERRNO_NOTDIR);
      stack.push(node.ino);
    }
  }

  /** Resolves to an existing inode. */
  lookup(base: number, path: string, followFinal: boolean): number {
    const r = this.resolve(base, path, followFinal);
    check(r.ino !== null, ERRNO_NOENT);
    return r.ino;
  }

  // --------------------------------------------------------------- creation
  private addEntry(dirIno: number, name: string, ino: number): void {
    const dir = this.dir(dirIno);
    assert(!dir.entries.has(name), 'entry is new');
    dir.entries.set(name, ino);
    const node = this.get(ino);
    node.links++;
    if (node.kind === 'dir') {
      assert(node.links === 1, 'a directory has one parent');
      node.parent = dirIno;
    }
    const t = this.nowNs();
    dir.mtimNs = t;
    dir.ctimNs = t;
  }

  private removeEntry(dirIno: number, name: string): number {
    const dir = this.dir(dirIno);
    const ino = dir.entries.get(name);
    assert(ino !== undefined, 'entry exists');
    dir.entries.delete(name);
    const node = this.get(ino);
    assert(node.links > 0, 'a linked inode has links');
    node.links--;
    if (node.kind === 'dir') node.parent = 0;
    const t = this.nowNs();
    dir.mtimNs = t;
    dir.ctimNs = t;
    node.ctimNs = t;
    return ino;
  }

  /** Checks that `name` can be created in `dirIno` (new, valid, directory still live). */
  private checkCreate(dirIno: number, name: string): DirInode {
    const dir = this.dir(dirIno);
    check(name !== '.' && name !== '..', ERRNO_EXIST);
    checkName(name);
    check(this.live(dir), ERRNO_NOENT);
    check(!dir.entries.has(name), ERRNO_EXIST);
    return dir;
  }

  createFile(dirIno: number, name: string): number {
    this.checkCreate(dirIno, name);
    const ino = this.allocIno();
    const t = this.nowNs();
    this.inodes.set(ino, { kind: 'file', ino, atimNs: t, mtimNs: t, ctimNs: t, links: 0, opens: 0, data: EMPTY, size: 0 });
    this.addEntry(dirIno, name, ino);
    return ino;
  }

  mkdir(dirIno: number, name: string): number {
    this.checkCreate(dirIno, name);
    const ino = this.allocIno();
    const t = this.nowNs();
    this.inodes.set(ino, { kind: 'dir', ino, atimNs: t, mtimNs: t, ctimNs: t, links: 0, opens: 0, entries: new Map(), parent: 0, root: false });
    this.addEntry(dirIno, name, ino);
    return ino;
  }

  symlink(dirIno: number, name: string, target: string): number {
    check(target.length > 0, ERRNO_NOENT);
    check(!target.includes('\0'), ERRNO_INVAL);
    check(nameBytes(target) <= PATH_BYTES_MAX, ERRNO_NAMETOOLONG);
    this.checkCreate(dirIno, name);
    const ino = this.allocIno();
    const t = this.nowNs();
    this.inodes.set(ino, { kind: 'symlink', ino, atimNs: t, mtimNs: t, ctimNs: t, links: 0, opens: 0, target });
    this.addEntry(dirIno, name, ino);
    return ino;
  }

  /** A hard link; directories cannot be linked. */
  link(ino: number, dirIno: number, name: string): void {
    const node = this.get(ino);
    check(node.kind !== 'dir', ERRNO_PERM);
    this.checkCreate(dirIno, name);
    this.addEntry(dirIno, name, ino);
    node.ctimNs = this.nowNs();
  }

  // ---------------------------------------------------------------- removal
  unlink(dirIno: number, name: string): void {
    const dir = this.dir(dirIno);
    check(name !== '.' && name !== '..', ERRNO_ISDIR);
    const ino = dir.entries.get(name);
    check(ino !== undefined, ERRNO_NOENT);
    check(this.get(ino).kind !== 'dir', ERRNO_ISDIR);
    this.removeEntry(dirIno, name);
    this.collect(ino);
  }

  rmdir(dirIno: number, name: string): void {
    const dir = this.dir(dirIno);
    check(name !== '.', ERRNO_INVAL);
    check(name !== '..', ERRNO_NOTEMPTY);
    const ino = dir.entries.get(name);
    check(ino !== undefined, ERRNO_NOENT);
    const node = this.dir(ino);
    check(node.entries.size === 0, ERRNO_NOTEMPTY);
    this.removeEntry(dirIno, name);
    this.collect(ino);
  }

  /** Is `ancestor` on the parent chain of `dirIno` (or equal to it)? */
  private isAncestor(ancestor: number, dirIno: number): boolean {
    let cur = dirIno;
    // The parent chain is a path in a tree, so it is no longer than the number of inodes.
    for (let steps = 0; steps <= this.inodes.size; steps++) {
      if (cur === ancestor) return true;
      if (cur === 0) return false;
      cur = this.get(cur).kind === 'dir' ? (this.get(cur) as DirInode).parent : 0;
    }
    assert(false, 'parent chain is acyclic');
  }

  rename(srcDir: number, srcName: string, dstDir: number, dstName: string): void {
    const sdir = this.dir(srcDir);
    const ddir = this.dir(dstDir);
    check(srcName !== '.' && srcName !== '..' && dstName !== '.' && dstName !== '..', ERRNO_INVAL);
    const srcIno = sdir.entries.get(srcName);
    check(srcIno !== undefined, ERRNO_NOENT);
    checkName(dstName);
    check(this.live(ddir), ERRNO_NOENT);
    const src = this.get(srcIno);
    const dstIno = ddir.entries.get(dstName);
    if (dstIno === srcIno) return; // same file: POSIX says do nothing
    if (src.kind === 'dir') check(!this.isAncestor(srcIno, dstDir), ERRNO_INVAL);
    if (dstIno !== undefined) {
      const dst = this.get(dstIno);
      if (src.kind === 'dir') {
        check(dst.kind === 'dir', ERRNO_NOTDIR);
        check(dst.entries.size === 0, ERRNO_NOTEMPTY);
      } else {
        check(dst.kind !== 'dir', ERRNO_ISDIR);
      }
      this.removeEntry(dstDir, dstName);
      this.collect(dstIno);
    }
    this.removeEntry(srcDir, srcName);
    this.addEntry(dstDir, dstName, srcIno);
  }

  // ------------------------------------------------------------ file data
  read(ino: number, offset: number, dest: Uint8Array): number {
    const f = this.file(ino);
    if (offset >= f.size) return 0;
    const n = Math.min(dest.length, f.size - offset);
    dest.set(f.data.subarray(offset, offset + n));
    return n;
  }

  /** Grows capacity (doubling) so that `bytes` fit; never shrinks. */
  private reserve(f: FileInode, bytes: number): void {
    assert(bytes <= FILE_BYTES_MAX, 'reserve within the file bound');
    if (bytes <= f.data.length) return;
    const cap = Math.min(FILE_BYTES_MAX, Math.max(bytes, f.data.length * 2, FILE_CAPACITY_MIN));
    const data = new Uint8Array(cap);
    data.set(f.data.subarray(0, f.size));
    f.data = data;
  }

  /** Checks the budget for a file growing to `size`. */
  private checkGrow(f: FileInode, size: number): void {
    check(size <= FILE_BYTES_MAX, ERRNO_FBIG);
    if (size > f.size) check(this.bytesUsed + (size - f.size) <= FS_BYTES_MAX, ERRNO_NOSPC);
  }

  write(ino: number, offset: number, src: Uint8Array): number {
    const f = this.file(ino);
    if (src.length === 0) return 0;
    const end = offset + src.length;
    this.checkGrow(f, end);
    this.reserve(f, end);
    f.data.set(src, offset);
    if (end > f.size) {
      this.bytesUsed += end - f.size;
      f.size = end;
    }
    const t = this.nowNs();
    f.mtimNs = t;
    f.ctimNs = t;
    return src.length;
  }

  setSize(ino: number, size: number): void {
    const f = this.file(ino);
    this.checkGrow(f, size);
    if (size > f.size) {
      this.reserve(f, size); // new bytes are already zero
    } else if (size < f.size) {
      if (size * 4 < f.data.length && f.data.length >= FILE_CAPACITY_SHRINK_MIN) {
        f.data = size === 0 ? EMPTY : f.data.slice(0, size);
      } else {
        f.data.fill(0, size, f.size); // keep bytes past size zero
      }
    }
    this.bytesUsed += size - f.size;
    f.size = size;
    const t = this.nowNs();
    f.mtimNs = t;
    f.ctimNs = t;
  }

  /** Exact-length copy of a file's contents. */
  contents(ino: number): Uint8Array {
    const f = this.file(ino);
    return f.data.slice(0, f.size);
  }

  // -------------------------------------------------------------- metadata
  stat(ino: number): Stat {
    const node = this.get(ino);
    const base = { ino, atimNs: node.atimNs, mtimNs: node.mtimNs, ctimNs: node.ctimNs };
    switch (node.kind) {
      case 'file':
        return { ...base, filetype: FILETYPE_REGULAR_FILE, nlink: node.links, size: node.size };
      case 'symlink':
        return { ...base, filetype: FILETYPE_SYMBOLIC_LINK, nlink: node.links, size: nameBytes(node.target) };
      case 'dir':
        // Its entry in the parent (or the mount, for a root) plus its own '.'; a removed one has none.
        return { ...base, filetype: FILETYPE_DIRECTORY, nlink: node.root || node.links > 0 ? 2 : 0, size: node.entries.size };
    }
  }

  setTimes(ino: number, atimNs: bigint | null, mtimNs: bigint | null): void {
    const node = this.get(ino);
    if (atimNs !== null) node.atimNs = atimNs;
    if (mtimNs !== null) node.mtimNs = mtimNs;
    node.ctimNs = this.nowNs();
  }

  /** Directory listing for readdir, in a stable order: '.', '..', then names sorted. */
  list(ino: number): { name: string; ino: number }[] {
    const dir = this.dir(ino);
    const out = [
      { name: '.', ino },
      { name: '..', ino: dir.parent !== 0 ? dir.parent : ino },
    ];
    const names = [...dir.entries.keys()].sort();
    for (const name of names) out.push({ name, ino: dir.entries.get(name)! });
    return out;
  }
}
