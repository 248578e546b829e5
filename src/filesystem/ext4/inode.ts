// One ext4 inode record (docs/filesystems-ext4-fat.md §3, after the kernel's
// Documentation/filesystems/ext4/inodes.rst): type, size, times, flags and i_block.
import type { Bytes } from '../../base/units.js';
import type { NodeType } from '../volume-fs.js';

/** i_mode's file type bits (S_IFMT) and the types this reader serves. */
const S_IFMT = 0xf000;
const TYPE_OF_MODE: ReadonlyMap<number, NodeType> = new Map([
  [0x8000, 'file'],
  [0x4000, 'dir'],
  [0xa000, 'symlink'],
]);
/** i_flags bits. */
export const INODE_FLAG = {
  ENCRYPT: 0x800,
  HUGE_FILE: 0x40000,
  EXTENTS: 0x80000,
  INLINE_DATA: 0x10000000,
} as const;
/** The 128-byte ext2 inode; i_extra_isize counts the bytes after it. */
const GOOD_OLD_INODE_SIZE = 128;
/** i_block: 15 32-bit words holding block pointers, an extent tree root, inline data or a fast symlink. */
export const I_BLOCK_OFFSET = 0x28;
export const I_BLOCK_BYTES = 60;

/** A time field and the *_extra field (epoch bits and nanoseconds) beside it, if the inode holds it. */
interface TimeField {
  readonly seconds: number;
  readonly extra: number;
}
const TIMES = { atime: { seconds: 0x8, extra: 0x8c }, ctime: { seconds: 0xc, extra: 0x84 }, mtime: { seconds: 0x10, extra: 0x88 } } as const;
const CRTIME: TimeField = { seconds: 0x90, extra: 0x94 };

export interface Ext4Inode {
  readonly ino: number;
  /** undefined for devices, FIFOs and sockets, which this reader does not serve. */
  readonly type: NodeType | undefined;
  readonly size: Bytes;
  readonly flags: number;
  readonly linksCount: number;
  /** i_blocks (512-byte units, or blocks with the HUGE_FILE flag): the fast-symlink test needs it. */
  readonly blocks: number;
  readonly fileAcl: number;
  readonly atimeMs: number;
  readonly ctimeMs: number;
  readonly mtimeMs: number;
  readonly crtimeMs?: number;
  /** i_block, 60 bytes. */
  readonly iBlock: Buffer;
  /** The bytes after i_extra_isize up to the record's end: in-inode extended attributes. */
  readonly inlineXattrs: Buffer;
}

/** Seconds (signed 32-bit) plus the epoch bits and nanoseconds of the extra field, in ms. */
function timeMs(rec: Buffer, f: TimeField, extraEnd: number): number {
  const sec = rec.readInt32LE(f.seconds);
  if (f.extra + 4 > extraEnd) return sec * 1000;
  const extra = rec.readUInt32LE(f.extra);
  return (sec + (extra & 3) * 2 ** 32) * 1000 + (extra >>> 2) / 1e6;
}

/** Parses an inode record of `inodeSize` bytes; the caller checks what the fields point at. */
export function parseInode(rec: Buffer, ino: number, hugeFileFs: boolean): Ext4Inode {
  const extraIsize = rec.length > GOOD_OLD_INODE_SIZE ? rec.readUInt16LE(0x80) : 0;
  // An i_extra_isize that runs past the record or is unaligned is ignored, as the kernel does with a warning.
  const extraEnd = GOOD_OLD_INODE_SIZE + extraIsize <= rec.length && extraIsize % 4 === 0 ? GOOD_OLD_INODE_SIZE + extraIsize : GOOD_OLD_INODE_SIZE;
  const flags = rec.readUInt32LE(0x20);
  const blocksLo = rec.readUInt32LE(0x1c);
  const blocksHi = hugeFileFs ? rec.readUInt16LE(0x74) : 0;
  const blocks = blocksLo + blocksHi * 2 ** 32;
  return {
    ino,
    type: TYPE_OF_MODE.get(rec.readUInt16LE(0x0) & S_IFMT),
    size: rec.readUInt32LE(0x4) + rec.readUInt32LE(0x6c) * 2 ** 32,
    flags,
    linksCount: rec.readUInt16LE(0x1a),
    blocks,
    fileAcl: rec.readUInt32LE(0x68) + rec.readUInt16LE(0x76) * 2 ** 32,
    atimeMs: timeMs(rec, TIMES.atime, extraEnd),
    ctimeMs: timeMs(rec, TIMES.ctime, extraEnd),
    mtimeMs: timeMs(rec, TIMES.mtime, extraEnd),
    crtimeMs: CRTIME.extra + 4 <= extraEnd ? timeMs(rec, CRTIME, extraEnd) : undefined,
    iBlock: rec.subarray(I_BLOCK_OFFSET, I_BLOCK_OFFSET + I_BLOCK_BYTES),
    inlineXattrs: rec.subarray(extraEnd),
  };
}
