// One 32-byte FAT folder entry (docs/filesystems-ext4-fat.md §10-11, after Microsoft's FAT32 File
// System Specification 1.03, §6-7): the short entry's fields, and the long-name entries before it.
import type { Bytes } from '../../base/units.js';
import { FAT_EPOCH_MS, fatTimeMs } from './fat-time.js';

/** DIR_Attr bits (§6). FILE_ATTRIBUTE_* has the same values for the low six. */
export const ATTR = { READ_ONLY: 0x01, HIDDEN: 0x02, SYSTEM: 0x04, VOLUME_ID: 0x08, DIRECTORY: 0x10, ARCHIVE: 0x20 } as const;
/** ATTR_LONG_NAME and the mask it is tested under (§7). */
const ATTR_LONG_NAME = 0x0f;
const ATTR_LONG_NAME_MASK = 0x3f;
/** DIR_Name[0]: the end of the folder, a free entry. */
export const END_OF_FOLDER = 0x00;
export const FREE_ENTRY = 0xe5;
/** Attribute bits a node carries as dosAttributes. */
const DOS_ATTRIBUTE_BITS = ATTR.READ_ONLY | ATTR.HIDDEN | ATTR.SYSTEM | ATTR.DIRECTORY | ATTR.ARCHIVE;

export interface ShortEntry {
  readonly attr: number;
  readonly directory: boolean;
  readonly firstCluster: number;
  readonly size: Bytes;
  readonly mtimeMs: number;
  readonly atimeMs: number;
  readonly birthtimeMs?: number;
  readonly dosAttributes: number;
}

export function isLongNameEntry(rec: Buffer): boolean {
  return (rec[11]! & ATTR_LONG_NAME_MASK) === ATTR_LONG_NAME;
}

/** A short entry's fields (§6): DIR_FstClusHI only on FAT32; times as UTC (fat-time.ts). */
export function parseShortEntry(rec: Buffer, fat32: boolean): ShortEntry {
  const attr = rec[11]!;
  const mtimeMs = fatTimeMs(rec.readUInt16LE(24), rec.readUInt16LE(22)) ?? FAT_EPOCH_MS;
  const createDate = rec.readUInt16LE(16);
  const birthtimeMs = createDate === 0 ? undefined : fatTimeMs(createDate, rec.readUInt16LE(14), rec[13]!);
  const accessDate = rec.readUInt16LE(18);
  return {
    attr,
    directory: (attr & ATTR.DIRECTORY) !== 0,
    firstCluster: (fat32 ? rec.readUInt16LE(20) * 0x10000 : 0) + rec.readUInt16LE(26),
    size: rec.readUInt32LE(28),
    mtimeMs,
    atimeMs: (accessDate === 0 ? undefined : fatTimeMs(accessDate, 0)) ?? mtimeMs,
    ...(birthtimeMs !== undefined ? { birthtimeMs } : {}),
    dosAttributes: attr & DOS_ATTRIBUTE_BITS,
  };
}

/** The 13 UCS-2 characters of a long-name entry (LDIR_Name1 @1, Name2 @14, Name3 @28). */
export function longNameChars(rec: Buffer): Buffer {
  return Buffer.concat([rec.subarray(1, 11), rec.subarray(14, 26), rec.subarray(28, 32)]);
}
