// The tree under the mount: <mount>/<client>/<file>, with stable inode numbers.
import { createHash } from 'node:crypto';
import type { VirtualFile } from '../catalog/virtual-file.js';

/** The FUSE root directory's inode number (FUSE_ROOT_ID). */
export const ROOT_INO = 1;

export interface FileNode {
  readonly kind: 'file';
  readonly ino: number;
  readonly file: VirtualFile;
}

export interface DirNode {
  readonly kind: 'dir';
  readonly ino: number;
  readonly name: string;
  readonly mtime: Date;
  /** Sorted by name. */
  readonly files: ReadonlyMap<string, FileNode>;
}

export interface RootNode {
  readonly kind: 'root';
  readonly ino: number;
  readonly mtime: Date;
  /** Sorted by name. */
  readonly dirs: ReadonlyMap<string, DirNode>;
}

export type Node = RootNode | DirNode | FileNode;

/** 31 bits: some readers (smbstatus, 32-bit tools) take inode numbers as signed. */
function hash31(text: string): number {
  return createHash('sha1').update(text).digest().readUInt32LE(0) & 0x7fffffff;
}

/**
 * Inode numbers from a hash of each entry's key. FUSE here takes a u32, so collisions are
 * possible: they are resolved by rehashing with a counter, in key order, so the same set of
 * keys gets the same numbers on every start. Within one run a key keeps its first number.
 */
export class InodeAllocator {
  private readonly byKey = new Map<string, number>();
  private readonly taken = new Set<number>([0, ROOT_INO]);

  /** Numbers for `keys`; keys not seen again are released for reuse. */
  assign(keys: readonly string[]): Map<string, number> {
    const wanted = new Set(keys);
    for (const [key, ino] of this.byKey) {
      if (!wanted.has(key)) {
        this.byKey.delete(key);
        this.taken.delete(ino);
      }
    }
    for (const key of [...wanted].sort()) {
      if (this.byKey.has(key)) continue;
      let ino = hash31(key);
      for (let n = 1; this.taken.has(ino); n++) ino = hash31(`${key}#${n}`);
      this.byKey.set(key, ino);
      this.taken.add(ino);
    }
    return new Map(keys.map((k) => [k, this.byKey.get(k)!]));
  }
}

const dirKey = (name: string): string => `dir:${name}`;
/** A file's inode follows its contents: the same key with another version is another inode. */
const fileKey = (f: VirtualFile): string => `file:${f.key}\0${f.version}`;

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

/** One scan's tree. Immutable: a rescan builds a new one. */
export class Namespace {
  readonly root: RootNode;
  /** Why some files were left out (bad names, duplicates). */
  readonly warnings: string[] = [];
  private readonly byIno = new Map<number, Node>();

  constructor(files: readonly VirtualFile[], inodes: InodeAllocator, emptyTime: Date) {
    const kept = new Map<string, VirtualFile>();
    const keys = new Set<string>();
    for (const f of files) {
      const path = `${f.dir}/${f.name}`;
      if (!validName(f.dir) || !validName(f.name)) this.warnings.push(`${path}: not a valid file name, not shown`);
      else if (kept.has(path)) this.warnings.push(`${path}: shown twice by the catalog, keeping the first`);
      else if (keys.has(f.key)) this.warnings.push(`${path}: key ${f.key} is already used by another file, not shown`);
      else {
        kept.set(path, f);
        keys.add(f.key);
      }
    }
    const byDir = new Map<string, VirtualFile[]>();
    for (const f of kept.values()) {
      const list = byDir.get(f.dir) ?? [];
      list.push(f);
      byDir.set(f.dir, list);
    }
    const inos = inodes.assign([...[...byDir.keys()].map(dirKey), ...[...kept.values()].map(fileKey)]);
    const dirs = new Map<string, DirNode>();
    for (const name of [...byDir.keys()].sort()) {
      const list = byDir.get(name)!.sort((a, b) => (a.name < b.name ? -1 : 1));
      const nodes = new Map<string, FileNode>(list.map((f) => [f.name, { kind: 'file', ino: inos.get(fileKey(f))!, file: f }]));
      dirs.set(name, { kind: 'dir', ino: inos.get(dirKey(name))!, name, mtime: newest(list.map((f) => f.mtime), emptyTime), files: nodes });
    }
    this.root = { kind: 'root', ino: ROOT_INO, mtime: newest([...dirs.values()].map((d) => d.mtime), emptyTime), dirs };
    this.byIno.set(ROOT_INO, this.root);
    for (const d of dirs.values()) {
      this.byIno.set(d.ino, d);
      for (const f of d.files.values()) this.byIno.set(f.ino, f);
    }
  }

  /** The node with inode number `ino`, or undefined when this scan does not show it. */
  node(ino: number): Node | undefined {
    return this.byIno.get(ino);
  }

  /** The child `name` of directory `parent`. */
  child(parent: number, name: string): Node | undefined {
    const p = this.byIno.get(parent);
    if (p?.kind === 'root') return p.dirs.get(name);
    if (p?.kind === 'dir') return p.files.get(name);
    return undefined;
  }

  /** Every file shown, keyed by VirtualFile.key. */
  files(): Map<string, VirtualFile> {
    const out = new Map<string, VirtualFile>();
    for (const d of this.root.dirs.values()) for (const n of d.files.values()) out.set(n.file.key, n.file);
    return out;
  }
}

/** A name the kernel may have cached (a dentry, or a negative one) that now means something else. */
export interface StaleName {
  readonly parent: number;
  readonly name: string;
  /** Set when the name stays but shows another inode: the file's contents changed. */
  readonly changed?: VirtualFile;
}

/** Names whose lookup differs between two scans: gone, new, or another inode now. */
export function staleNames(before: Namespace, after: Namespace): StaleName[] {
  const out: StaleName[] = [];
  const dirs = new Set([...before.root.dirs.keys(), ...after.root.dirs.keys()]);
  for (const dir of dirs) {
    const a = before.root.dirs.get(dir);
    const b = after.root.dirs.get(dir);
    if (!a || !b || a.ino !== b.ino) out.push({ parent: ROOT_INO, name: dir });
    if (!a || !b) continue;
    for (const name of new Set([...a.files.keys(), ...b.files.keys()])) {
      const x = a.files.get(name);
      const y = b.files.get(name);
      if (x?.ino !== y?.ino) out.push({ parent: b.ino, name, ...(x && y && { changed: y.file }) });
    }
  }
  return out;
}
