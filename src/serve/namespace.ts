// The tree under the mount: <mount>/<client>/<file>, with stable inode numbers. A rescan updates
// it in place: folders whose files are the same objects as before keep their nodes, so the
// work of an update follows what changed, not how many backups there are.
import type { VirtualFile } from '../catalog/virtual-file.js';
import type { ImageFolder } from '../urbackup/storage.js';

/** The FUSE root directory's inode number (FUSE_ROOT_ID). */
export const ROOT_INO = 1;

export interface FileNode {
  readonly kind: 'file';
  readonly ino: number;
  readonly file: VirtualFile;
}

/** An image folder beside the disk files: the root of its volume's files (docs/browsing.md). */
export interface ImageNode {
  readonly kind: 'image';
  readonly ino: number;
  /** The image folder's own name, e.g. 240520-0143_Image_C. */
  readonly name: string;
  /** A disk file the image is in: its owner and mode are the folder's, its name the one to attach instead. */
  readonly file: VirtualFile;
  readonly image: ImageFolder;
  /** Identifies the image's contents: a changed disk shows its images under new inode numbers too. */
  readonly key: string;
}

export interface DirNode {
  readonly kind: 'dir';
  readonly ino: number;
  readonly name: string;
  readonly mtime: Date;
  /** Sorted by name. */
  readonly files: ReadonlyMap<string, FileNode>;
  /** The image folders of the disks in `files`, sorted by name. */
  readonly images: ReadonlyMap<string, ImageNode>;
}

export interface RootNode {
  readonly kind: 'root';
  readonly ino: number;
  readonly mtime: Date;
  /** Sorted by name. */
  readonly dirs: ReadonlyMap<string, DirNode>;
}

export type Node = RootNode | DirNode | FileNode | ImageNode;

/** FNV-1a 32-bit offset basis and prime (draft-eastlake-fnv §2). */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * 31 bits (some readers, smbstatus and 32-bit tools, take inode numbers as signed) of FNV-1a over
 * the key's UTF-16 code units, mixed by MurmurHash3's fmix32 so that keys differing in their last
 * characters spread. Nothing here needs a cryptographic hash (collisions are resolved below), and
 * the first update hashes every key (docs/architecture.md §5).
 */
function hash31(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) & 0x7fffffff;
}

/**
 * Inode numbers from a hash of each entry's key. FUSE here takes a u32, so collisions are
 * possible: a key whose hash no other key has and no number takes gets it; the others are
 * resolved by rehashing with a counter, in key order. So the same set of keys gets the same
 * numbers on every start. Within one run a key keeps its first number.
 */
export class InodeAllocator {
  private readonly byKey = new Map<string, number>();
  private readonly taken = new Set<number>([0, ROOT_INO]);

  /** Gives numbers to the keys that have none. */
  add(keys: readonly string[]): void {
    // Sorting only the few keys that collide, not all of them (docs/architecture.md §5).
    const byHash = new Map<number, string | string[]>();
    for (const key of keys) {
      if (this.byKey.has(key)) continue;
      const h = hash31(key);
      const have = byHash.get(h);
      if (have === undefined) byHash.set(h, key);
      else if (typeof have === 'string') {
        if (have !== key) byHash.set(h, [have, key]);
      } else if (!have.includes(key)) have.push(key);
    }
    const clashing: string[] = [];
    for (const [h, k] of byHash) {
      if (typeof k === 'string' && !this.taken.has(h)) this.assign(k, h);
      else clashing.push(...(typeof k === 'string' ? [k] : k));
    }
    for (const key of clashing.sort()) {
      let ino = hash31(key);
      for (let n = 1; this.taken.has(ino); n++) ino = hash31(`${key}#${n}`);
      this.assign(key, ino);
    }
  }

  private assign(key: string, ino: number): void {
    this.byKey.set(key, ino);
    this.taken.add(ino);
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** The number of a key given by add(). */
  get(key: string): number {
    return this.byKey.get(key)!;
  }

  /** Frees a key's number for reuse. */
  release(key: string): void {
    const ino = this.byKey.get(key);
    if (ino === undefined) return;
    this.byKey.delete(key);
    this.taken.delete(ino);
  }
}

const dirKey = (name: string): string => `dir:${name}`;
/** A file's inode follows its contents: the same key with another version is another inode. */
const fileKey = (f: VirtualFile): string => `file:${f.key}\0${f.version}`;
const imageKey = (f: VirtualFile, image: ImageFolder): string => `image:${f.dir}/${image.folder}\0${f.version}`;

/** The image folders of a folder's files, each once (a disk's .vhd and .vhdx show the same images). */
function imagesOf(files: Iterable<VirtualFile>): Map<string, { file: VirtualFile; image: ImageFolder }> {
  const out = new Map<string, { file: VirtualFile; image: ImageFolder }>();
  for (const f of files) for (const image of f.images ?? []) if (validName(image.folder) && !out.has(image.folder)) out.set(image.folder, { file: f, image });
  return out;
}

function newest(dates: Iterable<Date>, fallback: Date): Date {
  let best = fallback;
  let any = false;
  for (const d of dates) {
    if (!any || d.getTime() > best.getTime()) best = d;
    any = true;
  }
  return best;
}

/** A usable path component: no separators, not "." or "..", no NUL. */
function validName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !/[/\0]/.test(name);
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** What an update changed, for telling the kernel (invalidation) and the log. */
export interface NamespaceChange {
  readonly added: FileNode[];
  readonly removed: FileNode[];
  /** Same key and place, another VirtualFile; a new inode number when its version (its bytes) changed. */
  readonly replaced: { readonly before: FileNode; readonly after: FileNode }[];
  readonly addedDirs: DirNode[];
  readonly removedDirs: DirNode[];
  /** Folders that stay but whose files changed. */
  readonly changedDirs: DirNode[];
  /** Image folders no longer shown (their volumes can be let go). */
  readonly removedImages: ImageNode[];
  /** Why some files were left out (bad names, duplicates). */
  readonly warnings: string[];
  /** Names the kernel may have cached (a dentry, or a negative one) that now mean something else. */
  readonly stale: StaleName[];
}

function sameFiles(old: ReadonlyMap<string, FileNode>, now: ReadonlyMap<string, VirtualFile>): boolean {
  if (old.size !== now.size) return false;
  for (const [name, f] of now) if (old.get(name)?.file !== f) return false;
  return true;
}

/** A scan's files that can be shown, by folder and name. */
interface Grouped {
  readonly byDir: Map<string, Map<string, VirtualFile>>;
  /** Inode keys (key and version) of the files shown, each made once. */
  readonly live: Set<string>;
  readonly inoKeys: Map<VirtualFile, string>;
}

/** Groups a scan's files by folder, leaving out (with a warning) bad names, duplicates and reused keys. */
function grouped(files: readonly VirtualFile[], warnings: string[]): Grouped {
  const byDir = new Map<string, Map<string, VirtualFile>>();
  const keys = new Set<string>();
  const live = new Set<string>();
  const inoKeys = new Map<VirtualFile, string>();
  for (const f of files) {
    const { dir, name, key } = f;
    const list = byDir.get(dir);
    if (!validName(dir) || !validName(name)) warnings.push(`${dir}/${name}: not a valid file name, not shown`);
    else if (list?.has(name)) warnings.push(`${dir}/${name}: shown twice by the catalog, keeping the first`);
    else if (keys.has(key)) warnings.push(`${dir}/${name}: key ${key} is already used by another file, not shown`);
    else {
      if (list) list.set(name, f);
      else byDir.set(dir, new Map([[name, f]]));
      keys.add(key);
      const k = fileKey(f);
      live.add(k);
      inoKeys.set(f, k);
      for (const image of f.images ?? []) live.add(imageKey(f, image));
    }
  }
  return { byDir, live, inoKeys };
}

/** The tree of the latest scan. Nodes are immutable; an update replaces the ones that changed. */
export class Namespace {
  root: RootNode;
  private readonly byIno = new Map<number, Node>();
  private readonly inodes = new InodeAllocator();
  private fileCount = 0;
  private sums: { bytes: number; files: number } | undefined;

  constructor(private readonly emptyTime: Date) {
    this.root = { kind: 'root', ino: ROOT_INO, mtime: emptyTime, dirs: new Map() };
    this.byIno.set(ROOT_INO, this.root);
  }

  /** Shows a new scan's files. */
  update(files: readonly VirtualFile[]): NamespaceChange {
    const change: NamespaceChange = { added: [], removed: [], replaced: [], addedDirs: [], removedDirs: [], changedDirs: [], removedImages: [], warnings: [], stale: [] };
    const shown = grouped(files, change.warnings);
    this.fileCount = shown.inoKeys.size;
    const fresh: string[] = [];
    for (const name of shown.byDir.keys()) if (!this.root.dirs.has(name)) fresh.push(dirKey(name));
    for (const key of shown.live) if (!this.inodes.has(key)) fresh.push(key);
    this.inodes.add(fresh);

    const dirs = new Map<string, DirNode>();
    for (const [name, now] of shown.byDir) {
      const old = this.root.dirs.get(name);
      dirs.set(name, old && sameFiles(old.files, now) ? old : this.dirNode(name, now, old, shown.inoKeys, change));
    }
    for (const [name, old] of this.root.dirs) {
      if (dirs.has(name)) continue;
      change.removedDirs.push(old);
      change.stale.push({ parent: ROOT_INO, name });
      for (const f of old.files.values()) change.removed.push(f);
      change.removedImages.push(...old.images.values());
    }
    if (change.addedDirs.length + change.removedDirs.length + change.changedDirs.length > 0) this.commit(change, dirs, shown.live);
    return change;
  }

  /** The node of a folder that is new or whose files changed; records what changed in `change`. */
  private dirNode(name: string, now: ReadonlyMap<string, VirtualFile>, old: DirNode | undefined, inoKeys: ReadonlyMap<VirtualFile, string>, change: NamespaceChange): DirNode {
    const nodes = new Map<string, FileNode>();
    for (const fname of [...now.keys()].sort(byName)) {
      const f = now.get(fname)!;
      const prev = old?.files.get(fname);
      if (prev?.file === f) {
        nodes.set(fname, prev);
        continue;
      }
      const node: FileNode = { kind: 'file', ino: this.inodes.get(inoKeys.get(f)!), file: f };
      nodes.set(fname, node);
      if (prev && prev.file.key === f.key) change.replaced.push({ before: prev, after: node });
      else {
        if (prev) change.removed.push(prev);
        change.added.push(node);
      }
      if (old && prev?.ino !== node.ino) change.stale.push({ parent: old.ino, name: fname, ...(prev && { changed: f }) });
    }
    for (const [fname, prev] of old?.files ?? []) {
      if (now.has(fname)) continue;
      change.removed.push(prev);
      change.stale.push({ parent: old!.ino, name: fname });
    }
    const dir: DirNode = { kind: 'dir', ino: old?.ino ?? this.inodes.get(dirKey(name)), name, mtime: newest([...now.values()].map((f) => f.mtime), this.emptyTime), files: nodes, images: this.imageNodes(now, old, change) };
    (old ? change.changedDirs : change.addedDirs).push(dir);
    if (!old) change.stale.push({ parent: ROOT_INO, name });
    return dir;
  }

  /** The image folders of a folder's files: a kept one keeps its node; what came and went is recorded in `change`. */
  private imageNodes(now: ReadonlyMap<string, VirtualFile>, old: DirNode | undefined, change: NamespaceChange): Map<string, ImageNode> {
    const found = imagesOf(now.values());
    const nodes = new Map<string, ImageNode>();
    for (const name of [...found.keys()].sort(byName)) {
      const { file, image } = found.get(name)!;
      const key = imageKey(file, image);
      const prev = old?.images.get(name);
      // The same contents with new owners or modes (a chmod in the storage) keep the number and take the new file.
      nodes.set(name, prev?.key === key && prev.file === file ? prev : { kind: 'image', ino: this.inodes.get(key), name, file, image, key });
      if (old && prev?.key !== key) change.stale.push({ parent: old.ino, name });
    }
    for (const [name, prev] of old?.images ?? []) {
      if (nodes.get(name)?.key === prev.key) continue;
      change.removedImages.push(prev);
      if (!nodes.has(name)) change.stale.push({ parent: old!.ino, name });
    }
    return nodes;
  }

  /** Makes `dirs` the tree; `live` holds the inode keys of every file it shows. */
  private commit(change: NamespaceChange, dirs: ReadonlyMap<string, DirNode>, live: ReadonlySet<string>): void {
    // Forget what went away before registering what came, which may reuse a number.
    for (const d of change.removedDirs) {
      this.byIno.delete(d.ino);
      this.inodes.release(dirKey(d.name));
    }
    for (const f of [...change.removed, ...change.replaced.map((r) => r.before)]) {
      if (this.byIno.get(f.ino) === f) this.byIno.delete(f.ino);
      if (!live.has(fileKey(f.file))) this.inodes.release(fileKey(f.file));
    }
    for (const i of change.removedImages) {
      if (this.byIno.get(i.ino) === i) this.byIno.delete(i.ino);
      if (!live.has(i.key)) this.inodes.release(i.key);
    }
    for (const d of [...change.addedDirs, ...change.changedDirs]) {
      this.byIno.set(d.ino, d);
      for (const f of d.files.values()) this.byIno.set(f.ino, f);
      for (const i of d.images.values()) this.byIno.set(i.ino, i);
    }
    const sorted = new Map([...dirs.keys()].sort(byName).map((n) => [n, dirs.get(n)!]));
    this.root = { kind: 'root', ino: ROOT_INO, mtime: newest([...sorted.values()].map((d) => d.mtime), this.emptyTime), dirs: sorted };
    this.byIno.set(ROOT_INO, this.root);
    this.sums = undefined;
  }

  /** The node with inode number `ino`, or undefined when this scan does not show it. */
  node(ino: number): Node | undefined {
    return this.byIno.get(ino);
  }

  /** The child `name` of directory `parent`. */
  child(parent: number, name: string): Node | undefined {
    const p = this.byIno.get(parent);
    if (p?.kind === 'root') return p.dirs.get(name);
    if (p?.kind === 'dir') return p.files.get(name) ?? p.images.get(name);
    return undefined;
  }

  /** The keys of every file shown. */
  keys(): Set<string> {
    const out = new Set<string>();
    for (const d of this.root.dirs.values()) for (const f of d.files.values()) out.add(f.file.key);
    return out;
  }

  /** How many files are shown. */
  get size(): number {
    return this.fileCount;
  }

  /**
   * Bytes and entries (folders included) shown; computed once per change, when first asked. A
   * file whose size is not known yet (a dynamic kind never stat'ed) counts 0 until it is: `df`
   * must not map every `.raw` of the storage.
   */
  totals(): { bytes: number; files: number } {
    if (!this.sums) {
      let bytes = 0;
      let files = 1;
      let complete = true;
      for (const d of this.root.dirs.values()) {
        files += 1 + d.files.size + d.images.size;
        for (const { file } of d.files.values()) {
          if (file.sizeKnown === false) complete = false;
          else bytes += file.computeSize();
        }
      }
      if (!complete) return { bytes, files };
      this.sums = { bytes, files };
    }
    return this.sums;
  }
}

/** A name the kernel may have cached (a dentry, or a negative one) that now means something else. */
export interface StaleName {
  readonly parent: number;
  readonly name: string;
  /** Set when the name stays but shows another inode: the file's contents changed. */
  readonly changed?: VirtualFile;
}
