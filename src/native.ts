// The native addon, loaded once. It is built by node-gyp during `npm ci`.
import { createRequire } from 'node:module';
import { UnderstudyError } from './errors.js';

export interface NativeAddon {
  readonly pageBytes: number;
  crc32c(bytes: ArrayBufferView | ArrayBuffer, previous?: number): number;
  backingStore(buffer: ArrayBuffer): { address: bigint; byteLength: number };
  gatherPages(memory: Uint8Array, pageIndices: Uint32Array, packed: Uint8Array): void;
  scatterPages(packed: Uint8Array, pageIndices: Uint32Array, memory: Uint8Array): void;
  nonZeroPages(bytes: Uint8Array): Uint32Array;
  diffPages(a: Uint8Array, b: Uint8Array): Uint32Array;
  readonly uffdBuilt: boolean;
}

function load(): NativeAddon {
  const require = createRequire(import.meta.url);
  // dist/src/native.js -> <package>/build/Release
  const path = new URL('../../build/Release/understudy_native.node', import.meta.url).pathname;
  try {
    return require(path) as NativeAddon;
  } catch (e) {
    throw new UnderstudyError('ERR_NATIVE', `the native addon is not built (${path}); run \`npm ci\` or \`npx node-gyp rebuild\``, { cause: e });
  }
}

export const native: NativeAddon = load();

/** Bytes per tracked page; the kernel's page size, not the 64 KiB wasm page. */
export const PAGE_BYTES = 4096;
if (native.pageBytes !== PAGE_BYTES) throw new Error('native page size disagrees with PAGE_BYTES');
