// The few wasi_snapshot_preview1 calls AssemblyScript guests use, declared
// by hand (the @assemblyscript/wasi-shim package is not a dependency).
// Pointers are offsets into the guest's own memory; errno 0 is success.

@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, iovsLen: usize, nwrittenPtr: usize): u16;

@external("wasi_snapshot_preview1", "proc_exit")
declare function proc_exit(code: u32): void;

@external("wasi_snapshot_preview1", "args_sizes_get")
declare function args_sizes_get(argcPtr: usize, argvBufBytesPtr: usize): u16;

@external("wasi_snapshot_preview1", "args_get")
declare function args_get(argvPtr: usize, argvBufPtr: usize): u16;

export const STDOUT: u32 = 1;
export const STDERR: u32 = 2;

// Scratch for one iovec { buf: u32, len: u32 } and the nwritten result.
const IOV = memory.data(8);
const NWRITTEN = memory.data(4);
// An argument list longer than this is refused rather than copied.
const ARGS_BYTES_MAX: u32 = 1 << 20;

// Writes all `len` bytes at `ptr` to `fd`; returns false on an error.
// Each pass writes at least one byte or stops, so it ends after <= len passes.
export function writeBytes(fd: u32, ptr: usize, len: usize): bool {
  while (len > 0) {
    store<u32>(IOV, <u32>ptr, 0);
    store<u32>(IOV, <u32>len, 4);
    store<u32>(NWRITTEN, 0);
    const errno = fd_write(fd, IOV, 1, NWRITTEN);
    const written = <usize>load<u32>(NWRITTEN);
    if (errno != 0 || written == 0 || written > len) return false;
    ptr += written;
    len -= written;
  }
  return true;
}

// Writes `text` as UTF-8.
export function write(fd: u32, text: string): bool {
  const bytes = String.UTF8.encode(text);
  return writeBytes(fd, changetype<usize>(bytes), <usize>bytes.byteLength);
}

// Ends the program; proc_exit does not return (trap if a host lets it).
export function exit(code: u32): void {
  proc_exit(code);
  unreachable();
}

// The command's arguments, argv[0] first. Empty if WASI refuses them.
export function args(): string[] {
  const result = new Array<string>();
  const sizes = memory.data(8);
  if (args_sizes_get(sizes, sizes + 4) != 0) return result;
  const argc = load<u32>(sizes);
  const bufBytes = load<u32>(sizes, 4);
  if (bufBytes > ARGS_BYTES_MAX || argc > bufBytes) return result;
  const argv = heap.alloc(<usize>max<u32>(argc, 1) * 4);
  const buf = heap.alloc(<usize>max<u32>(bufBytes, 1));
  if (args_get(argv, buf) == 0) {
    const end = buf + bufBytes;
    for (let i: u32 = 0; i < argc; i++) {
      const start = <usize>load<u32>(argv + <usize>i * 4);
      let stop = start;
      while (stop < end && load<u8>(stop) != 0) stop++;
      result.push(String.UTF8.decodeUnsafe(start, stop - start));
    }
  }
  heap.free(buf);
  heap.free(argv);
  return result;
}
