// Durable numbers of a replica (NodeStorage) in one small file, and the
// pre-shared key. Each set() is durable when it returns: the file is written
// beside, fsync'd, renamed over the old one, and the directory fsync'd.
import fs from 'node:fs';
import path from 'node:path';
import { replicateError } from '../codes.js';
import { STORAGE_KEYS, type NodeStorage, type StorageKey } from '../env.js';
import { KEY_BYTES } from '../frame.js';

export const STATE_FILE = 'replica-state.json';
/** The state file is a handful of numbers; anything larger is not ours. */
const STATE_FILE_BYTES_MAX = 4096;
/** The environment variable a key may come from (64 hex digits). */
export const KEY_ENV = 'UNDERSTUDY_REPL_KEY';

export class FileStorage implements NodeStorage {
  private readonly values: Partial<Record<StorageKey, number>> = {};
  private readonly file: string;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, STATE_FILE);
    if (!fs.existsSync(this.file)) return;
    const bytes = fs.readFileSync(this.file);
    if (bytes.length > STATE_FILE_BYTES_MAX) throw replicateError('ERR_REPL_CONFIG', `${this.file} is larger than a state file can be`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw replicateError('ERR_REPL_CONFIG', `${this.file} is not a replica state file`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw replicateError('ERR_REPL_CONFIG', `${this.file} is not a replica state file`);
    for (const [k, v] of Object.entries(parsed)) {
      if (!(STORAGE_KEYS as readonly string[]).includes(k) || !Number.isSafeInteger(v) || (v as number) < 0) throw replicateError('ERR_REPL_CONFIG', `${this.file}: ${k} is not a stored number`);
      this.values[k as StorageKey] = v as number;
    }
  }

  get(key: StorageKey): number | undefined {
    return this.values[key];
  }

  set(key: StorageKey, value: number): void {
    this.values[key] = value;
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, JSON.stringify(this.values));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    const dfd = fs.openSync(this.dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  }
}

/** A 32-byte key: a file of 32 raw bytes or 64 hex digits, else $UNDERSTUDY_REPL_KEY (hex). */
export function loadKey(keyFile: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): Uint8Array {
  let text: string | undefined;
  if (keyFile !== undefined) {
    const raw = fs.readFileSync(keyFile);
    if (raw.length === KEY_BYTES) return new Uint8Array(raw);
    text = raw.toString('utf8').trim();
  } else {
    text = env[KEY_ENV];
    if (text === undefined) throw replicateError('ERR_REPL_CONFIG', `no key: give --key-file or set ${KEY_ENV}`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw replicateError('ERR_REPL_CONFIG', `the key must be ${KEY_BYTES} bytes or ${KEY_BYTES * 2} hex digits`);
  return new Uint8Array(Buffer.from(text, 'hex'));
}
