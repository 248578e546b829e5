// A run of a file's blocks, as extent trees and legacy block maps both describe it
// (docs/filesystems-ext4-fat.md §4-5), and the checks every run passes before use.
import type { Ext4Inode } from './inode.js';
import type { Superblock } from './superblock.js';

export interface Extent {
  /** First logical block of the file. */
  readonly logical: number;
  /** First block of the volume. */
  readonly physical: number;
  readonly length: number;
  /** false: an uninitialized (preallocated) extent, which reads as zeros. */
  readonly initialized: boolean;
}

/** At most this many extents per file: a bound on memory whatever a hostile map claims. */
export const MAX_EXTENTS_PER_FILE = 1 << 20;
/** Logical block numbers are 32-bit (ee_block, ei_block, and the block map's reach). */
export const LOGICAL_BLOCK_LIMIT = 2 ** 32;

/** What a map walk needs: the filesystem, the inode, and its metadata blocks. */
export interface MapContext {
  readonly sb: Superblock;
  readonly inode: Ext4Inode;
  readBlock(block: number): Promise<Buffer>;
  /** Throws CorruptVolumeError naming the inode. */
  fail(what: string): never;
}

/** A block pointer to a metadata block: inside the filesystem, never block 0. */
export function checkBlock(ctx: MapContext, block: number, what: string): void {
  if (block < 1 || block >= ctx.sb.blocksCount) ctx.fail(`${what} points at block ${block}, outside the ${ctx.sb.blocksCount}-block filesystem`);
}

/** Appends an extent after checking it lies inside the filesystem and after the previous one. */
export function pushExtent(ctx: MapContext, out: Extent[], e: Extent): void {
  if (e.length < 1 || e.physical < 1 || e.physical + e.length > ctx.sb.blocksCount) {
    ctx.fail(`extent of ${e.length} blocks at block ${e.physical} lies outside the ${ctx.sb.blocksCount}-block filesystem`);
  }
  const prev = out[out.length - 1];
  if (prev && e.logical < prev.logical + prev.length) ctx.fail(`extent at logical block ${e.logical} overlaps or precedes the one before it`);
  if (e.logical + e.length > LOGICAL_BLOCK_LIMIT) ctx.fail(`extent at logical block ${e.logical} runs past 2^32 blocks`);
  if (out.length >= MAX_EXTENTS_PER_FILE) ctx.fail(`more than ${MAX_EXTENTS_PER_FILE} extents`);
  if (prev && prev.initialized === e.initialized && prev.logical + prev.length === e.logical && prev.physical + prev.length === e.physical) {
    out[out.length - 1] = { ...prev, length: prev.length + e.length };
  } else {
    out.push(e);
  }
}
