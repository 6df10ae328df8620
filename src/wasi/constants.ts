// WASI preview1 ABI constants: errno values, file types, flags, rights and the
// byte layouts of the structs the device reads and writes in guest memory.
// Values are those of `wasi_snapshot_preview1` (WebAssembly/WASI
// legacy/preview1/witx/typenames.witx, identical to wasi-libc's wasi/api.h).
// Layouts are asserted at the bottom of this file: prose drifts, code does not.
import { assert } from '../util/assert.js';

// ---------------------------------------------------------------- errno (u16)
export const ERRNO_SUCCESS = 0;
export const ERRNO_2BIG = 1;
export const ERRNO_ACCES = 2;
export const ERRNO_AGAIN = 6;
export const ERRNO_BADF = 8;
export const ERRNO_BUSY = 10;
export const ERRNO_EXIST = 20;
export const ERRNO_FAULT = 21;
export const ERRNO_FBIG = 22;
export const ERRNO_ILSEQ = 25;
export const ERRNO_INVAL = 28;
export const ERRNO_IO = 29;
export const ERRNO_ISDIR = 31;
export const ERRNO_LOOP = 32;
export const ERRNO_MFILE = 33;
export const ERRNO_MLINK = 34;
export const ERRNO_NAMETOOLONG = 37;
export const ERRNO_NOENT = 44;
export const ERRNO_NOSPC = 51;
export const ERRNO_NOSYS = 52;
export const ERRNO_NOTDIR = 54;
export const ERRNO_NOTEMPTY = 55;
export const ERRNO_NOTSUP = 58;
export const ERRNO_OVERFLOW = 61;
export const ERRNO_PERM = 63;
export const ERRNO_SPIPE = 70;
export const ERRNO_XDEV = 75;
export const ERRNO_NOTCAPABLE = 76;

// ------------------------------------------------------------ filetype (u8)
export const FILETYPE_UNKNOWN = 0;
export const FILETYPE_CHARACTER_DEVICE = 2;
export const FILETYPE_DIRECTORY = 3;
export const FILETYPE_REGULAR_FILE = 4;
export const FILETYPE_SYMBOLIC_LINK = 7;

// ------------------------------------------------------------- clockid (u32)
export const CLOCKID_REALTIME = 0;
export const CLOCKID_MONOTONIC = 1;
export const CLOCKID_PROCESS_CPUTIME = 2;
export const CLOCKID_THREAD_CPUTIME = 3;

// -------------------------------------------------------------- whence (u8)
export const WHENCE_SET = 0;
export const WHENCE_CUR = 1;
export const WHENCE_END = 2;

// ------------------------------------------------------------ fdflags (u16)
export const FDFLAGS_APPEND = 1 << 0;
export const FDFLAGS_DSYNC = 1 << 1;
export const FDFLAGS_NONBLOCK = 1 << 2;
export const FDFLAGS_RSYNC = 1 << 3;
export const FDFLAGS_SYNC = 1 << 4;
export const FDFLAGS_ALL = FDFLAGS_APPEND | FDFLAGS_DSYNC | FDFLAGS_NONBLOCK | FDFLAGS_RSYNC | FDFLAGS_SYNC;

// ------------------------------------------------------------- oflags (u16)
export const OFLAGS_CREAT = 1 << 0;
export const OFLAGS_DIRECTORY = 1 << 1;
export const OFLAGS_EXCL = 1 << 2;
export const OFLAGS_TRUNC = 1 << 3;
export const OFLAGS_ALL = OFLAGS_CREAT | OFLAGS_DIRECTORY | OFLAGS_EXCL | OFLAGS_TRUNC;

// --------------------------------------------------------- lookupflags (u32)
export const LOOKUPFLAGS_SYMLINK_FOLLOW = 1 << 0;

// ----------------------------------------------------------- fstflags (u16)
export const FSTFLAGS_ATIM = 1 << 0;
export const FSTFLAGS_ATIM_NOW = 1 << 1;
export const FSTFLAGS_MTIM = 1 << 2;
export const FSTFLAGS_MTIM_NOW = 1 << 3;
export const FSTFLAGS_ALL = FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW | FSTFLAGS_MTIM | FSTFLAGS_MTIM_NOW;

// ------------------------------------------------------- poll / events (u8)
export const EVENTTYPE_CLOCK = 0;
export const EVENTTYPE_FD_READ = 1;
export const EVENTTYPE_FD_WRITE = 2;
export const EVENTRWFLAGS_HANGUP = 1 << 0;
export const SUBCLOCKFLAGS_ABSTIME = 1 << 0;

export const PREOPENTYPE_DIR = 0;

// ----------------------------------------------------------- advice (u8)
export const ADVICE_MAX = 5; // normal, sequential, random, willneed, dontneed, noreuse

// ------------------------------------------------------------- rights (u64)
export const RIGHTS_FD_DATASYNC = 1n << 0n;
export const RIGHTS_FD_READ = 1n << 1n;
export const RIGHTS_FD_SEEK = 1n << 2n;
export const RIGHTS_FD_FDSTAT_SET_FLAGS = 1n << 3n;
export const RIGHTS_FD_SYNC = 1n << 4n;
export const RIGHTS_FD_TELL = 1n << 5n;
export const RIGHTS_FD_WRITE = 1n << 6n;
export const RIGHTS_FD_ADVISE = 1n << 7n;
export const RIGHTS_FD_ALLOCATE = 1n << 8n;
export const RIGHTS_PATH_CREATE_DIRECTORY = 1n << 9n;
export const RIGHTS_PATH_CREATE_FILE = 1n << 10n;
export const RIGHTS_PATH_LINK_SOURCE = 1n << 11n;
export const RIGHTS_PATH_LINK_TARGET = 1n << 12n;
export const RIGHTS_PATH_OPEN = 1n << 13n;
export const RIGHTS_FD_READDIR = 1n << 14n;
export const RIGHTS_PATH_READLINK = 1n << 15n;
export const RIGHTS_PATH_RENAME_SOURCE = 1n << 16n;
export const RIGHTS_PATH_RENAME_TARGET = 1n << 17n;
export const RIGHTS_PATH_FILESTAT_GET = 1n << 18n;
export const RIGHTS_PATH_FILESTAT_SET_SIZE = 1n << 19n;
export const RIGHTS_PATH_FILESTAT_SET_TIMES = 1n << 20n;
export const RIGHTS_FD_FILESTAT_GET = 1n << 21n;
export const RIGHTS_FD_FILESTAT_SET_SIZE = 1n << 22n;
export const RIGHTS_FD_FILESTAT_SET_TIMES = 1n << 23n;
export const RIGHTS_PATH_SYMLINK = 1n << 24n;
export const RIGHTS_PATH_REMOVE_DIRECTORY = 1n << 25n;
export const RIGHTS_PATH_UNLINK_FILE = 1n << 26n;
export const RIGHTS_POLL_FD_READWRITE = 1n << 27n;
export const RIGHTS_SOCK_SHUTDOWN = 1n << 28n;
export const RIGHTS_SOCK_ACCEPT = 1n << 29n;
/** Every right preview1 defines (bits 0..29). */
export const RIGHTS_ALL = (1n << 30n) - 1n;

/** Rights that make sense on a regular file descriptor. */
export const RIGHTS_FILE =
  RIGHTS_FD_DATASYNC | RIGHTS_FD_READ | RIGHTS_FD_SEEK | RIGHTS_FD_FDSTAT_SET_FLAGS | RIGHTS_FD_SYNC |
  RIGHTS_FD_TELL | RIGHTS_FD_WRITE | RIGHTS_FD_ADVISE | RIGHTS_FD_ALLOCATE | RIGHTS_FD_FILESTAT_GET |
  RIGHTS_FD_FILESTAT_SET_SIZE | RIGHTS_FD_FILESTAT_SET_TIMES | RIGHTS_POLL_FD_READWRITE;

/** Rights that make sense on a directory descriptor (its own and those of paths under it). */
export const RIGHTS_DIRECTORY =
  RIGHTS_FD_DATASYNC | RIGHTS_FD_FDSTAT_SET_FLAGS | RIGHTS_FD_SYNC | RIGHTS_PATH_CREATE_DIRECTORY |
  RIGHTS_PATH_CREATE_FILE | RIGHTS_PATH_LINK_SOURCE | RIGHTS_PATH_LINK_TARGET | RIGHTS_PATH_OPEN |
  RIGHTS_FD_READDIR | RIGHTS_PATH_READLINK | RIGHTS_PATH_RENAME_SOURCE | RIGHTS_PATH_RENAME_TARGET |
  RIGHTS_PATH_FILESTAT_GET | RIGHTS_PATH_FILESTAT_SET_SIZE | RIGHTS_PATH_FILESTAT_SET_TIMES |
  RIGHTS_FD_FILESTAT_GET | RIGHTS_FD_FILESTAT_SET_TIMES | RIGHTS_PATH_SYMLINK |
  RIGHTS_PATH_REMOVE_DIRECTORY | RIGHTS_PATH_UNLINK_FILE | RIGHTS_POLL_FD_READWRITE;

/** Rights of the character devices behind fd 0, 1 and 2. */
export const RIGHTS_STDIN = RIGHTS_FD_READ | RIGHTS_FD_FDSTAT_SET_FLAGS | RIGHTS_FD_FILESTAT_GET | RIGHTS_POLL_FD_READWRITE;
export const RIGHTS_STDOUT = RIGHTS_FD_WRITE | RIGHTS_FD_FDSTAT_SET_FLAGS | RIGHTS_FD_FILESTAT_GET | RIGHTS_POLL_FD_READWRITE;

// ------------------------------------------------------------- struct layouts
// Offsets and sizes in guest memory (wasm32: pointers and `size` are u32).
export const IOVEC_SIZE = 8; // { buf: u32 @0, buf_len: u32 @4 }

export const FILESTAT_SIZE = 64;
export const FILESTAT = { dev: 0, ino: 8, filetype: 16, nlink: 24, size: 32, atim: 40, mtim: 48, ctim: 56 } as const;

export const FDSTAT_SIZE = 24;
export const FDSTAT = { filetype: 0, flags: 2, rightsBase: 8, rightsInheriting: 16 } as const;

export const DIRENT_SIZE = 24; // followed by d_namlen name bytes (no NUL)
export const DIRENT = { next: 0, ino: 8, namlen: 16, type: 20 } as const;

export const PRESTAT_SIZE = 8;
export const PRESTAT = { tag: 0, nameLen: 4 } as const;

export const SUBSCRIPTION_SIZE = 48;
/** `u` is a tagged union: tag u8 at 8, payload (align 8) at 16. */
export const SUBSCRIPTION = {
  userdata: 0,
  tag: 8,
  clockId: 16,
  clockTimeout: 24,
  clockPrecision: 32,
  clockFlags: 40,
  fd: 16,
} as const;

export const EVENT_SIZE = 32;
export const EVENT = { userdata: 0, error: 8, type: 10, nbytes: 16, flags: 24 } as const;

// Layout relations: each last field plus its width ends inside the struct,
// and the fixed sizes are those of the ABI.
assert(FILESTAT.ctim + 8 === FILESTAT_SIZE, 'filestat is 64 bytes ending in ctim');
assert(FDSTAT.rightsInheriting + 8 === FDSTAT_SIZE, 'fdstat is 24 bytes ending in rights_inheriting');
assert(DIRENT.type + 1 <= DIRENT_SIZE && DIRENT_SIZE === 24, 'dirent header is 24 bytes');
assert(PRESTAT.nameLen + 4 === PRESTAT_SIZE, 'prestat is 8 bytes');
assert(SUBSCRIPTION.clockFlags + 2 <= SUBSCRIPTION_SIZE && SUBSCRIPTION_SIZE === 48, 'subscription is 48 bytes');
assert(SUBSCRIPTION.clockId % 8 === 0, 'subscription payload is 8-aligned');
assert(EVENT.flags + 2 <= EVENT_SIZE && EVENT_SIZE === 32, 'event is 32 bytes');
assert(RIGHTS_SOCK_ACCEPT === 1n << 29n && (RIGHTS_ALL & ~((1n << 30n) - 1n)) === 0n, 'rights are bits 0..29');
assert((RIGHTS_FILE & ~RIGHTS_ALL) === 0n && (RIGHTS_DIRECTORY & ~RIGHTS_ALL) === 0n, 'rights masks within RIGHTS_ALL');
