// What a role (primary, backup, idle) may ask of the node that holds it.
import type { Env, ReplEventKind, ReplicaConfig } from './env.js';
import type { Hello, Message, NodeId, NodeRole } from './messages.js';

export interface NodeContext {
  readonly id: NodeId;
  readonly peer: NodeId;
  readonly config: Readonly<ReplicaConfig>;
  readonly env: Env;
  readonly term: number;
  /** A Hello from this node, stamped with its incarnation and view. */
  hello(role: NodeRole, session: number, lastApplied: number): Hello;
  /** Marks a change of role or session, so the peer can tell newer Hellos from stale ones. */
  bumpView(): void;
  send(msg: Message): void;
  log(kind: ReplEventKind, detail: string, extra?: { epochTerm?: number; seq?: number }): void;
  /** A fresh session id: non-zero, not the previous one. */
  newSession(previous: number): number;
  /** Records durably, before the first solo release of the current term, that this node releases alone in it. */
  noteSolo(): void;
}

/** Transitions a role asks for; the node performs them after the handler returns. */
export type Transition =
  | { to: 'idle'; reason: string }
  | { to: 'promote' }
  | { to: 'stay' };

export const STAY: Transition = { to: 'stay' };
