// The HTTP gateway of a replica (`--serve http://host:port`). Each POST is one
// request to the guest's handler, named by the client: `x-client-id` and
// `x-request-id` (u32, from 1). The answer is written only when the node
// releases it, i.e. after the epoch that produced it is acknowledged by the
// backup (or, on a primary serving alone after a failover, when the epoch
// closes); a client that gets no answer (timeout, a failover) retries the same
// ids, against either replica, and gets exactly one effect.
//
//   200  the guest's answer             x-understudy-epoch: <term>.<seq> of the releasing epoch;
//                                       x-understudy-protection: acknowledged (a backup held the
//                                       epoch) or unprotected (released by a primary serving alone)
//   409  request id applied, answer no longer kept (no effect now)
//   500  the guest trapped on this request (recorded; a retry gets the same)
//   429  too many clients
//   503  not the primary (x-understudy-role), or busy: retry. A synced backup first holds the
//        request up to its takeover wait (it may be about to promote: a client that finds the
//        primary gone comes here), and serves it if it takes over meanwhile.
//   504  not released within GATEWAY_WAIT_MS: retry with the same ids
//   400  missing or malformed ids; 413 body too large
// GET /status answers the node's status as JSON; GET /stats what replication costs (and the gateway's counters).
import http from 'node:http';
import type { NodeStatus } from '../node.js';
import type { Release } from '../env.js';
import { ID_MAX } from '../messages.js';
import { ResponseStatus, openEnvelope } from '../request-table.js';
import type { RequestVerdict } from '../primary.js';

/** A request body, at most. */
export const GATEWAY_BODY_BYTES_MAX = 1024 * 1024;
/** Requests waiting for their release, at most; more are answered 503. */
export const GATEWAY_WAITING_MAX = 4096;
/** A request waits this long for its release, then is answered 504 (the client retries). */
export const GATEWAY_WAIT_MS = 2000;
/**
 * Connections the kernel holds before we accept them (capped by net.core.somaxconn). Node's
 * default, 511, made a burst of 1,024 clients connecting at once wait seconds: past the backlog
 * the kernel drops handshakes and the clients' retransmissions back off.
 */
export const GATEWAY_BACKLOG = 4096;

export interface GatewayBackend {
  onRequest(client: number, reqId: number, body: Uint8Array): RequestVerdict;
  status(): NodeStatus;
  /** How long a request refused as not-primary may wait here for this node to take over (0: answer 503 at once). */
  takeoverWaitMs(): number;
  /** GET /stats: what replication costs (plain data). */
  stats?(): object;
}

interface Waiter {
  res: http.ServerResponse;
  timer: NodeJS.Timeout;
}

/** A request a backup holds, in case it takes over before `deadlineMs` (performance.now()). */
interface Parked {
  client: number;
  reqId: number;
  body: Uint8Array;
  w: Waiter;
  deadlineMs: number;
}

const HTTP_FOR: Record<ResponseStatus, number> = {
  [ResponseStatus.ok]: 200,
  [ResponseStatus.forgotten]: 409,
  [ResponseStatus.guestError]: 500,
  [ResponseStatus.tooManyClients]: 429,
};

export class Gateway {
  private server: http.Server | null = null;
  private readonly waiting = new Map<string, Waiter[]>();
  private waitingCount = 0;
  /** Held by a backup (each also in `waiting`, so GATEWAY_WAITING_MAX bounds both). */
  private parked: Parked[] = [];
  readonly stats = { answered: 0, timedOut: 0, refused: 0, parked: 0 };

  constructor(private readonly backend: GatewayBackend) {}

  async listen(host: string, port: number): Promise<number> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 5000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, backlog: GATEWAY_BACKLOG }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as { port: number }).port;
  }

  /** Called for every release: answers whoever waits for these request ids. */
  release(r: Release): void {
    for (const o of r.outputs) {
      if (o.kind !== 'response') continue;
      const key = `${o.client}:${o.reqId}`;
      const ws = this.waiting.get(key);
      if (ws === undefined) continue;
      this.waiting.delete(key);
      this.waitingCount -= ws.length;
      const e = openEnvelope(o.body);
      for (const w of ws) {
        clearTimeout(w.timer);
        this.stats.answered++;
        if (e === null) this.reply(w.res, 500, 'malformed answer', {});
        else this.reply(w.res, HTTP_FOR[e.status], e.body, { 'x-understudy-epoch': `${r.epochTerm}.${r.epochSeq}`, 'x-understudy-term': String(r.term), 'x-understudy-protection': r.solo ? 'unprotected' : 'acknowledged' });
      }
    }
  }

  close(): void {
    for (const ws of this.waiting.values()) for (const w of ws) {
      clearTimeout(w.timer);
      w.res.destroy();
    }
    this.waiting.clear();
    this.waitingCount = 0;
    this.parked = [];
    this.server?.close();
    this.server?.closeAllConnections();
    this.server = null;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method === 'GET' && req.url === '/status') {
      this.reply(res, 200, JSON.stringify(this.backend.status()), { 'content-type': 'application/json' });
      return;
    }
    if (req.method === 'GET' && req.url === '/stats') {
      this.reply(res, 200, JSON.stringify({ gateway: this.stats, replica: this.backend.stats?.() ?? null }), { 'content-type': 'application/json' });
      return;
    }
    if (req.method !== 'POST') {
      this.reply(res, 405, 'POST a request, or GET /status', {});
      return;
    }
    const client = idOf(req.headers['x-client-id']);
    const reqId = idOf(req.headers['x-request-id']);
    if (client === null || reqId === null) {
      this.reply(res, 400, 'x-client-id and x-request-id must be integers 1..2^32-1', {});
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > GATEWAY_BODY_BYTES_MAX) {
        this.reply(res, 413, `a request is at most ${GATEWAY_BODY_BYTES_MAX} bytes`, { connection: 'close' });
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (res.headersSent || bytes > GATEWAY_BODY_BYTES_MAX) return;
      this.submit(client, reqId, new Uint8Array(Buffer.concat(chunks)), res);
    });
  }

  private submit(client: number, reqId: number, body: Uint8Array, res: http.ServerResponse): void {
    if (this.waitingCount >= GATEWAY_WAITING_MAX) {
      this.stats.refused++;
      this.reply(res, 503, 'busy', { 'retry-after': '0' });
      return;
    }
    const key = `${client}:${reqId}`;
    // Wait first: the answer may be released inside onRequest (a primary serving alone releases at once).
    const w: Waiter = {
      res,
      timer: setTimeout(() => {
        this.unwait(key, w);
        this.stats.timedOut++;
        this.reply(res, 504, 'not released in time: retry with the same ids', {});
      }, GATEWAY_WAIT_MS),
    };
    const list = this.waiting.get(key) ?? [];
    list.push(w);
    this.waiting.set(key, list);
    this.waitingCount++;
    res.on('close', () => {
      if (!res.writableEnded) this.unwait(key, w);
    });
    const verdict = this.backend.onRequest(client, reqId, body);
    if (verdict === 'queued') return;
    const holdMs = verdict === 'not-primary' ? this.backend.takeoverWaitMs() : 0;
    if (holdMs > 0) {
      this.stats.parked++;
      this.parked.push({ client, reqId, body, w, deadlineMs: performance.now() + holdMs });
      return;
    }
    this.refuse(key, w, verdict);
  }

  /** Offers held requests to the node again (after each tick): served if it took over, refused past their deadline. */
  retryParked(): void {
    if (this.parked.length === 0) return;
    const now = performance.now();
    const still: Parked[] = [];
    for (const p of this.parked) {
      const key = `${p.client}:${p.reqId}`;
      if (p.w.res.destroyed || !(this.waiting.get(key) ?? []).includes(p.w)) continue; // gone or timed out
      const verdict = this.backend.onRequest(p.client, p.reqId, p.body);
      if (verdict === 'queued') continue;
      if (verdict === 'not-primary' && now < p.deadlineMs) still.push(p);
      else this.refuse(key, p.w, verdict);
    }
    this.parked = still;
  }

  private refuse(key: string, w: Waiter, verdict: RequestVerdict): void {
    this.unwait(key, w);
    this.stats.refused++;
    this.reply(w.res, 503, verdict, { 'x-understudy-role': this.backend.status().role, 'retry-after': '0' });
  }

  private unwait(key: string, w: Waiter): void {
    clearTimeout(w.timer);
    const list = this.waiting.get(key);
    if (list === undefined) return;
    const i = list.indexOf(w);
    if (i < 0) return;
    list.splice(i, 1);
    this.waitingCount--;
    if (list.length === 0) this.waiting.delete(key);
  }

  private reply(res: http.ServerResponse, code: number, body: string | Uint8Array, headers: Record<string, string>): void {
    if (res.headersSent || res.destroyed) return;
    // An explicit length: no chunked encoding for one small body.
    res.writeHead(code, { 'content-type': 'application/octet-stream', 'content-length': String(typeof body === 'string' ? Buffer.byteLength(body) : body.length), ...headers });
    res.end(body);
  }
}

function idOf(h: string | string[] | undefined): number | null {
  if (typeof h !== 'string' || !/^\d{1,10}$/.test(h)) return null;
  const n = Number(h);
  return n >= 1 && n <= ID_MAX ? n : null;
}
