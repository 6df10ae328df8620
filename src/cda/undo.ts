// Pre-images of image pages, so a commit that changed the image in place can
// be undone when its target refuses it (all or nothing).
import { DELTA_HEADER_BYTES, DELTA_HEADER_OFFSETS, DeltaKind } from '../checkpoint/delta-codec.js';
import { PAGE_BYTES } from '../native.js';

export class PageUndo {
  private pages: number[] = [];
  private data = new Uint8Array(0);

  /** Saves pages `list` of `image` (ascending or not; out-of-range ones are skipped). Reuses its buffer. */
  save(image: Uint8Array, list: ArrayLike<number>): void {
    const slots = image.length / PAGE_BYTES;
    this.pages = [];
    for (let i = 0; i < list.length; i++) if (list[i]! < slots) this.pages.push(list[i]!);
    const bytes = this.pages.length * PAGE_BYTES;
    if (this.data.length < bytes) this.data = new Uint8Array(Math.max(bytes, Math.ceil(this.data.length * 1.25)));
    for (let i = 0; i < this.pages.length; i++) {
      const at = this.pages[i]! * PAGE_BYTES;
      this.data.set(image.subarray(at, at + PAGE_BYTES), i * PAGE_BYTES);
    }
  }

  /** Puts the saved pages back. */
  restore(image: Uint8Array): void {
    for (let i = 0; i < this.pages.length; i++) {
      const at = this.pages[i]! * PAGE_BYTES;
      image.set(this.data.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES), at);
    }
  }

  get savedPages(): number {
    return this.pages.length;
  }
}

/**
 * The page indices a delta (delta-codec.ts format) lists, read without trusting
 * it: the walk stops where the encoding stops making sense (applying it is
 * refused there anyway, with nothing written).
 */
export function deltaPages(delta: Uint8Array): number[] {
  const out: number[] = [];
  if (delta.length < DELTA_HEADER_BYTES) return out;
  const view = new DataView(delta.buffer, delta.byteOffset, delta.byteLength);
  const entries = view.getUint32(DELTA_HEADER_OFFSETS.entryCount, true);
  let at = DELTA_HEADER_BYTES;
  for (let i = 0; i < entries; i++) {
    if (delta.length - at < 5) break;
    out.push(view.getUint32(at, true));
    const kind = delta[at + 4];
    at += 5;
    if (kind === DeltaKind.zero) continue;
    if (kind === DeltaKind.full) {
      at += PAGE_BYTES;
      continue;
    }
    if (kind !== DeltaKind.runs || delta.length - at < 2) break;
    const runs = view.getUint16(at, true);
    at += 2;
    for (let r = 0; r < runs && delta.length - at >= 4; r++) at += 4 + view.getUint16(at + 2, true);
  }
  return out;
}
