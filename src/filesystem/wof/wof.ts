// The bytes of a WOF-compressed file: its WofCompressedData stream read chunk by chunk, the
// chunk offsets and chunks read on demand, decoded chunks kept in a bounded cache
// (docs/filesystems-wof.md §2, §4).
import { LRUCache } from 'lru-cache';
import type { Bytes } from '../../base/units.js';
import { CorruptVolumeError, type FileData, type Volume } from '../volume-fs.js';
import { CorruptDataError } from './corrupt-data.js';
import { decompressLzx } from './lzx.js';
import type { WofAlgorithm } from './wof-reparse.js';
import { decompressXpressHuffman } from './xpress-huffman.js';

export { IO_REPARSE_TAG_WOF, parseWofReparse, type WofAlgorithm } from './wof-reparse.js';

/** The WofCompressedData stream, as the filesystem reader gives it. */
export interface WofStream {
  readonly size: Bytes;
  read(pos: Bytes, length: number): Promise<Buffer>;
}

/** Where errors point: the volume and the file (a path or record number). */
export interface WofFileContext {
  readonly volume: Volume;
  readonly file: string;
}

/** Each algorithm's chunk size and decoder (docs/filesystems-wof.md §2). */
const ALGORITHMS: Record<WofAlgorithm, { chunkSize: number; decode: (input: Uint8Array, outSize: number) => Buffer }> = {
  0: { chunkSize: 4096, decode: decompressXpressHuffman },
  1: { chunkSize: 32768, decode: decompressLzx },
  2: { chunkSize: 8192, decode: decompressXpressHuffman },
  3: { chunkSize: 16384, decode: decompressXpressHuffman },
};
/** Offset table entries are 8 bytes when the uncompressed size is over 4 GiB, else 4. */
const LARGE_FILE_SIZE = 0xffffffff;
/** Decoded chunks kept per file: enough for small sequential reads of LZX's 32 KiB chunks. */
const CACHED_CHUNK_BYTES = 512 * 1024;
/** Chunks read and decoded together at most, bounding one read's compressed bytes in memory. */
const MAX_CHUNKS_PER_LOAD = 64;

/** A FileData of kind `decoded` for a file of `uncompressedSize` bytes compressed with `algorithm`. */
export function wofFileData(stream: WofStream, uncompressedSize: Bytes, algorithm: WofAlgorithm, where: WofFileContext): FileData {
  // The size comes from the volume ($DATA's data size): hostile like the rest.
  if (!(Number.isSafeInteger(uncompressedSize) && uncompressedSize >= 0)) {
    throw new CorruptVolumeError(where.volume, `${where.file}: WofCompressedData: an uncompressed size of ${uncompressedSize}`);
  }
  const reader = new WofReader(stream, uncompressedSize, ALGORITHMS[algorithm], where);
  return { kind: 'decoded', size: uncompressedSize, read: (pos, length) => reader.read(pos, length) };
}

class WofReader {
  private readonly chunkSize: number;
  private readonly numChunks: number;
  private readonly entryBytes: number;
  private readonly tableBytes: number;
  private readonly cache: LRUCache<number, Promise<Buffer>>;

  constructor(
    private readonly stream: WofStream,
    private readonly size: Bytes,
    private readonly algorithm: (typeof ALGORITHMS)[WofAlgorithm],
    private readonly where: WofFileContext,
  ) {
    this.chunkSize = algorithm.chunkSize;
    this.numChunks = Math.ceil(size / this.chunkSize);
    this.entryBytes = size > LARGE_FILE_SIZE ? 8 : 4;
    this.tableBytes = Math.max(0, this.numChunks - 1) * this.entryBytes;
    this.cache = new LRUCache({ maxSize: CACHED_CHUNK_BYTES, sizeCalculation: (_v, i) => this.chunkLength(i) });
  }

  /** Bytes [pos, pos + length) of the file, fewer at its end. */
  async read(pos: Bytes, length: number): Promise<Buffer> {
    if (!(Number.isSafeInteger(pos) && pos >= 0 && Number.isSafeInteger(length) && length >= 0)) {
      throw new RangeError(`${this.where.file}: a read of ${length} bytes at ${pos}`);
    }
    const end = Math.min(this.size, pos + length);
    if (pos >= end) return Buffer.alloc(0);
    const first = Math.floor(pos / this.chunkSize);
    const last = Math.floor((end - 1) / this.chunkSize);
    const chunks = await Promise.all(this.load(first, last));
    // A copy of the range, so no caller can change a cached chunk.
    const out = Buffer.allocUnsafe(end - pos);
    for (const [k, chunk] of chunks.entries()) {
      const chunkStart = (first + k) * this.chunkSize;
      chunk.copy(out, Math.max(0, chunkStart - pos), Math.max(0, pos - chunkStart), Math.min(chunk.length, end - chunkStart));
    }
    return out;
  }

  /** The chunks of [first, last]: cached, or loaded in runs of consecutive uncached chunks. */
  private load(first: number, last: number): Promise<Buffer>[] {
    const out: Promise<Buffer>[] = [];
    for (let i = first; i <= last; ) {
      const cached = this.cache.get(i);
      if (cached) {
        out.push(cached);
        i++;
        continue;
      }
      let j = i;
      while (j < last && j - i + 1 < MAX_CHUNKS_PER_LOAD && !this.cache.has(j + 1)) j++;
      const start = i;
      const run = this.loadRun(start, j);
      for (let k = start; k <= j; k++) {
        const p = run.then((bufs) => bufs[k - start]!);
        p.catch(() => this.cache.peek(k) === p && this.cache.delete(k));
        this.cache.set(k, p);
        out.push(p);
      }
      i = j + 1;
    }
    return out;
  }

  /** Reads the offsets and the compressed bytes of chunks [first, last] and decodes them. */
  private async loadRun(first: number, last: number): Promise<Buffer[]> {
    const bounds = await this.chunkBounds(first, last);
    const data = await this.readStream(this.tableBytes + bounds[0]!, bounds[bounds.length - 1]! - bounds[0]!);
    const out: Buffer[] = [];
    for (let i = first; i <= last; i++) {
      const stored = data.subarray(bounds[i - first]! - bounds[0]!, bounds[i - first + 1]! - bounds[0]!);
      out.push(this.decode(i, stored));
    }
    return out;
  }

  /** Where chunks first..last start and the last one ends, counted from the end of the table; every offset checked. */
  private async chunkBounds(first: number, last: number): Promise<number[]> {
    const dataBytes = this.stream.size - this.tableBytes;
    if (dataBytes < 0) throw this.corrupt(`a stream of ${this.stream.size} bytes holds no offset table of ${this.tableBytes}`);
    const lo = Math.max(first - 1, 0);
    const hi = Math.min(last + 1, this.numChunks - 1);
    const table = hi > lo ? await this.readStream(lo * this.entryBytes, (hi - lo) * this.entryBytes) : Buffer.alloc(0);
    const entry = (i: number) => (this.entryBytes === 8 ? Number(table.readBigUInt64LE((i - lo) * 8)) : table.readUInt32LE((i - lo) * 4));
    const bounds: number[] = [];
    for (let i = first; i <= last + 1; i++) bounds.push(i === 0 ? 0 : i === this.numChunks ? dataBytes : entry(i - 1));
    for (let i = first; i <= last; i++) {
      const stored = bounds[i - first + 1]! - bounds[i - first]!;
      if (!(bounds[i - first + 1]! <= dataBytes && stored > 0 && stored <= this.chunkLength(i))) {
        throw this.corrupt(`chunk ${i} at ${bounds[i - first]} to ${bounds[i - first + 1]} of ${dataBytes} bytes (it holds ${this.chunkLength(i)})`);
      }
    }
    return bounds;
  }

  /** A read of the stream that must return every byte asked: a short one would shift every chunk. */
  private async readStream(pos: Bytes, length: number): Promise<Buffer> {
    const b = await this.stream.read(pos, length);
    if (b.length !== length) throw this.corrupt(`a read of ${length} bytes at ${pos} returned ${b.length}`);
    return b;
  }

  private decode(i: number, stored: Buffer): Buffer {
    const length = this.chunkLength(i);
    // A copy: a view would keep the whole run's compressed bytes alive in the cache.
    if (stored.length === length) return Buffer.from(stored);
    try {
      return this.algorithm.decode(stored, length);
    } catch (e) {
      if (e instanceof CorruptDataError) throw this.corrupt(`chunk ${i} does not decode: ${e.message}`);
      throw e;
    }
  }

  private chunkLength(i: number): number {
    return Math.min(this.chunkSize, this.size - i * this.chunkSize);
  }

  private corrupt(what: string): CorruptVolumeError {
    return new CorruptVolumeError(this.where.volume, `${this.where.file}: WofCompressedData: ${what}`);
  }
}
