// Which 4 KiB granules of a writer's view its overlay holds (docs/overlays.md §2): one bit each,
// in chunks allocated when first written, so the memory follows what was written, not the disk's size.
import { Bitset } from '../base/bitset.js';

/** Granules per chunk: 4 KiB of bits stand for 128 MiB of the view. */
const CHUNK_GRANULES = 32768;

export class WrittenGranules {
  private readonly chunks = new Map<number, Bitset>();

  has(g: number): boolean {
    return this.chunks.get(Math.floor(g / CHUNK_GRANULES))?.has(g % CHUNK_GRANULES) ?? false;
  }

  /** How many of [from, to) are not written yet. */
  missing(from: number, to: number): number {
    let n = 0;
    for (let g = from; g < to; g++) if (!this.has(g)) n++;
    return n;
  }

  /** Marks [from, to). */
  mark(from: number, to: number): void {
    for (let g = from; g < to; ) {
      const c = Math.floor(g / CHUNK_GRANULES);
      const end = Math.min(to, (c + 1) * CHUNK_GRANULES);
      let bits = this.chunks.get(c);
      if (!bits) this.chunks.set(c, (bits = new Bitset(CHUNK_GRANULES)));
      bits.setRange(g - c * CHUNK_GRANULES, end - c * CHUNK_GRANULES);
      g = end;
    }
  }
}
