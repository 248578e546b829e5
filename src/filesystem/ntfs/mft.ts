// The MFT, read on demand: record numbers mapped through $MFT's own data runs, records read in
// blocks into a bounded cache, fixups applied per record (docs/filesystems-ntfs.md §3). A record
// whose block is cached is parsed without a promise: a listing reads its blocks first, then
// parses its files on the spot (docs/performance.md §9).
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
  private readonly blocks = new LRUCache<number, Buffer>({ max: CACHED_BLOCKS });
  private readonly pending = new Map<number, Promise<Buffer>>();

  constructor(
    private readonly volume: Volume,
    private readonly boot: BootSector,
    private readonly stream: Stream,
  ) {
    this.recordCount = Math.floor(stream.dataSize / boot.mftRecordSize);
  }

  private blockOf(n: number): number {
    check(Number.isSafeInteger(n) && n >= 0 && n < this.recordCount, `MFT record ${n} is not in the ${this.recordCount}-record MFT`);
    return Math.floor((n * this.boot.mftRecordSize) / MFT_BLOCK);
  }

  private block(i: number): Promise<Buffer> {
    const cached = this.blocks.get(i);
    if (cached) return Promise.resolve(cached);
    let p = this.pending.get(i);
    if (!p) {
      const start = i * MFT_BLOCK;
      p = readStream(this.volume, this.stream, this.boot.clusterSize, start, Math.min(MFT_BLOCK, this.stream.dataSize - start));
      const settled = (): boolean => this.pending.delete(i);
      p.then((b) => settled() && this.blocks.set(i, b), settled);
      this.pending.set(i, p);
    }
    return p;
  }

  /** Reads the blocks of records `ns` at once, so that recordNow() finds them; a record out of range or a failed read is left for record() to report. */
  async preload(ns: readonly number[]): Promise<void> {
    const wanted = new Set<number>();
    for (const n of ns) if (Number.isSafeInteger(n) && n >= 0 && n < this.recordCount) wanted.add(this.blockOf(n));
    await Promise.all([...wanted].map((i) => this.block(i).catch(() => undefined)));
  }

  /** Record `n` with fixups applied, in a buffer of its own, from its block. */
  private bytesIn(block: Buffer, n: number): Buffer {
    const size = this.boot.mftRecordSize;
    const at = (n * size) % MFT_BLOCK;
    const b = Buffer.allocUnsafe(size);
    block.copy(b, 0, at, at + size);
    applyFixups(b, 'FILE');
    return b;
  }

  private parsed(block: Buffer, n: number): MftRecord {
    const r = parseMftRecord(this.bytesIn(block, n), this.boot.totalClusters);
    check((r.flags & RECORD_IN_USE) !== 0, `MFT record ${n} is not in use`);
    return r;
  }

  /** Record `n`, parsed, if its block is cached; undefined otherwise. It must be in use. */
  recordNow(n: number): MftRecord | undefined {
    const block = this.blocks.get(this.blockOf(n));
    return block && this.parsed(block, n);
  }

  /** Record `n`, parsed; it must be in use. */
  async record(n: number): Promise<MftRecord> {
    return this.parsed(await this.block(this.blockOf(n)), n);
  }
}
