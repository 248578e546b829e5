// The MFT, read on demand: record numbers mapped through $MFT's own data runs, records read in
// blocks into a bounded cache, each record's fixups applied in its block the first time it is
// asked for (docs/filesystems-ntfs.md §3). A record whose block is cached is parsed without a
// promise: a listing reads its blocks first, then summarizes its files on the spot
// (docs/performance.md §9).
import { LRUCache } from 'lru-cache';
import type { Bytes } from '../../base/units.js';
import type { Volume } from '../volume-fs.js';
import type { Stream } from './attribute-runs.js';
import type { BootSector } from './boot-sector.js';
import { applyFixups } from './fixups.js';
import { NtfsFormatError } from './format-error.js';
import { isInUse, parseMftRecord, summarizeRecord, type MftRecord, type RecordSummary } from './mft-record.js';
import { readStream } from './stream-read.js';

/** Records are read this many bytes at a time: neighbours in a folder are usually neighbours here. */
const MFT_BLOCK: Bytes = 64 * 1024;
/** At most this many blocks are kept (a bound on memory per volume). */
const CACHED_BLOCKS = 256;

export class Mft {
  readonly recordCount: number;
  private readonly blocks = new LRUCache<number, Block>({ max: CACHED_BLOCKS });
  private readonly pending = new Map<number, Promise<Block>>();

  constructor(
    private readonly volume: Volume,
    private readonly boot: BootSector,
    private readonly stream: Stream,
  ) {
    this.recordCount = Math.floor(stream.dataSize / boot.mftRecordSize);
  }

  private blockOf(n: number): number {
    if (!(Number.isSafeInteger(n) && n >= 0 && n < this.recordCount)) throw new NtfsFormatError(`MFT record ${n} is not in the ${this.recordCount}-record MFT`);
    return Math.floor((n * this.boot.mftRecordSize) / MFT_BLOCK);
  }

  private block(i: number): Promise<Block> {
    const cached = this.blocks.get(i);
    if (cached) return Promise.resolve(cached);
    let p = this.pending.get(i);
    if (!p) {
      const start = i * MFT_BLOCK;
      p = readStream(this.volume, this.stream, this.boot.clusterSize, start, Math.min(MFT_BLOCK, this.stream.dataSize - start)).then((bytes) => ({ bytes, fixed: [] }));
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

  /** Record `n` in its block (a view), its fixups applied; it must be in use. */
  private viewIn(block: Block, n: number): Buffer {
    const size = this.boot.mftRecordSize;
    const at = (n * size) % MFT_BLOCK;
    const view = block.bytes.subarray(at, at + size);
    fixUp(block, at / size, view);
    if (!(isInUse(view))) throw new NtfsFormatError(`MFT record ${n} is not in use`);
    return view;
  }

  /** Parsed from a copy of the record: an attribute's value is a view of it, and a parsed file may be kept long after its block. */
  private parsed(block: Block, n: number): MftRecord {
    return parseMftRecord(Buffer.from(this.viewIn(block, n)), this.boot.totalClusters);
  }

  /** What a listing shows of record `n` if its block is cached (undefined: read it, or it needs the whole file: summarizeRecord). */
  summaryNow(n: number): RecordSummary | undefined {
    const block = this.blocks.get(this.blockOf(n));
    return block && summarizeRecord(this.viewIn(block, n));
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

/**
 * A block of records whose fixups are applied in place, each the first time it is asked for (a
 * listing of a root's folders needs one record of each of hundreds of blocks), and why each
 * record that failed them did.
 */
interface Block {
  readonly bytes: Buffer;
  /** Per record: undefined until asked for, then '' when its fixups were applied, else why they failed. */
  readonly fixed: (string | undefined)[];
}

/** Applies record `i`'s fixups once (`view` is its bytes in the block); throws what failed, every time it is asked for. */
function fixUp(block: Block, i: number, view: Buffer): void {
  let failed = block.fixed[i];
  if (failed === undefined) {
    try {
      applyFixups(view, 'FILE');
      failed = '';
    } catch (e) {
      if (!(e instanceof NtfsFormatError)) throw e;
      failed = e.message;
    }
    block.fixed[i] = failed;
  }
  if (failed !== '') throw new NtfsFormatError(failed);
}
