// The virtual tree as a FUSE filesystem: read-only, concurrent, reading through open handles.
import { constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { type DirNode, type FileNode, Namespace, type NamespaceChange, type Node, ROOT_INO, type RootNode } from './namespace.js';
import { SEEK_DATA, SEEK_HOLE } from '../sys/sparse.js';
import type { FileOpener } from './open-file.js';
import type { ReadableHandle } from './browse-handle.js';
import { Browser, isBrowseIno } from './browse.js';
import type { Attr, Dirent, Statfs } from '../fuse/protocol.js';
import { FuseError, type FuseFs, type OpenHandle } from '../fuse/fuse-fs.js';
import { Handles } from '../fuse/handles.js';
import type { VirtualFile } from '../catalog/virtual-file.js';
import { type AccessPolicy, storageAccess } from './access.js';

const errno = osConstants.errno;
/** Unit of st_blocks (stat(2)). */
const STAT_BLOCK = 512;
/** Preferred I/O size and statfs block size. */
const BLOCK_SIZE = 4096;
const NAME_MAX = 255;
/** The access-mode bits of open(2) flags, <fcntl.h>. */
const O_ACCMODE = 3;

/** Some file of a folder (the root: of its first folder); every file of a folder gives the same folder access. */
function anyFile(node: RootNode | DirNode): VirtualFile | undefined {
  const dir = node.kind === 'root' ? node.dirs.values().next().value : node;
  return dir?.files.values().next().value?.file;
}

export class VirtualFs implements FuseFs {
  private readonly ns: Namespace;
  /** Each folder's entries, built once per folder node (nodes are replaced, never changed). */
  private readonly dirents = new WeakMap<RootNode | DirNode, readonly Dirent[]>();
  /** Open handles by fh, with the disk file they were opened from (it may leave the namespace). */
  private readonly handles = new Handles<{ readonly open: ReadableHandle; readonly node?: FileNode }>();
  /** Files and handles whose failure was already logged: one line each, not one per request. */
  private readonly loggedOpen = new Set<string>();
  private readonly loggedRead = new WeakSet<ReadableHandle>();
  /** The files inside the backups' volumes, under their image folders (docs/browsing.md). */
  private readonly browser: Browser;
  private readonly startTime = new Date();

  constructor(
    private readonly opener: FileOpener,
    private readonly log: (line: string) => void,
    /** Owner, group and mode shown, which the kernel enforces (default_permissions). */
    private readonly access: AccessPolicy = storageAccess(),
  ) {
    this.ns = new Namespace(this.startTime);
    this.browser = new Browser(opener.fds, (image) => this.access.disk(image.file), log);
  }

  /** Shows a new scan; returns what changed. Open handles are not affected. */
  update(files: readonly VirtualFile[]): NamespaceChange {
    return this.ns.update(files);
  }

  /** How many files are shown. */
  get fileCount(): number {
    return this.ns.size;
  }

  /** The keys of every file shown. */
  keys(): Set<string> {
    return this.ns.keys();
  }

  lookup(parent: number, name: string): Attr | undefined | Promise<Attr | undefined> {
    if (isBrowseIno(parent)) return this.browser.lookup(parent, name);
    const p = this.ns.node(parent);
    if (p?.kind === 'image') return this.browser.lookup(p, name);
    const node = this.ns.child(parent, name);
    return node && this.stat(node);
  }

  getattr(ino: number, fh: number | undefined): Attr | undefined {
    if (isBrowseIno(ino)) return this.browser.getattr(ino);
    const node = this.ns.node(ino) ?? (fh === undefined ? undefined : this.handles.get(fh)?.node);
    if (node) return this.stat(node);
    // A file rescanned away while still open keeps answering stat through its handle.
    for (const { node: n } of this.handles.values()) if (n?.ino === ino) return this.stat(n);
    return undefined;
  }

  readlink(ino: number): Promise<string> {
    if (!isBrowseIno(ino)) return Promise.reject(new FuseError(errno.EINVAL));
    return this.browser.readlink(ino);
  }

  /** The files inside backups have `user.DOSATTRIB` (docs/browsing.md §3); the disk files have no extended attribute. */
  getxattr(ino: number, name: string): Buffer | undefined {
    return isBrowseIno(ino) ? this.browser.getxattr(ino, name) : undefined;
  }

  given(_dir: number, entry: Dirent): void {
    if (isBrowseIno(entry.ino)) this.browser.given(entry);
  }

  forget(ino: number, nlookup: number): void {
    if (isBrowseIno(ino)) this.browser.forget(ino, nlookup);
  }

  list(ino: number): readonly Dirent[] | undefined | Promise<readonly Dirent[] | undefined> {
    if (isBrowseIno(ino)) return this.browser.list(ino);
    const node = this.ns.node(ino);
    if (node?.kind === 'image') return this.browser.list(node);
    if (!node || node.kind === 'file') return undefined;
    let list = this.dirents.get(node);
    if (!list) {
      const dirMode = constants.S_IFDIR;
      const head: Dirent[] = [
        { ino: node.ino, name: '.', mode: dirMode },
        { ino: ROOT_INO, name: '..', mode: dirMode },
      ];
      const children: Dirent[] =
        node.kind === 'root'
          ? [...node.dirs.values()].map((d) => ({ ino: d.ino, name: d.name, mode: dirMode }))
          : [
              ...[...node.files].map(([name, f]) => ({ ino: f.ino, name, mode: constants.S_IFREG })),
              ...[...node.images].map(([name, i]) => ({ ino: i.ino, name, mode: dirMode })),
            ];
      list = Object.freeze([...head, ...children]);
      this.dirents.set(node, list);
    }
    return list;
  }

  async open(ino: number, flags: number): Promise<OpenHandle> {
    if ((flags & O_ACCMODE) !== constants.O_RDONLY) throw new FuseError(errno.EROFS);
    if (isBrowseIno(ino)) {
      const open = await this.browser.open(ino);
      return { fh: this.handles.add({ open }), wholeFileFd: open.wholeFileFd, shared: open.shared };
    }
    const node = this.ns.node(ino);
    if (!node) throw new FuseError(errno.ENOENT);
    if (node.kind !== 'file') throw new FuseError(errno.EISDIR);
    let open: ReadableHandle;
    try {
      open = await this.opener.open(node.file);
    } catch (e) {
      if (!this.loggedOpen.has(node.file.key)) {
        this.loggedOpen.add(node.file.key);
        this.log(`${node.file.key}: cannot open: ${(e as Error).message}`);
      }
      throw new FuseError(errno.EIO);
    }
    return { fh: this.handles.add({ open, node }), wholeFileFd: open.wholeFileFd, shared: open.shared };
  }

  async lseek(fh: number, offset: number, whence: number): Promise<number> {
    const handle = this.handles.get(fh)?.open;
    if (!handle) throw new FuseError(errno.EBADF);
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new FuseError(errno.EINVAL);
    const at = handle.seek(offset, whence);
    if (at === undefined) throw new FuseError(errno.ENXIO);
    return at;
  }

  read(fh: number, offset: number, size: number, into: Buffer): Promise<number> {
    const handle = this.handles.get(fh)?.open;
    if (!handle) return Promise.reject(new FuseError(errno.EBADF));
    return handle.read(offset, into, size).catch((e: Error) => {
      if (!this.loggedRead.has(handle)) {
        this.loggedRead.add(handle);
        this.log(`${handle.key}: read failed: ${e.message}`);
      }
      throw new FuseError(errno.EIO);
    });
  }

  release(fh: number): void {
    this.handles.get(fh)?.open.release();
    this.handles.delete(fh);
  }

  /** Releases every open handle (at unmount). */
  releaseAll(): void {
    for (const h of this.handles.values()) h.open.release();
    this.handles.clear();
  }

  private stat(node: Node): Attr {
    if (node.kind === 'image') return this.browser.imageAttr(node);
    if (node.kind === 'file') {
      const { mtime } = node.file;
      const size = this.sizeOf(node.file);
      const { uid, gid, mode } = this.access.disk(node.file);
      return { uid, gid, ino: node.ino, blksize: BLOCK_SIZE, mode: constants.S_IFREG | mode, size, nlink: 1, blocks: Math.ceil(size / STAT_BLOCK), mtime };
    }
    const { uid, gid, mode } = node.kind === 'root' ? this.access.root(anyFile(node)) : this.access.folder(anyFile(node)!);
    const nlink = node.kind === 'root' ? 2 + node.dirs.size : 2 + node.images.size;
    return { uid, gid, ino: node.ino, blksize: BLOCK_SIZE, mode: constants.S_IFDIR | mode, size: BLOCK_SIZE, nlink, blocks: 0, mtime: node.mtime };
  }

  /** A file's size; one that cannot be computed (a dynamic kind whose `.raw` cannot be mapped) fails its stat with EIO, logged once. */
  private sizeOf(file: VirtualFile): number {
    try {
      return file.computeSize();
    } catch (e) {
      if (!this.loggedOpen.has(file.key)) {
        this.loggedOpen.add(file.key);
        this.log(`${file.key}: cannot stat: ${(e as Error).message}`);
      }
      throw new FuseError(errno.EIO);
    }
  }

  /** Size of everything shown; nothing is free (the mount is read-only, ST_RDONLY comes from the kernel). */
  statfs(): Statfs {
    const { bytes, files } = this.ns.totals();
    return { bsize: BLOCK_SIZE, blocks: Math.ceil(bytes / BLOCK_SIZE), files, namelen: NAME_MAX };
  }
}
