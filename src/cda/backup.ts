// The CDA backup: holds the areas of a primary as of its last committed cycle,
// and hands them to a restarted (or new) primary. A commit is applied only
// when all of it arrived, authenticated, decoded and validated, and it is
// acknowledged (with its cycle number) only after it is applied — and, with a
// directory, written to the commit log and fsync'd (disk.ts).
//
// Recovery is a fetch: the new primary connects and asks for the state, then
// continues the cycle numbers from it. The backup never runs the application
// itself: it holds bytes, not a program.
//
// One primary at a time: the connection that last sent an authenticated
// request is the primary's; an older one is closed.
import net from 'node:net';
import { compress, decompress } from '../checkpoint/compress.js';
import { isUnderstudyError, type UnderstudyError } from '../errors.js';
import { KEY_BYTES } from '../replicate/frame.js';
import type { Address } from '../replicate/process/link.js';
import { cdaError } from './codes.js';
import { CDA_RECORD_RAW_BYTES_MAX, CdaLog } from './disk.js';
import { CDA_AREA_BYTES_LIMIT, sameLayout } from './layout.js';
import { CdaChannel, type CdaMessage } from './link.js';
import { applyRecord, decodeRecord, emptyState, encodeRecord, type CdaRecord, type CommittedState } from './record.js';
import { deltaPages, PageUndo } from './undo.js';

/** Connections not yet authenticated; the oldest is closed past this. */
export const CDA_PENDING_CONNECTIONS_MAX = 4;

export interface CdaBackupOptions {
  listen: Address;
  key: Uint8Array;
  /** Keep the committed cycles on disk too (survives a restart of the backup). */
  dir?: string;
  areaBytesMax?: number;
  log?: (line: string) => void;
}

export interface CdaBackupStats {
  connections: number;
  /** Connections closed because a frame did not open (wrong key, replay, tampering) or broke the protocol. */
  refused: number;
  commits: number;
  fullCommits: number;
  nacks: number;
  fetches: number;
}

export class CdaBackupServer {
  private state: CommittedState;
  private owner: CdaChannel | null = null;
  private readonly channels = new Set<CdaChannel>();
  private readonly undo = new PageUndo();
  readonly stats: CdaBackupStats = { connections: 0, refused: 0, commits: 0, fullCommits: 0, nacks: 0, fetches: 0 };
  /** The last reason a connection was refused (tests, logs). */
  lastRefusal: UnderstudyError | null = null;
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly options: CdaBackupOptions,
    private readonly log: CdaLog | null,
  ) {
    this.state = log ? log.recovery.state : emptyState();
  }

  static async start(options: CdaBackupOptions): Promise<CdaBackupServer> {
    if (options.key.length !== KEY_BYTES) throw cdaError('ERR_CDA_CONFIG', `the pre-shared key must be ${KEY_BYTES} bytes`);
    const log = options.dir !== undefined ? CdaLog.open(options.dir) : null;
    const stop = log?.recovery.stop;
    if (stop) options.log?.(`commit log: ${stop.code}: ${stop.message}; recovered cycle ${log!.recovery.state.cycle}`);
    const server = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.listen.port, options.listen.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      log?.close();
      throw cdaError('ERR_CDA_IO', `cannot listen on ${options.listen.host}:${options.listen.port}: ${(e as Error).message}`, { cause: e });
    }
    const backup = new CdaBackupServer(server, (server.address() as net.AddressInfo).port, options, log);
    server.on('connection', (s) => backup.accepted(s));
    return backup;
  }

  /** The committed state held (cycle, layout, image). Read only. */
  get committed(): Readonly<CommittedState> {
    return this.state;
  }

  private accepted(socket: net.Socket): void {
    this.stats.connections++;
    const channel: CdaChannel = new CdaChannel(socket, this.options.key, 'backup', {
      onMessage: (m) => this.onMessage(channel, m),
      onClose: (error) => {
        this.channels.delete(channel);
        if (this.owner === channel) this.owner = null;
        if (error && error.code !== 'ERR_CDA_IO') {
          this.stats.refused++;
          this.lastRefusal = error;
          this.options.log?.(`closed a connection: ${error.code}: ${error.message}`);
        }
      },
    });
    this.channels.add(channel);
    const unauthenticated = [...this.channels].filter((c) => !c.authenticated);
    if (unauthenticated.length > CDA_PENDING_CONNECTIONS_MAX) unauthenticated[0]!.close();
  }

  private onMessage(c: CdaChannel, m: CdaMessage): void {
    if (this.owner !== c) {
      this.owner?.close();
      this.owner = c;
    }
    switch (m.t) {
      case 'fetch':
        this.stats.fetches++;
        c.send(this.stateMessage(m.id));
        return;
      case 'commit':
        c.send(this.commit(m));
        return;
      default:
        c.fail(cdaError('ERR_CDA_PROTOCOL', `a ${m.t} message sent to a backup`));
    }
  }

  private stateMessage(id: number): CdaMessage {
    if (this.state.cycle === 0) return { t: 'state', id, cycle: 0, stored: new Uint8Array(0), raw: 0 };
    const raw = encodeRecord({ kind: 'full', cycle: this.state.cycle, layout: this.state.layout, image: this.state.image });
    return { t: 'state', id, cycle: this.state.cycle, stored: compress(raw), raw: raw.length };
  }

  private commit(m: Extract<CdaMessage, { t: 'commit' }>): CdaMessage {
    const nack = (e: UnderstudyError): CdaMessage => {
      this.stats.nacks++;
      return { t: 'nack', id: m.id, code: e.code, message: e.message, have: this.state.cycle };
    };
    let record: CdaRecord;
    try {
      if (m.raw > CDA_RECORD_RAW_BYTES_MAX) throw cdaError('ERR_CDA_RECORD', `a record of ${m.raw} bytes`);
      record = decodeRecord(decompress(m.stored, m.raw), this.options.areaBytesMax ?? CDA_AREA_BYTES_LIMIT);
    } catch (e) {
      if (!isUnderstudyError(e)) throw e;
      return nack(e.code === 'ERR_CDA_RECORD' ? e : cdaError('ERR_CDA_RECORD', e.message, { cause: e }));
    }
    if (record.cycle !== m.cycle) return nack(cdaError('ERR_CDA_RECORD', `record of cycle ${record.cycle} in a commit of cycle ${m.cycle}`));
    if (record.kind === 'delta' && (m.parent !== this.state.cycle || m.cycle !== m.parent + 1)) {
      return nack(cdaError('ERR_CDA_RECORD', `a delta for cycle ${m.cycle} after ${m.parent}; this backup holds cycle ${this.state.cycle}`));
    }
    const inPlace = record.kind === 'delta' && sameLayout(record.layout, this.state.layout);
    if (record.kind === 'delta' && inPlace) this.undo.save(this.state.image, deltaPages(record.delta));
    let next: CommittedState;
    try {
      next = applyRecord(this.state, record);
    } catch (e) {
      if (!isUnderstudyError(e)) throw e;
      return nack(e);
    }
    try {
      if (this.log) {
        if (record.kind === 'delta') this.log.appendStored(m.cycle, m.stored, m.raw);
        else this.log.writeBase(next);
      }
    } catch (e) {
      if (inPlace) this.undo.restore(this.state.image);
      if (!isUnderstudyError(e)) throw e;
      return nack(e);
    }
    this.state = next;
    this.stats.commits++;
    if (record.kind === 'full') this.stats.fullCommits++;
    // Compaction after the ack is on its way: it is not part of the commit.
    if (this.log?.compactionDue) setImmediate(() => this.compact());
    return { t: 'ack', id: m.id, cycle: m.cycle };
  }

  private compact(): void {
    if (this.closed || !this.log?.compactionDue) return;
    try {
      this.log.writeBase(this.state);
    } catch (e) {
      this.options.log?.(`compaction failed (the log keeps growing): ${(e as Error).message}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.channels) c.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.log?.close();
  }
}
