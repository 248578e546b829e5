// Which blocks of a disk hold data: the blocks a restore would write (issue 12, docs/admin.md
// §1). A block is present when any byte of it comes from a `bytes` segment (partition tables,
// GPT copies, extra data) or from a part of a backing file that holds data.
import { Bitset } from '../base/bitset.js';
import type { Bytes } from '../base/units.js';
import type { Layout, SourceFile } from './layout.js';

/**
 * Granule of a backing file's data map: 64 KiB keeps the map of a 2 TiB `.raw` at 4 MiB and is
 * far below the smallest container block (1 MiB); UrBackup itself punches holes in 512 KiB units
 * (docs/urbackup-raw-format.md §4.2), so a finer map would find no more holes.
 */
export const DATA_GRANULE: Bytes = 64 * 1024;

/** Which granules of a backing file may hold data; a granule that is not set reads as zeros. */
export class DataMap {
  readonly granules: Bitset;

  constructor(readonly size: Bytes) {
    this.granules = new Bitset(Math.ceil(size / DATA_GRANULE));
  }

  /** A map of `size` bytes whose granule bits are `bits` (DataMap.granules.bytes of another). */
  static of(size: Bytes, bits: Uint8Array): DataMap {
    const m = new DataMap(size);
    if (bits.length !== m.granules.bytes.length) throw new RangeError(`a data map of ${size} bytes has ${m.granules.bytes.length} bytes of bits, not ${bits.length}`);
    m.granules.bytes.set(bits);
    return m;
  }

  /** Marks [from, to) as holding data. */
  addRange(from: Bytes, to: Bytes): void {
    if (to > from) this.granules.setRange(Math.floor(from / DATA_GRANULE), Math.ceil(to / DATA_GRANULE));
  }

  /** Bytes of the granules that hold data. */
  dataBytes(): Bytes {
    return this.granules.count() * DATA_GRANULE;
  }
}

/** The blocks of a disk of `size` bytes, `blockSize` each, that hold data. */
export interface PresentBlocks {
  readonly blockSize: Bytes;
  readonly blocks: Bitset;
  readonly count: number;
}

/**
 * The present blocks of a layout. `dataOf` gives a backing file's data map, or undefined when
 * the whole file counts as data.
 */
export function presentBlocks(layout: Layout, blockSize: Bytes, dataOf: (s: SourceFile) => DataMap | undefined): PresentBlocks {
  const blocks = new Bitset(Math.ceil(layout.size / blockSize));
  const mark = (from: Bytes, to: Bytes): void => blocks.setRange(Math.floor(from / blockSize), Math.floor((to - 1) / blockSize) + 1);
  for (const s of layout.segments) {
    if (s.kind === 'zero') continue;
    const map = s.kind === 'file' ? dataOf(s.source) : undefined;
    if (s.kind === 'bytes' || !map) {
      mark(s.start, s.start + s.length);
      continue;
    }
    const shift = s.start - s.offset;
    const end = s.offset + s.length;
    let g = Math.floor(s.offset / DATA_GRANULE);
    const last = Math.ceil(end / DATA_GRANULE);
    const bytes = map.granules.bytes;
    while (g < last) {
      // Eight granules without data at a time: a 2 TiB `.raw` has 32 M granules.
      if ((g & 7) === 0 && bytes[g >>> 3] === 0) {
        g += 8;
        continue;
      }
      if (!map.granules.has(g)) {
        g++;
        continue;
      }
      const from = Math.max(g * DATA_GRANULE, s.offset) + shift;
      const to = Math.min((g + 1) * DATA_GRANULE, end) + shift;
      mark(from, to);
      // The rest of the block is present already: go on from the next block.
      const nextBlock = (Math.floor((to - 1) / blockSize) + 1) * blockSize;
      g = Math.max(g + 1, Math.floor((nextBlock - shift) / DATA_GRANULE));
    }
  }
  return { blockSize, blocks, count: blocks.count() };
}
