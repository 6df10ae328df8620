// Turns what the kernel said (a failed step, an errno, feature bits) into a
// sentence a user can act on. The native code reports facts; this file owns
// the words, so they can be tested without the kernel misbehaving.
import { readFileSync } from 'node:fs';
import { release } from 'node:os';

/** The facts a native tracker error carries (see throw_step in native/src/uffd.c). */
export interface KernelFailure {
  syscall?: string;
  errno?: number;
  features?: number;
  message?: string;
}

// Feature bits of UFFDIO_API (native/src/uffd_uapi.h), with the kernel that added each.
const FEATURE_PAGEFAULT_FLAG_WP = 1 << 0; // write-protect mode for anonymous memory: 5.7
const FEATURE_WP_UNPOPULATED = 1 << 13; // 6.4
const FEATURE_WP_ASYNC = 1 << 15; // 6.7

const ENOSYS = 38;
const EPERM = 1;
const ENOTTY = 25;
const EINVAL = 22;
const EBUSY = 16;
const EACCES = 13;
const ENOENT = 2;

/** The facts of an error thrown by the native tracker (its own, or its cause's). */
export function kernelFailureOf(e: unknown): KernelFailure {
  const seen = new Set<unknown>();
  let cur: unknown = e;
  // Bounded: a cause chain is short, and a cycle is cut by `seen`.
  for (let depth = 0; depth < 8 && cur && typeof cur === 'object' && !seen.has(cur); depth++) {
    seen.add(cur);
    const o = cur as { syscall?: unknown; errno?: unknown; features?: unknown; message?: unknown; cause?: unknown };
    if (typeof o.syscall === 'string') {
      return {
        syscall: o.syscall,
        errno: typeof o.errno === 'number' ? o.errno : undefined,
        features: typeof o.features === 'number' ? o.features : undefined,
        message: typeof o.message === 'string' ? o.message : undefined,
      };
    }
    cur = o.cause;
  }
  return { message: e instanceof Error ? e.message : String(e) };
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export interface ExplainContext {
  kernelRelease?: string;
  /** Contents of /proc/sys/vm/unprivileged_userfaultfd, if readable. */
  unprivilegedUserfaultfd?: string;
}

export function defaultExplainContext(): ExplainContext {
  return { kernelRelease: release(), unprivilegedUserfaultfd: readSysctl('/proc/sys/vm/unprivileged_userfaultfd') };
}

/** A sentence saying why a kernel tracker cannot run here and what would fix it. */
export function explainKernelFailure(
  kind: 'wp-async' | 'wp-sync',
  failure: KernelFailure,
  ctx: ExplainContext = defaultExplainContext(),
): string {
  const kernel = `kernel ${ctx.kernelRelease ?? 'unknown'}`;
  const detail = failure.message ? ` (${failure.message})` : '';
  switch (failure.syscall) {
    case 'userfaultfd':
      if (failure.errno === ENOSYS)
        return `${kernel} has no userfaultfd system call (built without CONFIG_USERFAULTFD, or a seccomp filter answers ENOSYS); use a kernel built with it${detail}`;
      if (failure.errno === EPERM || failure.errno === EACCES) {
        const sysctl = ctx.unprivilegedUserfaultfd ?? 'unknown';
        return (
          `userfaultfd is not permitted: sysctl vm.unprivileged_userfaultfd=${sysctl} and the process lacks CAP_SYS_PTRACE, ` +
          `or a seccomp filter (such as a container runtime's default profile) blocks the userfaultfd system call. ` +
          `Fix: \`sysctl -w vm.unprivileged_userfaultfd=1\`, grant CAP_SYS_PTRACE, or allow userfaultfd in the seccomp profile${detail}`
        );
      }
      return `userfaultfd could not be opened${detail}`;
    case 'UFFDIO_API': {
      const have = failure.features;
      if (have === undefined) return `the userfaultfd API handshake failed${detail}`;
      if (!(have & FEATURE_PAGEFAULT_FLAG_WP))
        return `${kernel} lacks userfaultfd write-protection of anonymous memory (needs Linux 5.7+ on x86-64 or 5.19+ on arm64)${detail}`;
      if (kind === 'wp-async' && !(have & FEATURE_WP_ASYNC))
        return `${kernel} lacks UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN (needs Linux 6.7+); upgrade the kernel, or the slower hash tracker is used${detail}`;
      if (!(have & FEATURE_WP_UNPOPULATED))
        return `${kernel} lacks UFFD_FEATURE_WP_UNPOPULATED (needs Linux 6.4+); upgrade the kernel${detail}`;
      return `${kernel} refused the userfaultfd features understudy asked for${detail}`;
    }
    case 'PAGEMAP_SCAN':
      if (failure.errno === ENOTTY || failure.errno === EINVAL)
        return `${kernel} lacks the PAGEMAP_SCAN ioctl (needs Linux 6.7+); upgrade the kernel, or the slower hash tracker is used${detail}`;
      return `PAGEMAP_SCAN failed on guest memory${detail}`;
    case 'open /proc/self/pagemap':
      if (failure.errno === ENOENT) return `/proc is not mounted, so /proc/self/pagemap cannot be read; mount procfs${detail}`;
      return `/proc/self/pagemap cannot be opened${detail}`;
    case 'UFFDIO_REGISTER':
      if (failure.errno === EBUSY) return `the memory is already tracked by another tracker; dispose that one first${detail}`;
      return `the kernel refused to register the guest memory with userfaultfd (hugetlb, shared or locked memory cannot be write-protected this way)${detail}`;
    default:
      return `the ${kind} tracker failed its self-test${detail}`;
  }
}
