// A supervised pair on one host (`run --replicas 2`): both nodes share a
// directory that says how to start either of them (pair.json) and who is
// running now (node-<id>.ready: pid, process start time, ports). The node that
// holds the service watches its peer's process; when it is gone (not merely
// silent: a stopped or partitioned peer is alive and rejoins by itself), it
// starts a replacement with the dead node's id and state directory, which
// joins it as the new backup. So protection resumes after either node dies,
// with no operator.
//
// Why the process and not the protocol decides: the protocol cannot tell a
// dead peer from a partitioned one, and a replacement must never run beside
// the node it replaces (two processes with one state directory would reuse
// nonce counters). On one host the process table can tell: a pid is alive, or
// it is not (its /proc start time guards against a reused pid).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UnderstudyError } from '../../errors.js';
import type { NodeRole } from '../messages.js';

/** The holder of the service looks at its peer's process this often. */
export const PEER_WATCH_MS = 100;
/** At least this long between two replacements started by one node (bounds a crash loop). */
export const RESPAWN_GAP_MS = 1000;
/** pair.json, at most (it is read by every replacement). */
const PAIR_CONFIG_BYTES_MAX = 64 * 1024;

/** How to start either node of the pair: written by `run --replicas 2`, read by each node. */
export interface PairConfig {
  version: 1;
  /** node, then these arguments start the CLI. */
  cli: string;
  guest: string;
  keyFile: string;
  /** Flags every node gets (handler, tracker, timeouts, --quiet, ...). */
  flags: string[];
  /** --serve URL per node id, or null (no HTTP). */
  serve: Record<string, string> | null;
  /** --events prefix (`<events>.node-<id>`), or null. */
  events: string | null;
}

export interface ReadyInfo {
  ready: true;
  node: number;
  pid: number;
  /** /proc/<pid>/stat start time (clock ticks since boot), or null where /proc is missing. */
  procStart: number | null;
  link: number | null;
  serve: number | null;
}

export function pairConfigPath(dir: string): string {
  return path.join(dir, 'pair.json');
}
export function readyPath(dir: string, node: number): string {
  return path.join(dir, `node-${node}.ready`);
}
export function stoppingPath(dir: string): string {
  return path.join(dir, 'stopping');
}
export function nodeStateDir(dir: string, node: number): string {
  return path.join(dir, `node-${node}`);
}

/** Written whole or not at all (a reader never sees half a file). */
export function writeFileAtomic(file: string, text: string): void {
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

export function readPairConfig(dir: string): PairConfig {
  const file = pairConfigPath(dir);
  let text: string;
  try {
    if (fs.statSync(file).size > PAIR_CONFIG_BYTES_MAX) throw new UnderstudyError('ERR_USAGE', `${file} is larger than ${PAIR_CONFIG_BYTES_MAX} bytes`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof UnderstudyError) throw e;
    throw new UnderstudyError('ERR_USAGE', `--pair-dir ${dir}: no pair.json (${(e as Error).message})`);
  }
  const c = JSON.parse(text) as PairConfig;
  if (c.version !== 1 || typeof c.cli !== 'string' || typeof c.guest !== 'string' || typeof c.keyFile !== 'string' || !Array.isArray(c.flags)) throw new UnderstudyError('ERR_USAGE', `${file} is not a pair configuration`);
  return c;
}

/** The node's last ready file, or null (none yet, or unreadable). */
export function readReady(dir: string, node: number): ReadyInfo | null {
  try {
    const r = JSON.parse(fs.readFileSync(readyPath(dir, node), 'utf8')) as ReadyInfo;
    return Number.isSafeInteger(r.pid) && r.pid > 0 ? r : null;
  } catch {
    return null;
  }
}

/** Field 22 of /proc/<pid>/stat (start time), with the process state; null if there is no such process (or no /proc). */
function procStat(pid: number): { state: string; start: number } | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', start: Number(rest[19]) };
}

export function procStartOf(pid: number): number | null {
  return procStat(pid)?.start ?? null;
}

/** Whether the process a ready file names still runs (a zombie or a reused pid does not count). */
export function processAlive(r: Pick<ReadyInfo, 'pid' | 'procStart'>): boolean {
  if (fs.existsSync('/proc/self/stat')) {
    const st = procStat(r.pid);
    return st !== null && st.state !== 'Z' && st.state !== 'X' && (r.procStart === null || st.start === r.procStart);
  }
  try {
    process.kill(r.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Refuses to start a node whose id another live process already runs in this pair. */
export function assertNotRunning(dir: string, node: number): void {
  const r = readReady(dir, node);
  if (r !== null && r.pid !== process.pid && processAlive(r)) throw new UnderstudyError('ERR_USAGE', `node ${node} of the pair in ${dir} already runs as pid ${r.pid}`);
}

/** The arguments that start node `node` of the pair, joining the node listening on `joinPort`. */
export function replacementArgs(dir: string, c: PairConfig, node: number, joinPort: number): string[] {
  const a = [c.cli, 'backup', '--guest', c.guest, '--join', `127.0.0.1:${joinPort}`, '--listen', '127.0.0.1:0', '--node-id', String(node), '--key-file', c.keyFile, '--state-dir', nodeStateDir(dir, node), '--pair-dir', dir, ...c.flags];
  const serve = c.serve?.[String(node)];
  if (serve !== undefined) a.push('--serve', serve);
  if (c.events !== null) a.push('--events', `${c.events}.node-${node}`);
  return a;
}

export interface SupervisorOptions {
  dir: string;
  nodeId: number;
  peerId: number;
  /** This node's link port (the replacement dials it). */
  linkPort: number;
  role: () => NodeRole;
  say?: (line: string) => void;
}

/** Watches the peer's process while this node holds the service; starts a replacement when it is gone. */
export class PairSupervisor {
  private timer: NodeJS.Timeout | null = null;
  private child: ChildProcess | null = null;
  private lastSpawnMs = -Infinity;
  /** Replacements started (for tests and the status). */
  started = 0;

  constructor(private readonly o: SupervisorOptions) {}

  start(): void {
    this.timer = setInterval(() => this.check(), PEER_WATCH_MS);
    this.timer.unref();
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private check(): void {
    const { dir, peerId } = this.o;
    const role = this.o.role();
    if (role !== 'primary' && role !== 'deposed') return; // only the holder of the service replaces its peer
    if (fs.existsSync(stoppingPath(dir))) return;
    if (this.child !== null && this.child.exitCode === null && this.child.signalCode === null) return; // ours is starting or running
    const peer = readReady(dir, peerId);
    if (peer !== null && processAlive(peer)) return;
    const now = performance.now();
    if (now - this.lastSpawnMs < RESPAWN_GAP_MS) return;
    this.lastSpawnMs = now;
    const c = readPairConfig(dir);
    const args = replacementArgs(dir, c, peerId, this.o.linkPort);
    this.o.say?.(`node ${peerId} is gone (pid ${peer?.pid ?? '?'}): starting a replacement that joins us`);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], detached: false });
    child.on('error', (e) => this.o.say?.(`could not start a replacement: ${e.message}`));
    child.unref(); // it outlives us if we die: it is then the one that takes over
    this.child = child;
    this.started++;
  }
}
