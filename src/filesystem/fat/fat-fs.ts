// The FAT12/16/32 reader (issue 22): a VolumeFileSystem over a Volume, following cluster chains
// through a bounded cache of the FAT (docs/filesystems-ext4-fat.md §8-11).
import { LRUCache } from 'lru-cache';
import type { Bytes } from '../../base/units.js';
import { type Layout, type Segment, withZeroGaps } from '../../disk/layout.js';
import { ChunkCache } from '../chunk-cache.js';
import { CorruptVolumeError, type DirEntry, type FileData, type FsNode, type Volume, type VolumeFileSystem } from '../volume-fs.js';
import { type Bpb, DIR_ENTRY_BYTES, looksLikeFat, parseBootSector } from './boot-sector.js';
import { ATTR, END_OF_FOLDER, FREE_ENTRY, isLongNameEntry, parseShortEntry, type ShortEntry } from './dir-entry.js';
import { type ClusterRun, FatTable } from './fat-chain.js';
import { FAT_EPOCH_MS } from './fat-time.js';
import { parseFolder } from './folder.js';

export { looksLikeFat };

/** The root folder has no entry of its own; every other node's id is its short entry's byte / 32. */
const ROOT_ID = 1;
const BOOT_SECTOR_BYTES = 512;
/** Metadata chunks, as for ext4 (the chunk cache, docs/filesystems-ext4-fat.md). */
const META_CHUNK_BYTES = 64 * 1024;
const META_CHUNKS = 512;
/** Folders' indexes kept, counted in entries. */
const FOLDER_INDEX_ENTRIES = 200_000;
/** A folder holds at most 65536 entries (§6.4 of the spec): 2 MiB. */
const MAX_FOLDER_BYTES = 65536 * DIR_ENTRY_BYTES;

interface FolderIndex {
  readonly entries: readonly DirEntry[];
  /** By upper-cased long and short name. */
  readonly byName: ReadonlyMap<string, DirEntry>;
}

class FatFileSystem implements VolumeFileSystem {
  private readonly meta: ChunkCache;
  private readonly fat: FatTable;
  private readonly folders = new LRUCache<number, FolderIndex>({ maxSize: FOLDER_INDEX_ENTRIES, sizeCalculation: (f) => f.entries.length + 1 });
  private readonly rootNode: FsNode;

  constructor(
    private readonly volume: Volume,
    private readonly bpb: Bpb,
  ) {
    this.meta = new ChunkCache(volume, META_CHUNK_BYTES, META_CHUNKS);
    this.fat = new FatTable(bpb, this.meta);
    const t = FAT_EPOCH_MS;
    this.rootNode = { id: ROOT_ID, type: 'dir', size: 0, mtimeMs: t, atimeMs: t, ctimeMs: t, nlink: 1, dosAttributes: ATTR.DIRECTORY };
  }

  get type(): Bpb['type'] {
    return this.bpb.type;
  }

  async root(): Promise<FsNode> {
    return this.rootNode;
  }

  async list(dir: FsNode): Promise<readonly DirEntry[]> {
    return (await this.folder(dir)).entries;
  }

  async lookup(dir: FsNode, name: string): Promise<DirEntry | undefined> {
    return (await this.folder(dir)).byName.get(name.toUpperCase());
  }

  async readlink(link: FsNode): Promise<string> {
    throw new Error(`${this.volume.name}: FAT has no symlinks (node ${link.id})`);
  }

  async data(file: FsNode): Promise<FileData> {
    const e = await this.entry(file.id);
    if (e.directory) throw new Error(`${this.volume.name}: FAT node ${file.id} is a folder`);
    if (e.size === 0) return { kind: 'layout', layout: { size: 0, segments: [] } };
    const runs = await this.chain(file.id, e.firstCluster, Math.ceil(e.size / this.bpb.clusterBytes));
    return { kind: 'layout', layout: this.layout(file.id, runs, e.size) };
  }

  private fail(id: number, what: string): never {
    throw new CorruptVolumeError(this.volume, `FAT entry at byte ${id * DIR_ENTRY_BYTES}: ${what}`);
  }

  /** The short entry a node's id names, read again from the volume. */
  private async entry(id: number): Promise<ShortEntry> {
    const offset = id * DIR_ENTRY_BYTES;
    if (!Number.isSafeInteger(id) || id === ROOT_ID || offset < this.bpb.rootDirOffset || offset + DIR_ENTRY_BYTES > this.volume.size) this.fail(id, 'not a folder entry');
    const rec = await this.meta.read(offset, DIR_ENTRY_BYTES, `FAT node ${id}`);
    if (rec[0] === END_OF_FOLDER || rec[0] === FREE_ENTRY || isLongNameEntry(rec) || rec[11]! & ATTR.VOLUME_ID) this.fail(id, 'not a live short entry');
    return parseShortEntry(rec, this.bpb.type === 'fat32');
  }

  private async chain(id: number, start: number, need: number | undefined): Promise<ClusterRun[]> {
    try {
      return await this.fat.chain(start, need, Math.ceil(MAX_FOLDER_BYTES / this.bpb.clusterBytes));
    } catch (e) {
      if (e instanceof CorruptVolumeError) throw e;
      return this.fail(id, (e as Error).message);
    }
  }

  /** The first `size` bytes of the clusters of `runs`, each inside the volume. */
  private layout(id: number, runs: readonly ClusterRun[], size: Bytes): Layout {
    const { clusterBytes, dataOffset } = this.bpb;
    const segs: Segment[] = [];
    let start = 0;
    for (const r of runs) {
      const length = Math.min(r.count * clusterBytes, size - start);
      const offset = dataOffset + (r.first - 2) * clusterBytes;
      if (offset + length > this.volume.size) this.fail(id, `clusters ${r.first}..${r.first + r.count - 1} lie past the volume's end`);
      segs.push({ kind: 'file', start, length, source: this.volume.source, offset: this.volume.sourceOffset + offset });
      start += length;
    }
    return { size, segments: withZeroGaps(0, size, segs) };
  }

  /** A folder's bytes, and the volume byte of each of its 32-byte entries (asked for in increasing order). */
  private async folderBytes(dir: FsNode): Promise<{ bytes: Buffer; volumeOffset: (at: number) => number }> {
    const { rootDirOffset, rootDirBytes, clusterBytes } = this.bpb;
    if (dir.id === ROOT_ID && this.bpb.type !== 'fat32') {
      const bytes = await this.meta.read(rootDirOffset, rootDirBytes, 'FAT root folder');
      return { bytes, volumeOffset: (at) => rootDirOffset + at };
    }
    const start = dir.id === ROOT_ID ? this.bpb.rootCluster : (await this.folderEntry(dir.id)).firstCluster;
    const runs = await this.chain(dir.id, start, undefined);
    const layout = this.layout(dir.id, runs, runs.reduce((n, r) => n + r.count, 0) * clusterBytes);
    const parts = await Promise.all(layout.segments.map((s) => (s.kind === 'file' ? this.volume.read(s.offset - this.volume.sourceOffset, s.length) : Buffer.alloc(s.length))));
    const segs = layout.segments;
    let seg = 0; // entries are asked for in order: a cursor, not a search per entry
    const volumeOffset = (at: number): number => {
      while (at >= segs[seg]!.start + segs[seg]!.length) seg++;
      const s = segs[seg]!;
      return s.kind === 'file' ? s.offset - this.volume.sourceOffset + (at - s.start) : 0;
    };
    return { bytes: Buffer.concat(parts), volumeOffset };
  }

  private async folderEntry(id: number): Promise<ShortEntry> {
    const e = await this.entry(id);
    if (!e.directory) throw new Error(`${this.volume.name}: FAT node ${id} is not a folder`);
    return e;
  }

  private async folder(dir: FsNode): Promise<FolderIndex> {
    const cached = this.folders.get(dir.id);
    if (cached) return cached;
    const { bytes, volumeOffset } = await this.folderBytes(dir);
    const fat32 = this.bpb.type === 'fat32';
    const entries: DirEntry[] = [];
    const byName = new Map<string, DirEntry>();
    for (const f of parseFolder(bytes)) {
      const e = parseShortEntry(bytes.subarray(f.at, f.at + DIR_ENTRY_BYTES), fat32);
      const entry: DirEntry = { name: f.name, node: toNode(volumeOffset(f.at) / DIR_ENTRY_BYTES, e) };
      entries.push(entry);
      for (const key of [f.name.toUpperCase(), f.shortName.toUpperCase()]) if (!byName.has(key)) byName.set(key, entry);
    }
    const index = { entries, byName };
    this.folders.set(dir.id, index);
    return index;
  }
}

function toNode(id: number, e: ShortEntry): FsNode {
  return {
    id,
    type: e.directory ? 'dir' : 'file',
    size: e.directory ? 0 : e.size,
    mtimeMs: e.mtimeMs,
    atimeMs: e.atimeMs,
    ctimeMs: e.mtimeMs,
    ...(e.birthtimeMs !== undefined ? { birthtimeMs: e.birthtimeMs } : {}),
    nlink: 1,
    dosAttributes: e.dosAttributes,
  };
}

/** Opens the FAT12/16/32 filesystem of a volume; rejects one that holds another filesystem. */
export async function openFat(volume: Volume): Promise<VolumeFileSystem> {
  if (volume.size < BOOT_SECTOR_BYTES) throw new Error(`${volume.name}: not a FAT volume (${volume.size} bytes)`);
  const boot = await volume.read(0, BOOT_SECTOR_BYTES);
  if (!looksLikeFat(boot)) throw new Error(`${volume.name}: not a FAT volume (no boot sector with a FAT BPB)`);
  return new FatFileSystem(volume, parseBootSector(boot, volume));
}
