#!/usr/bin/env node
// The `understudy` command.
import { Command, Option } from 'commander';
import fs from 'node:fs';
import { UnderstudyError } from '../errors.js';
import { loadGuestModule } from '../guest/module.js';
import { StreamInput } from '../io/input.js';
import { controlRequest } from '../control/control.js';
import { restoreSession, startRollbackSession, startSession, type SessionOptions } from '../runtime/session.js';
import type { CowStrategy } from '../rollback/engine.js';
import { INJECT_KINDS, SUMMARY_HEADER, faultHooks, runCampaign, summarise, type InjectKind } from '../rollback/inject.js';
import { formatChain, formatInspect, inspectChain, inspectCheckpoint } from './inspect.js';
import { compactChain, isChainDir } from '../checkpoint/chain.js';
import type { TrackerKind } from '../track/tracker.js';
import { runDemo } from './demo.js';
import { registerDoctorCommand } from './doctor.js';
import { registerModelCommands } from './model.js';
import { registerReplicateCommands, runReplicated } from './replicate.js';
import { collect, formatBytes, parseEnv, parseExport, parseMs, parsePositiveInt, parsePreopen, parseRegionPages } from './options.js';
import { addCdaFlags, cdaOptionsOf, registerCdaCommands, type CdaFlags } from './cda.js';

interface SessionFlags {
  checkpointDir?: string;
  checkpointEvery?: number;
  epochMs?: number;
  tracker?: TrackerKind | 'auto';
  keep?: number;
  control?: string;
  export?: [string, string][];
  handler?: string;
  yieldEvery?: number;
  quiet?: boolean;
}

function log(flags: SessionFlags): (line: string) => void {
  return flags.quiet ? () => {} : (line) => process.stderr.write(`understudy: ${line}\n`);
}

/** Long writes and reads (over PROGRESS_BYTES_MIN) show a progress line on a terminal. */
const PROGRESS_BYTES_MIN = 256 << 20;

function progressLine(flags: SessionFlags): ((done: number, total: number) => void) | undefined {
  if (flags.quiet || !process.stderr.isTTY) return undefined;
  return (done, total) => {
    if (total < PROGRESS_BYTES_MIN) return;
    process.stderr.write(`\runderstudy: ${formatBytes(done)} of ${formatBytes(total)} (${((100 * done) / total).toFixed(0)}%)${done >= total ? '\n' : ''}`);
  };
}

function sessionOptions(flags: SessionFlags): SessionOptions {
  const say = log(flags);
  return {
    onProgress: progressLine(flags),
    checkpointDir: flags.checkpointDir ?? (flags.checkpointEvery || flags.control || flags.epochMs !== undefined ? 'checkpoints' : undefined),
    checkpointEveryMs: flags.checkpointEvery,
    epochMs: flags.epochMs,
    tracker: flags.tracker,
    keep: flags.keep,
    controlSocket: flags.control,
    exportDirs: flags.export,
    handler: flags.handler,
    yieldEveryMs: flags.yieldEvery,
    log: say,
    onCheckpoint: (t) => say(`checkpoint ${t.meta.sequence}: ${formatBytes(t.fileBytes)} -> ${t.path} (guest paused ${t.pauseMs.toFixed(1)} ms)`),
  };
}

function addSessionFlags(cmd: Command): Command {
  return cmd
    .option('--checkpoint-dir <dir>', 'where checkpoints go (default ./checkpoints when checkpointing)')
    .option('--checkpoint-every <ms>', 'take a full checkpoint every <ms> milliseconds, at the next safe point', (v) => parseMs(v, '--checkpoint-every'))
    .option('--epoch-ms <ms>', 'incremental checkpoints: a chain of deltas, one every <ms> milliseconds (log-dirty mode)', (v) => parseMs(v, '--epoch-ms'))
    .addOption(new Option('--tracker <kind>', 'dirty-page tracker for --epoch-ms').choices(['auto', 'wp-async', 'wp-sync', 'hash']).default('auto'))
    .option('--keep <n>', 'keep the newest <n> checkpoints (restore points of a chain)', (v) => parsePositiveInt(v, '--keep'))
    .option('--control <socket>', 'listen on a Unix socket for `understudy checkpoint --control`')
    .option('--export <guest:host>', 'copy a guest directory out to the host when the guest ends (repeatable)', collect(parseExport))
    .option('--handler <export>', 'reactor guests: the handler each input line is sent to', 'handle')
    .addOption(new Option('--yield-every <ms>', 'how often a command guest yields to the event loop').argParser((v) => parseMs(v, '--yield-every')).hideHelp())
    .option('-q, --quiet', 'no session messages on stderr');
}

const CLI_SELF = new URL(import.meta.url).pathname;

function parseInjectAt(value: string): { kind: 'crash' | 'hang'; at: number } {
  const m = /^(crash|hang)@(\d+)$/.exec(value);
  if (!m || Number(m[2]) < 1) throw new UnderstudyError('ERR_USAGE', `--inject takes crash@n or hang@n (n >= 1), not ${JSON.stringify(value)}`);
  return { kind: m[1] as 'crash' | 'hang', at: Number(m[2]) };
}
const program = new Command();
program.name('understudy').description('Run WebAssembly guests that survive failures: checkpoint, restore, replicate, roll back.').version('0.1.0');

addCdaFlags(addSessionFlags(
  program
    .command('run')
    .description('run a WASI guest (command or reactor) under understudy')
    .argument('<guest>', 'the guest module (.wasm)')
    .argument('[args...]', 'arguments for the guest (after --)')
    .option('--dir <host:guest>', 'preopen a host directory (copied into the in-memory file system); ":/guest" for an empty one', collect(parsePreopen))
    .option('--env <NAME=value>', 'an environment variable for the guest (repeatable)', collect(parseEnv))
    .option('--replicas <n>', 'reactor guests: 2 runs a hot backup in a second local process (output commit, failover)', (v) => parsePositiveInt(v, '--replicas'), 1)
    .option('--serve <url>', 'with --replicas 2: serve HTTP clients at http://host:port (the backup serves on port + 1)')
    .option('--heartbeat-ms <ms>', 'with --replicas 2: heartbeat period', (v) => parseMs(v, '--heartbeat-ms'))
    .option('--primary-timeout-ms <ms>', 'with --replicas 2: the backup takes over after this long without the primary', (v) => parseMs(v, '--primary-timeout-ms'))
    .option('--backup-timeout-ms <ms>', 'with --replicas 2: the primary stops releasing after this long without the backup', (v) => parseMs(v, '--backup-timeout-ms'))
    .option('--state-dir <dir>', 'with --replicas 2: where both nodes keep their durable numbers and the generated key')
    .option('--events <file>', 'with --replicas 2: protocol events as JSON lines, to <file>.node-1 and <file>.node-2')
    .addOption(new Option('--protect <how>', 'rollback: keep the last two checkpoints in memory (one per --epoch-ms, default 50) and roll back in place when an error is detected').choices(['rollback']))
    .addOption(new Option('--cow <strategy>', 'with --protect rollback: copy-on-write before the write (cowb) or pre-save last epoch\'s pages (cowp)').choices(['cowb', 'cowp']).default('cowp'))
    .option('--histase', 'with --protect rollback: Histase stride prediction on write faults')
    .option('--dense-regions <pages>', 'with --protect rollback and cowp: pre-save a whole 2 MiB region when this many of its 512 pages were written in an epoch (default 64; 0: only the pages written)', (v) => parseRegionPages(v, '--dense-regions'))
    .option('--watchdog-ms <ms>', 'with --protect rollback: a handler or run between safe points longer than this is a hang', (v) => parseMs(v, '--watchdog-ms'))
    .addOption(new Option('--rollback-to <which>', 'with --protect rollback: the kept checkpoint to roll back to').choices(['older', 'newest']).default('older'))
    .option('--collect-every <ms>', 'with --protect rollback: every <ms>, a full checkpoint to --checkpoint-dir, collected while the guest keeps running', (v) => parseMs(v, '--collect-every'))
    // For end-to-end tests of detection and recovery: one crash or hang at host call / request N.
    .addOption(new Option('--inject <kind@n>', 'with --protect rollback: inject one crash or hang at host call (command) or request (reactor) n').argParser(parseInjectAt).hideHelp()),
)).action(async (guestPath: string, args: string[], flags: SessionFlags & CdaFlags & { dir?: ReturnType<typeof parsePreopen>[]; env?: [string, string][]; replicas: number; serve?: string; heartbeatMs?: number; primaryTimeoutMs?: number; backupTimeoutMs?: number; stateDir?: string; events?: string; protect?: 'rollback'; cow: CowStrategy; histase?: boolean; denseRegions?: number; watchdogMs?: number; rollbackTo: 'older' | 'newest'; collectEvery?: number; inject?: { kind: 'crash' | 'hang'; at: number } }) => {
  if (flags.replicas > 2) throw new UnderstudyError('ERR_USAGE', '--replicas is 1 or 2 (a primary and one backup)');
  if (flags.replicas === 2) {
    await runReplicated(guestPath, { ...flags, handler: flags.handler ?? 'handle', tracker: flags.tracker ?? 'auto', digest: true }, CLI_SELF);
    return;
  }
  if (flags.protect === 'rollback') {
    if (flags.checkpointEvery || flags.control) throw new UnderstudyError('ERR_USAGE', '--protect rollback keeps its checkpoints in memory; for full checkpoints on disk while the guest runs use --collect-every <ms> with --checkpoint-dir (--checkpoint-every and --control stop the guest, and do not combine with it)');
    if (flags.checkpointDir && flags.collectEvery === undefined) throw new UnderstudyError('ERR_USAGE', '--checkpoint-dir with --protect rollback needs --collect-every <ms>');
    if (flags.inject?.kind === 'hang' && flags.watchdogMs === undefined) throw new UnderstudyError('ERR_USAGE', '--inject hang@n needs --watchdog-ms (nothing else stops a hang)');
  } else if (flags.collectEvery !== undefined || flags.inject) {
    throw new UnderstudyError('ERR_USAGE', `${flags.inject ? '--inject' : '--collect-every'} needs --protect rollback${flags.inject ? '' : ' (it merges the epochs\' pre-images); without it use --checkpoint-every'}`);
  }
  const cda = cdaOptionsOf(flags);
  if (cda && (flags.replicas === 2 || flags.protect)) throw new UnderstudyError('ERR_USAGE', '--cda-mode/--cda-target do not combine with --replicas or --protect');
  // Both would track the guest's memory with a kernel tracker, and a memory has one.
  if (cda && flags.epochMs !== undefined) throw new UnderstudyError('ERR_USAGE', '--cda-mode/--cda-target do not combine with --epoch-ms (use --checkpoint-every for whole-guest checkpoints)');
  // Mode emul records every store: the module is rewritten with its stores instrumented.
  const module = await loadGuestModule(guestPath, { cdaStores: cda?.mode === 'emul' });
  if (flags.protect === 'rollback') {
    let fired = false;
    const hooks = flags.inject && faultHooks({ ...flags.inject, reactor: module.layout.kind === 'reactor', handler: flags.handler, fire: () => !fired && (fired = true) });
    const result = await startRollbackSession({
      module,
      args: [guestPath.split('/').pop() ?? guestPath, ...args],
      env: flags.env ?? [],
      preopens: flags.dir ?? [],
      epochMs: flags.epochMs ?? 50,
      strategy: flags.cow,
      histase: flags.histase,
      denseRegionMinPages: flags.denseRegions,
      watchdogMs: flags.watchdogMs,
      target: flags.rollbackTo,
      handler: flags.handler,
      collect: flags.collectEvery === undefined ? undefined : { dir: flags.checkpointDir ?? 'checkpoints', everyMs: flags.collectEvery, keep: flags.keep },
      hooks,
      stdin: new StreamInput(process.stdin),
      yieldEveryMs: flags.yieldEvery,
      log: log(flags),
    });
    process.exitCode = result.exitCode;
    return;
  }
  const result = await startSession({
    ...sessionOptions(flags),
    cda,
    module,
    args: [guestPath.split('/').pop() ?? guestPath, ...args],
    env: flags.env ?? [],
    preopens: flags.dir ?? [],
    stdin: new StreamInput(process.stdin),
  });
  process.exitCode = result.exitCode;
});

addSessionFlags(
  program
    .command('restore')
    .description('restore a checkpoint in this process and continue the guest')
    .argument('<checkpoint>', 'a checkpoint file, or a chain directory')
    .option('--sequence <n>', 'for a chain: the epoch to restore (default the newest)', (v) => parsePositiveInt(v, '--sequence'))
    .option('--module <wasm>', 'the guest module (default: the one embedded in the checkpoint)')
    .option('--replay-stdin', 'stdin is the original input from its start: skip what the guest had already read'),
).action(async (file: string, flags: SessionFlags & { module?: string; replayStdin?: boolean; sequence?: number }) => {
  const result = await restoreSession({ ...sessionOptions(flags), file, modulePath: flags.module, replayStdin: flags.replayStdin, sequence: flags.sequence });
  process.exitCode = result.exitCode;
});

program
  .command('inject')
  .description('error-injection campaign under --protect rollback (seed 003 Table 5): crash, bit flips, hangs; each trial checked against a fault-free run')
  .argument('<guest>', 'the guest module (.wasm)')
  .argument('[args...]', 'arguments for the guest (after --)')
  .addOption(new Option('--kind <kind>', 'what to inject').choices([...INJECT_KINDS, 'all']).default('all'))
  .option('--trials <n>', 'trials per kind', (v) => parsePositiveInt(v, '--trials'), 20)
  .option('--seed <n>', 'PRNG seed (a campaign replays from its seed)', (v) => parsePositiveInt(v, '--seed'), 1)
  .option('--epoch-ms <ms>', 'epoch length', (v) => parseMs(v, '--epoch-ms'), 50)
  .option('--watchdog-ms <ms>', 'hang threshold', (v) => parseMs(v, '--watchdog-ms'), 500)
  .addOption(new Option('--cow <strategy>', 'copy-on-write strategy').choices(['cowb', 'cowp']).default('cowp'))
  .option('--histase', 'Histase stride prediction')
  .option('--dense-regions <pages>', 'with cowp: pre-save a whole 2 MiB region when this many of its pages were written (default 64; 0: off)', (v) => parseRegionPages(v, '--dense-regions'))
  .option('--input <file>', 'stdin for a command guest; for a reactor, one request per line')
  .option('--handler <export>', 'reactor guests: the handler', 'handle')
  .option('-v, --verbose', 'one line per trial on stderr')
  .action(async (guestPath: string, args: string[], flags: { kind: InjectKind | 'all'; trials: number; seed: number; epochMs: number; watchdogMs: number; cow: CowStrategy; histase?: boolean; denseRegions?: number; input?: string; handler: string; verbose?: boolean }) => {
    const module = await loadGuestModule(guestPath);
    const input = flags.input ? new Uint8Array(fs.readFileSync(flags.input)) : new Uint8Array(0);
    const reactor = module.layout.kind === 'reactor';
    const requests = reactor ? Buffer.from(input).toString('utf8').split('\n').filter((l) => l.length > 0).map((l) => Buffer.from(l, 'utf8')) : undefined;
    const kinds = flags.kind === 'all' ? [...INJECT_KINDS] : [flags.kind];
    const rows: (string | number)[][] = [];
    for (const kind of kinds) {
      const { trials } = await runCampaign(
        {
          module, args: [guestPath.split('/').pop() ?? guestPath, ...args], stdin: reactor ? undefined : input, requests, handler: flags.handler,
          kind, trials: flags.trials, seed: flags.seed, epochMs: flags.epochMs, watchdogMs: flags.watchdogMs, strategy: flags.cow, histase: flags.histase, denseRegionMinPages: flags.denseRegions,
        },
        (t, i) => {
          if (flags.verbose) process.stderr.write(`understudy: ${kind} trial ${i + 1}: ${t.what}; ${t.detected ? `detected after ${t.latencyMs?.toFixed(1)} ms, ${t.recovered ? 'recovered' : `NOT recovered (${t.failure})`}` : t.activated ? `activated, undetected (${t.failure})` : 'not activated'}\n`);
        },
      );
      rows.push(summarise(kind, trials));
    }
    const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
    process.stdout.write([line(SUMMARY_HEADER), line(SUMMARY_HEADER.map(() => '---')), ...rows.map(line)].join('\n') + '\n');
  });

program
  .command('checkpoint')
  .description('ask a running understudy for a checkpoint now')
  .option('--control <socket>', 'the control socket of the running understudy')
  .option('--pid <pid>', 'send SIGUSR2 to this understudy process instead', (v) => parsePositiveInt(v, '--pid'))
  .action(async (flags: { control?: string; pid?: number }) => {
    if (flags.pid) {
      process.kill(flags.pid, 'SIGUSR2');
      process.stdout.write(`sent SIGUSR2 to ${flags.pid}\n`);
      return;
    }
    if (!flags.control) throw new UnderstudyError('ERR_USAGE', 'give --control <socket> or --pid <pid>');
    const reply = await controlRequest(flags.control, { op: 'checkpoint' });
    if (!reply.ok) throw new UnderstudyError('ERR_CONTROL', `${reply.code}: ${reply.message}`);
    process.stdout.write(`checkpoint ${reply.sequence}: ${reply.path} (${formatBytes(Number(reply.fileBytes))}, guest paused ${Number(reply.pauseMs).toFixed(1)} ms)\n`);
  });

program
  .command('export')
  .description("copy a running guest's directory out to the host now")
  .argument('<guest:host>', 'the guest directory and the host directory to copy it to')
  .requiredOption('--control <socket>', 'the control socket of the running understudy')
  .action(async (spec: string, flags: { control: string }) => {
    const [guestPath, hostDir] = parseExport(spec);
    const reply = await controlRequest(flags.control, { op: 'export', guestPath, hostDir });
    if (!reply.ok) throw new UnderstudyError('ERR_CONTROL', `${reply.code}: ${reply.message}`);
    process.stdout.write(`exported ${guestPath} to ${String(reply.to)}\n`);
  });

program
  .command('compact')
  .description('merge the oldest part of a checkpoint chain into a new base, keeping the last <n> restore points')
  .argument('<dir>', 'a chain directory')
  .requiredOption('--keep <n>', 'restore points to keep', (v) => parsePositiveInt(v, '--keep'))
  .action((dir: string, flags: { keep: number }) => {
    const r = compactChain(dir, flags.keep);
    process.stdout.write(
      r.mergedRecords === 0
        ? `nothing to merge: the chain holds ${r.baseSequence}..${r.lastSequence}\n`
        : `merged ${r.mergedRecords} epochs into base ${r.baseSequence}; the chain holds ${r.baseSequence}..${r.lastSequence}\n`,
    );
  });

program
  .command('inspect')
  .description('show what a checkpoint holds and verify it')
  .argument('<checkpoint>')
  .option('--json', 'machine-readable output')
  .option('--no-verify', 'skip checksum verification of large sections')
  .action((file: string, flags: { json?: boolean; verify: boolean }) => {
    if (isChainDir(file)) {
      const report = inspectChain(file, flags.verify);
      process.stdout.write((flags.json ? JSON.stringify(report, null, 2) : formatChain(report)) + '\n');
      if (!report.ok) process.exitCode = 1;
      return;
    }
    const report = inspectCheckpoint(file, flags.verify);
    process.stdout.write((flags.json ? JSON.stringify(report, null, 2) : formatInspect(report)) + '\n');
    if (!report.ok) process.exitCode = 1;
  });

program
  .command('demo')
  .description('the embedded default: run an example guest with checkpoints, restore one in a fresh process, compare')
  .option('--mib <n>', 'heap size of the example guest', (v) => parsePositiveInt(v, '--mib'), 32)
  .option('--rounds <n>', 'rounds the guest runs', (v) => parsePositiveInt(v, '--rounds'), 40)
  .option('--epoch-ms <ms>', 'epoch length of the incremental checkpoints', (v) => parseMs(v, '--epoch-ms'), 20)
  .option('--dir <dir>', 'where to keep the checkpoint chain (default: a temporary directory)')
  .action(async (flags: { mib: number; rounds: number; epochMs: number; dir?: string }) => {
    const ok = await runDemo({ mib: flags.mib, rounds: flags.rounds, epochMs: flags.epochMs, dir: flags.dir });
    if (!ok) process.exitCode = 1;
  });

registerDoctorCommand(program);
registerCdaCommands(program);
registerReplicateCommands(program);
registerModelCommands(program);

async function main(): Promise<void> {
  // A reader that goes away (`understudy run ... | head`) ends the run quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof UnderstudyError) {
      process.stderr.write(`understudy: ${e.code}: ${e.message}\n`);
      process.exitCode = 2;
    } else throw e;
  }
}

if (fs.realpathSync(process.argv[1] ?? '') === fs.realpathSync(new URL(import.meta.url).pathname)) await main();

export { program };
