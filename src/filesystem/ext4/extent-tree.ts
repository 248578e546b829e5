// The extent tree rooted in i_block (docs/filesystems-ext4-fat.md §4, after the kernel's
// Documentation/filesystems/ext4/ifork.rst): walked depth first into a sorted list of extents.
import { checkBlock, type Extent, LOGICAL_BLOCK_LIMIT, type MapContext, pushExtent } from './extent.js';

/** ext4_extent_header.eh_magic, and the size of the header and of every entry. */
const EXT4_EXT_MAGIC = 0xf30a;
const HEADER_BYTES = 12;
const ENTRY_BYTES = 12;
/** The kernel never builds a deeper tree (EXT4_MAX_EXTENT_DEPTH). */
const MAX_DEPTH = 5;
/** ee_len above this marks an uninitialized extent of (ee_len - 32768) blocks. */
const EXT_INIT_MAX_LEN = 32768;

interface Node {
  readonly entries: number;
  readonly depth: number;
}

function parseHeader(ctx: MapContext, node: Buffer, where: string): Node {
  if (node.length < HEADER_BYTES || node.readUInt16LE(0) !== EXT4_EXT_MAGIC) ctx.fail(`${where}: no extent header magic`);
  const entries = node.readUInt16LE(2);
  const max = node.readUInt16LE(4);
  const depth = node.readUInt16LE(6);
  if (entries > max || HEADER_BYTES + max * ENTRY_BYTES > node.length) ctx.fail(`${where}: ${entries} of ${max} entries do not fit in its ${node.length} bytes`);
  if (depth > MAX_DEPTH) ctx.fail(`${where}: depth ${depth}`);
  return { entries, depth };
}

/**
 * Adds the extents of `node` (covering logical blocks [lo, hi)) to `out`. Children's ranges are
 * disjoint and every non-root node has entries, so no block is visited twice and the walk ends.
 */
async function walk(ctx: MapContext, node: Buffer, where: string, depthWanted: number | undefined, lo: number, hi: number, out: Extent[]): Promise<void> {
  const h = parseHeader(ctx, node, where);
  if (depthWanted !== undefined && (h.depth !== depthWanted || h.entries === 0)) ctx.fail(`${where}: depth ${h.depth} with ${h.entries} entries below a node of depth ${depthWanted + 1}`);
  for (let i = 0; i < h.entries; i++) {
    const at = HEADER_BYTES + i * ENTRY_BYTES;
    const first = node.readUInt32LE(at);
    if (first < lo || first >= hi) ctx.fail(`${where}: entry for logical block ${first} outside [${lo}, ${hi})`);
    if (h.depth === 0) {
      const rawLen = node.readUInt16LE(at + 4);
      const initialized = rawLen <= EXT_INIT_MAX_LEN;
      const physical = node.readUInt16LE(at + 6) * 2 ** 32 + node.readUInt32LE(at + 8);
      const length = initialized ? rawLen : rawLen - EXT_INIT_MAX_LEN;
      if (first + length > hi) ctx.fail(`${where}: extent at logical block ${first} runs past ${hi}`);
      pushExtent(ctx, out, { logical: first, physical, length, initialized });
      continue;
    }
    const next = i + 1 < h.entries ? node.readUInt32LE(at + ENTRY_BYTES) : hi;
    if (next <= first) ctx.fail(`${where}: index entries not in increasing order`);
    const child = node.readUInt16LE(at + 8) * 2 ** 32 + node.readUInt32LE(at + 4);
    checkBlock(ctx, child, `${where}: index entry ${i}`);
    await walk(ctx, await ctx.readBlock(child), `extent node at block ${child}`, h.depth - 1, first, next, out);
  }
}

/** The extents of an inode whose i_block holds an extent tree root. */
export async function extentTreeExtents(ctx: MapContext): Promise<Extent[]> {
  const out: Extent[] = [];
  await walk(ctx, ctx.inode.iBlock, 'extent tree root', undefined, 0, LOGICAL_BLOCK_LIMIT, out);
  return out;
}
