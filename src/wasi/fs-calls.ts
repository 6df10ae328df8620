// fd_* and path_* syscalls: descriptors, stdio, and the memfs.
//
// Conventions for every call here: numeric arguments arrive as unsigned u32
// (the import wrapper applies >>> 0), 64-bit ones as bigint; every pointer is
// checked before the first side effect, so a call that fails with EFAULT or
// records a wait has changed nothing.
import {
  ADVICE_MAX, DIRENT, DIRENT_SIZE, ERRNO_AGAIN, ERRNO_BADF, ERRNO_EXIST, ERRNO_INVAL, ERRNO_ISDIR,
  ERRNO_LOOP, ERRNO_MFILE, ERRNO_NAMETOOLONG, ERRNO_NOENT, ERRNO_NOTCAPABLE, ERRNO_NOTDIR, ERRNO_SPIPE,
  ERRNO_SUCCESS, FDFLAGS_ALL, FDFLAGS_APPEND, FDFLAGS_NONBLOCK, FDSTAT, FDSTAT_SIZE, FILESTAT,
  FILESTAT_SIZE, FILETYPE_CHARACTER_DEVICE, FILETYPE_DIRECTORY, FILETYPE_REGULAR_FILE,
  FILETYPE_SYMBOLIC_LINK, FSTFLAGS_ALL, FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW, FSTFLAGS_MTIM,
  FSTFLAGS_MTIM_NOW, LOOKUPFLAGS_SYMLINK_FOLLOW, OFLAGS_ALL, OFLAGS_CREAT, OFLAGS_DIRECTORY,
  OFLAGS_EXCL, OFLAGS_TRUNC, PREOPENTYPE_DIR, PRESTAT, PRESTAT_SIZE, RIGHTS_DIRECTORY,
  RIGHTS_FD_ADVISE, RIGHTS_FD_ALLOCATE, RIGHTS_FD_DATASYNC, RIGHTS_FD_FDSTAT_SET_FLAGS,
  RIGHTS_FD_FILESTAT_GET, RIGHTS_FD_FILESTAT_SET_SIZE, RIGHTS_FD_FILESTAT_SET_TIMES, RIGHTS_FD_READ,
  RIGHTS_FD_READDIR, RIGHTS_FD_SEEK, RIGHTS_FD_SYNC, RIGHTS_FD_TELL, RIGHTS_FD_WRITE, RIGHTS_FILE,
  RIGHTS_PATH_CREATE_DIRECTORY, RIGHTS_PATH_CREATE_FILE, RIGHTS_PATH_FILESTAT_GET,
  RIGHTS_PATH_FILESTAT_SET_TIMES, RIGHTS_PATH_LINK_SOURCE, RIGHTS_PATH_LINK_TARGET, RIGHTS_PATH_OPEN,
  RIGHTS_PATH_READLINK, RIGHTS_PATH_REMOVE_DIRECTORY, RIGHTS_PATH_RENAME_SOURCE,
  RIGHTS_PATH_RENAME_TARGET, RIGHTS_PATH_SYMLINK, RIGHTS_PATH_UNLINK_FILE, WHENCE_CUR, WHENCE_END,
  WHENCE_SET,
} from './constants.js';
import type { Core } from './core.js';
import { WasiErrno, check } from './errno.js';
import { hasRights, type FdEntry, type InodeFd } from './fd-table.js';
import { FDS_MAX, OFFSET_MAX, PATH_BYTES_MAX, STDIN_READ_BYTES_MAX } from './limits.js';
import { type GuestMemory, type Iovec, iovecsTotal, utf8Encoder } from './memory.js';
import type { Stat } from './memfs.js';

// ------------------------------------------------------------------ helpers
function inodeFd(e: FdEntry): InodeFd {
  check(e.kind === 'inode', ERRNO_BADF);
  return e;
}

/** A directory descriptor holding `rights`; returns its inode. */
function dirFd(core: Core, fd: number, rights: bigint): { entry: InodeFd; ino: number } {
  const entry = inodeFd(core.fds.get(fd, rights));
  check(core.fs.get(entry.ino).kind === 'dir', ERRNO_NOTDIR);
  return { entry, ino: entry.ino };
}

function guestPath(mem: GuestMemory, ptr: number, len: number): string {
  check(len <= PATH_BYTES_MAX, ERRNO_NAMETOOLONG);
  return mem.string(ptr, len);
}

function filetypeOf(core: Core, e: FdEntry): number {
  if (e.kind === 'stdio') return FILETYPE_CHARACTER_DEVICE;
  switch (core.fs.get(e.ino).kind) {
    case 'dir': return FILETYPE_DIRECTORY;
    case 'file': return FILETYPE_REGULAR_FILE;
    case 'symlink': return FILETYPE_SYMBOLIC_LINK;
  }
}

function writeFilestat(mem: GuestMemory, ptr: number, st: Stat): void {
  mem.bytes(ptr, FILESTAT_SIZE).fill(0);
  mem.setU64(ptr + FILESTAT.dev, 0n);
  mem.setU64(ptr + FILESTAT.ino, BigInt(st.ino));
  mem.setU8(ptr + FILESTAT.filetype, st.filetype);
  mem.setU64(ptr + FILESTAT.nlink, BigInt(st.nlink));
  mem.setU64(ptr + FILESTAT.size, BigInt(st.size));
  mem.setU64(ptr + FILESTAT.atim, st.atimNs);
  mem.setU64(ptr + FILESTAT.mtim, st.mtimNs);
  mem.setU64(ptr + FILESTAT.ctim, st.ctimNs);
}

const STDIO_STAT: Stat = { ino: 0, filetype: FILETYPE_CHARACTER_DEVICE, nlink: 1, size: 0, atimNs: 0n, mtimNs: 0n, ctimNs: 0n };

/** A u64 offset or size from the guest as a safe number (EINVAL beyond OFFSET_MAX). */
function offsetArg(v: bigint): number {
  const u = BigInt.asUintN(64, v);
  check(u <= BigInt(OFFSET_MAX), ERRNO_INVAL);
  return Number(u);
}

/** New times for set_times from fstflags (EINVAL for contradictory flags). */
function newTimes(core: Core, atim: bigint, mtim: bigint, fst: number): { atimNs: bigint | null; mtimNs: bigint | null } {
  check((fst & ~FSTFLAGS_ALL) === 0, ERRNO_INVAL);
  check(!((fst & FSTFLAGS_ATIM) && (fst & FSTFLAGS_ATIM_NOW)), ERRNO_INVAL);
  check(!((fst & FSTFLAGS_MTIM) && (fst & FSTFLAGS_MTIM_NOW)), ERRNO_INVAL);
  const now = fst & (FSTFLAGS_ATIM_NOW | FSTFLAGS_MTIM_NOW) ? core.clocks.realtimeNs() : 0n;
  const atimNs = fst & FSTFLAGS_ATIM ? BigInt.asUintN(64, atim) : fst & FSTFLAGS_ATIM_NOW ? now : null;
  const mtimNs = fst & FSTFLAGS_MTIM ? BigInt.asUintN(64, mtim) : fst & FSTFLAGS_MTIM_NOW ? now : null;
  return { atimNs, mtimNs };
}

/** All iovec buffers concatenated into one fresh array. */
function gather(mem: GuestMemory, iovs: Iovec[]): Uint8Array {
  const first = iovs[0];
  if (iovs.length === 1 && first !== undefined) return mem.bytes(first.ptr, first.len).slice();
  const out = new Uint8Array(iovecsTotal(iovs));
  let at = 0;
  for (const v of iovs) {
    out.set(mem.bytes(v.ptr, v.len), at);
    at += v.len;
  }
  return out;
}

/** Spreads `src` over the iovec buffers in order; returns bytes placed. */
function scatter(mem: GuestMemory, iovs: Iovec[], src: Uint8Array): number {
  let at = 0;
  for (const v of iovs) {
    if (at >= src.length) break;
    const n = Math.min(v.len, src.length - at);
    mem.bytes(v.ptr, n).set(src.subarray(at, at + n));
    at += n;
  }
  return at;
}

function readFile(core: Core, ino: number, offset: number, iovs: Iovec[], mem: GuestMemory): number {
  let total = 0;
  for (const v of iovs) {
    const n = core.fs.read(ino, offset + total, mem.bytes(v.ptr, v.len));
    total += n;
    if (n < v.len) break;
  }
  return total;
}

/**
 * stdin read: takes what is there now. With nothing there yet it either
 * blocks (cannot suspend), records a wait and answers EAGAIN (the runtime
 * discards that answer and retries the call), or answers EAGAIN for a
 * non-blocking descriptor.
 */
function readStdin(core: Core, e: FdEntry, iovs: Iovec[], mem: GuestMemory): number {
  const want = Math.min(iovecsTotal(iovs), STDIN_READ_BYTES_MAX);
  if (want === 0) return 0;
  if (!core.stdin.ready(want)) {
    check(!(e.flags & FDFLAGS_NONBLOCK), ERRNO_AGAIN);
    if (core.canSuspend) {
      core.recordWait(core.stdin.whenReadable());
      throw new WasiErrno(ERRNO_AGAIN);
    }
    core.stdin.fillSync(want);
  }
  return scatter(mem, iovs, core.stdin.take(want));
}

// ---------------------------------------------------------------- fd calls
function fd_read(core: Core, fd: number, iovsPtr: number, iovsLen: number, nreadPtr: number): number {
  const mem = core.mem();
  const e = core.fds.get(fd);
  check(e.kind === 'stdio' || core.fs.get(e.ino).kind !== 'dir', ERRNO_ISDIR); // before rights: POSIX says EISDIR
  check(hasRights(e, RIGHTS_FD_READ), ERRNO_NOTCAPABLE);
  const iovs = mem.iovecs(iovsPtr, iovsLen);
  mem.check(nreadPtr, 4);
  let n: number;
  if (e.kind === 'stdio') {
    n = readStdin(core, e, iovs, mem);
  } else {
    n = readFile(core, e.ino, e.offset, iovs, mem);
    e.offset += n;
  }
  mem.setU32(nreadPtr, n);
  return ERRNO_SUCCESS;
}

function fd_pread(core: Core, fd: number, iovsPtr: number, iovsLen: number, offset: bigint, nreadPtr: number): number {
  const mem = core.mem();
  const e = core.fds.get(fd, RIGHTS_FD_READ);
  check(e.kind === 'inode', ERRNO_SPIPE);
  check(hasRights(e, RIGHTS_FD_SEEK), ERRNO_NOTCAPABLE);
  const iovs = mem.iovecs(iovsPtr, iovsLen);
  mem.check(nreadPtr, 4);
  const at = offsetArg(offset);
  check(core.fs.get(e.ino).kind !== 'dir', ERRNO_ISDIR);
  mem.setU32(nreadPtr, readFile(core, e.ino, at, iovs, mem));
  return ERRNO_SUCCESS;
}

function fd_write(core: Core, fd: number, iovsPtr: number, iovsLen: number, nwrittenPtr: number): number {
  const mem = core.mem();
  const e = core.fds.get(fd, RIGHTS_FD_WRITE);
  const iovs = mem.iovecs(iovsPtr, iovsLen);
  mem.check(nwrittenPtr, 4);
  const bytes = gather(mem, iovs);
  if (e.kind === 'stdio') {
    check(e.stream !== 'stdin', ERRNO_BADF);
    if (bytes.length > 0) core.output.write(e.stream, bytes);
  } else {
    const f = core.fs.file(e.ino);
    const at = e.flags & FDFLAGS_APPEND ? f.size : e.offset;
    core.fs.write(e.ino, at, bytes);
    e.offset = at + bytes.length;
  }
  mem.setU32(nwrittenPtr, bytes.length);
  return ERRNO_SUCCESS;
}

function fd_pwrite(core: Core, fd: number, iovsPtr: number, iovsLen: number, offset: bigint, nwrittenPtr: number): number {
  const mem = core.mem();
  const e = core.fds.get(fd, RIGHTS_FD_WRITE);
  check(e.kind === 'inode', ERRNO_SPIPE);
  check(hasRights(e, RIGHTS_FD_SEEK), ERRNO_NOTCAPABLE);
  const iovs = mem.iovecs(iovsPtr, iovsLen);
  mem.check(nwrittenPtr, 4);
  const at = offsetArg(offset);
  const bytes = gather(mem, iovs);
  core.fs.write(e.ino, at, bytes);
  mem.setU32(nwrittenPtr, bytes.length);
  return ERRNO_SUCCESS;
}

function fd_seek(core: Core, fd: number, delta: bigint, whence: number, newOffsetPtr: number): number {
  const mem = core.mem();
  const e0 = core.fds.get(fd);
  check(e0.kind === 'inode', ERRNO_SPIPE);
  // A pure "where am I" (0, CUR) needs only the tell right.
  const tellOnly = delta === 0n && whence === WHENCE_CUR;
  check(hasRights(e0, RIGHTS_FD_SEEK) || (tellOnly && hasRights(e0, RIGHTS_FD_TELL)), ERRNO_NOTCAPABLE);
  mem.check(newOffsetPtr, 8);
  const e = e0;
  let base: bigint;
  switch (whence) {
    case WHENCE_SET: base = 0n; break;
    case WHENCE_CUR: base = BigInt(e.offset); break;
    case WHENCE_END: base = BigInt(core.fs.file(e.ino).size); break;
    default: throw new WasiErrno(ERRNO_INVAL);
  }
  const next = base + BigInt.asIntN(64, delta);
  check(next >= 0n && next <= BigInt(OFFSET_MAX), ERRNO_INVAL);
  e.offset = Number(next);
  mem.setU64(newOffsetPtr, next);
  return ERRNO_SUCCESS;
}

function fd_tell(core: Core, fd: number, offsetPtr: number): number {
  const mem = core.mem();
  const e = core.fds.get(fd);
  check(e.kind === 'inode', ERRNO_SPIPE);
  check(hasRights(e, RIGHTS_FD_TELL), ERRNO_NOTCAPABLE);
  mem.setU64(offsetPtr, BigInt(e.offset));
  return ERRNO_SUCCESS;
}

function fd_close(core: Core, fd: number): number {
  core.fds.close(fd);
  return ERRNO_SUCCESS;
}

function syncCall(rights: bigint) {
  return (core: Core, fd: number): number => {
    const e = core.fds.get(fd);
    check(e.kind === 'inode', ERRNO_INVAL); // like fsync on a terminal
    check(hasRights(e, rights), ERRNO_NOTCAPABLE);
    return ERRNO_SUCCESS; // memory is the storage: nothing to flush
  };
}

function fd_fdstat_get(core: Core, fd: number, ptr: number): number {
  const mem = core.mem();
  const e = core.fds.get(fd);
  mem.bytes(ptr, FDSTAT_SIZE).fill(0);
  mem.setU8(ptr + FDSTAT.filetype, filetypeOf(core, e));
  mem.setU16(ptr + FDSTAT.flags, e.flags);
  mem.setU64(ptr + FDSTAT.rightsBase, e.rightsBase);
  mem.setU64(ptr + FDSTAT.rightsInheriting, e.rightsInheriting);
  return ERRNO_SUCCESS;
}

function fd_fdstat_set_flags(core: Core, fd: number, flags: number): number {
  const e = core.fds.get(fd, RIGHTS_FD_FDSTAT_SET_FLAGS);
  check((flags & ~FDFLAGS_ALL) === 0, ERRNO_INVAL);
  e.flags = flags;
  return ERRNO_SUCCESS;
}

function fd_fdstat_set_rights(core: Core, fd: number, base: bigint, inheriting: bigint): number {
  const e = core.fds.get(fd);
  const b = BigInt.asUintN(64, base);
  const i = BigInt.asUintN(64, inheriting);
  // Rights only ever shrink.
  check((b & ~e.rightsBase) === 0n && (i & ~e.rightsInheriting) === 0n, ERRNO_NOTCAPABLE);
  e.rightsBase = b;
  e.rightsInheriting = i;
  return ERRNO_SUCCESS;
}

function fd_filestat_get(core: Core, fd: number, ptr: number): number {
  const mem = core.mem();
  const e = core.fds.get(fd, RIGHTS_FD_FILESTAT_GET);
  mem.check(ptr, FILESTAT_SIZE);
  writeFilestat(mem, ptr, e.kind === 'stdio' ? STDIO_STAT : core.fs.stat(e.ino));
  return ERRNO_SUCCESS;
}

function fd_filestat_set_size(core: Core, fd: number, size: bigint): number {
  const e = inodeFd(core.fds.get(fd, RIGHTS_FD_FILESTAT_SET_SIZE));
  core.fs.setSize(e.ino, offsetArg(size));
  return ERRNO_SUCCESS;
}

function fd_filestat_set_times(core: Core, fd: number, atim: bigint, mtim: bigint, fst: number): number {
  const e = inodeFd(core.fds.get(fd, RIGHTS_FD_FILESTAT_SET_TIMES));
  const t = newTimes(core, atim, mtim, fst);
  core.fs.setTimes(e.ino, t.atimNs, t.mtimNs);
  return ERRNO_SUCCESS;
}

function preopenOf(core: Core, fd: number): string {
  const e = core.fds.get(fd);
  check(e.kind === 'inode' && e.preopen !== null, ERRNO_BADF);
  return e.preopen;
}

function fd_prestat_get(core: Core, fd: number, ptr: number): number {
  const mem = core.mem();
  const name = utf8Encoder.encode(preopenOf(core, fd));
  mem.bytes(ptr, PRESTAT_SIZE).fill(0);
  mem.setU8(ptr + PRESTAT.tag, PREOPENTYPE_DIR);
  mem.setU32(ptr + PRESTAT.nameLen, name.length);
  return ERRNO_SUCCESS;
}

function fd_prestat_dir_name(core: Core, fd: number, ptr: number, len: number): number {
  const mem = core.mem();
  const name = utf8Encoder.encode(preopenOf(core, fd));
  check(len >= name.length, ERRNO_NAMETOOLONG);
  mem.bytes(ptr, name.length).set(name);
  return ERRNO_SUCCESS;
}

/**
 * Directory entries from `cookie` on ('.', '..', then names sorted; the
 * cookie of an entry is its index + 1). The last entry is cut off when the
 * buffer ends: a full buffer tells libc to call again with a larger one.
 */
function fd_readdir(core: Core, fd: number, buf: number, bufLen: number, cookie: bigint, bufusedPtr: number): number {
  const mem = core.mem();
  const e = inodeFd(core.fds.get(fd, RIGHTS_FD_READDIR));
  const out = mem.bytes(buf, bufLen);
  mem.check(bufusedPtr, 4);
  const list = core.fs.list(e.ino);
  const start = BigInt.asUintN(64, cookie);
  let used = 0;
  const header = new Uint8Array(DIRENT_SIZE);
  const hv = new DataView(header.buffer);
  for (let i = start < BigInt(list.length) ? Number(start) : list.length; i < list.length && used < bufLen; i++) {
    const ent = list[i]!;
    const name = utf8Encoder.encode(ent.name);
    header.fill(0);
    hv.setBigUint64(DIRENT.next, BigInt(i + 1), true);
    hv.setBigUint64(DIRENT.ino, BigInt(ent.ino), true);
    hv.setUint32(DIRENT.namlen, name.length, true);
    const st = core.fs.stat(ent.ino);
    hv.setUint8(DIRENT.type, st.filetype);
    for (const part of [header, name]) {
      const n = Math.min(part.length, bufLen - used);
      out.set(part.subarray(0, n), used);
      used += n;
    }
  }
  mem.setU32(bufusedPtr, used);
  return ERRNO_SUCCESS;
}

function fd_renumber(core: Core, from: number, to: number): number {
  core.fds.renumber(from, to);
  return ERRNO_SUCCESS;
}

function fd_advise(core: Core, fd: number, _offset: bigint, _len: bigint, advice: number): number {
  const e = core.fds.get(fd);
  check(e.kind === 'inode', ERRNO_SPIPE);
  check(hasRights(e, RIGHTS_FD_ADVISE), ERRNO_NOTCAPABLE);
  check(advice <= ADVICE_MAX, ERRNO_INVAL);
  return ERRNO_SUCCESS; // advice only: memory has no read-ahead to tune
}

function fd_allocate(core: Core, fd: number, offset: bigint, len: bigint): number {
  const e = inodeFd(core.fds.get(fd, RIGHTS_FD_ALLOCATE));
  const end = BigInt.asUintN(64, offset) + BigInt.asUintN(64, len);
  check(end <= BigInt(OFFSET_MAX), ERRNO_INVAL);
  const f = core.fs.file(e.ino);
  if (Number(end) > f.size) core.fs.setSize(e.ino, Number(end));
  return ERRNO_SUCCESS;
}

// -------------------------------------------------------------- path calls
function path_open(
  core: Core, fd: number, dirflags: number, pathPtr: number, pathLen: number, oflags: number,
  rightsBase: bigint, rightsInheriting: bigint, fdflags: number, fdPtr: number,
): number {
  const mem = core.mem();
  const dir = dirFd(core, fd, RIGHTS_PATH_OPEN);
  check((oflags & ~OFLAGS_ALL) === 0 && (fdflags & ~FDFLAGS_ALL) === 0, ERRNO_INVAL);
  const path = guestPath(mem, pathPtr, pathLen);
  mem.check(fdPtr, 4);
  check(core.fds.entries.size < FDS_MAX, ERRNO_MFILE); // before creating or truncating anything
  const fs = core.fs;
  const r = fs.resolve(dir.ino, path, (dirflags & LOOKUPFLAGS_SYMLINK_FOLLOW) !== 0);
  let ino = r.ino;
  if (ino === null) {
    check(oflags & OFLAGS_CREAT, ERRNO_NOENT);
    check(!(oflags & OFLAGS_DIRECTORY) && !r.trailingSlash, ERRNO_ISDIR);
    check(hasRights(dir.entry, RIGHTS_PATH_CREATE_FILE), ERRNO_NOTCAPABLE);
    ino = fs.createFile(r.dir, r.name);
  } else {
    check(!((oflags & OFLAGS_CREAT) && (oflags & OFLAGS_EXCL)), ERRNO_EXIST);
    const node = fs.get(ino);
    check(node.kind !== 'symlink', ERRNO_LOOP); // a final symlink not followed (O_NOFOLLOW)
    if (oflags & OFLAGS_DIRECTORY) check(node.kind === 'dir', ERRNO_NOTDIR);
    if (oflags & OFLAGS_TRUNC) {
      check(node.kind === 'file', ERRNO_ISDIR);
      fs.setSize(ino, 0);
    }
  }
  const mask = fs.get(ino).kind === 'dir' ? RIGHTS_DIRECTORY : RIGHTS_FILE;
  const newFd = core.fds.open({
    kind: 'inode',
    ino,
    offset: 0,
    flags: fdflags,
    // Rights asked for beyond what the directory passes on are dropped, not refused: libc asks for all it might use.
    rightsBase: BigInt.asUintN(64, rightsBase) & dir.entry.rightsInheriting & mask,
    rightsInheriting: BigInt.asUintN(64, rightsInheriting) & dir.entry.rightsInheriting,
    preopen: null,
  });
  mem.setU32(fdPtr, newFd);
  return ERRNO_SUCCESS;
}

function path_filestat_get(core: Core, fd: number, flags: number, pathPtr: number, pathLen: number, ptr: number): number {
  const mem = core.mem();
  const dir = dirFd(core, fd, RIGHTS_PATH_FILESTAT_GET);
  const path = guestPath(mem, pathPtr, pathLen);
  mem.check(ptr, FILESTAT_SIZE);
  const ino = core.fs.lookup(dir.ino, path, (flags & LOOKUPFLAGS_SYMLINK_FOLLOW) !== 0);
  writeFilestat(mem, ptr, core.fs.stat(ino));
  return ERRNO_SUCCESS;
}

function path_filestat_set_times(
  core: Core, fd: number, flags: number, pathPtr: number, pathLen: number, atim: bigint, mtim: bigint, fst: number,
): number {
  const mem = core.mem();
  const dir = dirFd(core, fd, RIGHTS_PATH_FILESTAT_SET_TIMES);
  const path = guestPath(mem, pathPtr, pathLen);
  const t = newTimes(core, atim, mtim, fst);
  const ino = core.fs.lookup(dir.ino, path, (flags & LOOKUPFLAGS_SYMLINK_FOLLOW) !== 0);
  core.fs.setTimes(ino, t.atimNs, t.mtimNs);
  return ERRNO_SUCCESS;
}

function path_create_directory(core: Core, fd: number, pathPtr: number, pathLen: number): number {
  const mem = core.mem();
  const dir = dirFd(core, fd, RIGHTS_PATH_CREATE_DIRECTORY);
  const r = core.fs.resolve(dir.ino, guestPath(mem, pathPtr, pathLen), false);
  check(r.ino === null, ERRNO_EXIST);
  core.fs.mkdir(r.dir, r.name);
  return ERRNO_SUCCESS;
}

function path_unlink_file(core: Core, fd: number, pathPtr: number, pathLen: number): number {
  const mem = core.mem();
  const dir = dirFd(core, fd, RIGHTS_PATH_UNLINK_FILE);
  const r = core.fs.resolve(dir.ino, guestPath(mem, pathPtr, pathLen), false);
  check(r.ino !== null, ERRNO_NOENT);
  core.fs.unlink(r.dir, r.name);
  return ERRNO_SUCCESS;
}

function path_remove_directory(core: Core, fd: number, pathPtr: number, pathLen: number): number {
  const mem = core.mem();
  const dir = dirFd(core, fd, RIGHTS_PATH_REMOVE_DIRECTORY);
  const r = core.fs.resolve(dir.ino, guestPath(mem, pathPtr, pathLen), false);
  check(r.ino !== null, ERRNO_NOENT);
  core.fs.rmdir(r.dir, r.name);
  return ERRNO_SUCCESS;
}

function path_rename(
  core: Core, fd: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number,
): number {
  const mem = core.mem();
  const src = dirFd(core, fd, RIGHTS_PATH_RENAME_SOURCE);
  const dst = dirFd(core, newFd, RIGHTS_PATH_RENAME_TARGET);
  const oldPath = guestPath(mem, oldPtr, oldLen);
  const newPath = guestPath(mem, newPtr, newLen);
  const rs = core.fs.resolve(src.ino, oldPath, false);
  const rd = core.fs.resolve(dst.ino, newPath, false);
  check(rs.ino !== null, ERRNO_NOENT);
  if (rd.trailingSlash) check(core.fs.get(rs.ino).kind === 'dir', ERRNO_NOTDIR);
  core.fs.rename(rs.dir, rs.name, rd.dir, rd.name);
  return ERRNO_SUCCESS;
}

function path_link(
  core: Core, oldFd: number, oldFlags: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number,
): number {
  const mem = core.mem();
  const src = dirFd(core, oldFd, RIGHTS_PATH_LINK_SOURCE);
  const dst = dirFd(core, newFd, RIGHTS_PATH_LINK_TARGET);
  const oldPath = guestPath(mem, oldPtr, oldLen);
  const newPath = guestPath(mem, newPtr, newLen);
  const ino = core.fs.lookup(src.ino, oldPath, (oldFlags & LOOKUPFLAGS_SYMLINK_FOLLOW) !== 0);
  const rd = core.fs.resolve(dst.ino, newPath, false);
  check(rd.ino === null, ERRNO_EXIST);
  core.fs.link(ino, rd.dir, rd.name);
  return ERRNO_SUCCESS;
}

function path_symlink(core: Core, oldPtr: number, oldLen: number, fd: number, newPtr: number, newLen: number): number {
  const mem = core.mem();
  const dir = dirFd(core, fd, RIGHTS_PATH_SYMLINK);
  const target = guestPath(mem, oldPtr, oldLen);
  const rd = core.fs.resolve(dir.ino, guestPath(mem, newPtr, newLen), false);
  check(rd.ino === null, ERRNO_EXIST);
  core.fs.symlink(rd.dir, rd.name, target);
  return ERRNO_SUCCESS;
}

function path_readlink(
  core: Core, fd: number, pathPtr: number, pathLen: number, buf: number, bufLen: number, bufusedPtr: number,
): number {
  const mem = core.mem();
  const dir = dirFd(core, fd, RIGHTS_PATH_READLINK);
  const path = guestPath(mem, pathPtr, pathLen);
  const out = mem.bytes(buf, bufLen);
  mem.check(bufusedPtr, 4);
  const node = core.fs.get(core.fs.lookup(dir.ino, path, false));
  check(node.kind === 'symlink', ERRNO_INVAL);
  const target = utf8Encoder.encode(node.target);
  const n = Math.min(target.length, bufLen); // truncated like readlink(2)
  out.set(target.subarray(0, n));
  mem.setU32(bufusedPtr, n);
  return ERRNO_SUCCESS;
}

export const fsCalls = {
  fd_read, fd_pread, fd_write, fd_pwrite, fd_seek, fd_tell, fd_close,
  fd_sync: syncCall(RIGHTS_FD_SYNC),
  fd_datasync: syncCall(RIGHTS_FD_DATASYNC),
  fd_fdstat_get, fd_fdstat_set_flags, fd_fdstat_set_rights,
  fd_filestat_get, fd_filestat_set_size, fd_filestat_set_times,
  fd_prestat_get, fd_prestat_dir_name, fd_readdir, fd_renumber, fd_advise, fd_allocate,
  path_open, path_filestat_get, path_filestat_set_times, path_create_directory, path_unlink_file,
  path_remove_directory, path_rename, path_link, path_symlink, path_readlink,
};
