// The CDA workload as a Node program, as a process (primary.ts says what it does):
//
//   node dist/src/cda/workloads/primary-main.js <list|tree|hash|queue> [--opt N] [--ops N] [--seed N]
//        [--arena-bytes N] [--progress N] [--cda-mode M] [--cda-target T] [--key-file F] [--cda-timeout-ms MS]
//
// --cda-mode, --cda-target, --key-file and --cda-timeout-ms are `understudy
// run`'s (targets memory, disk:<dir>, backup:<host:port>). Lines go to stdout
// synchronously: a line printed is a line the parent reads, even if SIGKILL
// follows at once. Exit status: 0 done, 1 a commit failed or the arena is
// corrupt, 2 usage.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { cdaOptionsOf } from '../../cli/cda.js';
import { parseMs } from '../../cli/options.js';
import { isUnderstudyError } from '../../errors.js';
import { CDA_MODES, type CdaMode, type CdaOptions } from '../service.js';
import { CYCLES_MAX, OPT_MAX, SEED_DEFAULT, checkArenaBytes } from './factory.js';
import { ARENA_BYTES_DEFAULT, WORKLOAD_NAMES, type WorkloadName } from './layout.js';
import { runCdaPrimary } from './primary.js';

function usage(message: string): never {
  fs.writeSync(
    2,
    `cdaprimary: ${message}\nusage: primary-main.js <${WORKLOAD_NAMES.join('|')}> [--opt N] [--ops N] [--seed N] [--arena-bytes N] [--progress N] [--cda-mode M] [--cda-target T] [--key-file F] [--cda-timeout-ms MS]\n`,
  );
  process.exit(2);
}

function integer(v: string | undefined, name: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) usage(`${name} ${v} is not an integer in [${min}, ${max}]`);
  return n;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        opt: { type: 'string' },
        ops: { type: 'string' },
        seed: { type: 'string' },
        'arena-bytes': { type: 'string' },
        progress: { type: 'string' },
        'cda-mode': { type: 'string' },
        'cda-target': { type: 'string' },
        'key-file': { type: 'string' },
        'cda-timeout-ms': { type: 'string' },
      },
    });
  } catch (e) {
    usage((e as Error).message);
  }
  const { values: v, positionals } = parsed;
  const workload = positionals[0] as WorkloadName;
  if (positionals.length !== 1 || !WORKLOAD_NAMES.includes(workload)) usage('name one workload');
  const opt = integer(v.opt, '--opt', 1, 1, OPT_MAX);
  const ops = integer(v.ops, '--ops', 10_000, 0, OPT_MAX * CYCLES_MAX);
  const seed = integer(v.seed, '--seed', SEED_DEFAULT, 0, 0xffffffff);
  const arenaBytes = integer(v['arena-bytes'], '--arena-bytes', ARENA_BYTES_DEFAULT, 1, Number.MAX_SAFE_INTEGER);
  const progress = integer(v.progress, '--progress', 0, 1, CYCLES_MAX);
  if (ops % opt !== 0) usage(`--ops ${ops} is not a multiple of --opt ${opt}`);
  const mode = (v['cda-mode'] ?? 'auto') as CdaMode | 'auto';
  if (mode !== 'auto' && !CDA_MODES.includes(mode)) usage(`--cda-mode ${mode}: one of auto, ${CDA_MODES.join(', ')}`);
  let cda: CdaOptions;
  try {
    checkArenaBytes(arenaBytes);
    const timeout = v['cda-timeout-ms'] === undefined ? undefined : parseMs(v['cda-timeout-ms'], '--cda-timeout-ms');
    cda = cdaOptionsOf({ cdaMode: mode, cdaTarget: v['cda-target'] ?? 'memory', keyFile: v['key-file'], cdaTimeoutMs: timeout })!;
  } catch (e) {
    usage((e as Error).message);
  }
  try {
    await runCdaPrimary({ workload, opt, ops, seed, arenaBytes, progress, cda }, (line) => fs.writeSync(1, line + '\n'));
    return 0;
  } catch (e) {
    fs.writeSync(2, `cdaprimary: ${isUnderstudyError(e) ? `${e.code}: ` : ''}${(e as Error).message}\n`);
    return 1;
  }
}

process.exitCode = await main();
