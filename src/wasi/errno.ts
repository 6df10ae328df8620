// The internal way a syscall fails: throw WasiErrno(errno) anywhere below the
// import wrapper (device.ts), which turns it into the errno return value. It
// never leaves the device.
export class WasiErrno extends Error {
  readonly errno: number;
  constructor(errno: number) {
    super(`wasi errno ${errno}`);
    this.name = 'WasiErrno';
    this.errno = errno;
  }
}

/** Throws WasiErrno(errno) unless `cond`; for guest-caused failures (never for invariants: use assert). */
export function check(cond: unknown, errno: number): asserts cond {
  if (!cond) throw new WasiErrno(errno);
}
