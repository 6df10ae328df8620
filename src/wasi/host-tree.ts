// Copies between host directories and the memfs: preloading a preopen's
// hostPath at create(), exporting a guest tree, and finding the inode behind
// a guest path the way wasi-libc does (longest matching preopen prefix).
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';
import { UnderstudyError } from '../errors.js';
import type { Preopen } from './core.js';
import { WasiErrno } from './errno.js';
import { FILE_BYTES_MAX, FS_BYTES_MAX, INODES_MAX } from './limits.js';
import type { MemFs } from './memfs.js';

function preopenError(hostPath: string, what: string, cause?: unknown): UnderstudyError {
  return new UnderstudyError('ERR_WASI_PREOPEN', `preopen host directory ${hostPath}: ${what}`, { cause });
}

/**
 * Copies the host directory `hostDir` into memfs directory `rootIno`: files,
 * subdirectories and symlinks (as links, never followed); other kinds are
 * skipped. Limits are checked before each file is read.
 */
export function loadHostTree(fs: MemFs, rootIno: number, hostDir: string): void {
  let st: nodeFs.Stats;
  try {
    st = nodeFs.statSync(hostDir);
  } catch (e) {
    throw preopenError(hostDir, 'cannot be read', e);
  }
  if (!st.isDirectory()) throw preopenError(hostDir, 'is not a directory');
  // Explicit stack, not recursion: deep host trees cannot overflow ours. Each
  // directory is pushed once (symlinks are not followed), so it ends.
  const stack: { host: string; ino: number }[] = [{ host: hostDir, ino: rootIno }];
  try {
    while (stack.length > 0) {
      const { host, ino } = stack.pop()!;
      const names = nodeFs.readdirSync(host).sort();
      for (const name of names) {
        const p = nodePath.join(host, name);
        const ls = nodeFs.lstatSync(p, { bigint: true });
        if (fs.inodes.size >= INODES_MAX) throw preopenError(hostDir, `more than ${INODES_MAX} entries`);
        let child: number;
        if (ls.isDirectory()) {
          child = fs.mkdir(ino, name);
          stack.push({ host: p, ino: child });
        } else if (ls.isFile()) {
          if (ls.size > BigInt(FILE_BYTES_MAX)) throw preopenError(hostDir, `${p} is larger than ${FILE_BYTES_MAX} bytes`);
          if (fs.bytesUsed + Number(ls.size) > FS_BYTES_MAX) throw preopenError(hostDir, `more than ${FS_BYTES_MAX} bytes in all`);
          child = fs.createFile(ino, name);
          fs.write(child, 0, nodeFs.readFileSync(p));
        } else if (ls.isSymbolicLink()) {
          child = fs.symlink(ino, name, nodeFs.readlinkSync(p));
        } else {
          continue; // sockets, fifos, devices: nothing the memfs can hold
        }
        fs.setTimes(child, ls.atimeNs, ls.mtimeNs);
      }
    }
  } catch (e) {
    if (e instanceof UnderstudyError) throw e;
    if (e instanceof WasiErrno) throw preopenError(hostDir, `cannot be represented (wasi errno ${e.errno})`, e);
    throw preopenError(hostDir, 'cannot be read', e);
  }
}

/** Guest path → inode: the longest preopen whose path is a component prefix, then the rest resolved inside it. */
export function locate(fs: MemFs, preopens: Preopen[], guestPath: string): number {
  const split = (p: string) => ({ abs: p.startsWith('/'), comps: p.split('/').filter((c) => c !== '' && c !== '.') });
  const want = split(guestPath);
  let best: { po: Preopen; n: number } | null = null;
  for (const po of preopens) {
    const have = split(po.guestPath);
    if (have.abs !== want.abs || have.comps.length > want.comps.length) continue;
    if (!have.comps.every((c, i) => want.comps[i] === c)) continue;
    if (best === null || have.comps.length > best.n) best = { po, n: have.comps.length };
  }
  if (best === null) throw new UnderstudyError('ERR_WASI_PATH', `${guestPath} is under no preopen`);
  const rest = want.comps.slice(best.n).join('/');
  try {
    return rest === '' ? best.po.ino : fs.lookup(best.po.ino, rest, true);
  } catch (e) {
    if (e instanceof WasiErrno) throw new UnderstudyError('ERR_WASI_PATH', `${guestPath} cannot be resolved (wasi errno ${e.errno})`, { cause: e });
    throw e;
  }
}

/** Writes memfs directory `dirIno` out as host directory `hostDir` (created, with parents). */
export function exportHostTree(fs: MemFs, dirIno: number, hostDir: string): void {
  const stack: { ino: number; host: string }[] = [{ ino: dirIno, host: hostDir }];
  try {
    // The memfs is a tree (restore validates it), so each directory is visited once.
    while (stack.length > 0) {
      const { ino, host } = stack.pop()!;
      nodeFs.mkdirSync(host, { recursive: true });
      const dir = fs.dir(ino);
      for (const [name, child] of dir.entries) {
        const p = nodePath.join(host, name);
        const node = fs.get(child);
        if (node.kind === 'dir') stack.push({ ino: child, host: p });
        else if (node.kind === 'file') nodeFs.writeFileSync(p, node.data.subarray(0, node.size));
        else nodeFs.symlinkSync(node.target, p);
      }
    }
  } catch (e) {
    throw new UnderstudyError('ERR_WASI_HOST_IO', `exporting to ${hostDir} failed: ${(e as Error).message}`, { cause: e });
  }
}
