// Input sources for a guest's stdin (the WASI InputSource interface).
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { InputSource } from '../wasi/index.js';

/** A fixed byte string, then end of input. */
export class BytesInput implements InputSource {
  private at = 0;
  constructor(private readonly bytes: Uint8Array) {}
  read(maxBytes: number): Uint8Array | null {
    if (this.at >= this.bytes.length) return null;
    const out = this.bytes.subarray(this.at, this.at + maxBytes);
    this.at += out.length;
    return out;
  }
  whenReadable(): Promise<void> {
    return Promise.resolve();
  }
  readSync(maxBytes: number): Uint8Array | null {
    return this.read(maxBytes);
  }
}

/** Bounded read-ahead of a stream: past this the stream is paused (back-pressure). */
const STREAM_BUFFER_BYTES_MAX = 1 << 20;

/** A Node stream (process.stdin by default), read asynchronously with back-pressure. Optionally skips a prefix already consumed by an earlier run. */
export class StreamInput implements InputSource {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private started = false;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly stream: Readable = process.stdin,
    private skipBytes = 0,
    private readonly fd: number | null = stream === process.stdin ? 0 : null,
  ) {}

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.stream.on('data', (c: Buffer) => {
      if (this.skipBytes > 0) {
        const skip = Math.min(this.skipBytes, c.length);
        this.skipBytes -= skip;
        c = c.subarray(skip);
      }
      if (c.length === 0) return;
      this.chunks.push(c);
      this.buffered += c.length;
      if (this.buffered >= STREAM_BUFFER_BYTES_MAX) this.stream.pause();
      this.wake();
    });
    this.stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.stream.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  read(maxBytes: number): Uint8Array | null | 'empty' {
    this.start();
    if (this.chunks.length === 0) return this.ended ? null : 'empty';
    const head = this.chunks[0]!;
    const out = head.subarray(0, maxBytes);
    if (out.length === head.length) this.chunks.shift();
    else this.chunks[0] = head.subarray(out.length);
    this.buffered -= out.length;
    if (this.buffered < STREAM_BUFFER_BYTES_MAX / 2) this.stream.resume();
    return out;
  }

  whenReadable(): Promise<void> {
    this.start();
    if (this.chunks.length > 0 || this.ended) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  readSync(maxBytes: number): Uint8Array | null {
    if (this.started || this.fd === null) {
      const r = this.read(maxBytes);
      return r === 'empty' ? new Uint8Array(0) : r;
    }
    const buf = Buffer.alloc(maxBytes);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.fd, buf, 0, maxBytes, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        if ((e as NodeJS.ErrnoException).code === 'EOF') return null;
        throw e;
      }
      if (n === 0) return null;
      if (this.skipBytes > 0) {
        const skip = Math.min(this.skipBytes, n);
        this.skipBytes -= skip;
        if (skip === n) continue;
        return buf.subarray(skip, n);
      }
      return buf.subarray(0, n);
    }
  }
}
