// The primary's side of the backup link (it runs on the commit worker): a
// request gets its answer, or ERR_CDA_IO once `timeoutMs` has passed. A
// backup that is not reachable (refused, a handshake that fails, a connection
// that breaks before the answer) is redialled and asked again until then.
// Asking again is safe: a fetch changes nothing, and a commit the backup did
// apply before the connection broke is refused as a delta (the backup already
// holds its cycle, not its parent) and then sent whole, which replaces the
// cycle with the same bytes.
import net from 'node:net';
import { compress, decompress } from '../checkpoint/compress.js';
import { isUnderstudyError, type UnderstudyError } from '../errors.js';
import type { Address } from '../replicate/process/link.js';
import { assert } from '../util/assert.js';
import { cdaError } from './codes.js';
import { CDA_RECORD_RAW_BYTES_MAX } from './disk.js';
import { CdaChannel, linkFailure, type CdaMessage } from './link.js';
import { applyRecord, decodeRecord, emptyState, type CommittedState } from './record.js';

/** How long a commit (or the first fetch) waits for the backup before it fails with ERR_CDA_IO. */
export const CDA_BACKUP_TIMEOUT_MS_DEFAULT = 5000;
/** Wait between attempts to reach a backup that is not there yet. */
export const CDA_REDIAL_MS = 50;

type Request = { t: 'fetch' } | { t: 'commit'; cycle: number; parent: number; stored: Uint8Array; raw: number };
type Attempt = { ok: true; reply: CdaMessage } | { ok: false; error: UnderstudyError; timedOut: boolean };

export interface BackupClientOptions {
  address: Address;
  key: Uint8Array;
  timeoutMs?: number;
}

export class CdaBackupClient {
  private channel: CdaChannel | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, { channel: CdaChannel; done: (a: Attempt) => void }>();
  private closed = false;
  readonly stats = { requests: 0, redials: 0, fullResyncs: 0, bytesSent: 0 };

  constructor(private readonly o: BackupClientOptions) {}

  private get where(): string {
    return `${this.o.address.host}:${this.o.address.port}`;
  }

  private dial(): CdaChannel {
    const socket = net.connect({ host: this.o.address.host, port: this.o.address.port });
    const channel: CdaChannel = new CdaChannel(socket, this.o.key, 'primary', {
      onMessage: (m) => {
        const w = 'id' in m ? this.waiting.get(m.id) : undefined;
        if (!w || w.channel !== channel) return channel.fail(cdaError('ERR_CDA_PROTOCOL', `an answer nobody waits for (${m.t})`));
        this.waiting.delete((m as { id: number }).id);
        w.done({ ok: true, reply: m });
      },
      onClose: (error) => {
        if (this.channel === channel) this.channel = null;
        for (const [id, w] of this.waiting) {
          if (w.channel !== channel) continue;
          this.waiting.delete(id);
          w.done({ ok: false, error: linkFailure(error, `backup ${this.where}`), timedOut: false });
        }
      },
      onFrameSent: (f) => {
        this.stats.bytesSent += f.length;
      },
    });
    this.channel = channel;
    return channel;
  }

  private attempt(r: Request, ms: number): Promise<Attempt> {
    const channel = this.channel && !this.channel.isClosed ? this.channel : this.dial();
    const id = this.nextId++;
    return new Promise<Attempt>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        // A late answer must not meet the next request: this connection is done.
        channel.close();
        resolve({ ok: false, error: cdaError('ERR_CDA_IO', `backup ${this.where}: no answer in time`), timedOut: true });
      }, ms);
      this.waiting.set(id, {
        channel,
        done: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
      });
      channel.send({ ...r, id } as CdaMessage);
    });
  }

  private async request(r: Request): Promise<CdaMessage> {
    if (this.closed) throw cdaError('ERR_CDA_IO', 'the backup link is closed');
    this.stats.requests++;
    const timeoutMs = this.o.timeoutMs ?? CDA_BACKUP_TIMEOUT_MS_DEFAULT;
    const deadline = performance.now() + timeoutMs;
    let last: UnderstudyError | null = null;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0 || this.closed) {
        throw cdaError('ERR_CDA_IO', `the backup at ${this.where} did not answer within ${timeoutMs} ms${last ? ` (${last.message})` : ''}`, last ? { cause: last } : undefined);
      }
      const a = await this.attempt(r, left);
      if (a.ok) return a.reply;
      if (a.timedOut) {
        throw cdaError('ERR_CDA_IO', `the backup at ${this.where} did not answer within ${timeoutMs} ms${last ? ` (before: ${last.message})` : ''}`, { cause: last ?? a.error });
      }
      last = a.error;
      this.stats.redials++;
      await new Promise((resolve) => setTimeout(resolve, Math.min(CDA_REDIAL_MS, Math.max(0, deadline - performance.now()))));
    }
  }

  /** The backup's committed state (cycle 0 when it holds nothing). */
  async fetch(alloc?: (bytes: number) => Uint8Array): Promise<CommittedState> {
    const m = await this.request({ t: 'fetch' });
    if (m.t !== 'state') throw cdaError('ERR_CDA_IO', `backup ${this.where} answered a fetch with ${m.t}`);
    if (m.cycle === 0) return emptyState();
    try {
      if (m.raw > CDA_RECORD_RAW_BYTES_MAX) throw cdaError('ERR_CDA_RECORD', `a state of ${m.raw} bytes`);
      const record = decodeRecord(decompress(m.stored, m.raw));
      if (record.kind !== 'full' || record.cycle !== m.cycle) throw cdaError('ERR_CDA_RECORD', `the state is not the full image of cycle ${m.cycle}`);
      return applyRecord(emptyState(), record, alloc);
    } catch (e) {
      if (!isUnderstudyError(e)) throw e;
      throw cdaError('ERR_CDA_IO', `backup ${this.where} sent a state that does not hold: ${e.message}`, { cause: e });
    }
  }

  /**
   * Commits `cycle` (a delta over `parent`) and resolves once the backup
   * acknowledged it. A backup that holds another cycle than `parent` gets the
   * full record from `full()` instead. Returns the bytes sent and whether it was full.
   */
  async commit(cycle: number, parent: number, raw: Uint8Array, full: () => Uint8Array): Promise<{ storedBytes: number; full: boolean }> {
    assert(cycle === parent + 1);
    const stored = compress(raw);
    let m = await this.request({ t: 'commit', cycle, parent, stored, raw: raw.length });
    let storedBytes = stored.length;
    let sentFull = false;
    if (m.t === 'nack' && m.code === 'ERR_CDA_RECORD' && m.have !== parent) {
      // The backup missed or holds an outcome we do not (a commit that failed here after it reached the backup).
      const fullRaw = full();
      const fullStored = compress(fullRaw);
      this.stats.fullResyncs++;
      m = await this.request({ t: 'commit', cycle, parent, stored: fullStored, raw: fullRaw.length });
      storedBytes += fullStored.length;
      sentFull = true;
    }
    if (m.t === 'ack' && m.cycle === cycle) return { storedBytes, full: sentFull };
    if (m.t === 'nack') throw cdaError('ERR_CDA_IO', `backup ${this.where} refused cycle ${cycle}: ${m.code}: ${m.message}`);
    throw cdaError('ERR_CDA_IO', `backup ${this.where} answered cycle ${cycle} with ${m.t}`);
  }

  close(): void {
    this.closed = true;
    this.channel?.close();
    this.channel = null;
  }
}
