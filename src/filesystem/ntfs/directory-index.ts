// A folder's $I30 index read whole: the entries of $INDEX_ROOT and of every INDX block that
// $BITMAP marks in use, read in large sequential chunks (docs/filesystems-ntfs.md §9). A listing
// needs every entry, so the blocks are read in their order on disk, not by walking the B-tree:
// no depth to bound, no node visited twice.
import type { Bytes } from '../../base/units.js';
import { check } from './format-error.js';
import { applyFixups, FIXUP_BLOCK } from './fixups.js';
import { attributesOf, streamOf, valueOf, type Geometry, type Inode } from './inode.js';
import { indexBlockEntries, indexRootBlockSize, indexRootEntries, type IndexEntry } from './index-node.js';
import { AttrType } from './mft-record.js';
import { readStream } from './stream-read.js';

const I30 = '$I30';
/** Index blocks are read this many bytes at a time. */
const READ_CHUNK: Bytes = 1024 * 1024;
/** A bound on a folder's index: 4 GiB of index blocks is some 30 million entries. */
const MAX_INDEX_BYTES: Bytes = 4 * 1024 ** 3;

export async function readDirectoryIndex(g: Geometry, dir: Inode, indexBlockSize: Bytes): Promise<IndexEntry[]> {
  const root = attributesOf(dir, AttrType.indexRoot, I30)[0]?.value;
  check(root !== undefined, 'folder without a resident $INDEX_ROOT $I30');
  check(indexRootBlockSize(root) === indexBlockSize, `$INDEX_ROOT says index blocks of ${indexRootBlockSize(root)} bytes, the boot sector ${indexBlockSize}`);
  const entries = indexRootEntries(root);
  const allocation = streamOf(attributesOf(dir, AttrType.indexAllocation, I30), g.clusterSize);
  if (!allocation) return entries;
  check(allocation.dataSize <= MAX_INDEX_BYTES, `$INDEX_ALLOCATION of ${allocation.dataSize} bytes`);
  const blocks = Math.floor(allocation.dataSize / indexBlockSize);
  const bitmap = await valueOf(g, attributesOf(dir, AttrType.bitmap, I30), Math.ceil(blocks / 8) + 8, '$BITMAP $I30');
  check(bitmap !== undefined, 'folder with $INDEX_ALLOCATION but no $BITMAP');
  // §9: sub-node VCNs count clusters, or 512-byte blocks when an index block is smaller than a cluster.
  const vcnSize = indexBlockSize >= g.clusterSize ? g.clusterSize : FIXUP_BLOCK;
  const perChunk = Math.max(1, Math.floor(READ_CHUNK / indexBlockSize));
  for (let first = 0; first < blocks; first += perChunk) {
    const count = Math.min(perChunk, blocks - first);
    if (!anyInUse(bitmap, first, count)) continue;
    const chunk = await readStream(g.volume, allocation, g.clusterSize, first * indexBlockSize, count * indexBlockSize);
    for (let i = first; i < first + count; i++) {
      if (!inUse(bitmap, i)) continue;
      const block = Buffer.from(chunk.subarray((i - first) * indexBlockSize, (i - first + 1) * indexBlockSize));
      applyFixups(block, 'INDX');
      for (const e of indexBlockEntries(block, (i * indexBlockSize) / vcnSize)) entries.push(e);
    }
  }
  return entries;
}

const inUse = (bitmap: Buffer, i: number): boolean => i >> 3 < bitmap.length && (bitmap[i >> 3]! & (1 << (i & 7))) !== 0;

function anyInUse(bitmap: Buffer, first: number, count: number): boolean {
  for (let i = first; i < first + count; i++) if (inUse(bitmap, i)) return true;
  return false;
}
