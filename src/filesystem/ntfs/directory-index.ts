// A folder's $I30 index (docs/filesystems-ntfs.md §9), read two ways. A listing needs every
// entry: $INDEX_ROOT and every INDX block that $BITMAP marks in use, in their order on disk and
// in large chunks, not by walking the B-tree (no depth to bound, no node read twice). A lookup
// in a folder not yet listed descends the B-tree from the root, a few blocks, each visited once.
import type { Bytes } from '../../base/units.js';
import type { Stream } from './attribute-runs.js';
import { check, NtfsFormatError } from './format-error.js';
import { applyFixups, FIXUP_BLOCK } from './fixups.js';
import { attributesOf, streamOf, valueOf, type Geometry, type Inode } from './inode.js';
import { indexBlockNode, indexRootBlockSize, indexRootNode, type IndexEntry, type IndexNode } from './index-node.js';
import { AttrType } from './mft-record.js';
import { readStream } from './stream-read.js';

const I30 = '$I30';
/** Index blocks are read this many bytes at a time while listing. */
const READ_CHUNK: Bytes = 1024 * 1024;
/** A bound on a folder's index: 4 GiB of index blocks is some 30 million entries. */
const MAX_INDEX_BYTES: Bytes = 4 * 1024 ** 3;
/** A bound on a B-tree's depth (a folder of millions of entries is 4 or 5 deep). */
const MAX_INDEX_DEPTH = 32;

interface Index {
  readonly root: IndexNode;
  readonly allocation?: { readonly stream: Stream; readonly blocks: number; readonly bitmap: Buffer };
  readonly blockSize: Bytes;
  /** §9: sub-node VCNs count clusters, or 512-byte blocks when an index block is smaller than a cluster. */
  readonly vcnSize: Bytes;
}

async function openIndex(g: Geometry, dir: Inode, blockSize: Bytes): Promise<Index> {
  const rootValue = attributesOf(dir, AttrType.indexRoot, I30)[0]?.value;
  check(rootValue !== undefined, 'folder without a resident $INDEX_ROOT $I30');
  check(indexRootBlockSize(rootValue) === blockSize, `$INDEX_ROOT says index blocks of ${indexRootBlockSize(rootValue)} bytes, the boot sector ${blockSize}`);
  const vcnSize = blockSize >= g.clusterSize ? g.clusterSize : FIXUP_BLOCK;
  const root = indexRootNode(rootValue);
  const stream = streamOf(attributesOf(dir, AttrType.indexAllocation, I30), g.clusterSize);
  if (!stream) return { root, blockSize, vcnSize };
  check(stream.dataSize <= MAX_INDEX_BYTES, `$INDEX_ALLOCATION of ${stream.dataSize} bytes`);
  const blocks = Math.floor(stream.dataSize / blockSize);
  const bitmap = await valueOf(g, attributesOf(dir, AttrType.bitmap, I30), Math.ceil(blocks / 8) + 8, '$BITMAP $I30');
  check(bitmap !== undefined, 'folder with $INDEX_ALLOCATION but no $BITMAP');
  return { root, allocation: { stream, blocks, bitmap }, blockSize, vcnSize };
}

const inUse = (bitmap: Buffer, i: number): boolean => i >> 3 < bitmap.length && (bitmap[i >> 3]! & (1 << (i & 7))) !== 0;

function anyInUse(bitmap: Buffer, first: number, count: number): boolean {
  for (let i = first; i < first + count; i++) if (inUse(bitmap, i)) return true;
  return false;
}

/** Block `i` of the index from `chunk` (which starts at block `first`), fixups applied. */
function blockNode(index: Index, chunk: Buffer, first: number, i: number): IndexNode {
  const block = Buffer.from(chunk.subarray((i - first) * index.blockSize, (i - first + 1) * index.blockSize));
  applyFixups(block, 'INDX');
  return indexBlockNode(block, (i * index.blockSize) / index.vcnSize);
}

/** Every entry of the folder's index. */
export async function readDirectoryIndex(g: Geometry, dir: Inode, blockSize: Bytes): Promise<IndexEntry[]> {
  const index = await openIndex(g, dir, blockSize);
  const entries = [...index.root.entries];
  const a = index.allocation;
  if (!a) return entries;
  const perChunk = Math.max(1, Math.floor(READ_CHUNK / blockSize));
  for (let first = 0; first < a.blocks; first += perChunk) {
    const count = Math.min(perChunk, a.blocks - first);
    if (!anyInUse(a.bitmap, first, count)) continue;
    const chunk = await readStream(g.volume, a.stream, g.clusterSize, first * blockSize, count * blockSize);
    for (let i = first; i < first + count; i++) if (inUse(a.bitmap, i)) entries.push(...blockNode(index, chunk, first, i).entries);
  }
  return entries;
}

/**
 * The entry whose folded name equals `key`, found by descending the B-tree: keys are sorted by
 * their folded names, compared as UTF-16 code units (COLLATION_FILE_NAME).
 */
export async function findInIndex(g: Geometry, dir: Inode, blockSize: Bytes, key: string, fold: (name: string) => string): Promise<IndexEntry | undefined> {
  const index = await openIndex(g, dir, blockSize);
  let node = index.root;
  const visited = new Set<number>();
  for (let depth = 0; depth < MAX_INDEX_DEPTH; depth++) {
    let next = node.tail;
    for (const e of node.entries) {
      const k = fold(e.key.name);
      if (k === key) return e;
      if (key < k) {
        next = e.subnode;
        break;
      }
    }
    if (next === undefined) return undefined;
    const a = index.allocation;
    const i = (next * index.vcnSize) / index.blockSize;
    check(a !== undefined && Number.isInteger(i) && i < a.blocks && inUse(a.bitmap, i) && !visited.has(i), `index sub-node VCN ${next} is not a block in use, or was visited`);
    visited.add(i);
    node = blockNode(index, await readStream(g.volume, a.stream, g.clusterSize, i * blockSize, blockSize), i, i);
  }
  throw new NtfsFormatError(`index deeper than ${MAX_INDEX_DEPTH}`);
}
