// Cluster chains in the first FAT (docs/filesystems-ext4-fat.md §9, after Microsoft's FAT32 File
// System Specification 1.03, §4): walked entry by entry from a start cluster, bounded by the
// clusters the file or folder needs, into runs of consecutive clusters.
import type { Bytes } from '../../base/units.js';
import type { ChunkCache } from '../chunk-cache.js';
import type { Bpb, FatType } from './boot-sector.js';

/** The FAT is read in windows of this many bytes, aligned in the volume (FAT16/32 entries never straddle one). */
const FAT_WINDOW: Bytes = 64 * 1024;
/** Entries at or above these end a chain (EOC); the 28 low bits only in FAT32 (§4). */
const EOC: Readonly<Record<FatType, number>> = { fat12: 0xff8, fat16: 0xfff8, fat32: 0x0ffffff8 };

export interface ClusterRun {
  readonly first: number;
  readonly count: number;
}

/**
 * Reads FAT entries. FAT12's (at most 6 KiB) is read whole since its entries straddle bytes;
 * FAT16/32 entries come from the last window read, synchronously while a chain stays in it.
 */
export class FatTable {
  private fat12?: Buffer;
  private window?: { readonly start: Bytes; readonly bytes: Buffer };

  constructor(
    private readonly bpb: Bpb,
    private readonly meta: ChunkCache,
  ) {}

  /** The entry of cluster `n` if the bytes that hold it are at hand, else undefined. */
  private loaded(n: number): number | undefined {
    if (this.bpb.type === 'fat12') {
      if (!this.fat12) return undefined;
      const v = this.fat12.readUInt16LE(Math.floor((n * 3) / 2));
      return n % 2 === 0 ? v & 0xfff : v >> 4;
    }
    const w = this.window;
    const at = this.bpb.fatOffset + n * (this.bpb.type === 'fat16' ? 2 : 4) - (w?.start ?? 0);
    if (!w || at < 0 || at >= w.bytes.length) return undefined;
    return this.bpb.type === 'fat16' ? w.bytes.readUInt16LE(at) : w.bytes.readUInt32LE(at) & 0x0fffffff;
  }

  /** The entry of cluster `n` (2 ≤ n ≤ clusterCount + 1). */
  async entry(n: number): Promise<number> {
    const known = this.loaded(n);
    if (known !== undefined) return known;
    const { type, fatOffset } = this.bpb;
    if (type === 'fat12') {
      this.fat12 = Buffer.from(await this.meta.read(fatOffset, Math.ceil(((this.bpb.clusterCount + 2) * 3) / 2), 'FAT12'));
    } else {
      const at = fatOffset + n * (type === 'fat16' ? 2 : 4);
      const start = at - (at % FAT_WINDOW);
      this.window = { start, bytes: await this.meta.read(start, Math.min(FAT_WINDOW, this.meta.volume.size - start), 'FAT') };
    }
    return this.loaded(n)!;
  }

  /**
   * The chain from `start`: exactly `need` clusters for a file; for a folder (`need` undefined)
   * up to its end, at most `max`. Throws a message on a free, reserved, bad or out-of-range
   * entry, a chain shorter than needed, or one longer than `max` (which a cycle always is).
   */
  async chain(start: number, need: number | undefined, max: number): Promise<ClusterRun[]> {
    const last = this.bpb.clusterCount + 1;
    const runs: ClusterRun[] = [];
    let cur = start;
    for (let n = 1; ; n++) {
      if (cur < 2 || cur > last) throw new Error(`cluster ${cur} in the chain lies outside 2..${last}`);
      if (n > (need ?? max)) throw new Error(`the chain from cluster ${start} runs past ${need ?? max} clusters`);
      const prev = runs[runs.length - 1];
      if (prev && prev.first + prev.count === cur) runs[runs.length - 1] = { first: prev.first, count: prev.count + 1 };
      else runs.push({ first: cur, count: 1 });
      if (n === need) return runs;
      const next = this.loaded(cur) ?? (await this.entry(cur));
      if (next >= EOC[this.bpb.type]) {
        if (need !== undefined) throw new Error(`the chain from cluster ${start} ends after ${n} of ${need} clusters`);
        return runs;
      }
      cur = next;
    }
  }
}
