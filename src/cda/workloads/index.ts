// The CDA data-structure workloads (seed 001/000's evaluation: linked list,
// balanced tree, hash table, queue) as Node programs over an arena. The C
// guest guests/c/cdabench.c runs the same workloads with the same layout,
// allocator and PRNG, so after N operations both arenas hold the same bytes;
// runReference() is how a test knows, in-process, the exact state a guest's
// critical data area must hold after cycle N. Layout: layout.ts.
export { ArenaView, type ArenaBacking, type ArenaViewOptions, type WriteHook } from './arena.js';
export {
  ARENA_BYTES_DEFAULT, ARENA_BYTES_MAX, ARENA_BYTES_MIN, ARENA_MAGIC, ARENA_PAGE_BYTES, ARENA_VERSION, HEADER_BYTES, VALUE_BYTES_MAX, VALUE_BYTES_MIN,
  WORKLOAD_IDS, WORKLOAD_NAMES, digest, readHeader, type ArenaHeader, type WorkloadName,
} from './layout.js';
export { Workload, type Entry, type OpKind, type OpRecord } from './workload.js';
export { ListWorkload, LIST_TARGET } from './list.js';
export { TreeWorkload, TREE_KEYS } from './tree.js';
export { HashWorkload, HASH_BUCKETS, HASH_KEYS } from './hash.js';
export { QueueWorkload, QUEUE_TARGET } from './queue.js';
export { SEED_DEFAULT, OPT_MAX, CYCLES_MAX, checkArenaBytes, createWorkload, runReference, type WorkloadOptions, type ReferenceOptions } from './factory.js';
export { measureWorkload, TIMING_RUNS_MAX, type WorkloadMeasurement, type MeasureOptions } from './measure.js';
