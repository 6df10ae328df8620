// The control socket of a running understudy: a Unix socket speaking one JSON
// object per line. `understudy checkpoint --control <sock>` asks for a
// checkpoint; `status` reports what runs. One request per connection.
import fs from 'node:fs';
import net from 'node:net';
import { UnderstudyError } from '../errors.js';

/** A request line longer than this is refused (requests are a few dozen bytes). */
export const CONTROL_LINE_BYTES_MAX = 64 * 1024;
export const CONTROL_TIMEOUT_MS_DEFAULT = 30_000;

export type ControlRequest = { op: 'checkpoint' } | { op: 'status' } | { op: 'export'; guestPath: string; hostDir: string };
export type ControlReply = { ok: true; [k: string]: unknown } | { ok: false; code: string; message: string };

export type ControlHandler = (req: ControlRequest) => Promise<Record<string, unknown>>;

function parseRequest(line: string): ControlRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new UnderstudyError('ERR_CONTROL', 'request is not JSON');
  }
  if (typeof v !== 'object' || v === null) throw new UnderstudyError('ERR_CONTROL', 'request is not an object');
  const op = (v as { op?: unknown }).op;
  if (op === 'checkpoint' || op === 'status') return { op };
  if (op === 'export') {
    const { guestPath, hostDir } = v as { guestPath?: unknown; hostDir?: unknown };
    if (typeof guestPath !== 'string' || typeof hostDir !== 'string' || !guestPath || !hostDir) throw new UnderstudyError('ERR_CONTROL', 'export needs guestPath and hostDir strings');
    return { op, guestPath, hostDir };
  }
  throw new UnderstudyError('ERR_CONTROL', `unknown op ${JSON.stringify(op)}`);
}

export class ControlServer {
  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
  ) {}

  static async listen(socketPath: string, handler: ControlHandler): Promise<ControlServer> {
    // A stale socket from a dead process would make listen fail with EADDRINUSE.
    try {
      if (fs.statSync(socketPath).isSocket()) fs.rmSync(socketPath);
    } catch {
      /* absent */
    }
    const server = net.createServer((conn) => {
      let buf = '';
      conn.setEncoding('utf8');
      conn.on('error', () => conn.destroy());
      conn.on('data', (chunk: string) => {
        buf += chunk;
        if (buf.length > CONTROL_LINE_BYTES_MAX) {
          conn.end(JSON.stringify({ ok: false, code: 'ERR_CONTROL', message: 'request too long' }) + '\n');
          return;
        }
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        conn.pause();
        void (async () => {
          let reply: ControlReply;
          try {
            reply = { ok: true, ...(await handler(parseRequest(line))) };
          } catch (e) {
            const code = e instanceof UnderstudyError ? e.code : 'ERR_CONTROL';
            reply = { ok: false, code, message: e instanceof Error ? e.message : String(e) };
          }
          conn.end(JSON.stringify(reply) + '\n');
        })();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    server.unref();
    return new ControlServer(server, socketPath);
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
    fs.rmSync(this.socketPath, { force: true });
  }
}

/** Sends one request and returns the reply; errors are UnderstudyError('ERR_CONTROL'). */
export function controlRequest(socketPath: string, req: ControlRequest, timeoutMs = CONTROL_TIMEOUT_MS_DEFAULT): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new UnderstudyError('ERR_CONTROL', `no reply from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify(req) + '\n'));
    conn.on('data', (c: string) => {
      buf += c;
      if (buf.length > CONTROL_LINE_BYTES_MAX) conn.destroy(new Error('reply too long'));
    });
    conn.on('error', (e) => {
      clearTimeout(timer);
      reject(new UnderstudyError('ERR_CONTROL', `cannot reach ${socketPath}: ${e.message}`, { cause: e }));
    });
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf.trim()) as ControlReply);
      } catch {
        reject(new UnderstudyError('ERR_CONTROL', 'malformed reply'));
      }
    });
  });
}
