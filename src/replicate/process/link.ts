// The TCP link between the two replicas of a pair. One side dials (the
// primary at start, or a replacement joining a survivor), the other listens;
// either way there is one connection in use. The link is lossy by design: a
// frame is dropped when there is no connection or the socket's buffer is past
// its bound, and the protocol retransmits (it never relies on TCP for that).
//
// An accepted connection is used for sending only after it delivered a frame
// that authenticated: a stranger who connects cannot take the link over.
// The link owns every socket, the server and the redial timer; close() ends them.
import net from 'node:net';
import { assert } from '../../util/assert.js';
import { FrameStreamDecoder } from '../frame.js';

/** A dialer waits this long between attempts. */
export const REDIAL_MS = 50;
/** Bytes queued in a socket past which frames are dropped (the protocol resends). */
export const SEND_BUFFER_BYTES_MAX = 64 * 1024 * 1024;
/** Accepted connections not yet authenticated; the oldest is closed past this. */
export const PENDING_CONNECTIONS_MAX = 4;

export interface Address {
  host: string;
  port: number;
}

export function parseAddress(s: string, what: string): Address {
  const m = /^(.+):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : -1;
  if (!m || port > 65535) throw new Error(`${what}: expected host:port, got ${JSON.stringify(s)}`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

export interface LinkOptions {
  listen?: Address;
  dial?: Address;
  /** A whole frame off the wire; returns whether it authenticated (an accepted connection is adopted on the first that does). */
  onFrame: (frame: Uint8Array) => boolean;
  /** Something worth a line in the log. */
  onEvent?: (what: string) => void;
}

export interface LinkStats {
  framesSent: number;
  framesDropped: number;
  bytesSent: number;
  connections: number;
}

export class PeerLink {
  private server: net.Server | null = null;
  private current: net.Socket | null = null;
  private dialed: net.Socket | null = null;
  private readonly pending: net.Socket[] = [];
  private redialTimer: NodeJS.Timeout | null = null;
  private closed = false;
  readonly stats: LinkStats = { framesSent: 0, framesDropped: 0, bytesSent: 0, connections: 0 };

  constructor(private readonly o: LinkOptions) {
    assert(o.listen !== undefined || o.dial !== undefined, 'a link listens, dials, or both');
  }

  /** Starts listening (if asked) and dialing (if asked); resolves with the bound port. */
  async start(): Promise<{ port: number | null }> {
    let port: number | null = null;
    if (this.o.listen) {
      const server = net.createServer((s) => this.accepted(s));
      this.server = server;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.o.listen!.port, this.o.listen!.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      port = (server.address() as net.AddressInfo).port;
    }
    if (this.o.dial) this.dial();
    return { port };
  }

  /** Sends one frame if there is a connection with room; else drops it. */
  send(frame: Uint8Array): boolean {
    const s = this.current;
    if (s === null || s.destroyed || s.writableLength > SEND_BUFFER_BYTES_MAX) {
      this.stats.framesDropped++;
      return false;
    }
    s.write(frame);
    this.stats.framesSent++;
    this.stats.bytesSent += frame.length;
    return true;
  }

  get connected(): boolean {
    return this.current !== null && !this.current.destroyed;
  }

  /** Drops the connection in use (tests and the fault proxy's peers); a dialer redials. */
  dropConnection(): void {
    this.current?.destroy();
  }

  close(): void {
    this.closed = true;
    if (this.redialTimer !== null) clearTimeout(this.redialTimer);
    this.redialTimer = null;
    for (const s of [this.current, this.dialed, ...this.pending]) s?.destroy();
    this.pending.length = 0;
    this.current = null;
    this.dialed = null;
    this.server?.close();
    this.server = null;
  }

  private dial(): void {
    if (this.closed || this.dialed !== null) return;
    const s = net.connect({ host: this.o.dial!.host, port: this.o.dial!.port });
    this.dialed = s;
    s.setNoDelay(true);
    s.once('connect', () => {
      this.stats.connections++;
      this.adopt(s);
      this.o.onEvent?.(`connected to ${this.o.dial!.host}:${this.o.dial!.port}`);
    });
    this.wire(s, () => {
      if (this.dialed === s) this.dialed = null;
      if (this.closed) return;
      if (this.redialTimer === null) {
        this.redialTimer = setTimeout(() => {
          this.redialTimer = null;
          this.dial();
        }, REDIAL_MS);
      }
    });
  }

  private accepted(s: net.Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    s.setNoDelay(true);
    this.stats.connections++;
    this.pending.push(s);
    if (this.pending.length > PENDING_CONNECTIONS_MAX) this.pending.shift()!.destroy();
    this.wire(s, () => {
      const i = this.pending.indexOf(s);
      if (i >= 0) this.pending.splice(i, 1);
    });
  }

  private adopt(s: net.Socket): void {
    if (this.current === s) return;
    const old = this.current;
    this.current = s;
    const i = this.pending.indexOf(s);
    if (i >= 0) this.pending.splice(i, 1);
    // One connection per pair: an older one is stale (the peer restarted or redialed).
    if (old !== null && old !== this.dialed) old.destroy();
  }

  private wire(s: net.Socket, onGone: () => void): void {
    const decoder = new FrameStreamDecoder();
    s.on('data', (chunk: Buffer) => {
      const { frames, error } = decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      for (const f of frames) {
        if (s.destroyed) return;
        const ok = this.o.onFrame(f);
        if (ok) this.adopt(s);
        else if (this.current !== s) {
          s.destroy(); // an unauthenticated frame on a connection we never trusted
          return;
        }
      }
      if (error !== null) {
        this.o.onEvent?.(`closing a connection: ${error.message}`);
        s.destroy();
      }
    });
    s.on('error', () => {}); // 'close' follows
    s.on('close', () => {
      if (this.current === s) this.current = null;
      onGone();
    });
  }
}
