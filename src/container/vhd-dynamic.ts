// Dynamic VHD (VHD spec "Dynamic Disk Header Format", "Block Allocation Table and Data Blocks"):
// footer copy, dynamic header, BAT, then per present block its sector bitmap and data, laid out
// so that every block's data starts on a 4 KiB boundary (the bitmap fills the sector before),
// so that partition data can still be reflinked from the `.raw` files.
import { type Layout, type Segment, concat, window, withZeroGaps } from '../disk/layout.js';
import type { PresentBlocks } from '../disk/present-blocks.js';
import type { Bytes } from '../base/units.js';
import { ContainerError, type DiskImage } from './disk-image.js';
import { VHD_FOOTER_SIZE, VHD_SECTOR, canBeVhd, dynamicVhdFooter, onesComplementChecksum } from './vhd.js';

/** Block size 2 MiB: the spec's default, and the only size every VHD reader supports. */
export const DYNAMIC_VHD_BLOCK_SIZE: Bytes = 2 * 1024 * 1024;
/** The dynamic header follows the footer copy at offset 0 ("Dynamic Disk Header Format"). */
const HEADER_OFFSET: Bytes = VHD_FOOTER_SIZE;
const HEADER_SIZE: Bytes = 1024;
/** The BAT follows the header, as Windows writes it (VHD spec, "Dynamic Disk Header Format": Table Offset). */
const BAT_OFFSET: Bytes = HEADER_OFFSET + HEADER_SIZE;
/** Header cookie and version 1.0. */
const HEADER_COOKIE = 'cxsparse';
const HEADER_VERSION = 0x00010000;
/** Checksum field offset in the dynamic header. */
const HEADER_CHECKSUM = 36;
/** A BAT entry of a block with no space in the file. */
const UNUSED_ENTRY = 0xffffffff;
/** Data is placed on 4 KiB boundaries: the block size of btrfs and XFS, so clones line up. */
const DATA_ALIGNMENT: Bytes = 4096;
/** A sector bitmap has one bit per 512-byte sector of the block, padded to whole sectors. */
const BITMAP_SIZE: Bytes = Math.ceil(DYNAMIC_VHD_BLOCK_SIZE / VHD_SECTOR / 8 / VHD_SECTOR) * VHD_SECTOR;
/** Each block takes its data plus one 4 KiB unit holding its bitmap in the last sector. */
const BLOCK_STRIDE: Bytes = DYNAMIC_VHD_BLOCK_SIZE + DATA_ALIGNMENT;
/** Every sector of a stored block is marked as holding data. */
const FULL_BITMAP = Buffer.alloc(BITMAP_SIZE, 0xff);

function roundUp(n: Bytes, unit: Bytes): Bytes {
  return Math.ceil(n / unit) * unit;
}

function blocksOf(size: Bytes): number {
  return Math.ceil(size / DYNAMIC_VHD_BLOCK_SIZE);
}

/** Where the first block's data starts: the first 4 KiB boundary with room for its bitmap after the BAT. */
function firstData(blocks: number): Bytes {
  const batEnd = BAT_OFFSET + roundUp(4 * blocks, VHD_SECTOR);
  return roundUp(batEnd + BITMAP_SIZE, DATA_ALIGNMENT);
}

/** The file size of a dynamic VHD of a disk of `size` bytes with `present` stored blocks. */
export function dynamicVhdSize(size: Bytes, present: number): Bytes {
  const dataEnd = present > 0 ? firstData(blocksOf(size)) + present * BLOCK_STRIDE - DATA_ALIGNMENT : BAT_OFFSET + roundUp(4 * blocksOf(size), VHD_SECTOR);
  return dataEnd + VHD_FOOTER_SIZE;
}

function dynamicHeader(blocks: number): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.write(HEADER_COOKIE, 0, 'latin1');
  h.fill(0xff, 8, 16); // Data Offset: unused, all 64 bits set
  h.writeBigUInt64BE(BigInt(BAT_OFFSET), 16);
  h.writeUInt32BE(HEADER_VERSION, 24);
  h.writeUInt32BE(blocks, 28);
  h.writeUInt32BE(DYNAMIC_VHD_BLOCK_SIZE, 32);
  // Parent fields and locators stay zero: not a differencing disk.
  h.writeUInt32BE(onesComplementChecksum(h, HEADER_CHECKSUM), HEADER_CHECKSUM);
  return h;
}

/** A dynamic VHD storing the present blocks (of DYNAMIC_VHD_BLOCK_SIZE) in disk order. */
export function dynamicVhdLayout(disk: DiskImage, present: PresentBlocks): Layout {
  const size = disk.layout.size;
  const reason = canBeVhd({ size, sectorSize: disk.sectorSize });
  if (reason) throw new ContainerError(`cannot make a VHD: ${reason}`);
  if (present.blockSize !== DYNAMIC_VHD_BLOCK_SIZE) throw new ContainerError(`dynamic VHD blocks are ${DYNAMIC_VHD_BLOCK_SIZE} bytes, not ${present.blockSize}`);
  const blocks = blocksOf(size);
  const bat = Buffer.alloc(roundUp(4 * blocks, VHD_SECTOR), 0xff);
  const stored: Segment[] = [];
  let data = firstData(blocks);
  for (const [from, to] of present.blocks.runs()) {
    for (let k = from; k < to; k++, data += BLOCK_STRIDE) {
      const bitmapAt = data - BITMAP_SIZE;
      // A BAT entry is the sector number of the block's bitmap.
      bat.writeUInt32BE(bitmapAt / VHD_SECTOR, 4 * k);
      const end = Math.min((k + 1) * DYNAMIC_VHD_BLOCK_SIZE, size);
      stored.push(
        { kind: 'bytes', start: bitmapAt, length: BITMAP_SIZE, data: FULL_BITMAP },
        ...withZeroGaps(data, data + DYNAMIC_VHD_BLOCK_SIZE, window(disk.layout, k * DYNAMIC_VHD_BLOCK_SIZE, end, data)),
      );
    }
  }
  const fileEnd = dynamicVhdSize(size, present.count) - VHD_FOOTER_SIZE;
  if (fileEnd / VHD_SECTOR > UNUSED_ENTRY) throw new ContainerError(`cannot make a VHD: ${fileEnd} bytes of blocks are past the 32-bit sector offsets of its BAT`);
  const footer = dynamicVhdFooter(size, disk.id, disk.timestamp, HEADER_OFFSET);
  const head: Segment[] = [
    { kind: 'bytes', start: 0, length: VHD_FOOTER_SIZE, data: footer },
    { kind: 'bytes', start: HEADER_OFFSET, length: HEADER_SIZE, data: dynamicHeader(blocks) },
    { kind: 'bytes', start: BAT_OFFSET, length: bat.length, data: bat },
  ];
  return concat([
    withZeroGaps(0, fileEnd, [...head, ...stored]),
    [{ kind: 'bytes', start: fileEnd, length: VHD_FOOTER_SIZE, data: footer }],
  ]);
}
