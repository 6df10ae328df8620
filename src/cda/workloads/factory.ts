// Making workloads: the factory, option bounds, and the in-process reference
// run that gives the exact arena a guest holds after cycle N.
import { UnderstudyError } from '../../errors.js';
import { ArenaView } from './arena.js';
import { HashWorkload } from './hash.js';
import { ARENA_BYTES_DEFAULT, ARENA_BYTES_MAX, ARENA_BYTES_MIN, ARENA_PAGE_BYTES, WORKLOAD_NAMES, type WorkloadName } from './layout.js';
import { ListWorkload } from './list.js';
import { QueueWorkload } from './queue.js';
import { TreeWorkload } from './tree.js';
import type { Workload } from './workload.js';

export const SEED_DEFAULT = 1;
/** Operations per transaction: the seed measures 1 and 5; a cycle of more than this is not a transaction. */
export const OPT_MAX = 10_000;
/** Transactions one runReference() call replays: 10,000 operations at OPT=1 and then some. */
export const CYCLES_MAX = 1_000_000;

export interface WorkloadOptions {
  /** PRNG seed written by init() (u32; default 1). attach() keeps the arena's own. */
  seed?: number;
}

function optionsError(message: string): UnderstudyError {
  return new UnderstudyError('ERR_CDA_WORKLOAD_OPTIONS', message);
}

function checkInteger(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw optionsError(`${what} ${value} is not an integer in [${min}, ${max}]`);
}

/** Checks an arena size: whole pages, within [ARENA_BYTES_MIN, ARENA_BYTES_MAX]. */
export function checkArenaBytes(bytes: number): void {
  checkInteger('arena bytes', bytes, ARENA_BYTES_MIN, ARENA_BYTES_MAX);
  if (bytes % ARENA_PAGE_BYTES !== 0) throw optionsError(`arena bytes ${bytes} is not a whole number of ${ARENA_PAGE_BYTES}-byte pages`);
}

/** A workload over `arena`; call init() on a fresh (zero-filled) arena or attach() on one that holds this workload. */
export function createWorkload(name: WorkloadName, arena: ArenaView, options: WorkloadOptions = {}): Workload {
  const seed = options.seed ?? SEED_DEFAULT;
  checkInteger('seed', seed, 0, 0xffffffff);
  checkArenaBytes(arena.byteLength);
  switch (name) {
    case 'list':
      return new ListWorkload(arena, seed);
    case 'tree':
      return new TreeWorkload(arena, seed);
    case 'hash':
      return new HashWorkload(arena, seed);
    case 'queue':
      return new QueueWorkload(arena, seed);
    default:
      throw optionsError(`unknown workload ${JSON.stringify(name)}; one of ${WORKLOAD_NAMES.join(', ')}`);
  }
}

export interface ReferenceOptions {
  seed?: number;
  /** Operations per transaction (cycle). */
  opt: number;
  /** Transactions; 0 gives the freshly initialised arena. */
  cycles: number;
  arenaBytes?: number;
}

/**
 * The arena's bytes after `cycles` transactions of `opt` operations on a
 * fresh arena — what a guest running `cdabench <name> --opt <opt> --seed
 * <seed>` holds in its critical data area when cycle `cycles` commits.
 */
export function runReference(name: WorkloadName, options: ReferenceOptions): Uint8Array {
  checkInteger('operations per transaction', options.opt, 1, OPT_MAX);
  checkInteger('cycles', options.cycles, 0, CYCLES_MAX);
  const arenaBytes = options.arenaBytes ?? ARENA_BYTES_DEFAULT;
  checkArenaBytes(arenaBytes);
  const arena = ArenaView.allocate(arenaBytes);
  const w = createWorkload(name, arena, options.seed === undefined ? {} : { seed: options.seed });
  w.init();
  for (let c = 0; c < options.cycles; c++) {
    for (let i = 0; i < options.opt; i++) w.step();
    w.endCycle();
  }
  return arena.raw();
}
