// Error codes of the CDA data-structure workloads (stable: add, never rename).
export type WorkloadErrorCode =
  | 'ERR_CDA_ARENA_CORRUPT' // the arena's header or a structure in it breaks the layout (untrusted bytes)
  | 'ERR_CDA_ARENA_MISMATCH' // a well-formed arena of another workload or size than the one attaching
  | 'ERR_CDA_ARENA_FULL' // an allocation does not fit in the arena
  | 'ERR_CDA_ARENA_RANGE' // a view or an access outside the arena or its memory
  | 'ERR_CDA_WORKLOAD_OPTIONS'; // an unknown workload name or an option out of its bounds
