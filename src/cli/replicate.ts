// `understudy primary`, `understudy backup`, and `run --replicas 2`: a reactor
// guest protected by a hot backup in a second process (docs/replication.md).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';
import { loadGuestModule } from '../guest/module.js';
import type { ReplicaConfig } from '../replicate/env.js';
import { parseAddress, type Address } from '../replicate/process/link.js';
import { PairSupervisor, assertNotRunning, nodeStateDir, pairConfigPath, procStartOf, processAlive, readReady, readyPath, stoppingPath, writeFileAtomic, type PairConfig, type ReadyInfo } from '../replicate/process/pair-dir.js';
import { ReplicaProcess } from '../replicate/process/replica.js';
import { KEY_ENV, loadKey } from '../replicate/process/storage.js';
import type { TrackerKind } from '../track/tracker.js';
import { parseMs, parsePositiveInt } from './options.js';

/** `run --replicas 2` waits this long for its backup to say it listens. */
const BACKUP_READY_MS_MAX = 30_000;
const BACKUP_READY_POLL_MS = 20;

interface ReplicaFlags {
  handler: string;
  keyFile?: string;
  stateDir?: string;
  serve?: string;
  events?: string;
  nodeId?: number;
  epochMs?: number;
  heartbeatMs?: number;
  primaryTimeoutMs?: number;
  backupTimeoutMs?: number;
  retransmitMs?: number;
  tracker: TrackerKind | 'auto';
  digest: boolean;
  diff?: boolean;
  readyFile?: string;
  pairDir?: string;
  waitForBackup?: boolean;
  quiet?: boolean;
}

export function parseServe(url: string): Address {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UnderstudyError('ERR_USAGE', `--serve: ${JSON.stringify(url)} is not a URL`);
  }
  if (u.protocol !== 'http:' || u.port === '' || (u.pathname !== '/' && u.pathname !== '')) throw new UnderstudyError('ERR_USAGE', '--serve takes http://host:port');
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port) };
}

function address(s: string, what: string): Address {
  try {
    return parseAddress(s, what);
  } catch (e) {
    throw new UnderstudyError('ERR_USAGE', (e as Error).message);
  }
}

function configOf(f: ReplicaFlags): Partial<ReplicaConfig> {
  const c: Partial<ReplicaConfig> = {};
  if (f.epochMs !== undefined) c.epochMs = f.epochMs;
  if (f.heartbeatMs !== undefined) c.heartbeatMs = f.heartbeatMs;
  if (f.primaryTimeoutMs !== undefined) c.primaryTimeoutMs = f.primaryTimeoutMs;
  if (f.backupTimeoutMs !== undefined) c.backupTimeoutMs = f.backupTimeoutMs;
  if (f.retransmitMs !== undefined) c.retransmitMs = f.retransmitMs;
  return c;
}

function addReplicaFlags(cmd: Command): Command {
  return cmd
    .option('--handler <export>', 'the reactor export each request is sent to', 'handle')
    .option('--key-file <file>', `the pre-shared key: 32 bytes or 64 hex digits (default: $${KEY_ENV})`)
    .option('--state-dir <dir>', "this node's durable numbers (term, nonce counters); default ./understudy-state/node-<id>")
    .option('--serve <url>', 'serve the guest to HTTP clients: http://host:port')
    .option('--events <file>', 'append every protocol event and release as JSON lines')
    .option('--node-id <n>', 'this node (the pair is 1 and 2)', (v) => parsePositiveInt(v, '--node-id'))
    .option('--epoch-ms <ms>', 'epoch length', (v) => parseMs(v, '--epoch-ms'))
    .option('--heartbeat-ms <ms>', 'heartbeat period, both ways', (v) => parseMs(v, '--heartbeat-ms'))
    .option('--primary-timeout-ms <ms>', 'a backup promotes after this long without its primary', (v) => parseMs(v, '--primary-timeout-ms'))
    .option('--backup-timeout-ms <ms>', 'a primary stops releasing after this long without its backup', (v) => parseMs(v, '--backup-timeout-ms'))
    .option('--retransmit-ms <ms>', 'unacknowledged epochs are resent after this long', (v) => parseMs(v, '--retransmit-ms'))
    .addOption(new Option('--tracker <kind>', 'dirty-page tracker').choices(['auto', 'wp-async', 'wp-sync', 'hash']).default('auto'))
    .option('--no-digest', 'skip the whole-state checksum (every 8th epoch, and each sync)')
    .option('--no-diff', 'send whole dirty pages instead of the changed byte runs (saves the primary a shadow copy of the memory)')
    .addOption(new Option('--ready-file <file>', 'write the bound ports here as JSON once listening').hideHelp())
    .addOption(new Option('--pair-dir <dir>', 'a member of a supervised pair (run --replicas 2): replace the peer when its process is gone').hideHelp())
    .option('-q, --quiet', 'no messages on stderr');
}

async function startReplica(guest: string, f: ReplicaFlags, role: { nodeId: number; bootstrap: boolean; listen?: Address; dial?: Address; announce?: boolean }): Promise<void> {
  if (role.listen === undefined && role.dial === undefined) throw new UnderstudyError('ERR_USAGE', 'a replica needs --backup, --listen or --join');
  if (role.nodeId !== 1 && role.nodeId !== 2) throw new UnderstudyError('ERR_USAGE', '--node-id is 1 or 2');
  const say = f.quiet ? undefined : (line: string) => process.stderr.write(`understudy: ${line}\n`);
  const peerId = 3 - role.nodeId;
  if (f.pairDir !== undefined) assertNotRunning(f.pairDir, role.nodeId);
  const module = await loadGuestModule(guest);
  const p = await ReplicaProcess.start({
    nodeId: role.nodeId,
    peerId,
    module,
    handler: f.handler,
    key: loadKey(f.keyFile),
    stateDir: f.stateDir ?? path.join('understudy-state', `node-${role.nodeId}`),
    listen: role.listen,
    dial: role.dial,
    serve: f.serve !== undefined ? parseServe(f.serve) : undefined,
    bootstrap: role.bootstrap,
    bootstrapSolo: f.waitForBackup === false,
    config: configOf(f),
    tracker: f.tracker,
    digest: f.digest,
    diff: f.diff,
    eventsFile: f.events,
    say,
  });
  const ready: ReadyInfo = { ready: true, node: role.nodeId, pid: process.pid, procStart: procStartOf(process.pid), link: p.linkPort, serve: p.servePort };
  let supervisor: PairSupervisor | null = null;
  if (f.pairDir !== undefined) {
    writeFileAtomic(readyPath(f.pairDir, role.nodeId), JSON.stringify(ready));
    assert(p.linkPort !== null, 'a pair member listens, so a replacement can join it');
    supervisor = new PairSupervisor({ dir: f.pairDir, nodeId: role.nodeId, peerId, linkPort: p.linkPort, role: () => p.node.roleName, say });
    supervisor.start();
  }
  if (f.readyFile !== undefined) writeFileAtomic(f.readyFile, JSON.stringify(ready));
  else if (f.pairDir === undefined || role.announce === true) process.stdout.write(JSON.stringify(ready) + '\n');
  say?.(`node ${role.nodeId} ${role.bootstrap ? 'primary' : 'backup'}${p.linkPort !== null ? `, link on port ${p.linkPort}` : ''}${p.servePort !== null ? `, serving http://${parseServe(f.serve!).host}:${p.servePort}` : ''}`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      if (f.pairDir !== undefined) {
        // Stopping one member stops the pair: no replacement, and the peer is told to stop too.
        fs.writeFileSync(stoppingPath(f.pairDir), String(process.pid));
        const peer = readReady(f.pairDir, peerId);
        if (peer !== null && processAlive(peer)) process.kill(peer.pid, 'SIGTERM');
      }
      supervisor?.close();
      p.close();
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

export function registerReplicateCommands(program: Command): void {
  addReplicaFlags(
    program
      .command('primary')
      .description('run a reactor guest as the primary of a replicated pair: output leaves only after the backup acknowledged it')
      .argument('<guest>', 'the guest module (.wasm, a reactor)')
      .option('--backup <host:port>', 'where the backup listens')
      .option('--listen <host:port>', 'accept the link here (a backup may join with --join)')
      .option('--no-wait-for-backup', 'answer at once, unprotected, until the first backup has synced (default: answer nothing before)'),
  ).action(async (guest: string, f: ReplicaFlags & { backup?: string; listen?: string }) => {
    await startReplica(guest, f, { nodeId: f.nodeId ?? 1, bootstrap: true, dial: f.backup !== undefined ? address(f.backup, '--backup') : undefined, listen: f.listen !== undefined ? address(f.listen, '--listen') : undefined });
  });

  addReplicaFlags(
    program
      .command('backup')
      .description('hold a hot replica of a primary; take over (and serve) when it falls silent')
      .requiredOption('--guest <wasm>', 'the same guest module as the primary (deltas name its sha256)')
      .option('--listen <host:port>', 'accept the link from the primary here')
      .option('--join <host:port>', 'dial a survivor instead: become its new backup (give the dead node id and its --state-dir)'),
  ).action(async (f: ReplicaFlags & { guest: string; listen?: string; join?: string }) => {
    if (f.listen === undefined && f.join === undefined) throw new UnderstudyError('ERR_USAGE', 'backup needs --listen or --join');
    await startReplica(f.guest, f, {
      nodeId: f.nodeId ?? 2,
      bootstrap: false,
      listen: f.listen !== undefined ? address(f.listen, '--listen') : undefined,
      dial: f.join !== undefined ? address(f.join, '--join') : undefined,
    });
  });
}

/**
 * `run --replicas 2 <guest>`: a supervised pair on this host (pair-dir.ts). A
 * backup child on loopback, then this process as the primary; each member
 * replaces the other when its process is gone, so protection resumes after a
 * failover without an operator. Stopping either member stops both.
 */
export async function runReplicated(guest: string, f: ReplicaFlags & { serve?: string }, cliPath: string): Promise<void> {
  const dir = path.resolve(f.stateDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-pair-')));
  fs.mkdirSync(dir, { recursive: true });
  const keyFile = path.resolve(f.keyFile ?? path.join(dir, 'key'));
  if (f.keyFile === undefined) fs.writeFileSync(keyFile, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
  for (const node of [1, 2]) {
    const r = readReady(dir, node);
    if (r !== null && processAlive(r)) throw new UnderstudyError('ERR_USAGE', `${dir} belongs to a running pair (node ${node} is pid ${r.pid})`);
    fs.rmSync(readyPath(dir, node), { force: true });
  }
  fs.rmSync(stoppingPath(dir), { force: true });
  const pass: string[] = ['--handler', f.handler, '--tracker', f.tracker];
  for (const [flag, v] of [['--epoch-ms', f.epochMs], ['--heartbeat-ms', f.heartbeatMs], ['--primary-timeout-ms', f.primaryTimeoutMs], ['--backup-timeout-ms', f.backupTimeoutMs], ['--retransmit-ms', f.retransmitMs]] as const) {
    if (v !== undefined) pass.push(flag, String(v));
  }
  if (!f.digest) pass.push('--no-digest');
  if (f.diff === false) pass.push('--no-diff');
  if (f.quiet) pass.push('--quiet');
  const serve = f.serve !== undefined ? parseServe(f.serve) : undefined;
  // The backup serves on the next port, so clients can fail over to it; a replacement takes its node's port again.
  const serveOf = (node: number) => (serve === undefined ? undefined : `http://${serve.host.includes(':') ? `[${serve.host}]` : serve.host}:${serve.port === 0 ? 0 : serve.port + node - 1}`);
  const config: PairConfig = {
    version: 1,
    cli: cliPath,
    guest: path.resolve(guest),
    keyFile,
    flags: pass,
    serve: serve === undefined ? null : { '1': serveOf(1)!, '2': serveOf(2)! },
    events: f.events !== undefined ? path.resolve(f.events) : null,
  };
  writeFileAtomic(pairConfigPath(dir), JSON.stringify(config, null, 2));
  const childArgs = [cliPath, 'backup', '--guest', config.guest, '--listen', '127.0.0.1:0', '--node-id', '2', '--key-file', keyFile, '--state-dir', nodeStateDir(dir, 2), '--pair-dir', dir, ...pass];
  if (serve !== undefined) childArgs.push('--serve', serveOf(2)!);
  if (config.events !== null) childArgs.push('--events', `${config.events}.node-2`);
  const child = spawn(process.execPath, childArgs, { stdio: ['ignore', 'ignore', 'inherit'] });
  let ready: ReadyInfo | null = null;
  for (let waited = 0; ready === null; waited += BACKUP_READY_POLL_MS) {
    if (child.exitCode !== null) throw new UnderstudyError('ERR_USAGE', `the backup exited with code ${child.exitCode} before listening`);
    if (waited > BACKUP_READY_MS_MAX) {
      child.kill('SIGTERM');
      throw new UnderstudyError('ERR_USAGE', 'the backup did not start listening in time');
    }
    ready = readReady(dir, 2);
    if (ready === null) await new Promise((r) => setTimeout(r, BACKUP_READY_POLL_MS));
  }
  child.unref(); // it outlives us if we are killed: that is the point
  await startReplica(config.guest, { ...f, keyFile, stateDir: nodeStateDir(dir, 1), pairDir: dir, serve: serveOf(1), events: config.events !== null ? `${config.events}.node-1` : undefined }, {
    nodeId: 1,
    bootstrap: true,
    dial: { host: '127.0.0.1', port: ready.link! },
    listen: { host: '127.0.0.1', port: 0 },
    announce: true,
  });
}

export { addReplicaFlags, type ReplicaFlags };
