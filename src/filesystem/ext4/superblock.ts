// The ext2/3/4 superblock: 1024 bytes at byte 1024 of the volume (docs/filesystems-ext4-fat.md §1,
// after the kernel's Documentation/filesystems/ext4/super.rst).
import type { Bytes } from '../../base/units.js';
import { CorruptVolumeError, type Volume } from '../volume-fs.js';

/** The superblock's place and size in the volume. */
export const SUPERBLOCK_OFFSET: Bytes = 1024;
export const SUPERBLOCK_BYTES = 1024;
/** s_magic. */
const EXT4_SUPER_MAGIC = 0xef53;

/** s_feature_incompat bits (super.rst "Incompatible feature set"). */
export const INCOMPAT = {
  COMPRESSION: 0x1,
  FILETYPE: 0x2,
  RECOVER: 0x4,
  JOURNAL_DEV: 0x8,
  META_BG: 0x10,
  EXTENTS: 0x40,
  BIT64: 0x80,
  MMP: 0x100,
  FLEX_BG: 0x200,
  EA_INODE: 0x400,
  DIRDATA: 0x1000,
  CSUM_SEED: 0x2000,
  LARGEDIR: 0x4000,
  INLINE_DATA: 0x8000,
  ENCRYPT: 0x10000,
  CASEFOLD: 0x20000,
} as const;
/** The incompatible features this reader understands; any other bit makes the volume unreadable. */
const READABLE_INCOMPAT = Object.values(INCOMPAT).reduce((a, b) => a | b, 0) & ~(INCOMPAT.COMPRESSION | INCOMPAT.JOURNAL_DEV | INCOMPAT.DIRDATA);
/** s_feature_ro_compat bits used here. */
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_HUGE_FILE = 0x8;
/** s_feature_compat bit: backup superblocks only in the groups s_backup_bgs names. */
const COMPAT_SPARSE_SUPER2 = 0x200;
/** s_rev_level 0 (EXT2_GOOD_OLD_REV): fixed inode size and first inode. */
const GOOD_OLD_INODE_SIZE = 128;
const GOOD_OLD_FIRST_INO = 11;
/** Block sizes from 1 KiB to 64 KiB (s_log_block_size 0..6). */
const MAX_LOG_BLOCK_SIZE = 6;
/** Group descriptors without the 64bit feature. */
const GROUP_DESC_SIZE_32 = 32;

export interface Superblock {
  readonly blockSize: Bytes;
  readonly blocksCount: number;
  readonly firstDataBlock: number;
  readonly blocksPerGroup: number;
  readonly inodesPerGroup: number;
  readonly inodesCount: number;
  readonly inodeSize: Bytes;
  readonly groupCount: number;
  readonly descSize: Bytes;
  readonly firstMetaBg: number;
  readonly incompat: number;
  readonly sparseSuper: boolean;
  /** s_backup_bgs with sparse_super2, else undefined. */
  readonly backupGroups?: readonly [number, number];
  readonly hugeFile: boolean;
}

/** Whether a superblock's bytes carry s_magic. */
export function hasExt4Magic(sb: Buffer): boolean {
  return sb.length >= 0x3a && sb.readUInt16LE(0x38) === EXT4_SUPER_MAGIC;
}

/** Cheap check of a volume's first bytes (at least 2048: the superblock is at 1024). */
export function looksLikeExt4(firstBytes: Buffer): boolean {
  return hasExt4Magic(firstBytes.subarray(SUPERBLOCK_OFFSET));
}

/** The superblock's fields, checked against each other and the volume; throws CorruptVolumeError. */
export function parseSuperblock(sb: Buffer, volume: Volume): Superblock {
  const bad = (what: string): never => {
    throw new CorruptVolumeError(volume, `ext4 superblock: ${what}`);
  };
  if (sb.length < SUPERBLOCK_BYTES || !hasExt4Magic(sb)) bad('no ext2/3/4 magic 0xEF53 at byte 1080');
  const logBlock = sb.readUInt32LE(0x18);
  if (logBlock > MAX_LOG_BLOCK_SIZE) bad(`s_log_block_size ${logBlock}`);
  const blockSize = 1024 << logBlock;
  const incompat = sb.readUInt32LE(0x60);
  const unknown = incompat & ~READABLE_INCOMPAT;
  if (unknown) bad(`incompatible features 0x${unknown.toString(16)} this reader cannot read`);
  const is64 = (incompat & INCOMPAT.BIT64) !== 0;
  const blocksCount = sb.readUInt32LE(0x4) + (is64 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0);
  const firstDataBlock = sb.readUInt32LE(0x14);
  const blocksPerGroup = sb.readUInt32LE(0x20);
  const inodesPerGroup = sb.readUInt32LE(0x28);
  const inodesCount = sb.readUInt32LE(0x0);
  const rev = sb.readUInt32LE(0x4c);
  const inodeSize = rev === 0 ? GOOD_OLD_INODE_SIZE : sb.readUInt16LE(0x58);
  const firstIno = rev === 0 ? GOOD_OLD_FIRST_INO : sb.readUInt32LE(0x54);
  const descSize = is64 ? sb.readUInt16LE(0xfe) : GROUP_DESC_SIZE_32;
  if (blocksCount * blockSize > volume.size) bad(`${blocksCount} blocks of ${blockSize} bytes do not fit in the ${volume.size}-byte volume`);
  if (blocksPerGroup < 8) bad(`s_blocks_per_group ${blocksPerGroup}`); // bigalloc groups hold more blocks than a bitmap's bits
  if (firstDataBlock >= blocksCount || firstDataBlock > 1) bad(`s_first_data_block ${firstDataBlock}`);
  if (inodeSize < GOOD_OLD_INODE_SIZE || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) bad(`s_inode_size ${inodeSize}`);
  if (inodesPerGroup < 1 || inodesPerGroup > blockSize * 8) bad(`s_inodes_per_group ${inodesPerGroup}`);
  if (descSize < GROUP_DESC_SIZE_32 || descSize > blockSize || (descSize & (descSize - 1)) !== 0) bad(`s_desc_size ${descSize}`);
  if (firstIno < 3) bad(`s_first_ino ${firstIno}`);
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
  if (groupCount < 1 || inodesCount > groupCount * inodesPerGroup) bad(`${inodesCount} inodes in ${groupCount} groups of ${inodesPerGroup}`);
  const sparseSuper2 = (sb.readUInt32LE(0x5c) & COMPAT_SPARSE_SUPER2) !== 0;
  const roCompat = sb.readUInt32LE(0x64);
  return {
    blockSize,
    blocksCount,
    firstDataBlock,
    blocksPerGroup,
    inodesPerGroup,
    inodesCount,
    inodeSize,
    groupCount,
    descSize,
    firstMetaBg: sb.readUInt32LE(0x104),
    incompat,
    sparseSuper: (roCompat & RO_COMPAT_SPARSE_SUPER) !== 0,
    backupGroups: sparseSuper2 ? [sb.readUInt32LE(0x24c), sb.readUInt32LE(0x250)] : undefined,
    hugeFile: (roCompat & RO_COMPAT_HUGE_FILE) !== 0,
  };
}
