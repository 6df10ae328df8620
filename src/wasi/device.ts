// WasiDevice: the `wasi_snapshot_preview1` import namespace over a Core, plus
// the host-facing API (create/restore/save, memory binding, suspension).
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';
import type { Plain, PlainObject } from '../util/plain.js';
import { clockCalls } from './clock-calls.js';
import { DeviceClocks, hostClock } from './clocks.js';
import {
  RIGHTS_DIRECTORY, RIGHTS_FILE, RIGHTS_STDIN, RIGHTS_STDOUT,
} from './constants.js';
import { Core, type Preopen } from './core.js';
import { WasiErrno } from './errno.js';
import { FdTable } from './fd-table.js';
import { fsCalls } from './fs-calls.js';
import { exportHostTree, loadHostTree, locate } from './host-tree.js';
import { ARGS_ENV_BYTES_MAX, ARGS_ENV_COUNT_MAX, PATH_BYTES_MAX, PREOPENS_MAX } from './limits.js';
import { GuestMemory } from './memory.js';
import { MemFs, nameBytes } from './memfs.js';
import { restoreCore, saveCore } from './persist.js';
import { pollCalls } from './poll-calls.js';
import { procCalls } from './proc-calls.js';
import { Stdin } from './stdin.js';
import type { WasiConfig, WasiHostEnv } from './types.js';

type Call = (core: Core, ...args: any[]) => number;

/** Every preview1 import, by name. */
const CALLS: Record<string, Call> = { ...fsCalls, ...clockCalls, ...pollCalls, ...procCalls };

/** The 46 functions of wasi_snapshot_preview1; the device must provide each so any libc build links. */
export const PREVIEW1_FUNCTIONS = [
  'args_get', 'args_sizes_get', 'environ_get', 'environ_sizes_get', 'clock_res_get', 'clock_time_get',
  'fd_advise', 'fd_allocate', 'fd_close', 'fd_datasync', 'fd_fdstat_get', 'fd_fdstat_set_flags',
  'fd_fdstat_set_rights', 'fd_filestat_get', 'fd_filestat_set_size', 'fd_filestat_set_times', 'fd_pread',
  'fd_prestat_get', 'fd_prestat_dir_name', 'fd_pwrite', 'fd_read', 'fd_readdir', 'fd_renumber', 'fd_seek',
  'fd_sync', 'fd_tell', 'fd_write', 'path_create_directory', 'path_filestat_get', 'path_filestat_set_times',
  'path_link', 'path_open', 'path_readlink', 'path_remove_directory', 'path_rename', 'path_symlink',
  'path_unlink_file', 'poll_oneoff', 'proc_exit', 'proc_raise', 'sched_yield', 'random_get', 'sock_accept',
  'sock_recv', 'sock_send', 'sock_shutdown',
] as const;
assert(PREVIEW1_FUNCTIONS.length === 46 && PREVIEW1_FUNCTIONS.every((n) => n in CALLS), 'every preview1 function is implemented');
assert(Object.keys(CALLS).length === PREVIEW1_FUNCTIONS.length, 'no extra imports');

function configError(what: string): never {
  throw new UnderstudyError('ERR_WASI_CONFIG', `WASI config: ${what}`);
}

function validateArgsEnv(config: WasiConfig): void {
  if (!Array.isArray(config.args) || !Array.isArray(config.env)) configError('args and env must be arrays');
  if (config.args.length + config.env.length > ARGS_ENV_COUNT_MAX) configError(`more than ${ARGS_ENV_COUNT_MAX} args and env entries`);
  let bytes = 0;
  for (const a of config.args) {
    if (typeof a !== 'string' || a.includes('\0')) configError('an arg is not a string without NUL');
    bytes += nameBytes(a) + 1;
  }
  for (const pair of config.env) {
    const [k, v] = pair;
    if (typeof k !== 'string' || typeof v !== 'string' || k.length === 0 || k.includes('=') || k.includes('\0') || v.includes('\0')) {
      configError(`env entry ${JSON.stringify(pair)} is not [key without '=' or NUL, value without NUL]`);
    }
    bytes += nameBytes(k) + nameBytes(v) + 2;
  }
  if (bytes > ARGS_ENV_BYTES_MAX) configError(`args and env exceed ${ARGS_ENV_BYTES_MAX} bytes`);
}

function validatePreopens(config: WasiConfig): void {
  if (config.preopens.length > PREOPENS_MAX) throw new UnderstudyError('ERR_WASI_PREOPEN', `more than ${PREOPENS_MAX} preopens`);
  const seen = new Set<string>();
  for (const p of config.preopens) {
    const g = p.guestPath;
    if (typeof g !== 'string' || g.length === 0 || g.includes('\0') || nameBytes(g) > PATH_BYTES_MAX || seen.has(g)) {
      throw new UnderstudyError('ERR_WASI_PREOPEN', `preopen guest path ${JSON.stringify(g)} is empty, invalid or repeated`);
    }
    seen.add(g);
  }
}

export class WasiDevice {
  private core: Core;
  readonly imports: Record<string, (...args: any[]) => any>;

  private constructor(core: Core) {
    this.core = core;
    const imports: Record<string, (...args: any[]) => any> = {};
    for (const [name, fn] of Object.entries(CALLS)) {
      imports[name] = (...args: unknown[]) => this.invoke(fn, args);
    }
    this.imports = imports;
  }

  /**
   * One import call. i32 arguments come from wasm as signed numbers and are
   * made unsigned here; i64 ones are bigints, interpreted by each call.
   * WasiErrno becomes the errno result; anything else (ProcExit, a failed
   * assert) propagates to the runtime.
   */
  private invoke(fn: Call, args: unknown[]): number {
    assert(this.core.wait === null, 'takeWait() is called after each import call');
    const conv = args.map((a) => (typeof a === 'number' ? a >>> 0 : a));
    try {
      return fn(this.core, ...conv);
    } catch (e) {
      if (e instanceof WasiErrno) return e.errno;
      throw e;
    }
  }

  static create(config: WasiConfig): WasiDevice {
    validateArgsEnv(config);
    validatePreopens(config);
    const clock = config.clock ?? hostClock;
    const fs = new MemFs(() => clock.realtimeNs());
    const preopens: Preopen[] = config.preopens.map((p) => {
      const ino = fs.newRoot();
      if (p.hostPath !== undefined) loadHostTree(fs, ino, p.hostPath);
      return { guestPath: p.guestPath, ino };
    });
    const fds = new FdTable(fs);
    fds.open({ kind: 'stdio', stream: 'stdin', flags: 0, rightsBase: RIGHTS_STDIN, rightsInheriting: 0n }, 0);
    fds.open({ kind: 'stdio', stream: 'stdout', flags: 0, rightsBase: RIGHTS_STDOUT, rightsInheriting: 0n }, 1);
    fds.open({ kind: 'stdio', stream: 'stderr', flags: 0, rightsBase: RIGHTS_STDOUT, rightsInheriting: 0n }, 2);
    preopens.forEach((p, i) => {
      fds.open({
        kind: 'inode', ino: p.ino, offset: 0, flags: 0, preopen: p.guestPath,
        rightsBase: RIGHTS_DIRECTORY, rightsInheriting: RIGHTS_DIRECTORY | RIGHTS_FILE,
      }, 3 + i);
    });
    return new WasiDevice(new Core({
      args: [...config.args],
      env: config.env.map(([k, v]) => [k, v]),
      fs, fds, preopens,
      clocks: new DeviceClocks(clock, { monotonicNs: 0n, cputimeNs: 0n }),
      stdin: new Stdin(config.stdin, 0),
      output: config.output,
      restoreGeneration: 0,
      pendingPoll: null,
    }));
  }

  /** Validates `state` fully (ERR_WASI_STATE, nothing half-applied) and bumps the restore generation. */
  static restore(state: Plain, host: WasiHostEnv): WasiDevice {
    return new WasiDevice(restoreCore(state, host));
  }

  /**
   * In-place restore (rollback): validates `state` fully like restore() (nothing
   * changes on failure), then this device continues from it, keeping its memory
   * binding and imports. Bumps the restore generation. `host.stdin` must
   * continue at the saved stdinBytesConsumed.
   */
  load(state: Plain, host: WasiHostEnv): void {
    const core = restoreCore(state, host);
    core.memory = this.core.memory;
    core.canSuspend = this.core.canSuspend;
    this.core = core;
  }

  /** Plain data, a deep copy. Not while a recorded wait is untaken (the runtime takes it right after the call). */
  save(): PlainObject {
    assert(this.core.wait === null, 'save() between import calls');
    return saveCore(this.core);
  }

  bindMemory(memory: WebAssembly.Memory): void {
    this.core.memory = new GuestMemory(memory);
  }

  get canSuspend(): boolean {
    return this.core.canSuspend;
  }

  set canSuspend(v: boolean) {
    this.core.canSuspend = v;
  }

  /** From a host call: it did not happen and must be retried after `p` (the guest suspends; see Guest.suspendHostCall). */
  recordWait(p: Promise<void>): void {
    this.core.recordWait(p);
  }

  takeWait(): Promise<void> | null {
    const w = this.core.wait;
    this.core.wait = null;
    return w;
  }

  get restoreGeneration(): number {
    return this.core.restoreGeneration;
  }

  get stdinBytesConsumed(): number {
    return this.core.stdin.consumed;
  }

  /** Copies a guest directory tree (files, subdirectories, symlinks) out to the host, creating hostDir. */
  exportTree(guestPath: string, hostDir: string): void {
    const ino = locate(this.core.fs, this.core.preopens, guestPath);
    if (this.core.fs.get(ino).kind !== 'dir') throw new UnderstudyError('ERR_WASI_PATH', `${guestPath} is not a directory`);
    exportHostTree(this.core.fs, ino, hostDir);
  }

  /** A copy of a guest file's contents. */
  readFile(guestPath: string): Uint8Array {
    const ino = locate(this.core.fs, this.core.preopens, guestPath);
    const node = this.core.fs.get(ino);
    if (node.kind !== 'file') throw new UnderstudyError('ERR_WASI_PATH', `${guestPath} is not a regular file`);
    return node.data.slice(0, node.size);
  }
}
