// Fixed and dynamic VHDX: the disk as one contiguous, 1 MiB-aligned payload run, or only its present blocks (docs/vhd-vhdx.md §2; MS-VHDX, whose sections are cited below).
import { type Layout, type Segment, concat, paint, window, withZeroGaps } from '../disk/layout.js';
import type { PresentBlocks } from '../disk/present-blocks.js';
import type { Bytes } from '../base/units.js';
import { crc32c } from './crc32c.js';
import { ContainerError, type DiskImage } from './disk-image.js';
import { msGuid, nameBasedId } from '../base/guid.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Header-section objects at fixed offsets (MS-VHDX §2.2; docs/vhd-vhdx.md §2.1). */
export const VHDX_HEADER_1_OFFSET: Bytes = 64 * KiB;
export const VHDX_HEADER_2_OFFSET: Bytes = 128 * KiB;
export const VHDX_REGION_TABLE_1_OFFSET: Bytes = 192 * KiB;
export const VHDX_REGION_TABLE_2_OFFSET: Bytes = 256 * KiB;
/** A header is a 4 KiB structure, its CRC covers all of it (MS-VHDX §2.2.2). */
export const VHDX_HEADER_SIZE: Bytes = 4 * KiB;
/** A region table is 64 KiB, its CRC covers all of it (MS-VHDX §2.2.3). */
export const VHDX_REGION_TABLE_SIZE: Bytes = 64 * KiB;
/** Every object after the header section is aligned to 1 MiB (MS-VHDX §2.2.3.2 FileOffset, §2.5 FileOffsetMB). */
export const VHDX_ALIGNMENT: Bytes = MiB;
/** The empty log: 1 MiB of zeros at 1 MiB (MS-VHDX §2.3; docs/vhd-vhdx.md §2.7). */
const LOG_OFFSET: Bytes = MiB;
const LOG_LENGTH: Bytes = MiB;
/** Metadata region: 1 MiB at 2 MiB, as Windows lays it out (docs/vhd-vhdx.md §2.1). */
const METADATA_OFFSET: Bytes = 2 * MiB;
const METADATA_LENGTH: Bytes = MiB;
/** Metadata items start 64 KiB into the region, after the table (MS-VHDX §2.6.1). */
export const VHDX_METADATA_ITEMS_OFFSET: Bytes = 64 * KiB;
/** BAT region at 3 MiB (docs/vhd-vhdx.md §2.1). */
const BAT_OFFSET: Bytes = 3 * MiB;
/** Largest VirtualDiskSize, 64 TiB (MS-VHDX §2.6.2.2). */
export const VHDX_MAX_DISK_SIZE: Bytes = 64 * 1024 * 1024 * MiB;
/**
 * BlockSize of the fixed VHDX: 32 MiB, Hyper-V's default. Its BAT lists every block, so at
 * 32 MiB it stays ≤ 16.2 MiB for a 64 TiB disk (1 MiB blocks would need 512 MiB), and padding a
 * partial last block costs nothing because it is a zero segment.
 */
const FIXED_BLOCK_SIZE: Bytes = 32 * MiB;
/**
 * BlockSize of the dynamic VHDX: 1 MiB, the smallest allowed (MS-VHDX §2.6.2.1), because the copy is what
 * counts. Measured (README "Which file to pick"): an NTFS volume with 1342 MiB of files copies
 * as 1.15× its data at 1 MiB, 1.30× at 2 MiB, 1.43× at 4 MiB, 2.7× at 32 MiB; the genuine ext4
 * backups' 4 MiB of data as 16 MiB at 1 MiB and 132 MiB at 32 MiB. The price is the BAT: 16 MiB
 * in the file for a 2 TiB disk (0.5 MiB at 32 MiB), but in memory only 8 bytes per present block.
 */
export const DYNAMIC_VHDX_BLOCK_SIZE: Bytes = MiB;
/** A chunk covers 2^23 logical sectors; one sector-bitmap BAT entry follows each (MS-VHDX §2.5). */
const SECTORS_PER_CHUNK = 2 ** 23;

/** BAT entry state of a payload block whose data is at FileOffsetMB (MS-VHDX §2.5.1.1). */
export const VHDX_PAYLOAD_BLOCK_FULLY_PRESENT = 6;
/** BAT entry state of a payload block with no space in the file; reads as zeros (MS-VHDX §2.5.1.1). */
export const VHDX_PAYLOAD_BLOCK_NOT_PRESENT = 0;
/** BAT entry state of a payload block that reads as zeros; its FileOffsetMB must be 0 (MS-VHDX §2.5.1.1). */
export const VHDX_PAYLOAD_BLOCK_ZERO = 2;
/** File Parameters flag bit 0: LeaveBlockAllocated, the fixed-disk marker (MS-VHDX §2.6.2.1). */
export const VHDX_LEAVE_BLOCK_ALLOCATED = 1;
/** Metadata table entry flags (MS-VHDX §2.6.1): bit1 IsVirtualDisk, bit2 IsRequired. */
const IS_VIRTUAL_DISK = 2;
const IS_REQUIRED = 4;
/** Header SequenceNumbers; they must differ so one header is current (MS-VHDX §2.2.2). */
const SEQUENCE_NUMBER_1 = 1n;
const SEQUENCE_NUMBER_2 = 2n;
/** Header Version and LogVersion (MS-VHDX §2.2.2). */
export const VHDX_VERSION = 1;
const LOG_VERSION = 0;
/** Diagnostic creator string in the file type identifier (MS-VHDX §2.2.1). */
const CREATOR = 'synthvhd';

/** Region GUIDs (MS-VHDX §2.2.3.2). */
export const VHDX_REGION = {
  bat: msGuid('2DC27766-F623-4200-9D64-115E9BFD4A08'),
  metadata: msGuid('8B7CA206-4790-4B9A-B8FE-575F050F886E'),
} as const;

/** The five required metadata items of a disk without parent: GUID, entry flags, payload length (MS-VHDX §2.6.2). */
export const VHDX_METADATA_ITEMS = {
  fileParameters: { guid: msGuid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B'), flags: IS_REQUIRED, length: 8 },
  virtualDiskSize: { guid: msGuid('2FA54224-CD1B-4876-B211-5DBED83BF4B8'), flags: IS_VIRTUAL_DISK | IS_REQUIRED, length: 8 },
  virtualDiskId: { guid: msGuid('BECA12AB-B2E6-4523-93EF-C309E000C746'), flags: IS_VIRTUAL_DISK | IS_REQUIRED, length: 16 },
  logicalSectorSize: { guid: msGuid('8141BF1D-A96F-4709-BA47-F233A8FAAB5F'), flags: IS_VIRTUAL_DISK | IS_REQUIRED, length: 4 },
  physicalSectorSize: { guid: msGuid('CDA348C7-445D-4471-9CC9-E9885251C556'), flags: IS_VIRTUAL_DISK | IS_REQUIRED, length: 4 },
} as const;

function roundUp(n: Bytes, unit: Bytes): Bytes {
  return Math.ceil(n / unit) * unit;
}

/** BAT shape of a disk (MS-VHDX §2.5). */
interface BatGeometry {
  readonly blockSize: Bytes;
  readonly blocks: number;
  readonly chunkRatio: number;
  /** Region length, sized for N + ⌈N/chunkRatio⌉ entries, which satisfies both readings of the spec. */
  readonly regionLength: Bytes;
}

function batGeometry(diskSize: Bytes, sectorSize: 512 | 4096, blockSize: Bytes): BatGeometry {
  const blocks = Math.ceil(diskSize / blockSize);
  const chunkRatio = (SECTORS_PER_CHUNK * sectorSize) / blockSize;
  const entries = blocks + Math.ceil(blocks / chunkRatio);
  return { blockSize, blocks, chunkRatio, regionLength: roundUp(8 * entries, VHDX_ALIGNMENT) };
}

/** Where the disk starts in a fixed VHDX file: the first 1 MiB boundary after the BAT (docs/vhd-vhdx.md §2.1). */
export function vhdxPayloadOffset(diskSize: Bytes, sectorSize: 512 | 4096): Bytes {
  return BAT_OFFSET + batGeometry(diskSize, sectorSize, FIXED_BLOCK_SIZE).regionLength;
}

/** The file size of a dynamic VHDX with `present` blocks of DYNAMIC_VHDX_BLOCK_SIZE. */
export function dynamicVhdxSize(diskSize: Bytes, sectorSize: 512 | 4096, present: number): Bytes {
  return BAT_OFFSET + batGeometry(diskSize, sectorSize, DYNAMIC_VHDX_BLOCK_SIZE).regionLength + present * DYNAMIC_VHDX_BLOCK_SIZE;
}

function fileIdentifier(): Buffer {
  return Buffer.concat([Buffer.from('vhdxfile', 'latin1'), Buffer.from(CREATOR, 'utf16le')]);
}

function header(sequenceNumber: bigint, fileWriteGuid: Buffer, dataWriteGuid: Buffer): Buffer {
  const h = Buffer.alloc(VHDX_HEADER_SIZE);
  h.write('head', 0, 'latin1');
  h.writeBigUInt64LE(sequenceNumber, 8);
  fileWriteGuid.copy(h, 16);
  dataWriteGuid.copy(h, 32);
  // LogGuid (48..63) stays zero: the log is empty and must not be replayed (MS-VHDX §2.2.2, §2.3).
  h.writeUInt16LE(LOG_VERSION, 64);
  h.writeUInt16LE(VHDX_VERSION, 66);
  h.writeUInt32LE(LOG_LENGTH, 68);
  h.writeBigUInt64LE(BigInt(LOG_OFFSET), 72);
  h.writeUInt32LE(crc32c(h), 4);
  return h;
}

function regionTable(batLength: Bytes): Buffer {
  const t = Buffer.alloc(VHDX_REGION_TABLE_SIZE);
  t.write('regi', 0, 'latin1');
  t.writeUInt32LE(2, 8);
  const entries: [Buffer, Bytes, Bytes][] = [
    [VHDX_REGION.bat, BAT_OFFSET, batLength],
    [VHDX_REGION.metadata, METADATA_OFFSET, METADATA_LENGTH],
  ];
  entries.forEach(([guid, offset, length], i) => {
    const at = 16 + 32 * i;
    guid.copy(t, at);
    t.writeBigUInt64LE(BigInt(offset), at + 16);
    t.writeUInt32LE(length, at + 24);
    t.writeUInt32LE(1, at + 28); // Required
  });
  t.writeUInt32LE(crc32c(t), 4);
  return t;
}

type MetadataItemName = keyof typeof VHDX_METADATA_ITEMS;

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
}

function metadataItemData(disk: DiskImage, blockSize: Bytes, fileFlags: number): Record<MetadataItemName, Buffer> {
  const virtualDiskSize = Buffer.alloc(8);
  virtualDiskSize.writeBigUInt64LE(BigInt(disk.layout.size));
  return {
    fileParameters: Buffer.concat([u32(blockSize), u32(fileFlags)]),
    virtualDiskSize,
    virtualDiskId: disk.id,
    logicalSectorSize: u32(disk.sectorSize),
    // Physical = logical: a backup does not record the original disk's physical sector size,
    // and claiming 4096 on a 512-byte disk would make Windows flag 63-sector-aligned partitions
    // as misaligned. 512/512 is also what Windows itself writes for a fixed VHDX (docs/vhd-vhdx.md §2.5).
    physicalSectorSize: u32(disk.sectorSize),
  };
}

/** The metadata table and the items packed back to back from 64 KiB, as two pieces of the region (MS-VHDX §2.6.1). */
function metadata(disk: DiskImage, blockSize: Bytes, fileFlags: number): { table: Buffer; items: Buffer } {
  const data = metadataItemData(disk, blockSize, fileFlags);
  const names = Object.keys(VHDX_METADATA_ITEMS) as MetadataItemName[];
  const table = Buffer.alloc(32 + 32 * names.length);
  table.write('metadata', 0, 'latin1');
  table.writeUInt16LE(names.length, 10);
  let offset = VHDX_METADATA_ITEMS_OFFSET;
  names.forEach((name, i) => {
    const at = 32 + 32 * i;
    VHDX_METADATA_ITEMS[name].guid.copy(table, at);
    table.writeUInt32LE(offset, at + 16);
    table.writeUInt32LE(data[name].length, at + 20);
    table.writeUInt32LE(VHDX_METADATA_ITEMS[name].flags, at + 24);
    offset += data[name].length;
  });
  return { table, items: Buffer.concat(names.map((name) => data[name])) };
}

/** Index in the BAT of payload block k: a sector bitmap entry follows every chunkRatio blocks (MS-VHDX §2.5). */
function entryIndex(geo: BatGeometry, k: number): number {
  return k + Math.floor(k / geo.chunkRatio);
}

/**
 * The BAT region: for each run [k0, k1) of blocks stored back to back from file offset `at`,
 * one bytes segment of FULLY_PRESENT entries; every other entry (NOT_PRESENT payload blocks,
 * sector bitmap blocks) is zero (MS-VHDX §2.5.1).
 */
function batSegments(geo: BatGeometry, runs: readonly Run[]): Segment[] {
  const segs: Segment[] = [];
  for (const r of runs) {
    const first = entryIndex(geo, r.from);
    const b = Buffer.alloc(8 * (entryIndex(geo, r.to - 1) - first + 1));
    for (let k = r.from; k < r.to; k++) {
      // The offset is a multiple of 1 MiB, so the entry is offset | state; written as two u32
      // halves because a BigInt per entry is slow for millions of entries.
      const offset = r.at + (k - r.from) * geo.blockSize;
      const i = 8 * (entryIndex(geo, k) - first);
      b.writeUInt32LE((offset % 2 ** 32) + VHDX_PAYLOAD_BLOCK_FULLY_PRESENT, i);
      b.writeUInt32LE(Math.floor(offset / 2 ** 32), i + 4);
    }
    segs.push({ kind: 'bytes', start: BAT_OFFSET + 8 * first, length: b.length, data: b });
  }
  return withZeroGaps(BAT_OFFSET, BAT_OFFSET + geo.regionLength, segs);
}

/** Blocks [from, to) of the disk, stored back to back in the file from `at`. */
interface Run {
  readonly from: number;
  readonly to: number;
  readonly at: Bytes;
}

/**
 * The file size of a fixed VHDX, without building its layout (the BAT alone can be 16 MiB):
 * the payload offset, then every block whole (MS-VHDX §2.5 "Partial last block").
 */
export function fixedVhdxSize(diskSize: Bytes, sectorSize: 512 | 4096): Bytes {
  const geo = batGeometry(diskSize, sectorSize, FIXED_BLOCK_SIZE);
  return BAT_OFFSET + geo.regionLength + geo.blocks * FIXED_BLOCK_SIZE;
}

/** Why a disk cannot be a VHDX, or null when it can (MS-VHDX §2.6.2.4 LogicalSectorSize, §2.6.2.2 the 64 TiB VirtualDiskSize). */
export function canBeVhdx(disk: { size: Bytes; sectorSize: number }): string | null {
  const { size, sectorSize } = disk;
  if (sectorSize !== 512 && sectorSize !== 4096) return `sector size ${sectorSize} is not 512 or 4096`;
  if (size <= 0) return 'the disk is empty';
  if (size % sectorSize !== 0) return `disk size ${size} is not a multiple of the ${sectorSize}-byte sector`;
  if (size > VHDX_MAX_DISK_SIZE) return `disk size ${size} is over the VHDX maximum of 64 TiB`;
  return null;
}

function validate(disk: DiskImage): void {
  const reason = canBeVhdx({ size: disk.layout.size, sectorSize: disk.sectorSize });
  if (reason) throw new ContainerError(`cannot make a VHDX: ${reason}`);
  if (disk.id.length !== 16) throw new ContainerError(`cannot make a VHDX: the disk id must be 16 bytes, got ${disk.id.length}`);
}

/**
 * A VHDX around the disk: header section, log, metadata and BAT (docs/vhd-vhdx.md §2.1), then the stored blocks
 * packed in disk order from the first 1 MiB boundary after the BAT. With `present` undefined
 * every block is stored (a fixed disk); else only the present ones (a dynamic disk).
 */
function vhdxContainer(disk: DiskImage, blockSize: Bytes, present: PresentBlocks | undefined): Layout {
  validate(disk);
  const size = disk.layout.size;
  const geo = batGeometry(size, disk.sectorSize, blockSize);
  const payload = BAT_OFFSET + geo.regionLength;
  const runs: Run[] = [];
  let at = payload;
  for (const [from, to] of present ? present.blocks.runs() : [[0, geo.blocks] as [number, number]]) {
    runs.push({ from, to, at });
    at += (to - from) * blockSize;
  }
  // Write GUIDs only need to be stable per disk: the file is rebuilt identically on every open.
  const idHex = disk.id.toString('hex');
  const fileWriteGuid = nameBasedId(`synthvhd VHDX FileWriteGuid ${idHex}`);
  const dataWriteGuid = nameBasedId(`synthvhd VHDX DataWriteGuid ${idHex}`);
  const regions = regionTable(geo.regionLength);
  const meta = metadata(disk, blockSize, present ? 0 : VHDX_LEAVE_BLOCK_ALLOCATED);
  const head = paint(BAT_OFFSET, [
    { kind: 'bytes', start: 0, data: fileIdentifier() },
    { kind: 'bytes', start: VHDX_HEADER_1_OFFSET, data: header(SEQUENCE_NUMBER_1, fileWriteGuid, dataWriteGuid) },
    { kind: 'bytes', start: VHDX_HEADER_2_OFFSET, data: header(SEQUENCE_NUMBER_2, fileWriteGuid, dataWriteGuid) },
    { kind: 'bytes', start: VHDX_REGION_TABLE_1_OFFSET, data: regions },
    { kind: 'bytes', start: VHDX_REGION_TABLE_2_OFFSET, data: regions },
    { kind: 'bytes', start: METADATA_OFFSET, data: meta.table },
    { kind: 'bytes', start: METADATA_OFFSET + VHDX_METADATA_ITEMS_OFFSET, data: meta.items },
  ]);
  const blocks = runs.map((r) => {
    const end = Math.min(r.to * blockSize, size);
    const stored = (r.to - r.from) * blockSize;
    // A block is whole in the file even where the disk ends inside it (MS-VHDX §2.5 "Partial last block").
    return withZeroGaps(r.at, r.at + stored, window(disk.layout, r.from * blockSize, end, r.at));
  });
  return concat([[...head.segments], batSegments(geo, runs), ...blocks]);
}

/** A fixed VHDX around the disk, whose bytes sit unchanged at vhdxPayloadOffset(). */
export function vhdxLayout(disk: DiskImage): Layout {
  return vhdxContainer(disk, FIXED_BLOCK_SIZE, undefined);
}

/** A dynamic VHDX: only the present blocks (of DYNAMIC_VHDX_BLOCK_SIZE) are stored (MS-VHDX §2.5). */
export function dynamicVhdxLayout(disk: DiskImage, present: PresentBlocks): Layout {
  if (present.blockSize !== DYNAMIC_VHDX_BLOCK_SIZE) throw new ContainerError(`dynamic VHDX blocks are ${DYNAMIC_VHDX_BLOCK_SIZE} bytes, not ${present.blockSize}`);
  return vhdxContainer(disk, DYNAMIC_VHDX_BLOCK_SIZE, present);
}
