// An NTFS volume as a VolumeFileSystem (issue 22; docs/filesystems-ntfs.md): folders from their
// $I30 indexes, files' bytes as Layouts of the volume's runs or decoded LZNT1, every structure
// read on demand into bounded caches and checked before use.
import { LRUCache } from 'lru-cache';
import type { Bytes } from '../../base/units.js';
import type { Layout } from '../../disk/layout.js';
import { CorruptVolumeError, UnsupportedDataError, type DirEntry, type FileData, type FsNode, type NodeType, type Volume, type VolumeFileSystem } from '../volume-fs.js';
import { attributesOf, inodeNow, inodeWeight, loadInode, reparseOf, streamOf, valueOf, type Geometry, type Inode } from './inode.js';
import { compressedStream } from './compressed-stream.js';
import { findInIndex, readDirectoryIndex } from './directory-index.js';
import { NAMESPACE_DOS } from './file-name.js';
import { NtfsFormatError } from './format-error.js';
import type { IndexEntry } from './index-node.js';
import { ATTR_COMPRESSED, ATTR_ENCRYPTED, AttrType, RECORD_IS_DIRECTORY, type RecordSummary } from './mft-record.js';
import { openMft } from './open-mft.js';
import { IO_REPARSE_TAG_WOF, parseLinkTarget, relativeLinkPath, reparseTag } from './reparse-point.js';
import { FILE_ATTRIBUTE_ENCRYPTED, type StandardInformation } from './standard-information.js';
import { streamLayout, type Backing } from './stream-layout.js';
import { makeUpcase, UPCASE_BYTES } from './upcase.js';
import { cachedLoad } from './weighed-cache.js';

/** §3: the root folder's and $UpCase's record numbers; records below 24 are the metafiles and reserved. */
const ROOT_RECORD = 5;
const UPCASE_RECORD = 10;
const FIRST_USER_RECORD = 24;
/** Bounds on memory per volume: parsed files (by count, and weighed by attributes and runs), and folder entries kept for lookups. */
const CACHED_INODES = 16384;
const CACHED_INODE_WEIGHT = 1_000_000;
const CACHED_DIR_ENTRIES = 400_000;
/** A bound on a folder's depth when its path is computed (for a link's target). */
const MAX_DEPTH = 1024;
/** §11: the only compression NTFS writes: LZNT1 in units of 16 clusters of at most 4 KiB. */
const LZNT1_UNIT = 4;
const MAX_COMPRESSED_CLUSTER: Bytes = 4096;

export { looksLikeNtfs } from './boot-sector.js';

interface Folder {
  readonly entries: readonly IndexEntry[];
  readonly byName: ReadonlyMap<string, IndexEntry>;
}

/** One entry of a listing or lookup, or nothing when the entry is left out (a link out of the volume). */
type Child = DirEntry | undefined;
/** The path of the folder a link lies in, asked only when there is a link. */
type FolderParts = () => Promise<readonly string[] | undefined>;
/** A value at once, when what it needs is cached, or its promise. */
type Soon<T> = T | Promise<T>;

const then = <T, U>(v: Soon<T>, f: (t: T) => Soon<U>): Soon<U> => (v instanceof Promise ? v.then(f) : f(v));

export class NtfsFileSystem implements VolumeFileSystem {
  readonly type = 'ntfs' as const;
  private readonly inodes = new LRUCache<number, Inode>({ max: CACHED_INODES, maxSize: CACHED_INODE_WEIGHT, sizeCalculation: (i) => Math.max(1, inodeWeight(i)) });
  private readonly loading = new Map<number, Promise<Inode>>();
  private readonly folders = new LRUCache<number, Promise<Folder>>({ maxSize: CACHED_DIR_ENTRIES });
  private readonly backing: Backing;

  constructor(
    private readonly volume: Volume,
    private readonly g: Geometry,
    private readonly indexBlockSize: Bytes,
    private readonly upcase: (name: string) => string,
    private readonly letter: string,
  ) {
    this.backing = { source: volume.source, sourceOffset: volume.sourceOffset, clusterSize: g.clusterSize };
  }

  /** A format error as a CorruptVolumeError that names the record; any other error as it is. */
  private named(record: number, e: unknown): unknown {
    return e instanceof NtfsFormatError ? new CorruptVolumeError(this.volume, `MFT record ${record}: ${e.message}`) : e;
  }

  /** Runs `f`, turning a format error into a CorruptVolumeError that names the record. */
  private async guard<T>(record: number, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw this.named(record, e);
    }
  }

  /**
   * Inode `n`, at once when it is cached or its MFT block is (and it has no extension records).
   * `keep` false: one parsed from its block now is not cached (a listing's: what it shows is in its
   * nodes, and keeping thousands of parsed files was most of a walk's garbage collection).
   */
  private inodeSoon(n: number, keep = true): Soon<Inode> {
    const known = this.inodes.get(n) ?? this.loading.get(n);
    if (known) return known;
    let now: Soon<Inode> | undefined;
    try {
      now = inodeNow(this.g, n);
    } catch (e) {
      throw this.named(n, e);
    }
    if (now !== undefined && !(now instanceof Promise)) {
      if (keep) this.inodes.set(n, now);
      return now;
    }
    const p = this.guard(n, () => now ?? loadInode(this.g, n));
    this.loading.set(n, p);
    p.then(
      (i) => this.loading.delete(n) && this.inodes.set(n, i),
      () => this.loading.delete(n),
    );
    return p;
  }

  private async inode(n: number): Promise<Inode> {
    return this.inodeSoon(n);
  }

  async root(): Promise<FsNode> {
    const node = await this.node(await this.inode(ROOT_RECORD), async () => []);
    if (node?.type !== 'dir') throw new CorruptVolumeError(this.volume, `MFT record ${ROOT_RECORD}, the root, is not a folder`);
    return node;
  }

  /** The FsNode of an inode, at once unless it has a reparse point; undefined for a link that points out of the volume. */
  private node(inode: Inode, folderParts: FolderParts): Soon<FsNode | undefined> {
    if (!inode.attributes.some((a) => a.type === AttrType.reparsePoint && a.name === '')) return plainNode(inode);
    return this.guard(inode.record, async () => {
      const link = await this.linkText(inode, await folderParts());
      if (link === null) return undefined;
      return link === undefined ? plainNode(inode) : nodeOf(inode.record, inode.info, inode.linkCount, 'symlink', Buffer.byteLength(link));
    });
  }

  /**
   * A junction's or symlink's target relative to its folder (`folderParts`, or the folder of its
   * first long name); null when it points out of the volume; undefined when it is no link.
   */
  private async linkText(inode: Inode, folderParts: readonly string[] | undefined): Promise<string | null | undefined> {
    const reparse = await this.guard(inode.record, () => reparseOf(this.g, inode));
    if (!reparse) return undefined;
    const t = await this.guard(inode.record, async () => parseLinkTarget(reparse));
    if (t === undefined) return undefined;
    const parts = folderParts ?? (await this.pathOf(inode))?.slice(0, -1);
    if (parts === undefined) return null;
    return relativeLinkPath(t, this.letter, parts, (a, b) => this.upcase(a) === this.upcase(b)) ?? null;
  }

  /** Names from the root to `inode` by first long names; undefined when it has no path to the root. */
  private async pathOf(inode: Inode): Promise<string[] | undefined> {
    const parts: string[] = [];
    let at = inode;
    for (let depth = 0; depth < MAX_DEPTH; depth++) {
      if (at.record === ROOT_RECORD) return parts;
      const name = at.names.find((n) => n.namespace !== NAMESPACE_DOS);
      if (!name) return undefined;
      parts.unshift(name.name);
      at = await this.inode(name.parent.record);
    }
    return undefined;
  }

  /** The path of a folder being listed or looked in, for the targets of the links in it. */
  private async folderParts(dir: FsNode): Promise<string[] | undefined> {
    return this.guard(dir.id, async () => this.pathOf(await this.inode(dir.id)));
  }

  private async folderInode(dir: FsNode): Promise<Inode> {
    const inode = await this.inode(dir.id);
    if (!inode.isDirectory) throw new NtfsFormatError('is not a folder');
    return inode;
  }

  private folder(dir: FsNode): Promise<Folder> {
    const load = (): Promise<Folder> =>
      this.guard(dir.id, async () => {
        const byName = new Map<string, IndexEntry>();
        const entries: IndexEntry[] = [];
        for (const e of await readDirectoryIndex(this.g, await this.folderInode(dir), this.indexBlockSize)) {
          if (!isListed(e)) continue;
          const key = this.upcase(e.key.name);
          if (byName.has(key)) continue;
          byName.set(key, e);
          entries.push(e);
        }
        return { entries, byName };
      });
    return cachedLoad(this.folders, dir.id, load, (f) => f.entries.length);
  }

  private child(e: IndexEntry, folderParts: FolderParts, keep: boolean): Soon<Child> {
    return then(this.inodeSoon(e.file.record, keep), (inode) => {
      this.checkSequence(e, inode.sequence);
      return then(this.node(inode, folderParts), (node) => node && { name: e.key.name, node });
    });
  }

  private checkSequence(e: IndexEntry, sequence: number): void {
    if (sequence !== e.file.sequence) {
      throw new CorruptVolumeError(this.volume, `MFT record ${e.file.record}: sequence ${sequence}, the folder entry '${e.key.name}' says ${e.file.sequence}`);
    }
  }

  /**
   * A listing's entry: from its record's summary when its MFT block is cached and the summary is
   * all it needs (docs/filesystems-ntfs.md §3), else from the whole file, which is not kept.
   */
  private listed(e: IndexEntry, folderParts: FolderParts): Soon<Child> {
    const n = e.file.record;
    if (this.inodes.has(n) || this.loading.has(n)) return this.child(e, folderParts, false);
    let s: RecordSummary | undefined;
    try {
      s = this.g.mft.summaryNow(n);
      if (!(s === undefined || s.baseRecord === 0)) throw new NtfsFormatError(`record ${n} is an extension record of ${s?.baseRecord}`);
    } catch (err) {
      throw this.named(n, err);
    }
    if (!s) return this.child(e, folderParts, false);
    this.checkSequence(e, s.sequence);
    return { name: e.key.name, node: nodeOf(n, s.info, s.linkCount, s.flags & RECORD_IS_DIRECTORY ? 'dir' : 'file', s.size) };
  }

  /** Memoized: the folder's path is walked only when one of its entries is a link. */
  private partsOf(dir: FsNode): FolderParts {
    let parts: Promise<readonly string[] | undefined> | undefined;
    return () => (parts ??= this.folderParts(dir));
  }

  /**
   * Every entry once; an entry whose record is corrupt is left out (a lookup of it fails). The
   * entries' MFT blocks are read first, together; then most entries are made without a promise.
   */
  async list(dir: FsNode): Promise<readonly DirEntry[]> {
    const folder = await this.folder(dir);
    await this.g.mft.preload(folder.entries.map((e) => e.file.record));
    const parts = this.partsOf(dir);
    const out: DirEntry[] = [];
    for (const e of folder.entries) {
      let c: Child;
      try {
        const soon = this.listed(e, parts);
        c = soon instanceof Promise ? await soon : soon;
      } catch (err) {
        c = skipCorrupt(err);
      }
      if (c) out.push(c);
    }
    return out;
  }

  /** By the folder's map once it was read whole (a listing), else by descending its B-tree. */
  async lookup(dir: FsNode, name: string): Promise<DirEntry | undefined> {
    const key = this.upcase(name);
    const listed = this.folders.get(dir.id);
    const e = listed ? (await listed).byName.get(key) : await this.guard(dir.id, async () => findInIndex(this.g, await this.folderInode(dir), this.indexBlockSize, key, this.upcase));
    if (!e || !isListed(e)) return undefined;
    return this.child(e, this.partsOf(dir), true);
  }

  async readlink(link: FsNode): Promise<string> {
    const text = await this.linkText(await this.inode(link.id), undefined);
    if (typeof text !== 'string') throw new CorruptVolumeError(this.volume, `MFT record ${link.id} is not a link inside the volume`);
    return text;
  }

  async data(file: FsNode): Promise<FileData> {
    const inode = await this.inode(file.id);
    if (inode.isDirectory) throw new Error(`${this.volume.name}: MFT record ${file.id} is a folder, not a file`);
    const reparse = await this.guard(file.id, () => reparseOf(this.g, inode));
    if (reparse) {
      const tag = await this.guard(file.id, async () => reparseTag(reparse));
      const what = tag === IO_REPARSE_TAG_WOF ? 'is WOF-compressed (its data is in the WofCompressedData stream)' : `has reparse tag 0x${tag.toString(16)}`;
      throw new UnsupportedDataError(`${this.volume.name}: MFT record ${file.id} ${what}, whose data this reader does not decode`);
    }
    return (await this.streamData(file, ''))!;
  }

  /** A named $DATA stream (an alternate data stream; '' is the file's own data); undefined when absent. */
  async streamData(file: FsNode, name: string): Promise<FileData | undefined> {
    const inode = await this.inode(file.id);
    const attrs = attributesOf(inode, AttrType.data, name);
    const encrypted = (inode.info.dosAttributes & FILE_ATTRIBUTE_ENCRYPTED) !== 0 || attrs.some((a) => a.flags & ATTR_ENCRYPTED) || attributesOf(inode, AttrType.loggedUtilityStream, '$EFS').length > 0;
    if (encrypted) throw new UnsupportedDataError(`${this.volume.name}: MFT record ${file.id} is encrypted (EFS)`);
    if (attrs.length === 0) {
      if (name === '') throw new CorruptVolumeError(this.volume, `MFT record ${file.id} has no $DATA`);
      return undefined;
    }
    return this.guard(file.id, async () => this.fileData(file.id, attrs));
  }

  private fileData(record: number, attrs: ReturnType<typeof attributesOf>): FileData {
    const value = attrs.length === 1 ? attrs[0]!.value : undefined;
    if (value) return { kind: 'layout', layout: residentLayout(value) };
    const stream = streamOf(attrs, this.g.clusterSize)!; // attrs is not empty, and streamOf refuses resident ones
    if (stream.compressionUnit === 0 || !(attrs[0]!.flags & ATTR_COMPRESSED)) return { kind: 'layout', layout: streamLayout(stream, this.backing) };
    if (stream.compressionUnit !== LZNT1_UNIT || this.g.clusterSize > MAX_COMPRESSED_CLUSTER) {
      throw new UnsupportedDataError(`${this.volume.name}: MFT record ${record} is compressed in units of 2^${stream.compressionUnit} clusters of ${this.g.clusterSize} bytes`);
    }
    const decoded = compressedStream(this.g.volume, stream, this.g.clusterSize);
    return { kind: 'decoded', size: decoded.size, read: (pos, length) => this.guard(record, () => decoded.read(pos, length)) };
  }

  /** The bytes of the file's reparse point (its tag first), or undefined when it has none. */
  async reparseData(file: FsNode): Promise<Buffer | undefined> {
    const inode = await this.inode(file.id);
    return this.guard(file.id, () => reparseOf(this.g, inode));
  }
}

/** One object literal, not a spread of a common part: a listing makes one per entry. */
function nodeOf(id: number, info: StandardInformation, nlink: number, type: NodeType, size: Bytes): FsNode {
  return { id, type, size, mtimeMs: info.mtimeMs, atimeMs: info.atimeMs, ctimeMs: info.ctimeMs, birthtimeMs: info.birthtimeMs, nlink, dosAttributes: info.dosAttributes };
}

/** The node of a file or folder that is no link. */
function plainNode(inode: Inode): FsNode {
  const [type, size] = inode.isDirectory ? (['dir', sizeOf(inode, AttrType.indexAllocation, '$I30')] as const) : (['file', sizeOf(inode, AttrType.data, '')] as const);
  return nodeOf(inode.record, inode.info, inode.linkCount, type, size);
}

/** An attribute's size as its value or its first extent says it (its runs are checked when it is read). */
function sizeOf(inode: Inode, type: number, name: string): Bytes {
  let first = true;
  for (const a of inode.attributes) {
    if (a.type !== type || a.name !== name) continue;
    if (first && a.value) return a.value.length;
    first = false;
    if (a.nonResident?.startVcn === 0) return a.nonResident.dataSize;
  }
  return 0;
}

function residentLayout(value: Buffer): Layout {
  return { size: value.length, segments: value.length > 0 ? [{ kind: 'bytes', start: 0, length: value.length, data: Buffer.from(value) }] : [] };
}

/** A DOS 8.3 alias and the metafiles are not listed (§8, §3). */
function isListed(e: IndexEntry): boolean {
  return e.key.namespace !== NAMESPACE_DOS && e.file.record >= FIRST_USER_RECORD;
}

function skipCorrupt(e: unknown): undefined {
  if (e instanceof CorruptVolumeError) return undefined;
  throw e;
}

export interface NtfsOptions {
  /** The volume's drive letter on the machine backed up (UrBackup's image letter): links to it stay inside. Default C. */
  readonly letter?: string;
}

/** The NTFS filesystem on `volume`; rejects a volume that is not NTFS or whose core structures are corrupt. */
export async function openNtfs(volume: Volume, options: NtfsOptions = {}): Promise<NtfsFileSystem> {
  const { g, boot } = await openMft(volume);
  return new NtfsFileSystem(volume, g, boot.indexBlockSize, makeUpcase(await readUpcase(g)), options.letter ?? 'C');
}

/** $UpCase's table, or undefined when it cannot be read whole (names then fold with toUpperCase, §12). */
async function readUpcase(g: Geometry): Promise<Buffer | undefined> {
  try {
    return await valueOf(g, attributesOf(await loadInode(g, UPCASE_RECORD), AttrType.data, ''), UPCASE_BYTES, '$UpCase');
  } catch (e) {
    if (e instanceof NtfsFormatError) return undefined;
    throw e;
  }
}
