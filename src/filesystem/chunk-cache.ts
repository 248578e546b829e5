// Metadata of a volume (inode tables, extent nodes, FATs, folders) read in large aligned chunks
// into a bounded LRU cache, so a walk of many small records makes few reads and memory stays
// bounded whatever the volume's size (issue 22).
import { LRUCache } from 'lru-cache';
import type { Bytes } from '../base/units.js';
import { CorruptVolumeError, type Volume } from './volume-fs.js';

export class ChunkCache {
  private readonly chunks: LRUCache<number, Buffer>;
  private readonly pending = new Map<number, Promise<Buffer>>();

  constructor(
    readonly volume: Volume,
    private readonly chunkBytes: Bytes,
    maxChunks: number,
  ) {
    this.chunks = new LRUCache({ max: maxChunks });
  }

  /** The bytes if the one chunk they lie in is cached; else undefined (also for a range outside the volume: read() says why). */
  peek(offset: Bytes, length: number): Buffer | undefined {
    const first = Math.floor(offset / this.chunkBytes);
    if (Math.floor((offset + length - 1) / this.chunkBytes) !== first || length === 0) return undefined;
    const chunk = this.chunks.get(first);
    if (!chunk) return undefined;
    const at = offset - first * this.chunkBytes;
    return at + length <= chunk.length ? chunk.subarray(at, at + length) : undefined;
  }

  /** `length` bytes at `offset` (a view into the cache when they lie in one chunk). */
  async read(offset: Bytes, length: number, what: string): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.volume.size) {
      throw new CorruptVolumeError(this.volume, `${what}: ${length} bytes at byte ${offset} lie outside the ${this.volume.size}-byte volume`);
    }
    const hit = this.peek(offset, length);
    if (hit) return hit;
    const first = Math.floor(offset / this.chunkBytes);
    const last = Math.floor((offset + Math.max(length, 1) - 1) / this.chunkBytes);
    const parts: Buffer[] = [];
    for (let c = first; c <= last; c++) parts.push(await this.chunk(c));
    const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const at = offset - first * this.chunkBytes;
    return all.subarray(at, at + length);
  }

  private chunk(index: number): Promise<Buffer> {
    const cached = this.chunks.get(index);
    if (cached) return Promise.resolve(cached);
    let p = this.pending.get(index);
    if (!p) {
      const start = index * this.chunkBytes;
      p = this.volume.read(start, Math.min(this.chunkBytes, this.volume.size - start)).then(
        (b) => {
          this.pending.delete(index);
          this.chunks.set(index, b);
          return b;
        },
        (e: unknown) => {
          this.pending.delete(index);
          throw e;
        },
      );
      this.pending.set(index, p);
    }
    return p;
  }
}
