// A CDA workload as a Node program: the counterpart of the cdabench guest
// (guests/c/cdabench.c), with the same loop, the same output lines and the
// same arena bytes, over criticalArea(memory) instead of hypercalls. The
// script primary-main.ts runs it as a process (the primary the failover test
// kills); the failover harness also runs it in-process to restart one.
//
// The arena is the whole memory (address 0) and the one area. On start it
// recovers: cycle N > 0 means the arena is as cycle N committed it, so the
// header is checked and the workload continues from operation N * opt. Every
// transaction is `opt` steps and endCycle() between begin and commit; a
// "progress" line is said only after its cycle was committed (for a backup:
// acknowledged). Lines:
//
//   cdaprimary workload=hash opt=1 ops=2000 seed=1 arena-bytes=8388608 mode=wp-async target=backup
//   recovered cycle=120 ops=120                      (after a recovery only)
//   progress cycle=121 ops=121                       (with progress)
//   done workload=hash ops=2000 cycles=2000 count=1913 digest=1c0ffee0
import { UnderstudyError, isUnderstudyError } from '../../errors.js';
import { criticalArea } from '../index.js';
import type { CdaOptions } from '../service.js';
import { ArenaView } from './arena.js';
import { CYCLES_MAX, OPT_MAX, SEED_DEFAULT, createWorkload } from './factory.js';
import { ARENA_BYTES_DEFAULT, digest, type WorkloadName } from './layout.js';

/** A cycle the target failed is rolled back by the service and run again this many times (cdabench's CDA_RETRIES_MAX). */
export const PRIMARY_RETRIES_MAX = 3;

export interface PrimaryOptions {
  workload: WorkloadName;
  /** Operations per transaction (default 1). */
  opt?: number;
  /** Operations in all, a multiple of opt (default 10,000). */
  ops?: number;
  seed?: number;
  arenaBytes?: number;
  /** Say "progress" every this many cycles (0: never). */
  progress?: number;
  cda: CdaOptions;
}

/** Runs the workload to `ops` operations; resolves with the final digest. Throws on a failed commit (after retries) or a corrupt arena. */
export async function runCdaPrimary(o: PrimaryOptions, say: (line: string) => void): Promise<{ recovered: number; digest: number }> {
  const opt = o.opt ?? 1;
  const ops = o.ops ?? 10_000;
  const seed = o.seed ?? SEED_DEFAULT;
  const arenaBytes = o.arenaBytes ?? ARENA_BYTES_DEFAULT;
  const progress = o.progress ?? 0;
  const int = (v: number, min: number, max: number) => Number.isInteger(v) && v >= min && v <= max;
  if (!int(opt, 1, OPT_MAX) || !int(ops, 0, OPT_MAX * CYCLES_MAX) || ops % opt !== 0 || !int(progress, 0, CYCLES_MAX)) {
    throw new UnderstudyError('ERR_CDA_WORKLOAD_OPTIONS', `opt ${opt} in [1, ${OPT_MAX}], ops ${ops} a multiple of it, progress ${progress} in [0, ${CYCLES_MAX}]`);
  }
  const memory = criticalArea.arena(arenaBytes);
  const cda = criticalArea(memory, o.cda);
  try {
    await cda.ready;
    say(`cdaprimary workload=${o.workload} opt=${opt} ops=${ops} seed=${seed} arena-bytes=${arenaBytes} mode=${cda.mode} target=${cda.target.kind}`);
    cda.register(0, arenaBytes);
    const recovered = await cda.recover();
    // Emul: the program reports its own stores (arena offsets are memory addresses here).
    const arena = new ArenaView(memory, 0, arenaBytes, { onWrite: cda.mode === 'emul' ? (at, n) => cda.recordWrite(at, n) : null });
    const w = createWorkload(o.workload, arena, { seed });
    if (recovered > 0) {
      w.attach();
      if (w.cycles !== recovered || w.ops !== recovered * opt) {
        throw new Error(`the recovered arena counts cycle ${w.cycles} and ${w.ops} operations; cycle ${recovered} at opt ${opt} means ${recovered * opt}`);
      }
      say(`recovered cycle=${recovered} ops=${w.ops}`);
    } else w.init(); // between cycles: the first commit carries it (with the whole new area)

    let retries = 0;
    while (w.ops < ops) {
      cda.begin();
      for (let i = 0; i < opt; i++) w.step();
      const cycle = w.endCycle();
      let committed: number;
      try {
        committed = (await cda.end().done).cycle;
      } catch (e) {
        // Not committed: the service put the arena back as of begin, so the transaction runs again.
        if (isUnderstudyError(e, 'ERR_CDA_IO') && retries < PRIMARY_RETRIES_MAX) {
          retries++;
          continue;
        }
        throw e;
      }
      if (committed !== cycle) throw new Error(`cycle ${committed} committed while the arena counts ${cycle}`);
      retries = 0;
      if (progress && cycle % progress === 0) say(`progress cycle=${cycle} ops=${w.ops}`);
    }
    const d = digest(arena);
    say(`done workload=${o.workload} ops=${w.ops} cycles=${w.cycles} count=${w.count} digest=${d.toString(16).padStart(8, '0')}`);
    return { recovered, digest: d };
  } finally {
    await cda.close();
  }
}
