// Save and restore of the whole WASI device as plain data.
//
// save() is a deep copy: nothing in the returned object aliases device state.
// restore() treats its input as untrusted (it came from a checkpoint file):
// every field is type-checked against the shape of STATE_VERSION, every size
// against the bounds in limits.ts, and the file system against its structural
// invariants (one tree per preopen, no directory cycles or second parents,
// every inode reachable or held open). Any problem is an
// UnderstudyError('ERR_WASI_STATE') naming the field, thrown before anything
// is built: a refused state leaves nothing half-applied.
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';
import type { Plain, PlainObject } from '../util/plain.js';
import { DeviceClocks, hostClock } from './clocks.js';
import { FDFLAGS_ALL, RIGHTS_ALL, SUBSCRIPTION_SIZE } from './constants.js';
import { Core, type PendingPoll, type Preopen } from './core.js';
import { FdTable, type FdEntry, type StdioStream } from './fd-table.js';
import {
  ARGS_ENV_BYTES_MAX, ARGS_ENV_COUNT_MAX, FDS_MAX, FILE_BYTES_MAX, FS_BYTES_MAX, INODES_MAX, NAME_BYTES_MAX,
  OFFSET_MAX, PATH_BYTES_MAX, POLL_SUBSCRIPTIONS_MAX, PREOPENS_MAX,
} from './limits.js';
import { MemFs, nameBytes, type Inode } from './memfs.js';
import { Stdin } from './stdin.js';
import type { WasiHostEnv } from './types.js';

/** Version of the state layout written by save(). */
export const STATE_VERSION = 1;
/** The compatibility rule: which saved versions this code restores. Only its own, until a migration exists. */
export function isRestorableVersion(v: number): boolean {
  return v === STATE_VERSION;
}

const U64_MAX = (1n << 64n) - 1n;
const U32_MAX = 2 ** 32 - 1;

// =================================================================== save
export function saveMemFs(fs: MemFs): PlainObject {
  const inodes: Plain[] = [];
  for (const node of fs.inodes.values()) {
    const base = { ino: node.ino, kind: node.kind, atimNs: node.atimNs, mtimNs: node.mtimNs, ctimNs: node.ctimNs };
    switch (node.kind) {
      case 'file':
        inodes.push({ ...base, data: node.data.slice(0, node.size) });
        break;
      case 'dir':
        inodes.push({ ...base, entries: [...node.entries].map(([name, ino]) => [name, ino]) });
        break;
      case 'symlink':
        inodes.push({ ...base, target: node.target });
        break;
    }
  }
  return { inoNext: fs.inoNext, inodes };
}

function saveFd(fd: number, e: FdEntry): PlainObject {
  if (e.kind === 'stdio') {
    return { fd, kind: 'stdio', stream: e.stream, flags: e.flags, rightsBase: e.rightsBase, rightsInheriting: e.rightsInheriting };
  }
  return {
    fd, kind: 'inode', ino: e.ino, offset: e.offset, flags: e.flags,
    rightsBase: e.rightsBase, rightsInheriting: e.rightsInheriting, preopen: e.preopen,
  };
}

export function saveCore(core: Core): PlainObject {
  const p = core.pendingPoll;
  return {
    version: STATE_VERSION,
    args: [...core.args],
    env: core.env.map(([k, v]) => [k, v]),
    preopens: core.preopens.map((po) => ({ guestPath: po.guestPath, ino: po.ino })),
    fds: [...core.fds.entries].sort((a, b) => a[0] - b[0]).map(([fd, e]) => saveFd(fd, e)),
    fs: saveMemFs(core.fs),
    clocks: { ...core.clocks.save() },
    restoreGeneration: core.restoreGeneration,
    stdinBytesConsumed: core.stdin.consumed,
    pendingPoll: p === null ? null : {
      inPtr: p.inPtr, outPtr: p.outPtr, nsubs: p.nsubs, neventsPtr: p.neventsPtr,
      subs: p.subs.slice(), deadlinesNs: [...p.deadlinesNs],
    },
  };
}

// ============================================================ validation
class StateError extends UnderstudyError {
  constructor(where: string, what: string) {
    super('ERR_WASI_STATE', `invalid WASI device state at ${where}: ${what}`);
  }
}

function fail(where: string, what: string): never {
  throw new StateError(where, what);
}

function obj(v: Plain | undefined, where: string, keys: readonly string[]): PlainObject {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) fail(where, 'expected an object');
  const o = v as PlainObject;
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(where, `unknown field '${k}'`);
  for (const k of keys) if (!Object.hasOwn(o, k)) fail(where, `missing field '${k}'`);
  return o;
}

/** The `kind` field of something that must be an object (checked before choosing its shape). */
function kindOf(v: Plain | undefined, where: string): Plain | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) fail(where, 'expected an object');
  return (v as PlainObject).kind;
}

function arr(v: Plain | undefined, where: string, lenMax: number): Plain[] {
  if (!Array.isArray(v)) fail(where, 'expected an array');
  if (v.length > lenMax) fail(where, `${v.length} items, more than ${lenMax}`);
  return v;
}

function int(v: Plain | undefined, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(where, 'expected an integer');
  if (v < min || v > max) fail(where, `${v} outside [${min}, ${max}]`);
  return v;
}

function u64(v: Plain | undefined, where: string, max = U64_MAX): bigint {
  if (typeof v !== 'bigint') fail(where, 'expected a bigint');
  if (v < 0n || v > max) fail(where, `${v} outside [0, ${max}]`);
  return v;
}

function str(v: Plain | undefined, where: string, bytesMax: number): string {
  if (typeof v !== 'string') fail(where, 'expected a string');
  if (v.includes('\0')) fail(where, 'contains NUL');
  if (nameBytes(v) > bytesMax) fail(where, `longer than ${bytesMax} bytes`);
  return v;
}

function bytes(v: Plain | undefined, where: string, lenMax: number): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(where, 'expected bytes');
  if (v.length > lenMax) fail(where, `${v.length} bytes, more than ${lenMax}`);
  return v;
}

function entryName(v: Plain | undefined, where: string): string {
  const name = str(v, where, NAME_BYTES_MAX);
  if (name.length === 0 || name === '.' || name === '..' || name.includes('/')) fail(where, `'${name}' is not a file name`);
  return name;
}

// ---------------------------------------------------------------- memfs
const INODE_KEYS = ['ino', 'kind', 'atimNs', 'mtimNs', 'ctimNs'] as const;

/** Rebuilds a memfs; `roots` are the preopen directories, `open` the inodes held by descriptors. */
export function restoreMemFs(v: Plain | undefined, roots: Set<number>, open: Set<number>, nowNs: () => bigint): MemFs {
  const o = obj(v, 'fs', ['inoNext', 'inodes']);
  const inoNext = int(o.inoNext, 'fs.inoNext', 1, Number.MAX_SAFE_INTEGER);
  const list = arr(o.inodes, 'fs.inodes', INODES_MAX);
  const fs = new MemFs(nowNs);
  fs.inoNext = inoNext;
  let bytesUsed = 0;
  const entriesOf = new Map<number, [string, number][]>();
  list.forEach((raw, i) => {
    const where = `fs.inodes[${i}]`;
    const kind = kindOf(raw, where);
    const keys = kind === 'file' ? [...INODE_KEYS, 'data'] : kind === 'dir' ? [...INODE_KEYS, 'entries'] : kind === 'symlink' ? [...INODE_KEYS, 'target'] : null;
    if (keys === null) fail(`${where}.kind`, `unknown inode kind ${String(kind)}`);
    const n = obj(raw, where, keys);
    const ino = int(n.ino, `${where}.ino`, 1, inoNext - 1);
    if (fs.inodes.has(ino)) fail(`${where}.ino`, `inode ${ino} appears twice`);
    const base = {
      ino, links: 0, opens: 0,
      atimNs: u64(n.atimNs, `${where}.atimNs`), mtimNs: u64(n.mtimNs, `${where}.mtimNs`), ctimNs: u64(n.ctimNs, `${where}.ctimNs`),
    };
    let node: Inode;
    if (kind === 'file') {
      const data = bytes(n.data, `${where}.data`, FILE_BYTES_MAX).slice();
      bytesUsed += data.length;
      if (bytesUsed > FS_BYTES_MAX) fail(`${where}.data`, `file system holds more than ${FS_BYTES_MAX} bytes`);
      node = { ...base, kind: 'file', data, size: data.length };
    } else if (kind === 'dir') {
      const entries: [string, number][] = arr(n.entries, `${where}.entries`, INODES_MAX).map((e, j) => {
        const w = `${where}.entries[${j}]`;
        const pair = arr(e, w, 2);
        if (pair.length !== 2) fail(w, 'expected [name, ino]');
        return [entryName(pair[0], `${w}[0]`), int(pair[1], `${w}[1]`, 1, inoNext - 1)];
      });
      entriesOf.set(ino, entries);
      node = { ...base, kind: 'dir', entries: new Map(), parent: 0, root: roots.has(ino) };
    } else {
      const target = str(n.target, `${where}.target`, PATH_BYTES_MAX);
      if (target.length === 0) fail(`${where}.target`, 'empty symlink target');
      node = { ...base, kind: 'symlink', target };
    }
    fs.inodes.set(ino, node);
  });
  fs.bytesUsed = bytesUsed;

  // Link entries; every directory gets at most one parent and roots none.
  for (const [dirIno, entries] of entriesOf) {
    const dir = fs.inodes.get(dirIno);
    assert(dir !== undefined && dir.kind === 'dir', 'entriesOf holds directories');
    for (const [name, ino] of entries) {
      const where = `fs: directory ${dirIno} entry '${name}'`;
      if (dir.entries.has(name)) fail(where, 'name appears twice');
      const child = fs.inodes.get(ino);
      if (child === undefined) fail(where, `refers to missing inode ${ino}`);
      if (child.kind === 'dir') {
        if (roots.has(ino)) fail(where, `links preopen root ${ino}`);
        if (child.links > 0) fail(where, `directory ${ino} has a second parent`);
        child.parent = dirIno;
      }
      child.links++;
      dir.entries.set(name, ino);
    }
  }
  for (const r of roots) {
    const node = fs.inodes.get(r);
    if (node === undefined || node.kind !== 'dir') fail('preopens', `root ${r} is not a directory inode`);
  }

  // Reachability from the roots; the rest must be held open, unlinked, and (directories) empty.
  const reached = new Set<number>();
  const queue = [...roots];
  while (queue.length > 0) {
    const ino = queue.pop()!;
    if (reached.has(ino)) continue; // hard-linked files
    reached.add(ino);
    const node = fs.get(ino);
    if (node.kind === 'dir') for (const child of node.entries.values()) queue.push(child);
  }
  for (const node of fs.inodes.values()) {
    if (reached.has(node.ino)) continue;
    const where = `fs: inode ${node.ino}`;
    if (!open.has(node.ino)) fail(where, 'neither reachable from a preopen nor open');
    if (node.links > 0) fail(where, 'linked from a directory outside every preopen tree (a cycle)');
    if (node.kind === 'dir' && node.entries.size > 0) fail(where, 'a removed directory that is not empty');
  }
  return fs;
}

// ------------------------------------------------------------- the device
const STATE_KEYS = [
  'version', 'args', 'env', 'preopens', 'fds', 'fs', 'clocks', 'restoreGeneration', 'stdinBytesConsumed', 'pendingPoll',
] as const;

function restoreArgsEnv(o: PlainObject): { args: string[]; env: [string, string][] } {
  let total = 0;
  const args = arr(o.args, 'args', ARGS_ENV_COUNT_MAX).map((a, i) => {
    const s = str(a, `args[${i}]`, ARGS_ENV_BYTES_MAX);
    total += nameBytes(s) + 1;
    return s;
  });
  const env = arr(o.env, 'env', ARGS_ENV_COUNT_MAX).map((e, i): [string, string] => {
    const pair = arr(e, `env[${i}]`, 2);
    if (pair.length !== 2) fail(`env[${i}]`, 'expected [key, value]');
    const k = str(pair[0], `env[${i}][0]`, ARGS_ENV_BYTES_MAX);
    if (k.length === 0 || k.includes('=')) fail(`env[${i}][0]`, 'a key is non-empty and has no "="');
    const val = str(pair[1], `env[${i}][1]`, ARGS_ENV_BYTES_MAX);
    total += nameBytes(k) + nameBytes(val) + 2;
    return [k, val];
  });
  if (total > ARGS_ENV_BYTES_MAX) fail('args/env', `more than ${ARGS_ENV_BYTES_MAX} bytes`);
  return { args, env };
}

interface FdPlan {
  fd: number;
  entry: FdEntry;
}

function restoreFds(v: Plain | undefined, preopens: Preopen[]): FdPlan[] {
  const seen = new Set<number>();
  return arr(v, 'fds', FDS_MAX).map((raw, i): FdPlan => {
    const where = `fds[${i}]`;
    const kind = kindOf(raw, where);
    const common = ['fd', 'kind', 'flags', 'rightsBase', 'rightsInheriting'];
    const o = kind === 'stdio' ? obj(raw, where, [...common, 'stream'])
      : kind === 'inode' ? obj(raw, where, [...common, 'ino', 'offset', 'preopen'])
      : fail(`${where}.kind`, `unknown descriptor kind ${String(kind)}`);
    const fd = int(o.fd, `${where}.fd`, 0, FDS_MAX - 1);
    if (seen.has(fd)) fail(`${where}.fd`, `fd ${fd} appears twice`);
    seen.add(fd);
    const flags = int(o.flags, `${where}.flags`, 0, FDFLAGS_ALL);
    if ((flags & ~FDFLAGS_ALL) !== 0) fail(`${where}.flags`, 'unknown fdflags');
    const rightsBase = u64(o.rightsBase, `${where}.rightsBase`, RIGHTS_ALL);
    const rightsInheriting = u64(o.rightsInheriting, `${where}.rightsInheriting`, RIGHTS_ALL);
    if (kind === 'stdio') {
      const stream = o.stream;
      if (stream !== 'stdin' && stream !== 'stdout' && stream !== 'stderr') fail(`${where}.stream`, 'not stdin, stdout or stderr');
      return { fd, entry: { kind: 'stdio', stream: stream as StdioStream, flags, rightsBase, rightsInheriting } };
    }
    const ino = int(o.ino, `${where}.ino`, 1, Number.MAX_SAFE_INTEGER);
    const offset = int(o.offset, `${where}.offset`, 0, OFFSET_MAX);
    let preopen: string | null = null;
    if (o.preopen !== null) {
      preopen = str(o.preopen, `${where}.preopen`, PATH_BYTES_MAX);
      const po = preopens.find((p) => p.guestPath === preopen);
      if (po === undefined || po.ino !== ino) fail(`${where}.preopen`, `'${preopen}' is not the preopen of inode ${ino}`);
    }
    return { fd, entry: { kind: 'inode', ino, offset, flags, rightsBase, rightsInheriting, preopen } };
  });
}

function restorePreopens(v: Plain | undefined): Preopen[] {
  const paths = new Set<string>();
  const inos = new Set<number>();
  return arr(v, 'preopens', PREOPENS_MAX).map((raw, i) => {
    const where = `preopens[${i}]`;
    const o = obj(raw, where, ['guestPath', 'ino']);
    const guestPath = str(o.guestPath, `${where}.guestPath`, PATH_BYTES_MAX);
    if (guestPath.length === 0 || paths.has(guestPath)) fail(`${where}.guestPath`, 'empty or repeated');
    const ino = int(o.ino, `${where}.ino`, 1, Number.MAX_SAFE_INTEGER);
    if (inos.has(ino)) fail(`${where}.ino`, 'two preopens share a root');
    paths.add(guestPath);
    inos.add(ino);
    return { guestPath, ino };
  });
}

function restorePendingPoll(v: Plain | undefined): PendingPoll | null {
  if (v === null) return null;
  const o = obj(v, 'pendingPoll', ['inPtr', 'outPtr', 'nsubs', 'neventsPtr', 'subs', 'deadlinesNs']);
  const nsubs = int(o.nsubs, 'pendingPoll.nsubs', 1, POLL_SUBSCRIPTIONS_MAX);
  const subs = bytes(o.subs, 'pendingPoll.subs', nsubs * SUBSCRIPTION_SIZE).slice();
  if (subs.length !== nsubs * SUBSCRIPTION_SIZE) fail('pendingPoll.subs', `expected ${nsubs * SUBSCRIPTION_SIZE} bytes`);
  const deadlinesNs = arr(o.deadlinesNs, 'pendingPoll.deadlinesNs', nsubs).map((d, i) =>
    d === null ? null : u64(d, `pendingPoll.deadlinesNs[${i}]`));
  if (deadlinesNs.length !== nsubs) fail('pendingPoll.deadlinesNs', `expected ${nsubs} items`);
  return {
    inPtr: int(o.inPtr, 'pendingPoll.inPtr', 0, U32_MAX),
    outPtr: int(o.outPtr, 'pendingPoll.outPtr', 0, U32_MAX),
    neventsPtr: int(o.neventsPtr, 'pendingPoll.neventsPtr', 0, U32_MAX),
    nsubs, subs, deadlinesNs,
  };
}

/** Validates a saved device completely, then builds it (restore generation + 1). */
export function restoreCore(state: Plain, host: WasiHostEnv): Core {
  const o = obj(state, 'state', STATE_KEYS);
  const version = int(o.version, 'version', 0, Number.MAX_SAFE_INTEGER);
  if (!isRestorableVersion(version)) fail('version', `version ${version} is not restorable (this build writes ${STATE_VERSION})`);
  const { args, env } = restoreArgsEnv(o);
  const preopens = restorePreopens(o.preopens);
  const fdPlans = restoreFds(o.fds, preopens);
  const c = obj(o.clocks, 'clocks', ['monotonicNs', 'cputimeNs']);
  const clockState = { monotonicNs: u64(c.monotonicNs, 'clocks.monotonicNs'), cputimeNs: u64(c.cputimeNs, 'clocks.cputimeNs') };
  const restoreGeneration = int(o.restoreGeneration, 'restoreGeneration', 0, Number.MAX_SAFE_INTEGER - 1) + 1;
  const stdinBytesConsumed = int(o.stdinBytesConsumed, 'stdinBytesConsumed', 0, Number.MAX_SAFE_INTEGER);
  const pendingPoll = restorePendingPoll(o.pendingPoll);

  const clock = host.clock ?? hostClock;
  const roots = new Set(preopens.map((p) => p.ino));
  const open = new Set<number>();
  for (const p of fdPlans) if (p.entry.kind === 'inode') open.add(p.entry.ino);
  const fs = restoreMemFs(o.fs, roots, open, () => clock.realtimeNs());
  for (const [i, p] of fdPlans.entries()) {
    if (p.entry.kind !== 'inode') continue;
    const node = fs.inodes.get(p.entry.ino);
    if (node === undefined) fail(`fds[${i}].ino`, `refers to missing inode ${p.entry.ino}`);
    if (node.kind === 'symlink') fail(`fds[${i}].ino`, 'a descriptor cannot hold a symlink');
  }

  // Everything is validated: from here on only invariants are asserted.
  const fds = new FdTable(fs);
  for (const p of fdPlans) fds.open(p.entry, p.fd);
  return new Core({
    args, env, fs, fds, preopens,
    clocks: new DeviceClocks(clock, clockState),
    stdin: new Stdin(host.stdin, stdinBytesConsumed),
    output: host.output,
    restoreGeneration,
    pendingPoll,
  });
}
