// The MFT, read on demand: record numbers mapped through $MFT's own data runs, records read in
// blocks into a bounded cache, fixups applied per record (docs/filesystems-ntfs.md §3).
import { LRUCache } from 'lru-cache';
import type { Bytes } from '../../base/units.js';
import type { Volume } from '../volume-fs.js';
import type { Stream } from './attribute-runs.js';
import type { BootSector } from './boot-sector.js';
import { applyFixups } from './fixups.js';
import { check } from './format-error.js';
import { parseMftRecord, RECORD_IN_USE, type MftRecord } from './mft-record.js';
import { readStream } from './stream-read.js';

/** Records are read this many bytes at a time: neighbours in a folder are usually neighbours here. */
const MFT_BLOCK: Bytes = 64 * 1024;
/** At most this many blocks are kept (a bound on memory per volume). */
const CACHED_BLOCKS = 256;

export class Mft {
  readonly recordCount: number;
  private readonly blocks = new LRUCache<number, Promise<Buffer>>({ max: CACHED_BLOCKS });

  constructor(
    private readonly volume: Volume,
    private readonly boot: BootSector,
    private readonly stream: Stream,
  ) {
    this.recordCount = Math.floor(stream.dataSize / boot.mftRecordSize);
  }

  private block(i: number): Promise<Buffer> {
    let b = this.blocks.get(i);
    if (!b) {
      const start = i * MFT_BLOCK;
      b = readStream(this.volume, this.stream, this.boot.clusterSize, start, Math.min(MFT_BLOCK, this.stream.dataSize - start));
      b.catch(() => this.blocks.delete(i));
      this.blocks.set(i, b);
    }
    return b;
  }

  /** The raw bytes of record `n` with fixups applied, in a buffer of its own. */
  async recordBytes(n: number): Promise<Buffer> {
    check(Number.isSafeInteger(n) && n >= 0 && n < this.recordCount, `MFT record ${n} is not in the ${this.recordCount}-record MFT`);
    const size = this.boot.mftRecordSize;
    const at = n * size;
    const block = await this.block(Math.floor(at / MFT_BLOCK));
    const b = Buffer.from(block.subarray(at % MFT_BLOCK, (at % MFT_BLOCK) + size));
    applyFixups(b, 'FILE');
    return b;
  }

  /** Record `n`, parsed; it must be in use. */
  async record(n: number): Promise<MftRecord> {
    const r = parseMftRecord(await this.recordBytes(n), this.boot.totalClusters);
    check((r.flags & RECORD_IN_USE) !== 0, `MFT record ${n} is not in use`);
    return r;
  }
}
