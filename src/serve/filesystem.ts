// The virtual tree as a FUSE filesystem: a tree nobody changes, read concurrently through open
// handles; a disk opened for writing takes the writes into its writer's private overlay
// (docs/overlays.md), or is refused with EROFS without overlays (serve --read-only).
import type { Bytes } from '../base/units.js';
import { constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { type DirNode, type FileNode, Namespace, type NamespaceChange, type Node, ROOT_INO, type RootNode } from './namespace.js';
import { SEEK_DATA, SEEK_HOLE } from '../sys/sparse.js';
import type { FileOpener, OpenFile } from './open-file.js';
import type { ReadableHandle } from './browse-handle.js';
import { Browser, isBrowseIno } from './browse.js';
import { type Attr, type Dirent, Fattr, type Statfs } from '../fuse/protocol.js';
import { type AttrChange, FuseError, type FuseFs, type OpenHandle } from '../fuse/fuse-fs.js';
import type { Notifier } from '../fuse/notifier.js';
import type { OpenOffers } from '../fuse/fuse-fs.js';
import { Handles } from '../fuse/handles.js';
import type { VirtualFile } from '../catalog/virtual-file.js';
import { type AccessPolicy, storageAccess } from './access.js';
import type { Overlay } from './overlay.js';
import type { Overlays } from './overlays.js';
import type { SharedLayout } from '../io/shared-layout.js';

const errno = osConstants.errno;
/** Unit of st_blocks (stat(2)). */
const STAT_BLOCK = 512;
/** Preferred I/O size and statfs block size. */
const BLOCK_SIZE = 4096;
const NAME_MAX = 255;
/** The access-mode bits of open(2) flags, <fcntl.h>. */
const O_ACCMODE = 3;
/** SETATTR fields that would change what everyone sees: refused. */
const OWNERSHIP = Fattr.MODE | Fattr.UID | Fattr.GID;

/** An open handle: what it reads, the disk file it was opened from (it may leave the namespace) and a writer's overlay, or a file inside a volume. */
type Handle =
  | { readonly open: OpenFile; readonly node: FileNode; readonly writer?: { readonly key: string; readonly overlay: Overlay } }
  | { readonly open: ReadableHandle; readonly node?: undefined; readonly writer?: undefined };

/** Why a failed overlay write failed, for the kernel: its errno (ENOSPC, EFBIG...), else EIO. */
function errnoOf(e: unknown): number {
  if (e instanceof FuseError) return e.errno;
  const code = (e as NodeJS.ErrnoException).code;
  return (code && (errno as Record<string, number>)[code]) || errno.EIO;
}

/** Some file of a folder (the root: of its first folder); every file of a folder gives the same folder access. */
function anyFile(node: RootNode | DirNode): VirtualFile | undefined {
  const dir = node.kind === 'root' ? node.dirs.values().next().value : node;
  return dir?.files.values().next().value?.file;
}

export class VirtualFs implements FuseFs {
  private readonly ns: Namespace;
  /** Each folder's entries, built once per folder node (nodes are replaced, never changed). */
  private readonly dirents = new WeakMap<RootNode | DirNode, readonly Dirent[]>();
  /** Open handles by fh: disk files with the node they were opened from (it may leave the namespace), files inside volumes. */
  private readonly handles = new Handles<Handle>();
  /** Files and handles whose failure was already logged: one line each, not one per request. */
  private readonly loggedOpen = new Set<string>();
  private readonly loggedRead = new WeakSet<ReadableHandle>();
  private readonly loggedWrite = new WeakSet<Overlay>();
  private loggedReserve = false;
  /** The files inside the backups' volumes, under their image folders (docs/browsing.md). */
  private readonly browser: Browser;
  private readonly startTime = new Date();
  /** The mounted session's: a writer's last close drops the size the kernel holds. */
  notifier: Notifier | undefined;

  /** The mounted session's request workers open the files inside backups it offers them (docs/browsing.md §3). */
  set offers(offers: OpenOffers) {
    this.browser.offers = offers;
  }

  constructor(
    private readonly opener: FileOpener,
    private readonly log: (line: string) => void,
    /** Owner, group and mode shown, which the kernel enforces (default_permissions). */
    private readonly access: AccessPolicy = storageAccess(),
    /** Where writes go; none: opens for writing fail with EROFS. */
    private readonly overlays?: Overlays,
    /** Whether to answer getxattr (user.DOSATTRIB); without it every getxattr is ENOSYS, which the kernel remembers. */
    dosAttributes = false,
  ) {
    this.ns = new Namespace(this.startTime);
    this.browser = new Browser(opener, (image) => this.access.disk(image.file), log);
    if (!dosAttributes) this.getxattr = undefined;
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
    const h = fh === undefined ? undefined : this.handles.get(fh);
    if (h?.writer && h.node.ino === ino) return this.writerStat(h.node, h.writer.overlay);
    const node = this.ns.node(ino) ?? h?.node;
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
  getxattr: ((ino: number, name: string) => Buffer | undefined) | undefined = (ino, name) =>
    isBrowseIno(ino) ? this.browser.getxattr(ino, name) : undefined;

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

  async open(ino: number, flags: number, uid: number): Promise<OpenHandle> {
    const writing = (flags & O_ACCMODE) !== constants.O_RDONLY;
    if (isBrowseIno(ino)) {
      if (writing) throw new FuseError(errno.EROFS);
      const { handle, contents } = await this.browser.open(ino);
      return { fh: this.handles.add({ open: handle }), wholeFileFd: handle.wholeFileFd, share: handle.share?.bind(handle), ...(contents && { contents }) };
    }
    // O_APPEND would write past the pristine end on every write: no use for a disk image.
    if (writing && (!this.overlays || flags & constants.O_APPEND)) throw new FuseError(errno.EROFS);
    const node = this.ns.node(ino);
    if (!node) throw new FuseError(errno.ENOENT);
    if (node.kind !== 'file') throw new FuseError(errno.EISDIR);
    let open: OpenFile;
    try {
      open = await this.opener.open(node.file);
    } catch (e) {
      if (!this.loggedOpen.has(node.file.key)) {
        this.loggedOpen.add(node.file.key);
        this.log(`${node.file.key}: cannot open: ${(e as Error).message}`);
      }
      throw new FuseError(errno.EIO);
    }
    if (!writing || !this.overlays) return { fh: this.handles.add({ open, node }), wholeFileFd: open.wholeFileFd, share: () => open.share() };
    try {
      const { key, overlay, pristine, first } = await this.overlays.acquire(ino, uid, open, node.file.computeSize());
      // The workers answer reads of regions nobody wrote from the disk as served (docs/overlays.md §5).
      const share = (): SharedLayout => ({ ...pristine.share(), written: overlay.regions });
      const fh = this.handles.add({ open: pristine, node, writer: { key, overlay } });
      const fd = overlay.wholeViewFd;
      if (fd === undefined) return { fh, direct: true, share };
      // The kernel may take a clone only from its first handle (none through synthvhd beside it),
      // with the most the disk's writes can take reserved (docs/overlays.md §4).
      const reserve = node.file.fullSize?.() ?? node.file.computeSize();
      const claim = (): boolean => overlay.inKernel || (first && (overlay.toKernel(reserve) || this.keptFromKernel(node.file.key, reserve)));
      return { fh, direct: true, share, kernelView: { fd, owner: overlay, claim } };
    } catch (e) {
      this.log(`${node.file.key}: cannot open for writing: ${(e as Error).message}`);
      throw new FuseError(errnoOf(e));
    }
  }

  /** Logs once why a clone stays with synthvhd; false. */
  private keptFromKernel(key: string, reserve: Bytes): boolean {
    if (!this.loggedReserve) this.log(`${key}: --overlay-limit leaves ${this.overlays!.store.remaining} bytes, less than the ${reserve} its writer could take: its writes go through synthvhd, not the kernel (docs/overlays.md §4)`);
    this.loggedReserve = true;
    return false;
  }

  async write(fh: number, offset: number, data: Buffer): Promise<number> {
    const h = this.handles.get(fh);
    const writer = h?.writer;
    if (!writer) throw new FuseError(errno.EBADF);
    return writer.overlay.write(offset, data).catch((e: unknown) => {
      // The limit's ENOSPC is logged by the store; anything else once per overlay.
      if (!(e instanceof FuseError) && !this.loggedWrite.has(writer.overlay)) {
        this.loggedWrite.add(writer.overlay);
        this.log(`${h.node.file.key}: write to an overlay in ${this.overlays!.store.dir} failed: ${(e as Error).message}`);
      }
      throw new FuseError(errnoOf(e));
    });
  }

  /**
   * A writer's ftruncate sets its view's size; times are accepted and kept by nobody (Windows
   * and Samba set them around a read-write attach); anything else is refused.
   */
  async setattr(ino: number, change: AttrChange): Promise<Attr> {
    if (!this.overlays || change.valid & OWNERSHIP) throw new FuseError(errno.EROFS);
    const h = change.fh === undefined ? undefined : this.handles.get(change.fh);
    const writer = h?.node?.ino === ino ? h.writer : undefined;
    if (change.valid & Fattr.SIZE) {
      if (!writer) throw new FuseError(errno.EROFS);
      await writer.overlay.truncate(change.size).catch((e: unknown) => {
        throw new FuseError(errnoOf(e));
      });
    }
    if (writer && h?.node) return this.writerStat(h.node, writer.overlay);
    const attr = this.getattr(ino, undefined);
    if (!attr) throw new FuseError(errno.ENOENT);
    return attr;
  }

  uncached(ino: number): boolean {
    return this.overlays?.writing(ino) ?? false;
  }

  async lseek(fh: number, offset: number, whence: number): Promise<number> {
    const h = this.handles.get(fh);
    if (!h) throw new FuseError(errno.EBADF);
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new FuseError(errno.EINVAL);
    // A writer's view is all data, as lseek(2) allows: its holes would need the overlay's and the layout's merged.
    const size = h.writer?.overlay.size;
    const at = size === undefined ? h.open.seek(offset, whence) : offset >= size ? undefined : whence === SEEK_DATA ? offset : size;
    if (at === undefined) throw new FuseError(errno.ENXIO);
    return at;
  }

  adoptDir(ino: number, list: readonly Dirent[]): void {
    if (isBrowseIno(ino)) this.browser.adoptDir(ino, list);
  }

  adopt(ino: number, fh: number | undefined): void {
    const handle = this.browser.adopt(ino, fh !== undefined);
    if (fh === undefined) return;
    if (!handle) throw new Error(`inode ${ino} was not offered`);
    this.handles.set(fh, { open: handle });
  }

  read(fh: number, offset: number, size: number, into: Buffer): Promise<number> {
    const h = this.handles.get(fh);
    if (!h) return Promise.reject(new FuseError(errno.EBADF));
    const handle = h.open;
    return (h.writer ? h.writer.overlay.read(offset, into, size) : handle.read(offset, into, size)).catch((e: Error) => {
      if (!this.loggedRead.has(handle)) {
        this.loggedRead.add(handle);
        this.log(`${handle.key}: read failed: ${e.message}`);
      }
      throw new FuseError(errno.EIO);
    });
  }

  release(fh: number): void {
    const h = this.handles.get(fh);
    this.handles.delete(fh);
    if (!h) return;
    if (!h.writer) return h.open.release();
    // The last writer gone: the kernel may hold a writer's size for the inode.
    void this.overlays!.release(h.writer.key).then(
      (last) => last && this.notifier?.invalidateAttributes(h.node.ino),
      (e: Error) => this.log(`${h.node.file.key}: closing an overlay failed: ${e.message}`),
    );
  }

  /** Releases every open handle (at unmount). */
  releaseAll(): void {
    for (const fh of [...this.handles.keys()]) this.release(fh);
  }

  private stat(node: Node): Attr {
    if (node.kind === 'image') return this.browser.imageAttr(node);
    if (node.kind === 'file') {
      const { mtime } = node.file;
      const size = this.sizeOf(node.file);
      const { uid, gid, mode } = this.access.disk(node.file);
      const uncached = this.uncached(node.ino);
      return { uid, gid, ino: node.ino, blksize: BLOCK_SIZE, mode: constants.S_IFREG | mode, size, nlink: 1, blocks: Math.ceil(size / STAT_BLOCK), mtime, ...(uncached && { uncached }) };
    }
    const { uid, gid, mode } = node.kind === 'root' ? this.access.root(anyFile(node)) : this.access.folder(anyFile(node)!);
    const nlink = node.kind === 'root' ? 2 + node.dirs.size : 2 + node.images.size;
    return { uid, gid, ino: node.ino, blksize: BLOCK_SIZE, mode: constants.S_IFDIR | mode, size: BLOCK_SIZE, nlink, blocks: 0, mtime: node.mtime };
  }

  /** What a writer's fstat, and its SETATTR, see: its own view's size, for it only. */
  private writerStat(node: FileNode, overlay: Overlay): Attr {
    return { ...this.stat(node), size: overlay.size, blocks: Math.ceil(overlay.size / STAT_BLOCK), uncached: true };
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

  /**
   * Size of everything shown, plus what the overlays' limit leaves, which is free: writers (Windows
   * through Samba) may look for room before they grow a disk (docs/overlays.md §2). No file can be made.
   */
  statfs(): Statfs {
    const { bytes, files } = this.ns.totals();
    const free = Math.floor((this.overlays?.store.remaining ?? 0) / BLOCK_SIZE);
    return { bsize: BLOCK_SIZE, blocks: Math.ceil(bytes / BLOCK_SIZE) + free, free, files, namelen: NAME_MAX };
  }
}
