// A replicated pair as real processes, for the e2e tests, the fault harness
// and the benchmarks: spawn nodes through the CLI, drive HTTP clients that
// retry with the same ids, inject faults (SIGKILL, SIGSTOP, a link cut through
// a proxy), then count what the acceptance asks for:
//   acknowledged responses lost, effects applied twice, requests left
//   unanswered, outputs released from an unacknowledged epoch.
// Every trial is a function of its seed (the fault's instant, its kind, the
// clients' pacing); wall-clock scheduling still varies, which is the point of
// running on real processes.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { assert } from '../util/assert.js';
import { Prng } from '../util/prng.js';
import { CLI_PATH, tempDir } from './fixtures.js';

/** A spawned node must say it listens within this long. */
export const NODE_READY_MS_MAX = 20_000;
/** Attempts per request before it counts as unanswered. */
export const CLIENT_ATTEMPTS_MAX = 400;
/** Pause between a client's attempts (after a refusal or an error). */
export const CLIENT_RETRY_MS = 15;
/** One HTTP attempt waits at most this long. */
export const CLIENT_ATTEMPT_MS_MAX = 800;

export interface NodeReady {
  node: number;
  pid: number;
  link: number | null;
  serve: number | null;
}

export class SpawnedNode {
  readonly ready: Promise<NodeReady>;
  exited = false;
  constructor(
    readonly proc: ChildProcess,
    readonly name: string,
  ) {
    proc.once('exit', () => (this.exited = true));
    this.ready = new Promise((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`${name} not ready in ${NODE_READY_MS_MAX} ms`)), NODE_READY_MS_MAX);
      proc.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        const nl = buf.indexOf('\n');
        if (nl >= 0 && buf.startsWith('{')) {
          clearTimeout(timer);
          resolve(JSON.parse(buf.slice(0, nl)));
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before ready`));
      });
    });
    this.ready.catch(() => {});
  }
  signal(s: NodeJS.Signals): void {
    if (!this.exited) this.proc.kill(s);
  }
  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill('SIGCONT');
    this.proc.kill('SIGKILL');
    await gone;
  }
}

export interface PairOptions {
  guest: string;
  dir?: string;
  epochMs?: number;
  heartbeatMs?: number;
  primaryTimeoutMs?: number;
  backupTimeoutMs?: number;
  extra?: string[];
}

/** Spawns nodes of one pair, sharing a key and a directory. */
export class Pair {
  readonly dir: string;
  readonly keyFile: string;
  readonly nodes: SpawnedNode[] = [];
  private spawned = 0;
  constructor(readonly o: PairOptions) {
    this.dir = o.dir ?? tempDir('pair');
    this.keyFile = path.join(this.dir, 'key');
    fs.writeFileSync(this.keyFile, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
  }
  private common(id: number): string[] {
    const a = ['--key-file', this.keyFile, '--state-dir', path.join(this.dir, `state-${id}`), '--events', this.eventsFile(id), '--serve', 'http://127.0.0.1:0', '--quiet'];
    const o = this.o;
    if (o.epochMs !== undefined) a.push('--epoch-ms', String(o.epochMs));
    if (o.heartbeatMs !== undefined) a.push('--heartbeat-ms', String(o.heartbeatMs));
    if (o.primaryTimeoutMs !== undefined) a.push('--primary-timeout-ms', String(o.primaryTimeoutMs));
    if (o.backupTimeoutMs !== undefined) a.push('--backup-timeout-ms', String(o.backupTimeoutMs));
    return [...a, ...(o.extra ?? [])];
  }
  eventsFile(id: number): string {
    return path.join(this.dir, `events-${id}.jsonl`);
  }
  private spawnCli(args: string[], name: string): SpawnedNode {
    const err = fs.openSync(path.join(this.dir, `${name}-${++this.spawned}.stderr`), 'w');
    const proc = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', err] });
    fs.closeSync(err);
    const n = new SpawnedNode(proc, name);
    this.nodes.push(n);
    return n;
  }
  backup(id: number): SpawnedNode {
    return this.spawnCli(['backup', '--guest', this.o.guest, '--listen', '127.0.0.1:0', '--node-id', String(id), ...this.common(id)], `backup${id}`);
  }
  /** Listens too, so a replacement for its peer can join it whichever role it holds by then. */
  primary(id: number, backupLinkPort: number): SpawnedNode {
    return this.spawnCli(['primary', this.o.guest, '--backup', `127.0.0.1:${backupLinkPort}`, '--listen', '127.0.0.1:0', '--node-id', String(id), ...this.common(id)], `primary${id}`);
  }
  /** A replacement for a dead node: same id and state dir, dialing the survivor. */
  join(id: number, survivorLinkPort: number): SpawnedNode {
    return this.spawnCli(['backup', '--guest', this.o.guest, '--join', `127.0.0.1:${survivorLinkPort}`, '--node-id', String(id), ...this.common(id)], `join${id}`);
  }
  async stopAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}

// ---- HTTP ----

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export interface HttpAnswer {
  status: number;
  body: string;
  epoch: string | null;
  /** 'acknowledged' or 'unprotected' (released by a primary serving alone). */
  protection: string | null;
  /** The term of the node that released the answer. */
  term: number | null;
}

export function post(port: number, client: number, reqId: number, body: string, timeoutMs = CLIENT_ATTEMPT_MS_MAX): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/', agent, headers: { 'x-client-id': String(client), 'x-request-id': String(reqId) }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            epoch: (res.headers['x-understudy-epoch'] as string | undefined) ?? null,
            protection: (res.headers['x-understudy-protection'] as string | undefined) ?? null,
            term: res.headers['x-understudy-term'] !== undefined ? Number(res.headers['x-understudy-term']) : null,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** A check's request: retried with the same ids (so still one effect) on an error, 503 or 504, for up to `msMax`. */
export async function ask(port: number, client: number, reqId: number, body: string, msMax = ASK_MS_MAX): Promise<HttpAnswer> {
  const t0 = Date.now();
  for (;;) {
    try {
      const a = await post(port, client, reqId, body, Math.max(1, Math.min(ASK_ATTEMPT_MS_MAX, msMax - (Date.now() - t0))));
      if ((a.status !== 503 && a.status !== 504) || Date.now() - t0 >= msMax) return a;
    } catch (e) {
      if (Date.now() - t0 >= msMax) throw e;
    }
    await sleep(CLIENT_RETRY_MS);
  }
}
/** How long a check keeps asking, and one attempt at most (a loaded machine stalls for hundreds of ms). */
export const ASK_MS_MAX = 15_000;
export const ASK_ATTEMPT_MS_MAX = 3_000;

export async function getStatus(port: number): Promise<Record<string, unknown> | null> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/status', agent, timeout: 1000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/** Waits (bounded) until some port's node reports protected primary. */
export async function waitProtected(ports: number[], msMax: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < msMax) {
    for (const p of ports) {
      const s = await getStatus(p);
      if (s !== null && s.role === 'primary' && s.protected === true) return p;
    }
    await sleep(10);
  }
  throw new Error(`no protected primary within ${msMax} ms`);
}

/** Waits (bounded) until the node serving on `port` reports one of `roles`. */
export async function waitRole(port: number, roles: readonly string[], msMax: number): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < msMax) {
    if (roles.includes(String((await getStatus(port))?.role))) return;
    await sleep(5);
  }
  throw new Error(`the node on port ${port} did not become ${roles.join(' or ')} within ${msMax} ms`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- clients ----

/** A request's fate as its client saw it. */
export interface ClientRecord {
  client: number;
  reqId: number;
  body: string;
  answer: HttpAnswer | null;
  attempts: number;
  /** performance.now() of the first send and of the answer. */
  sentMs: number;
  answeredMs: number | null;
}

/** The kvstore workload: odd requests FILL one entry (a counted effect), even ones ask COUNT. */
export function kvRequest(i: number): string {
  return i % 2 === 1 ? 'FILL 1 8' : 'COUNT';
}

/**
 * One client: requests 1..n in order, each retried with the same ids (rotating
 * over the ports) until a 2xx/4xx/500 answer or CLIENT_ATTEMPTS_MAX.
 */
export async function runClient(client: number, n: number, ports: () => number[], body: (i: number) => string, records: ClientRecord[], paceMs = 0, firstId = 1): Promise<void> {
  let turn = 0;
  for (let i = firstId; i < firstId + n; i++) {
    const rec: ClientRecord = { client, reqId: i, body: body(i), answer: null, attempts: 0, sentMs: performance.now(), answeredMs: null };
    records.push(rec);
    while (rec.attempts < CLIENT_ATTEMPTS_MAX) {
      rec.attempts++;
      const ps = ports();
      const port = ps[turn % ps.length]!;
      try {
        const a = await post(port, client, i, rec.body);
        if (a.status === 200 || a.status === 409 || a.status === 500) {
          rec.answer = a;
          rec.answeredMs = performance.now();
          break;
        }
        if (a.status !== 503) turn++; // 504: try the other node too
        else turn++;
      } catch {
        turn++;
      }
      await sleep(CLIENT_RETRY_MS);
    }
    if (paceMs > 0) await sleep(paceMs);
  }
}

// ---- the checker ----

export interface TrialCounts {
  ackedLost: number;
  effectsTwice: number;
  unanswered: number;
  releasedUnacked: number;
}

interface EventLine {
  kind: string;
  node: number;
  term: number;
  epochTerm?: number;
  seq?: number;
  solo?: boolean;
}

function readEvents(file: string): EventLine[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as EventLine];
      } catch {
        return []; // a line cut by SIGKILL
      }
    });
}

/**
 * Counts, from the clients' records, the nodes' event logs and the survivor's
 * answers at the end (`finalCount`: COUNT asked of the survivor by a fresh
 * client; `reasks`: the survivor's recorded answers, asked again with the same ids).
 */
export function checkTrial(records: ClientRecord[], eventFiles: string[], finalCount: number, reasks: Map<string, HttpAnswer>): { counts: TrialCounts; notes: string[] } {
  const notes: string[] = [];
  const counts: TrialCounts = { ackedLost: 0, effectsTwice: 0, unanswered: 0, releasedUnacked: 0 };
  // Outputs released from an unacknowledged epoch: every release (and every answer a client saw)
  // names an epoch some node applied — or, released alone, an epoch its node closed alone in its
  // own term before any backup held a replica of that term (one fault per trial: once a backup
  // synced in a term, nothing in that term may be released without its acknowledgement).
  const applied = new Set<string>();
  const soloClosed = new Set<string>();
  const firstAppliedSeq = new Map<number, number>();
  const releases: EventLine[] = [];
  for (const f of eventFiles) {
    for (const e of readEvents(f)) {
      if (e.kind === 'applied') {
        applied.add(`${e.epochTerm}.${e.seq}`);
        firstAppliedSeq.set(e.epochTerm!, Math.min(firstAppliedSeq.get(e.epochTerm!) ?? Infinity, e.seq!));
      }
      if (e.kind === 'solo') soloClosed.add(`${e.epochTerm}.${e.seq}`);
      if (e.kind === 'solo' && e.epochTerm !== e.term) notes.push(`node ${e.node} closed epoch ${e.epochTerm}.${e.seq} alone in term ${e.term}`);
      if (e.kind === 'release') releases.push(e);
    }
  }
  for (const r of releases) {
    const epoch = `${r.epochTerm}.${r.seq}`;
    if (r.solo === true) {
      if (!soloClosed.has(epoch) || r.epochTerm !== r.term || (firstAppliedSeq.get(r.term) ?? Infinity) < r.seq!) {
        counts.releasedUnacked++;
        notes.push(`node ${r.node} released epoch ${epoch} alone in term ${r.term}, ${soloClosed.has(epoch) ? 'after a backup synced in that term' : 'an epoch no node closed alone'}`);
      }
    } else if (!applied.has(epoch)) {
      counts.releasedUnacked++;
      notes.push(`node ${r.node} released epoch ${epoch}, which no backup applied`);
    }
  }
  for (const rec of records) {
    if (rec.answer === null) {
      counts.unanswered++;
      notes.push(`${rec.client}:${rec.reqId} unanswered after ${rec.attempts} attempts`);
      continue;
    }
    const e = rec.answer.epoch;
    if (e !== null && !(rec.answer.protection === 'unprotected' ? soloClosed.has(e) : applied.has(e))) {
      counts.releasedUnacked++;
      notes.push(`${rec.client}:${rec.reqId} answered (${rec.answer.protection}) from epoch ${e}, which ${rec.answer.protection === 'unprotected' ? 'no node closed alone' : 'no backup applied'}`);
    }
    // An acknowledged answer the survivor does not hold (asked again with the same ids) is lost.
    const again = reasks.get(`${rec.client}:${rec.reqId}`);
    if (again !== undefined && again.status === 200 && (rec.answer.status !== 200 || again.body !== rec.answer.body)) {
      counts.ackedLost++;
      notes.push(`${rec.client}:${rec.reqId} answered ${JSON.stringify(rec.answer.body)}, survivor recorded ${JSON.stringify(again.body)}`);
    }
  }
  // Effects: every FILL issued was answered, so exactly-once means the survivor counts exactly them.
  const fills = records.filter((r) => r.body.startsWith('FILL')).length;
  if (finalCount > fills) {
    counts.effectsTwice += finalCount - fills;
    notes.push(`survivor counts ${finalCount} entries for ${fills} FILL requests`);
  } else if (finalCount < fills) {
    const answered = records.filter((r) => r.body.startsWith('FILL') && r.answer?.status === 200).length;
    counts.ackedLost += Math.min(fills - finalCount, answered);
    notes.push(`survivor counts ${finalCount} entries for ${fills} FILL requests (${answered} acknowledged)`);
  }
  // COUNT answers of one client never go backwards (an acknowledged effect rolled back would).
  const byClient = new Map<number, number>();
  for (const rec of records) {
    if (rec.body !== 'COUNT' || rec.answer?.status !== 200) continue;
    const v = Number(rec.answer.body);
    const prev = byClient.get(rec.client) ?? 0;
    if (v < prev) {
      counts.ackedLost++;
      notes.push(`client ${rec.client} saw COUNT go from ${prev} to ${v}`);
    }
    byClient.set(rec.client, Math.max(prev, v));
  }
  return { counts, notes };
}

// ---- a fault-injecting TCP proxy ----

/** Connections the proxy holds at once. */
export const PROXY_CONNECTIONS_MAX = 16;

/** Forwards 127.0.0.1:port to a target; cut() drops every connection and refuses new ones until heal(). */
export class FaultProxy {
  private server: net.Server | null = null;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private cutUntil = false;
  port = 0;
  constructor(private readonly targetPort: number) {}
  async start(): Promise<number> {
    const server = net.createServer((a) => {
      if (this.cutUntil || this.pairs.size >= PROXY_CONNECTIONS_MAX) {
        a.destroy();
        return;
      }
      const b = net.connect({ host: '127.0.0.1', port: this.targetPort });
      const pair: [net.Socket, net.Socket] = [a, b];
      this.pairs.add(pair);
      const end = () => {
        a.destroy();
        b.destroy();
        this.pairs.delete(pair);
      };
      a.on('error', end).on('close', end);
      b.on('error', end).on('close', end);
      a.pipe(b);
      b.pipe(a);
    });
    this.server = server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }
  cut(): void {
    this.cutUntil = true;
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }
  heal(): void {
    this.cutUntil = false;
  }
  close(): void {
    this.cut();
    this.server?.close();
    this.server = null;
  }
}

// ---- one trial ----

export type FaultKind = 'kill' | 'stop' | 'cut';

export interface TrialOptions {
  seed: number;
  guest: string;
  kinds?: readonly FaultKind[];
  clients?: number;
  requestsPerClient?: number;
  epochMs?: number;
  heartbeatMs?: number;
  primaryTimeoutMs?: number;
  backupTimeoutMs?: number;
  dir?: string;
}

export interface TrialResult {
  seed: number;
  kind: FaultKind;
  faultAtRequest: number;
  counts: TrialCounts;
  notes: string[];
  requests: number;
  /** ms from the fault to the first answer released by the new primary (kill only). */
  failoverMs: number | null;
  /** That answer's x-understudy-protection. */
  failoverProtection: string | null;
  /** performance.timeOrigin + performance.now() of the fault (compare with the event logs' wall). */
  faultWallMs: number | null;
  /** The node the fault hit (the primary then: 2 if a stall had already made the backup take over). */
  faultNode: number;
  dir: string;
}

/**
 * One seeded trial: a pair under client load, one fault on the primary at a
 * seeded instant, re-protection, the clients finish, then the counts.
 */
export async function runTrial(o: TrialOptions): Promise<TrialResult> {
  const rng = new Prng(o.seed);
  const kinds = o.kinds ?? ['kill', 'stop', 'cut'];
  const kind = rng.pick(kinds);
  const clients = o.clients ?? 4;
  const perClient = o.requestsPerClient ?? 30;
  const total = clients * perClient;
  const faultAtRequest = Math.floor(total * (0.15 + 0.5 * rng.next()));
  const jitterMs = rng.next() * (o.epochMs ?? 20);
  const heartbeatMs = o.heartbeatMs ?? 20;
  const primaryTimeoutMs = o.primaryTimeoutMs ?? 150;
  const pair = new Pair({ guest: o.guest, dir: o.dir, epochMs: o.epochMs, heartbeatMs, primaryTimeoutMs, backupTimeoutMs: o.backupTimeoutMs ?? Math.min(primaryTimeoutMs, 3 * heartbeatMs + 60) });
  let proxy: FaultProxy | null = null;
  const records: ClientRecord[] = [];
  let failoverMs: number | null = null;
  let failoverProtection: string | null = null;
  let faultWallMs: number | null = null;
  try {
    const b = pair.backup(2);
    const bReady = await b.ready;
    proxy = new FaultProxy(bReady.link!);
    const viaPort = kind === 'cut' ? await proxy.start() : bReady.link!;
    const p = pair.primary(1, viaPort);
    const pReady = await p.ready;
    let ports = [pReady.serve!, bReady.serve!];
    await waitProtected([pReady.serve!], NODE_READY_MS_MAX);
    const nodes = [
      { id: 1, proc: p, ready: pReady },
      { id: 2, proc: b, ready: bReady },
    ];
    let faultAt = 0;
    let faultTerm = 0;
    let faultNode = 1;
    const load = Array.from({ length: clients }, (_, k) => runClient(k + 1, perClient, () => ports, kvRequest, records));
    // The fault, at a seeded point of the load.
    const fault = (async () => {
      while (records.filter((r) => r.answer !== null).length < faultAtRequest) await sleep(1);
      await sleep(jitterMs);
      // The fault hits whichever node is primary now: on a loaded machine a stall past the timeouts
      // can have made the backup take over already (a false failover, which is safe but swaps roles).
      const st = await Promise.all(nodes.map((n) => getStatus(n.ready.serve!)));
      const at = Math.max(0, st.findIndex((x) => x?.role === 'primary'));
      const target = nodes[at]!;
      const survivor = nodes[1 - at]!;
      faultTerm = Number(st[at]?.term ?? 2);
      faultNode = target.id;
      faultAt = performance.now();
      if (kind === 'kill') {
        target.proc.signal('SIGKILL');
        // A supervisor starts a replacement once the survivor holds the service (starting it at once
        // would compete for the CPU with the takeover on a small machine).
        await waitRole(survivor.ready.serve!, ['primary', 'deposed'], NODE_READY_MS_MAX);
        const j = pair.join(target.id, survivor.ready.link!);
        const jr = await j.ready;
        ports = [survivor.ready.serve!, jr.serve!];
      } else if (kind === 'stop') {
        target.proc.signal('SIGSTOP');
        await sleep(primaryTimeoutMs * 2 + rng.int(0, 100));
        target.proc.signal('SIGCONT');
      } else {
        proxy!.cut();
        await sleep(primaryTimeoutMs * 2 + rng.int(0, 100));
        proxy!.heal();
      }
    })();
    await Promise.all([...load, fault]);
    if (kind === 'kill') {
      const first = records.filter((r) => r.answeredMs !== null && r.answeredMs > faultAt && (r.answer?.term ?? 0) > faultTerm);
      if (first.length > 0) {
        const f = first.reduce((a, b) => (b.answeredMs! < a.answeredMs! ? b : a));
        failoverMs = f.answeredMs! - faultAt;
        failoverProtection = f.answer!.protection;
        faultWallMs = performance.timeOrigin + faultAt;
      }
    }
    // The survivor's view: a fresh client asks COUNT; each client's last answers are asked again.
    const survivor = await waitProtected(ports, 10_000);
    const countRecs: ClientRecord[] = [];
    await runClient(1_000_000, 1, () => [survivor], () => 'COUNT', countRecs);
    const finalCount = Number(countRecs[0]?.answer?.body ?? NaN);
    const reasks = new Map<string, HttpAnswer>();
    for (const rec of records) {
      if (rec.reqId <= perClient - 12) continue;
      // Asked like any client asks: a slow or refused attempt (the machine may stall) is retried with the same ids.
      const again: ClientRecord[] = [];
      await runClient(rec.client, 1, () => [survivor], () => rec.body, again, 0, rec.reqId);
      if (again[0]?.answer) reasks.set(`${rec.client}:${rec.reqId}`, again[0].answer);
    }
    const { counts, notes } = checkTrial(records, [pair.eventsFile(1), pair.eventsFile(2)], finalCount, reasks);
    return { seed: o.seed, kind, faultAtRequest, counts, notes, requests: records.length, failoverMs, failoverProtection, faultWallMs, faultNode, dir: pair.dir };
  } finally {
    proxy?.close();
    await pair.stopAll();
  }
}

export function sumCounts(rs: readonly TrialResult[]): TrialCounts {
  const c: TrialCounts = { ackedLost: 0, effectsTwice: 0, unanswered: 0, releasedUnacked: 0 };
  for (const r of rs) for (const k of Object.keys(c) as (keyof TrialCounts)[]) c[k] += r.counts[k];
  return c;
}

assert(CLIENT_RETRY_MS > 0 && CLIENT_ATTEMPTS_MAX * CLIENT_RETRY_MS >= 5000, 'a client retries for longer than a failover takes');
