// Named bounds of the WASI device. Each one limits what a guest can make the
// host allocate or loop over, and what a checkpoint file may claim; restore()
// checks a state against them before building anything.
import { assert } from '../util/assert.js';

/** Bytes in one regular file: the in-memory FS lives in the host heap. */
export const FILE_BYTES_MAX = 256 * 1024 * 1024;
/** Bytes in all regular files together. */
export const FS_BYTES_MAX = 1024 * 1024 * 1024;
/** Inodes (files, directories, symlinks) alive at once, including unlinked-but-open ones. */
export const INODES_MAX = 65_536;
/** Bytes in one path component (POSIX NAME_MAX). */
export const NAME_BYTES_MAX = 255;
/** Bytes in a path argument or symlink target (POSIX PATH_MAX). */
export const PATH_BYTES_MAX = 4096;
/** Symlinks followed while resolving one path (Linux MAXSYMLINKS). */
export const SYMLINK_HOPS_MAX = 40;
/** Open descriptors, including stdio and preopens. */
export const FDS_MAX = 1024;
/** Preopened directories. */
export const PREOPENS_MAX = 64;
/** iovecs in one fd_read/fd_write (POSIX IOV_MAX). */
export const IOVS_MAX = 1024;
/** Subscriptions in one poll_oneoff. */
export const POLL_SUBSCRIPTIONS_MAX = 1024;
/** Bytes of args plus environment (strings and their NULs), like Linux ARG_MAX. */
export const ARGS_ENV_BYTES_MAX = 2 * 1024 * 1024;
/** Entries in args or env. */
export const ARGS_ENV_COUNT_MAX = 65_536;
/** Largest file offset a descriptor may hold (a seek past the file end is allowed, up to here). */
export const OFFSET_MAX = Number.MAX_SAFE_INTEGER;
/** A synchronous poll that also watches stdin sleeps in slices this long between checks. */
export const POLL_SLICE_MS = 5;
/** Longest single synchronous sleep; a longer one is done in several (Atomics.wait takes a double, but keep it sane). */
export const SLEEP_SLICE_MS_MAX = 60_000;
/** Bytes asked of the stdin source per read when the guest's buffers are larger. */
export const STDIN_READ_BYTES_MAX = 64 * 1024;

assert(FILE_BYTES_MAX <= FS_BYTES_MAX, 'one file fits in the FS budget');
assert(NAME_BYTES_MAX < PATH_BYTES_MAX, 'a name fits in a path');
assert(FDS_MAX > 3 + PREOPENS_MAX, 'stdio and all preopens fit in the fd table');
assert(FS_BYTES_MAX < OFFSET_MAX, 'file sizes are exact in a double');
