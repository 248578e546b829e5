// The ext2/3/4 reader (issue 22): a VolumeFileSystem over a Volume, reading inodes, extent trees,
// block maps and folders on demand through bounded caches (docs/filesystems-ext4-fat.md).
import { LRUCache } from 'lru-cache';
import type { Layout } from '../../disk/layout.js';
import { ChunkCache } from '../chunk-cache.js';
import { CorruptVolumeError, type DirEntry, type FileData, type FsNode, UnsupportedDataError, type Volume, type VolumeFileSystem } from '../volume-fs.js';
import { blockMapExtents } from './block-map.js';
import { parseDirectoryBlock, type RawDirEntry } from './directory-block.js';
import type { Extent, MapContext } from './extent.js';
import { extentTreeExtents } from './extent-tree.js';
import { bytesLayout, extentsLayout } from './file-layout.js';
import { descriptorLocation, inodeTableBlock } from './group-descriptors.js';
import { type Ext4Inode, I_BLOCK_BYTES, INODE_FLAG, parseInode } from './inode.js';
import { inlineBytes, systemData } from './inline-data.js';
import { hasExt4Magic, looksLikeExt4, parseSuperblock, SUPERBLOCK_BYTES, SUPERBLOCK_OFFSET, type Superblock } from './superblock.js';

export { looksLikeExt4 };

/** The root folder's inode (EXT4_ROOT_INO). */
const ROOT_INO = 2;
/**
 * Metadata is read in chunks of this size, at most this many kept (a bound on memory per volume,
 * of which 16 may be open): 8 MiB, the inode tables of 32 768 inodes of 256 bytes, enough for a
 * walk, which reads them in order.
 */
const META_CHUNK_BYTES = 64 * 1024;
const META_CHUNKS = 128;
/** Folders' name indexes kept, counted in entries: a folder larger than this is read again on each lookup. */
const FOLDER_INDEX_ENTRIES = 100_000;
/** A folder larger than this is treated as corrupt (a bound on memory; real ones are far smaller). */
const MAX_FOLDER_BYTES = 64 * 1024 * 1024;
/** Folder data is read in pieces of at most this size. */
const FOLDER_READ_BYTES = 1024 * 1024;
/** PATH_MAX: no symlink target is longer. */
const MAX_SYMLINK_BYTES = 4096;
/** An inline folder's i_block starts with its parent's inode number. */
const INLINE_DIR_PARENT_BYTES = 4;

interface FolderIndex {
  readonly entries: readonly RawDirEntry[];
  readonly byName: ReadonlyMap<string, number>;
}

class Ext4FileSystem implements VolumeFileSystem {
  readonly type = 'ext4' as const;
  private readonly meta: ChunkCache;
  private readonly inodeTables = new Map<number, number>();
  private readonly folders = new LRUCache<number, FolderIndex>({ maxSize: FOLDER_INDEX_ENTRIES, sizeCalculation: (f) => f.entries.length + 1 });

  constructor(
    private readonly volume: Volume,
    private readonly sb: Superblock,
  ) {
    this.meta = new ChunkCache(volume, META_CHUNK_BYTES, META_CHUNKS);
  }

  async root(): Promise<FsNode> {
    const inode = await this.inode(ROOT_INO);
    if (inode.type !== 'dir') throw new CorruptVolumeError(this.volume, `ext4 root inode ${ROOT_INO} is not a folder`);
    return toNode(inode);
  }

  async list(dir: FsNode): Promise<readonly DirEntry[]> {
    const index = await this.folder(dir);
    const out: DirEntry[] = [];
    for (const e of index.entries) {
      let node: FsNode | undefined;
      try {
        // Most inodes of a folder lie in cached chunks: read those without a promise each.
        const inode = this.cachedInode(e.ino) ?? (await this.inode(e.ino));
        node = inode.type && toNode(inode);
      } catch (err) {
        if (!(err instanceof CorruptVolumeError)) throw err; // this entry fails its own lookup; the others list
      }
      if (node) out.push({ name: e.name, node });
    }
    return out;
  }

  async lookup(dir: FsNode, name: string): Promise<DirEntry | undefined> {
    const ino = (await this.folder(dir)).byName.get(name);
    const node = ino === undefined ? undefined : await this.child(ino);
    return node && { name, node };
  }

  async readlink(link: FsNode): Promise<string> {
    const inode = await this.inode(link.id);
    if (inode.type !== 'symlink') throw new Error(`${this.volume.name}: ext4 inode ${link.id} is not a symlink`);
    if (inode.size > MAX_SYMLINK_BYTES) this.fail(inode.ino, `symlink target of ${inode.size} bytes`);
    if (isFastSymlink(inode, this.sb)) return inode.iBlock.toString('utf8', 0, inode.size);
    return (await this.readAll(inode)).toString('utf8');
  }

  async data(file: FsNode): Promise<FileData> {
    const inode = await this.inode(file.id);
    if (inode.type !== 'file') throw new Error(`${this.volume.name}: ext4 inode ${file.id} is not a file`);
    return { kind: 'layout', layout: await this.layout(inode) };
  }

  private fail(ino: number, what: string): never {
    throw new CorruptVolumeError(this.volume, `ext4 inode ${ino}: ${what}`);
  }

  /** The node of a folder entry, or undefined for devices, FIFOs and sockets. */
  private async child(ino: number): Promise<FsNode | undefined> {
    const inode = await this.inode(ino);
    return inode.type && toNode(inode);
  }

  private async inode(ino: number): Promise<Ext4Inode> {
    const sb = this.sb;
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > sb.inodesCount) throw new CorruptVolumeError(this.volume, `ext4 inode ${ino} outside 1..${sb.inodesCount}`);
    const group = Math.floor((ino - 1) / sb.inodesPerGroup);
    const table = await this.inodeTable(group);
    const offset = table * sb.blockSize + ((ino - 1) % sb.inodesPerGroup) * sb.inodeSize;
    return parseInode(await this.meta.read(offset, sb.inodeSize, `ext4 inode ${ino}`), ino, sb.hugeFile);
  }

  /** Inode `ino` if its group's table is known and its bytes are cached; else undefined (inode() reads it, or says why not). */
  private cachedInode(ino: number): Ext4Inode | undefined {
    const sb = this.sb;
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > sb.inodesCount) return undefined;
    const table = this.inodeTables.get(Math.floor((ino - 1) / sb.inodesPerGroup));
    const bytes = table === undefined ? undefined : this.meta.peek(table * sb.blockSize + ((ino - 1) % sb.inodesPerGroup) * sb.inodeSize, sb.inodeSize);
    return bytes && parseInode(bytes, ino, sb.hugeFile);
  }

  private async inodeTable(group: number): Promise<number> {
    const known = this.inodeTables.get(group);
    if (known !== undefined) return known;
    const sb = this.sb;
    const loc = descriptorLocation(sb, group);
    const desc = await this.meta.read(loc.block * sb.blockSize + loc.offset, sb.descSize, `ext4 group descriptor ${group}`);
    const table = inodeTableBlock(sb, desc);
    const tableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
    if (table < 1 || table + tableBlocks > sb.blocksCount) {
      throw new CorruptVolumeError(this.volume, `ext4 group descriptor ${group}: inode table at block ${table} lies outside the filesystem`);
    }
    this.inodeTables.set(group, table);
    return table;
  }

  private mapContext(inode: Ext4Inode): MapContext {
    const sb = this.sb;
    return {
      sb,
      inode,
      readBlock: (b) => this.meta.read(b * sb.blockSize, sb.blockSize, `ext4 inode ${inode.ino}: block ${b}`),
      fail: (what) => this.fail(inode.ino, what),
    };
  }

  private async extents(inode: Ext4Inode): Promise<Extent[]> {
    const ctx = this.mapContext(inode);
    return inode.flags & INODE_FLAG.EXTENTS ? extentTreeExtents(ctx) : blockMapExtents(ctx);
  }

  private async layout(inode: Ext4Inode): Promise<Layout> {
    if (inode.flags & INODE_FLAG.ENCRYPT) throw new UnsupportedDataError(`${this.volume.name}: ext4 inode ${inode.ino} is encrypted (fscrypt)`);
    if (inode.flags & INODE_FLAG.INLINE_DATA) return bytesLayout(this.inline(inode, inlineBytes));
    return extentsLayout(await this.extents(inode), inode.size, this.sb.blockSize, this.volume);
  }

  /** Runs an inline-data parser, turning its message into a CorruptVolumeError. */
  private inline<T>(inode: Ext4Inode, parse: (i: Ext4Inode) => T): T {
    try {
      return parse(inode);
    } catch (e) {
      return this.fail(inode.ino, (e as Error).message);
    }
  }

  /** The whole (small) content of a slow symlink. */
  private async readAll(inode: Ext4Inode): Promise<Buffer> {
    const layout = await this.layout(inode);
    const parts = await Promise.all(layout.segments.map((s) => (s.kind === 'bytes' ? s.data : s.kind === 'zero' ? Buffer.alloc(s.length) : this.volume.read(s.offset - this.volume.sourceOffset, s.length))));
    return Buffer.concat(parts);
  }

  private async folder(dir: FsNode): Promise<FolderIndex> {
    const cached = this.folders.get(dir.id);
    if (cached) return cached;
    const inode = await this.inode(dir.id);
    if (inode.type !== 'dir') throw new Error(`${this.volume.name}: ext4 inode ${dir.id} is not a folder`);
    if (inode.flags & INODE_FLAG.ENCRYPT) throw new UnsupportedDataError(`${this.volume.name}: ext4 folder inode ${dir.id} is encrypted (fscrypt)`);
    const entries: RawDirEntry[] = [];
    if (inode.flags & INODE_FLAG.INLINE_DATA) {
      this.parseFolderBytes(inode, inode.iBlock.subarray(INLINE_DIR_PARENT_BYTES, I_BLOCK_BYTES), 'i_block', entries);
      this.parseFolderBytes(inode, this.inline(inode, systemData), 'system.data', entries);
    } else {
      await this.readFolderBlocks(inode, entries);
    }
    const byName = new Map<string, number>();
    for (const e of entries) if (!byName.has(e.name)) byName.set(e.name, e.ino);
    const index = { entries, byName };
    this.folders.set(dir.id, index);
    return index;
  }

  private parseFolderBytes(inode: Ext4Inode, bytes: Buffer, where: string, out: RawDirEntry[]): void {
    const problem = parseDirectoryBlock(bytes, out);
    if (problem) this.fail(inode.ino, `folder ${where}: ${problem}`);
  }

  private async readFolderBlocks(inode: Ext4Inode, out: RawDirEntry[]): Promise<void> {
    const bs = this.sb.blockSize;
    if (inode.size > MAX_FOLDER_BYTES) this.fail(inode.ino, `folder of ${inode.size} bytes (this reader reads up to ${MAX_FOLDER_BYTES})`);
    for (const s of extentsLayout(await this.extents(inode), inode.size - (inode.size % bs), bs, this.volume).segments) {
      if (s.kind !== 'file') continue; // holes in a folder hold no entries
      for (let done = 0; done < s.length; done += FOLDER_READ_BYTES) {
        const n = Math.min(FOLDER_READ_BYTES, s.length - done);
        const bytes = await this.volume.read(s.offset - this.volume.sourceOffset + done, n);
        for (let b = 0; b < n; b += bs) this.parseFolderBytes(inode, bytes.subarray(b, b + bs), `block at byte ${s.start + done + b}`, out);
      }
    }
  }
}

function toNode(inode: Ext4Inode): FsNode {
  return {
    id: inode.ino,
    type: inode.type!,
    size: inode.size,
    mtimeMs: inode.mtimeMs,
    atimeMs: inode.atimeMs,
    ctimeMs: inode.ctimeMs,
    ...(inode.crtimeMs !== undefined ? { birthtimeMs: inode.crtimeMs } : {}),
    nlink: inode.linksCount,
  };
}

/** The kernel's ext4_inode_is_fast_symlink(): the target is in i_block when no data block is counted. */
function isFastSymlink(inode: Ext4Inode, sb: Superblock): boolean {
  if (inode.flags & INODE_FLAG.INLINE_DATA || inode.size >= I_BLOCK_BYTES) return false;
  const eaBlocks = inode.fileAcl ? (inode.flags & INODE_FLAG.HUGE_FILE ? 1 : sb.blockSize / 512) : 0;
  return inode.blocks - eaBlocks === 0;
}

/** Opens the ext2/3/4 filesystem of a volume; rejects one that holds another filesystem. */
export async function openExt4(volume: Volume): Promise<VolumeFileSystem> {
  if (volume.size < SUPERBLOCK_OFFSET + SUPERBLOCK_BYTES) throw new Error(`${volume.name}: not an ext2/3/4 volume (${volume.size} bytes, too small for a superblock)`);
  const sb = await volume.read(SUPERBLOCK_OFFSET, SUPERBLOCK_BYTES);
  if (!hasExt4Magic(sb)) throw new Error(`${volume.name}: not an ext2/3/4 volume (no magic 0xEF53 at byte 1080)`);
  return new Ext4FileSystem(volume, parseSuperblock(sb, volume));
}
