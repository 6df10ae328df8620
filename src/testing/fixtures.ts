// Helpers shared by tests: where the example guests are, temp dirs, and
// small guests compiled from C on the spot for one test.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI_PATH = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

export function guestPath(name: string): string {
  const p = path.join(PACKAGE_ROOT, 'guests', 'out', `${name}.wasm`);
  if (!fs.existsSync(p)) throw new Error(`example guest ${name} is not built; run ./scripts/setup`);
  return p;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `us-${prefix}-`));
}

/** Compiles a C source to a WASI command module (clang from Debian, as scripts/setup installs). */
export function compileC(source: string, extraFlags: string[] = []): Uint8Array {
  const dir = tempDir('cc');
  const src = path.join(dir, 'main.c');
  const out = path.join(dir, 'main.wasm');
  fs.writeFileSync(src, source);
  execFileSync('clang', ['--target=wasm32-wasi', '-O2', '-o', out, src, ...extraFlags], { stdio: ['ignore', 'ignore', 'pipe'] });
  const bytes = new Uint8Array(fs.readFileSync(out));
  fs.rmSync(dir, { recursive: true, force: true });
  return bytes;
}
