// A node's end of the replication channel: messages in, authenticated frames
// out, and back. The real-process wiring puts these bytes on a socket (through
// FrameStreamDecoder); the simulator puts them on its simulated network.
import type { UnderstudyError } from '../errors.js';
import { isReplicateError } from './codes.js';
import { FrameOpener, FrameSealer, NonceCounter } from './frame.js';
import { decodeMessage, encodeMessage, type Message, type NodeId } from './messages.js';

export type Opened = { ok: true; from: NodeId; msg: Message } | { ok: false; error: UnderstudyError };

export class Channel {
  private readonly sealer: FrameSealer;
  private readonly opener: FrameOpener;
  constructor(selfId: NodeId, key: Uint8Array, peers: readonly NodeId[], counter: NonceCounter) {
    this.sealer = new FrameSealer(selfId, key, counter);
    this.opener = new FrameOpener(key, peers);
  }
  seal(msg: Message): Uint8Array {
    return this.sealer.seal(encodeMessage(msg));
  }
  open(bytes: Uint8Array): Opened {
    const f = this.opener.open(bytes);
    if (!f.ok) return f;
    try {
      return { ok: true, from: f.header.sender, msg: decodeMessage(f.header, f.payload) };
    } catch (e) {
      if (isReplicateError(e)) return { ok: false, error: e };
      throw e;
    }
  }
}
