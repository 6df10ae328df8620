// The guest as the replication protocol sees it. The real wiring implements
// this over a running wasm instance (memory pages through the dirty tracker,
// vCPU and devices inside the delta); the simulator implements it with a small
// key-value machine (sim/kv-machine.ts).
//
// Exactly-once across failover rests on one rule: the request-id table (which
// requests were applied, and their responses) lives *inside* the machine's
// replicated state, so a backup that takes over knows what was applied.

export interface ReplicatedMachine {
  /** Bytes per page; fixed for the life of the machine. */
  readonly pageBytes: number;
  pageCount(): number;
  /** A copy of one page (sync source). */
  readPage(index: number): Uint8Array;
  /** Sync target: overwrite one page, growing the memory if needed. Throws ERR_REPL_DELTA for an index past the machine's limit. */
  writePage(index: number, bytes: Uint8Array): void;
  /** Pages written since the previous collect or capture (a superset is fine); re-arms tracking. */
  collectDirtyPages(): number[];
  /**
   * Everything that changed since the previous collect or capture (pages and
   * non-page state), plus the pages listed in `alsoPages` (dirty pages a
   * pre-copy round collected but did not send), encoded; re-arms tracking.
   * `base`: the delta ends a sync, so it carries the whole non-page state (the
   * replica has none yet); otherwise non-page state may come as a change
   * against the previous capture (which the backup applied: epochs apply in order).
   */
  captureDelta(alsoPages?: readonly number[], base?: boolean): Uint8Array;
  /** Validates the whole delta first, then applies it; applies nothing and throws ERR_REPL_DELTA if it is malformed. */
  applyDelta(delta: Uint8Array): void;
  /** A checksum of the whole replicated state, compared by the backup after each apply (0 = not computed). */
  digest(): number;
  /** Runs one client request; a request id already applied returns its recorded response and changes nothing. */
  handleRequest(client: number, reqId: number, body: Uint8Array): Uint8Array;
  /** A replica is about to run (its node promotes): do the work of becoming runnable now, not on the first request. */
  prepareToRun?(): void;
}

/** Makes an empty machine: what a backup syncs into. */
export type MachineFactory = () => ReplicatedMachine;
