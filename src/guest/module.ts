// A guest module ready to instantiate: the original bytes (what checkpoints
// name by hash and embed), the rewritten module and its layout. Rewrites are
// cached on disk, keyed by the original's hash, the rewrite version and options.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UnderstudyError } from '../errors.js';
import { REWRITE_VERSION, SAFE_POINT_IMPORTS, rewriteModule, type GuestKind, type GuestLayout, type RewriteOptions } from './rewrite.js';

export interface GuestModule {
  /** The module as the user gave it. */
  original: Uint8Array;
  /** sha256 of `original`, hex: the identity a checkpoint is bound to. */
  sha256: string;
  compiled: WebAssembly.Module;
  layout: GuestLayout;
  /** How the rewrite went: from the cache or freshly made, and its cost. */
  rewrite: { cached: boolean; rewriteMs: number; originalBytes: number; rewrittenBytes: number };
}

export function defaultCacheDir(): string {
  return process.env.UNDERSTUDY_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'understudy');
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface LoadOptions extends RewriteOptions {
  /** Where rewritten modules are cached; null disables the cache. */
  cacheDir?: string | null;
}

/** The cache key covers everything the rewrite depends on, so a changed rewrite never meets a stale entry. */
function cacheKey(sha: string, options: RewriteOptions): string {
  const config = JSON.stringify({ v: REWRITE_VERSION, imports: SAFE_POINT_IMPORTS, kind: options.kind ?? 'auto', optimize: options.optimize ?? true, safePoints: options.safePoints ?? true, ...(options.cdaStores ? { cdaStores: true } : {}) });
  return `${sha}-${sha256Hex(new TextEncoder().encode(config)).slice(0, 16)}`;
}

/** Loads, validates and rewrites a guest module (or takes the rewrite from the cache). */
export async function loadGuestModule(source: Uint8Array | string, options: LoadOptions = {}): Promise<GuestModule> {
  let original: Uint8Array;
  if (typeof source === 'string') {
    try {
      original = new Uint8Array(fs.readFileSync(source));
    } catch (e) {
      throw new UnderstudyError('ERR_MODULE_INVALID', `cannot read module ${source}: ${(e as Error).message}`, { cause: e });
    }
  } else original = source;
  if (!WebAssembly.validate(original as Uint8Array<ArrayBuffer>)) throw new UnderstudyError('ERR_MODULE_INVALID', 'not a valid WebAssembly module');
  const sha256 = sha256Hex(original);
  const cacheDir = options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir;
  const key = cacheKey(sha256, options);
  if (cacheDir) {
    const hit = readCache(cacheDir, key);
    if (hit) {
      return {
        original,
        sha256,
        compiled: await WebAssembly.compile(hit.bytes as Uint8Array<ArrayBuffer>),
        layout: hit.layout,
        rewrite: { cached: true, rewriteMs: 0, originalBytes: original.length, rewrittenBytes: hit.bytes.length },
      };
    }
  }
  const result = rewriteModule(original, options);
  if (cacheDir) writeCache(cacheDir, key, result.bytes, result.layout);
  return {
    original,
    sha256,
    compiled: await WebAssembly.compile(result.bytes as Uint8Array<ArrayBuffer>),
    layout: result.layout,
    rewrite: { cached: false, ...result.stats },
  };
}

function readCache(dir: string, key: string): { bytes: Uint8Array; layout: GuestLayout } | null {
  try {
    const bytes = new Uint8Array(fs.readFileSync(path.join(dir, `${key}.wasm`)));
    const meta = JSON.parse(fs.readFileSync(path.join(dir, `${key}.json`), 'utf8')) as { layout: GuestLayout; sha256: string };
    // The cache is ours but a disk can lie: check the bytes match what was written.
    if (meta.sha256 !== sha256Hex(bytes) || !WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) return null;
    return { bytes, layout: meta.layout };
  } catch {
    return null;
  }
}

function writeCache(dir: string, key: string, bytes: Uint8Array, layout: GuestLayout): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = path.join(dir, `.${key}.${process.pid}.tmp`);
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, path.join(dir, `${key}.wasm`));
    fs.writeFileSync(tmp, JSON.stringify({ sha256: sha256Hex(bytes), layout }));
    fs.renameSync(tmp, path.join(dir, `${key}.json`));
  } catch {
    // A cache that cannot be written only costs time on the next load.
  }
}

export type { GuestKind, GuestLayout };
