// The guest's file descriptor table. A descriptor is either one of the three
// stdio character devices or an open inode of the memfs (with its offset,
// fdflags and rights). New descriptors take the lowest free number, as POSIX
// does, so the allocation state is the table itself: nothing else to save.
import { assert } from '../util/assert.js';
import { ERRNO_BADF, ERRNO_MFILE, ERRNO_NOTCAPABLE } from './constants.js';
import { WasiErrno, check } from './errno.js';
import { FDS_MAX } from './limits.js';
import type { MemFs } from './memfs.js';

export type StdioStream = 'stdin' | 'stdout' | 'stderr';

export interface StdioFd {
  kind: 'stdio';
  stream: StdioStream;
  flags: number;
  rightsBase: bigint;
  rightsInheriting: bigint;
}

export interface InodeFd {
  kind: 'inode';
  ino: number;
  offset: number;
  flags: number;
  rightsBase: bigint;
  rightsInheriting: bigint;
  /** Guest path of a preopened directory (what fd_prestat_dir_name reports); null otherwise. */
  preopen: string | null;
}

export type FdEntry = StdioFd | InodeFd;

export function hasRights(entry: FdEntry, rights: bigint): boolean {
  return (entry.rightsBase & rights) === rights;
}

export class FdTable {
  readonly entries = new Map<number, FdEntry>();
  private readonly fs: MemFs;

  constructor(fs: MemFs) {
    this.fs = fs;
  }

  /** The entry behind `fd`, which must hold `rights` (EBADF / ENOTCAPABLE). */
  get(fd: number, rights = 0n): FdEntry {
    const e = this.entries.get(fd);
    check(e !== undefined, ERRNO_BADF);
    check(hasRights(e, rights), ERRNO_NOTCAPABLE);
    return e;
  }

  /** Lowest free descriptor number. */
  private free(): number {
    for (let fd = 0; fd < FDS_MAX; fd++) if (!this.entries.has(fd)) return fd;
    throw new WasiErrno(ERRNO_MFILE);
  }

  /** Installs `entry` at `fd` (or the lowest free number), taking a reference on its inode. */
  open(entry: FdEntry, fd: number = this.free()): number {
    assert(!this.entries.has(fd), `fd ${fd} is free`);
    check(fd < FDS_MAX && this.entries.size < FDS_MAX, ERRNO_MFILE);
    if (entry.kind === 'inode') this.fs.retain(entry.ino);
    this.entries.set(fd, entry);
    return fd;
  }

  close(fd: number): void {
    const e = this.get(fd);
    this.entries.delete(fd);
    if (e.kind === 'inode') this.fs.release(e.ino);
  }

  /** Moves `from` onto `to`, closing what `to` was. Both must be open. */
  renumber(from: number, to: number): void {
    const e = this.get(from);
    this.get(to);
    if (from === to) return;
    this.close(to);
    this.entries.delete(from);
    this.entries.set(to, e);
  }
}
