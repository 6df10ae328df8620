// What the protocol core is given, and the bounds it runs within. The core
// touches the world only through Env: the simulator passes a simulated clock,
// network, storage and a seeded PRNG; the real wiring passes the system ones.
import type { Message, NodeId, Output } from './messages.js';
import { EPOCH_OUTPUTS_MAX, SYNC_CHUNK_PAGES_MAX } from './messages.js';
import { replicateError } from './codes.js';

/**
 * Durable numbers, each written before the node acts on it. `soloTerm`: the
 * newest term in which this node released output alone (unprotected); after a
 * crash it tells the peer that state the peer does not hold was released.
 */
export const STORAGE_KEYS = ['term', 'incarnation', 'bootstrapped', 'nonceReserved', 'soloTerm'] as const;
export type StorageKey = (typeof STORAGE_KEYS)[number];
export interface NodeStorage {
  get(key: StorageKey): number | undefined;
  /** Durable when it returns. */
  set(key: StorageKey, value: number): void;
}

/** Outputs leaving the host: the output gate's one exit. */
export interface Release {
  /** The term of the node releasing. */
  term: number;
  /** The epoch whose acknowledgement (or application, on the promoted backup; or closing, when solo) allows this. */
  epochTerm: number;
  epochSeq: number;
  outputs: Output[];
  /**
   * Released alone (unprotected): no other node holds a replica, so the epoch
   * was closed here and not acknowledged. Only a primary that knows its peer
   * holds no replica does this (after a promotion, or when the peer showed it
   * lost its copy), until a new backup has synced.
   */
  solo: boolean;
}

export type ReplEventKind =
  | 'role' // a role change (detail says why)
  | 'term' // a newer term adopted
  | 'applied' // a backup applied (and acknowledges) epoch (epochTerm, seq)
  | 'solo' // a primary serving alone closed epoch (epochTerm, seq); its outputs are released unprotected
  | 'promoted'
  | 'deposed'
  | 'resumed'
  | 'refused' // a message or frame refused (detail says why)
  | 'stale'; // a stale message ignored

export interface ReplEvent {
  kind: ReplEventKind;
  node: NodeId;
  term: number;
  detail: string;
  epochTerm?: number;
  seq?: number;
}

export interface Env {
  now(): number;
  send(to: NodeId, msg: Message): void;
  /** Uniform in [0, 1). */
  random(): number;
  storage: NodeStorage;
  log(event: ReplEvent): void;
  release(r: Release): void;
}

/** Every timeout, window and queue of a replica, named. Milliseconds are of Env.now(). */
export interface ReplicaConfig {
  /** Length of an epoch: the primary captures a delta this often (if anything changed). */
  epochMs: number;
  /** Each side sends a heartbeat this often. */
  heartbeatMs: number;
  /** An idle, deposed or offering node repeats its Hello this often. */
  helloMs: number;
  /** Unacknowledged epochs and sync chunks are sent again after this long. */
  retransmitMs: number;
  /** A backup that hears nothing from its primary for this long promotes itself. */
  primaryTimeoutMs: number;
  /** A primary that hears nothing from its (synced) backup for this long stops releasing and steps down. */
  backupTimeoutMs: number;
  /** Back-pressure: past this many unacknowledged epochs the primary starts no new epoch and pauses the guest. */
  epochsInFlightMax: number;
  /** Client requests waiting for the guest; more are refused (the client retries). */
  requestQueueMax: number;
  /** Outputs one open epoch may hold: a full epoch closes early; if it cannot (back-pressure), the guest pauses. */
  epochOutputsMax: number;
  /** Client requests the guest runs per tick. */
  requestsPerTickMax: number;
  /** Pre-copy rounds before the final stop-and-copy. */
  precopyRoundsMax: number;
  /** A pre-copy round that finds at most this many dirty pages ends pre-copy. */
  precopyDirtyPagesStop: number;
  /** Pages per sync chunk. */
  syncChunkPages: number;
  /** Unacknowledged sync chunks in flight. */
  syncChunksInFlightMax: number;
  /**
   * Every Nth epoch carries the whole-state digest the backup checks (a sync's last delta always
   * does). A digest is a pass over the whole memory on both sides, per epoch the largest fixed
   * cost after the pages; a divergence is still caught within N epochs.
   */
  digestEveryEpochs: number;
}

export const DEFAULT_CONFIG: Readonly<ReplicaConfig> = {
  epochMs: 20,
  heartbeatMs: 20,
  helloMs: 50,
  retransmitMs: 60,
  primaryTimeoutMs: 300,
  backupTimeoutMs: 200,
  epochsInFlightMax: 7,
  requestQueueMax: 64,
  epochOutputsMax: 512,
  requestsPerTickMax: 16,
  precopyRoundsMax: 5,
  precopyDirtyPagesStop: 4,
  syncChunkPages: 64,
  syncChunksInFlightMax: 8,
  digestEveryEpochs: 8,
};

/** Refuses a configuration whose bounds contradict each other. */
export function validateConfig(c: ReplicaConfig): ReplicaConfig {
  const positive: (keyof ReplicaConfig)[] = ['epochMs', 'heartbeatMs', 'helloMs', 'retransmitMs', 'primaryTimeoutMs', 'backupTimeoutMs', 'epochsInFlightMax', 'requestQueueMax', 'epochOutputsMax', 'requestsPerTickMax', 'precopyRoundsMax', 'syncChunkPages', 'syncChunksInFlightMax', 'digestEveryEpochs'];
  for (const k of positive) {
    if (!Number.isSafeInteger(c[k]) || c[k] <= 0) throw replicateError('ERR_REPL_CONFIG', `${k} must be a positive integer, not ${c[k]}`);
  }
  const rule = (ok: boolean, why: string): void => {
    if (!ok) throw replicateError('ERR_REPL_CONFIG', why);
  };
  rule(Number.isSafeInteger(c.precopyDirtyPagesStop) && c.precopyDirtyPagesStop >= 0, 'precopyDirtyPagesStop must be a non-negative integer');
  // Silence is judged against heartbeats: several must be missed, not one.
  rule(c.heartbeatMs * 3 <= c.backupTimeoutMs, 'heartbeatMs * 3 must not exceed backupTimeoutMs');
  rule(c.retransmitMs < c.backupTimeoutMs, 'retransmitMs must be below backupTimeoutMs');
  // The old primary stops before the backup takes over (when clocks run alike): fewer outputs are released twice.
  rule(c.backupTimeoutMs <= c.primaryTimeoutMs, 'backupTimeoutMs must not exceed primaryTimeoutMs');
  rule(c.syncChunkPages <= SYNC_CHUNK_PAGES_MAX, `syncChunkPages must not exceed ${SYNC_CHUNK_PAGES_MAX}`);
  // A resync carries the outputs of every unacknowledged epoch plus the open one in its SyncDone.
  rule(c.epochOutputsMax * (c.epochsInFlightMax + 1) <= EPOCH_OUTPUTS_MAX, `epochOutputsMax * (epochsInFlightMax + 1) must not exceed ${EPOCH_OUTPUTS_MAX}`);
  return c;
}
