// Critical data areas for programs (the package's public surface of src/cda):
//
//   import { criticalArea } from 'understudy';
//   const memory = criticalArea.arena(1 << 20);               // or any WebAssembly.Memory the program owns
//   const cda = criticalArea(memory, { mode: 'wp-async', target: { kind: 'disk', dir: 'state' } });
//   const id = cda.register(0, 1 << 20);
//   await cda.recover();                                       // the areas as of the last committed cycle
//   await cda.transaction(() => { ...change the arena... });   // committed all or nothing
//
// Guests use the same service through their hypercalls (guest.ts, GuestCda).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Address } from '../replicate/process/link.js';
import { CdaBackupClient, CDA_BACKUP_TIMEOUT_MS_DEFAULT } from './backup-client.js';
import { cdaError } from './codes.js';
import { CriticalAreaService, areasOf, type CdaOptions, type CommittedArea } from './service.js';

export { CriticalAreaService, CDA_MODES, areasOf, type CdaMode, type CdaOptions, type CommitStats, type CdaServiceStats, type CommittedArea, type CycleState } from './service.js';
export type { CdaTargetSpec } from './committer.js';
export { CdaBackupServer, type CdaBackupOptions, type CdaBackupStats } from './backup.js';
export { GuestCda, type Settled } from './guest.js';
export { readCdaDir, type DiskRecovery } from './disk.js';
export { CDA_AREAS_MAX, CDA_AREA_BYTES_LIMIT, CDA_AREA_BYTES_MAX_DEFAULT, type AreaSpec } from './layout.js';
export { CdaAnswer, type CdaErrorCode } from './codes.js';
export { CDA_BACKUP_TIMEOUT_MS_DEFAULT } from './backup-client.js';

/** Wasm pages are 64 KiB. */
const WASM_PAGE_BYTES = 65536;

/**
 * A critical-area service over `memory` (a WebAssembly.Memory the program
 * owns and uses as its arena). Tracking starts now; `ready` resolves once the
 * target's last committed state is read.
 */
export function criticalArea(memory: WebAssembly.Memory, options: CdaOptions = {}): CriticalAreaService {
  const s = new CriticalAreaService(options);
  s.bindMemory(memory);
  return s;
}

/** A page-aligned arena of at least `bytes` (a WebAssembly.Memory: its buffer is page-aligned and trackable). */
criticalArea.arena = function arena(bytes: number, maximumBytes?: number): WebAssembly.Memory {
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw cdaError('ERR_CDA_CONFIG', 'an arena of at least one byte');
  const initial = Math.ceil(bytes / WASM_PAGE_BYTES);
  const maximum = maximumBytes === undefined ? undefined : Math.ceil(maximumBytes / WASM_PAGE_BYTES);
  return new WebAssembly.Memory(maximum === undefined ? { initial } : { initial, maximum });
};

/**
 * The areas a CDA backup holds (what a restarted primary would recover): a
 * fetch over the authenticated link. The backup then treats this connection
 * as its primary's (one primary at a time).
 */
export async function fetchCdaAreas(backup: Address & { key: Uint8Array; timeoutMs?: number }): Promise<{ cycle: number; areas: CommittedArea[] }> {
  const client = new CdaBackupClient({ address: { host: backup.host, port: backup.port }, key: backup.key, timeoutMs: backup.timeoutMs ?? CDA_BACKUP_TIMEOUT_MS_DEFAULT });
  try {
    return areasOf(await client.fetch());
  } finally {
    client.close();
  }
}

/** A CDA backup in its own process (`understudy cda-backup`), e.g. to kill the primary and not the backup. */
export interface CdaBackupProcess {
  host: string;
  port: number;
  pid: number;
  child: ChildProcess;
  /** SIGTERM, and waits for the exit. */
  stop(): Promise<void>;
}

/** Waits at most this long for a backup process to listen. */
export const CDA_BACKUP_READY_MS_MAX = 30_000;

export async function startCdaBackupProcess(options: { keyFile: string; dir?: string; host?: string; port?: number }): Promise<CdaBackupProcess> {
  const cli = new URL('../cli/main.js', import.meta.url).pathname;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-cda-backup-'));
  const ready = path.join(work, 'ready.json');
  const host = options.host ?? '127.0.0.1';
  const args = [cli, 'cda-backup', '--listen', `${host}:${options.port ?? 0}`, '--key-file', options.keyFile, '--ready-file', ready, '--quiet'];
  if (options.dir !== undefined) args.push('--dir', options.dir);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const t0 = performance.now();
  while (!fs.existsSync(ready)) {
    if (child.exitCode !== null) throw cdaError('ERR_CDA_IO', `the CDA backup exited with code ${child.exitCode} before listening`);
    if (performance.now() - t0 > CDA_BACKUP_READY_MS_MAX) {
      child.kill('SIGKILL');
      throw cdaError('ERR_CDA_IO', 'the CDA backup did not start listening in time');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const { port } = JSON.parse(fs.readFileSync(ready, 'utf8')) as { port: number };
  fs.rmSync(work, { recursive: true, force: true });
  return {
    host,
    port,
    pid: child.pid!,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
