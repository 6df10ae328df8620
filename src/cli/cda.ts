// Critical data areas on the command line: `run --cda-mode/--cda-target` (the
// flags are parsed here into CdaOptions) and `understudy cda-backup`.
import fs from 'node:fs';
import type { Command } from 'commander';
import { Option } from 'commander';
import { UnderstudyError } from '../errors.js';
import { CdaBackupServer } from '../cda/backup.js';
import type { CdaTargetSpec } from '../cda/committer.js';
import { CDA_MODES, type CdaMode, type CdaOptions } from '../cda/service.js';
import { parseAddress, type Address } from '../replicate/process/link.js';
import { KEY_ENV, loadKey } from '../replicate/process/storage.js';
import { parseMs } from './options.js';

export interface CdaFlags {
  cdaMode?: CdaMode | 'auto';
  cdaTarget?: string;
  keyFile?: string;
  cdaTimeoutMs?: number;
}

function address(s: string, what: string): Address {
  try {
    return parseAddress(s, what);
  } catch (e) {
    throw new UnderstudyError('ERR_USAGE', (e as Error).message);
  }
}

/** `memory`, `disk:<dir>` or `backup:<host:port>` (with the key from --key-file or $UNDERSTUDY_REPL_KEY). */
export function parseCdaTarget(spec: string, f: CdaFlags): CdaTargetSpec {
  if (spec === 'memory') return { kind: 'memory' };
  if (spec.startsWith('disk:') && spec.length > 5) return { kind: 'disk', dir: spec.slice(5) };
  if (spec.startsWith('backup:')) {
    const a = address(spec.slice(7), '--cda-target backup');
    return { kind: 'backup', host: a.host, port: a.port, key: loadKey(f.keyFile), timeoutMs: f.cdaTimeoutMs };
  }
  throw new UnderstudyError('ERR_USAGE', `--cda-target takes memory, disk:<dir> or backup:<host:port>, not ${JSON.stringify(spec)}`);
}

/** The service options the flags ask for, or undefined when no CDA flag is given. */
export function cdaOptionsOf(f: CdaFlags): CdaOptions | undefined {
  if (f.cdaMode === undefined && f.cdaTarget === undefined) return undefined;
  return { mode: f.cdaMode ?? 'auto', target: parseCdaTarget(f.cdaTarget ?? 'memory', f) };
}

export function addCdaFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--cda-mode <mode>', 'critical data areas: how changes to the areas are found').choices(['auto', ...CDA_MODES]))
    .option('--cda-target <target>', 'critical data areas: where cycles are committed — memory, disk:<dir> or backup:<host:port>; the same target at the next start recovers')
    .option('--cda-timeout-ms <ms>', 'with a backup target: a commit not acknowledged in time fails (US_CDA_EIO)', (v) => parseMs(v, '--cda-timeout-ms'))
    .option('--key-file <file>', `the pre-shared key of a CDA backup: 32 bytes or 64 hex digits (default: $${KEY_ENV})`);
}

export function registerCdaCommands(program: Command): void {
  program
    .command('cda-backup')
    .description('hold the critical data areas of a primary (understudy run --cda-target backup:<host:port>) and hand them to a restarted primary')
    .requiredOption('--listen <host:port>', 'where primaries connect')
    .option('--key-file <file>', `the pre-shared key: 32 bytes or 64 hex digits (default: $${KEY_ENV})`)
    .option('--dir <dir>', 'also keep the committed cycles on disk (the backup survives its own restart)')
    .addOption(new Option('--ready-file <file>', 'write the bound port here as JSON once listening').hideHelp())
    .option('-q, --quiet', 'no messages on stderr')
    .action(async (f: { listen: string; keyFile?: string; dir?: string; readyFile?: string; quiet?: boolean }) => {
      const say = f.quiet ? undefined : (line: string) => process.stderr.write(`understudy: cda-backup: ${line}\n`);
      const server = await CdaBackupServer.start({ listen: address(f.listen, '--listen'), key: loadKey(f.keyFile), dir: f.dir, log: say });
      const ready = { ready: true, pid: process.pid, port: server.port, cycle: server.committed.cycle };
      if (f.readyFile !== undefined) {
        fs.writeFileSync(`${f.readyFile}.tmp`, JSON.stringify(ready));
        fs.renameSync(`${f.readyFile}.tmp`, f.readyFile);
      } else process.stdout.write(JSON.stringify(ready) + '\n');
      say?.(`listening on port ${server.port}${f.dir ? `, commits kept in ${f.dir}` : ''}; holding cycle ${server.committed.cycle}`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      await server.close();
    });
}
