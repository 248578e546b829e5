// The ext2/ext3 block map: 12 direct pointers in i_block, then single, double and triple indirect
// blocks (docs/filesystems-ext4-fat.md §5, after the kernel's Documentation/filesystems/ext4/ifork.rst).
import { checkBlock, type Extent, LOGICAL_BLOCK_LIMIT, type MapContext, pushExtent } from './extent.js';

const DIRECT_POINTERS = 12;
/** i_block[12], [13], [14]: roots of the single, double and triple indirect trees. */
const INDIRECT_ROOTS = [1, 2, 3] as const;

/**
 * Adds the blocks under pointer `ptr` (a tree of `level` indirect levels, 0 = a data block) from
 * logical block `first` on, below `end`. A zero pointer is a hole.
 */
async function visit(ctx: MapContext, ptr: number, level: number, first: number, end: number, out: Extent[]): Promise<void> {
  if (ptr === 0 || first >= end) return;
  if (level === 0) {
    pushExtent(ctx, out, { logical: first, physical: ptr, length: 1, initialized: true });
    return;
  }
  checkBlock(ctx, ptr, `indirect block of level ${level}`);
  const block = await ctx.readBlock(ptr);
  const perBlock = ctx.sb.blockSize / 4;
  const span = perBlock ** (level - 1);
  for (let i = 0; i < perBlock && first + i * span < end; i++) {
    const ptr = block.readUInt32LE(i * 4);
    // Data pointers are taken here without a call per block; only indirect blocks are read.
    if (level === 1) {
      if (ptr !== 0) pushExtent(ctx, out, { logical: first + i, physical: ptr, length: 1, initialized: true });
    } else {
      await visit(ctx, ptr, level - 1, first + i * span, end, out);
    }
  }
}

/** The extents of an inode whose i_block holds a block map, up to its size. */
export async function blockMapExtents(ctx: MapContext): Promise<Extent[]> {
  const out: Extent[] = [];
  const end = Math.min(Math.ceil(ctx.inode.size / ctx.sb.blockSize), LOGICAL_BLOCK_LIMIT);
  const iBlock = ctx.inode.iBlock;
  for (let i = 0; i < DIRECT_POINTERS; i++) await visit(ctx, iBlock.readUInt32LE(i * 4), 0, i, end, out);
  let first = DIRECT_POINTERS;
  const perBlock = ctx.sb.blockSize / 4;
  for (const level of INDIRECT_ROOTS) {
    await visit(ctx, iBlock.readUInt32LE((DIRECT_POINTERS + level - 1) * 4), level, first, end, out);
    first += perBlock ** level;
  }
  return out;
}
