// Where a block group's descriptor lies, and the inode table it names (docs/filesystems-ext4-fat.md
// §2, after the kernel's Documentation/filesystems/ext4/group_descr.rst and ext4_descriptor_loc()).
import { INCOMPAT, type Superblock } from './superblock.js';

/** bg_inode_table_lo / bg_inode_table_hi (the latter only in 64-byte descriptors). */
const BG_INODE_TABLE_LO = 0x8;
const BG_INODE_TABLE_HI = 0x28;
const DESC_SIZE_64 = 64;

/** True when `n` is a power of `base` (1 counts). */
function isPowerOf(n: number, base: number): boolean {
  let x = base;
  while (x < n) x *= base;
  return x === n || n === 1;
}

/** Whether group `g` holds a superblock (and so, without meta_bg, a descriptor table) copy. */
export function groupHasSuper(sb: Superblock, g: number): boolean {
  if (g === 0) return true;
  if (sb.backupGroups) return g === sb.backupGroups[0] || g === sb.backupGroups[1];
  if (!sb.sparseSuper) return true;
  return isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

/** The volume block and byte within it of group `g`'s descriptor. */
export function descriptorLocation(sb: Superblock, g: number): { block: number; offset: number } {
  const perBlock = sb.blockSize / sb.descSize;
  const descBlock = Math.floor(g / perBlock);
  const offset = (g % perBlock) * sb.descSize;
  const metaBg = (sb.incompat & INCOMPAT.META_BG) !== 0;
  if (!metaBg || descBlock < sb.firstMetaBg) return { block: sb.firstDataBlock + 1 + descBlock, offset };
  // meta_bg: each descriptor block sits at the start of the first group it describes.
  const first = descBlock * perBlock;
  let hasSuper = groupHasSuper(sb, first) ? 1 : 0;
  if (sb.firstDataBlock === 0 && sb.blockSize === 1024) hasSuper++;
  return { block: first * sb.blocksPerGroup + sb.firstDataBlock + hasSuper, offset };
}

/** The first block of the group's inode table, from its descriptor bytes. */
export function inodeTableBlock(sb: Superblock, desc: Buffer): number {
  const lo = desc.readUInt32LE(BG_INODE_TABLE_LO);
  return sb.descSize >= DESC_SIZE_64 ? lo + desc.readUInt32LE(BG_INODE_TABLE_HI) * 2 ** 32 : lo;
}
