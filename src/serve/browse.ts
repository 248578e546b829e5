// The files inside each backup's volume, under its image folder (issue 22; docs/browsing.md).
// Nothing is read until someone looks inside an image folder; volumes are opened on demand and
// at most OPEN_VOLUMES stay open; a node is kept from the LOOKUP that gives it to the kernel to
// the FORGET that takes it back, so what is held follows what the kernel holds.
import { constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { LRUCache } from 'lru-cache';
import type { FileData, FsNode, VolumeFileSystem } from '../filesystem/volume-fs.js';
import { FuseError } from '../fuse/fuse-fs.js';
import type { Attr, Dirent } from '../fuse/protocol.js';
import type { Access } from './access.js';
import { afterRelease, DecodedFile, type ReadableHandle } from './browse-handle.js';
import { DOSATTRIB_XATTR, dosAttrib } from './dos-attrib.js';
import type { FdCache } from './fd-cache.js';
import { type OpenedImage, openImageFiles, unreadableNote } from './image-volume.js';
import type { ImageNode } from './namespace.js';
import { openLayout } from './open-file.js';

const errno = osConstants.errno;
/**
 * Inode numbers inside volumes: volume slot × 2^32 + the reader's node id. The namespace's numbers
 * are below 2^31, slot 0 is unused, and slots stop at 2^21 so that numbers stay safe integers.
 */
const SLOT_SPAN = 2 ** 32;
const MAX_SLOTS = 2 ** 21;
/** Volumes kept open at once (each holds its reader's bounded caches and a descriptor). */
const OPEN_VOLUMES = 16;
/** The id of the one note file an unreadable volume shows (no reader runs on such a volume). */
const NOTE_ID = 0;
/** Unit of st_blocks and the I/O size shown, as for the disk files (filesystem.ts). */
const STAT_BLOCK = 512;
const BLOCK_SIZE = 4096;
/**
 * Files up to this size are read whole when opened and put into the kernel's page cache with the
 * open's answer (OpenHandle.contents): a small file is then read in one round trip, not two
 * (docs/browsing.md §3).
 */
const STORE_MAX = 128 * 1024;
/** Parents walked to name a node in a log line. */
const MAX_PATH_DEPTH = 4096;

/** A volume's open state: its files, or the note that says why they cannot be shown. */
type Opened = { readonly kind: 'files'; readonly fs: VolumeFileSystem; close(): Promise<void> } | { readonly kind: 'note'; readonly name: string; readonly text: Buffer };

interface Slot {
  readonly index: number;
  /** The latest node of the image folder: its disk file's owner and mode are what its files show. */
  image: ImageNode;
  opened: Promise<Opened> | undefined;
  /** Lookups and reads under way and open decoded files: the volume closes only when none. */
  busy: number;
  evicted: boolean;
}

/** A node the kernel holds (refs: its lookups not forgotten yet). */
interface Held {
  readonly slot: Slot;
  readonly node: FsNode;
  readonly parent: number;
  readonly name: string;
  refs: number;
}

/** Read bits become read and search bits, for folders. */
/** Only read bits of the disk's mode: a disk file may be writable (its writers' overlays), a volume's files never are. */
const fileMode = (mode: number): number => mode & 0o444;
const folderMode = (mode: number): number => fileMode(mode) | ((mode & 0o444) >> 2);
const TYPE_BITS = { file: constants.S_IFREG, dir: constants.S_IFDIR, symlink: constants.S_IFLNK } as const;

export function isBrowseIno(ino: number): boolean {
  return ino >= SLOT_SPAN;
}

export class Browser {
  private readonly slots = new Map<string, Slot>();
  private readonly byIndex: Slot[] = [];
  private readonly held = new Map<number, Held>();
  private readonly openSlots = new LRUCache<number, Slot>({ max: OPEN_VOLUMES, dispose: (slot) => this.evict(slot) });
  private readonly logged = new Set<string>();
  /** Open handles by inode: a file's bytes are stored at open only where no other handle of it is open (OpenHandle.contents). */
  private readonly opens = new Map<number, number>();

  constructor(
    private readonly fds: FdCache,
    private readonly accessOf: (image: ImageNode) => Access,
    private readonly log: (line: string) => void,
  ) {}

  /** The stat of an image folder itself. */
  imageAttr(image: ImageNode): Attr {
    const { uid, gid, mode } = this.accessOf(image);
    return { ino: image.ino, size: BLOCK_SIZE, blocks: 0, mtime: image.file.mtime, mode: constants.S_IFDIR | folderMode(mode), nlink: 2, uid, gid, blksize: BLOCK_SIZE };
  }

  /** The child `name` of an image folder or a folder inside it; counts as one lookup. */
  async lookup(parent: ImageNode | number, name: string): Promise<Attr | undefined> {
    const { slot, dir } = this.folder(parent);
    return this.within(slot, `${this.pathOf(parentIno(parent))}/${name}`, async (opened) => {
      if (opened.kind === 'note') return name === opened.name ? this.give(slot, this.noteNode(opened), parentIno(parent), name) : undefined;
      const e = await opened.fs.lookup(dir ?? (await opened.fs.root()), name);
      return e && this.give(slot, e.node, parentIno(parent), e.name);
    });
  }

  async list(parent: ImageNode | number): Promise<readonly Dirent[]> {
    const { slot, dir } = this.folder(parent);
    const self = parentIno(parent);
    const head: Dirent[] = [
      { ino: self, name: '.', mode: constants.S_IFDIR },
      { ino: self, name: '..', mode: constants.S_IFDIR },
    ];
    return this.within(slot, this.pathOf(self), async (opened) => {
      const entries = opened.kind === 'note' ? [{ name: opened.name, node: this.noteNode(opened) }] : await opened.fs.list(dir ?? (await opened.fs.root()));
      const access = this.accessOf(slot.image);
      return [...head, ...entries.filter((e) => e.node.id < SLOT_SPAN).map((e) => new ListedEntry(this.attr(slot, e.node, access), e.name, slot, e.node, self))];
    });
  }

  /** READDIRPLUS gave the kernel `entry` of a listing: one more lookup of it. */
  given(entry: Dirent): void {
    if (entry instanceof ListedEntry) this.hold(entry.slot, entry.node, entry.parent, entry.name);
  }

  getattr(ino: number): Attr | undefined {
    const h = this.held.get(ino);
    return h && this.attr(h.slot, h.node);
  }

  /** Only `user.DOSATTRIB`, for Samba: the file's NTFS attributes and creation time. */
  getxattr(ino: number, name: string): Buffer | undefined {
    const node = this.held.get(ino)?.node;
    if (name !== DOSATTRIB_XATTR || node?.dosAttributes === undefined) return undefined;
    return dosAttrib(node.dosAttributes, node.birthtimeMs);
  }

  async readlink(ino: number): Promise<string> {
    const h = this.heldOrFail(ino);
    if (h.node.type !== 'symlink') throw new FuseError(errno.EINVAL);
    return this.within(h.slot, this.pathOf(ino), (opened) => (opened.kind === 'files' ? opened.fs.readlink(h.node) : Promise.reject(new FuseError(errno.EINVAL))));
  }

  /** An open handle of file `ino`, and, for a small file no other handle has open, its bytes (OpenHandle.contents). */
  async open(ino: number): Promise<{ handle: ReadableHandle; contents: Buffer | undefined }> {
    const h = this.heldOrFail(ino);
    if (h.node.type === 'dir') throw new FuseError(errno.EISDIR);
    const key = `${h.slot.image.file.dir}/${h.slot.image.name}${this.pathOf(ino)}`;
    const data = await this.within(h.slot, this.pathOf(ino), async (opened): Promise<FileData> => (opened.kind === 'note' ? noteData(opened.text) : opened.fs.data(h.node)));
    let inner: ReadableHandle;
    if (data.kind === 'layout') inner = await openLayout({ key }, data.layout, this.fds);
    else {
      h.slot.busy++;
      inner = new DecodedFile(key, data, () => this.idle(h.slot));
    }
    const alone = !this.opens.has(ino);
    this.opens.set(ino, (this.opens.get(ino) ?? 0) + 1);
    const handle = afterRelease(inner, () => this.closed(ino));
    const size = data.kind === 'layout' ? data.layout.size : data.size;
    return { handle, contents: alone && size > 0 && size <= STORE_MAX ? await wholeFile(handle, size) : undefined };
  }

  private closed(ino: number): void {
    const n = this.opens.get(ino)! - 1;
    if (n > 0) this.opens.set(ino, n);
    else this.opens.delete(ino);
  }

  forget(ino: number, nlookup: number): void {
    const h = this.held.get(ino);
    if (h && (h.refs -= nlookup) <= 0) this.held.delete(ino);
  }

  /** The image folder's slot and the folder node inside it (undefined: the volume's root). */
  private folder(parent: ImageNode | number): { slot: Slot; dir: FsNode | undefined } {
    if (typeof parent !== 'number') return { slot: this.slotOf(parent), dir: undefined };
    const h = this.heldOrFail(parent);
    if (h.node.type !== 'dir') throw new FuseError(errno.ENOTDIR);
    return { slot: h.slot, dir: h.node };
  }

  private heldOrFail(ino: number): Held {
    const h = this.held.get(ino);
    if (!h) throw new FuseError(errno.ENOENT);
    return h;
  }

  private slotOf(image: ImageNode): Slot {
    let slot = this.slots.get(image.key);
    if (!slot) {
      if (this.byIndex.length + 1 >= MAX_SLOTS) throw new FuseError(errno.ENOSPC, `${MAX_SLOTS} image folders opened in one run`);
      slot = { index: this.byIndex.length + 1, image, opened: undefined, busy: 0, evicted: false };
      this.byIndex.push(slot);
      this.slots.set(image.key, slot);
    }
    slot.image = image;
    return slot;
  }

  /** Gives the kernel a node, with its attributes: one more lookup of it. */
  private give(slot: Slot, node: FsNode, parent: number, name: string): Attr | undefined {
    if (node.id >= SLOT_SPAN) return undefined;
    this.hold(slot, node, parent, name);
    return this.attr(slot, node);
  }

  /** One more lookup of a node the kernel was given. */
  private hold(slot: Slot, node: FsNode, parent: number, name: string): void {
    const ino = slot.index * SLOT_SPAN + node.id;
    const h = this.held.get(ino);
    if (h) h.refs++;
    else this.held.set(ino, { slot, node, parent, name, refs: 1 });
  }

  /** A node's stat; `access`: the image's, when the caller has it (a listing asks once, not per entry). */
  private attr(slot: Slot, node: FsNode, access = this.accessOf(slot.image)): Attr {
    const { uid, gid, mode } = access;
    const shown = node.type === 'dir' ? folderMode(mode) : fileMode(mode);
    const nlink = node.type === 'dir' ? 2 : Math.max(1, node.nlink);
    return { ino: slot.index * SLOT_SPAN + node.id, size: node.size, blocks: Math.ceil(node.size / STAT_BLOCK), mtime: new Date(node.mtimeMs), mode: TYPE_BITS[node.type] | shown, nlink, uid, gid, blksize: BLOCK_SIZE };
  }

  private noteNode(note: Extract<Opened, { kind: 'note' }>): FsNode {
    return { id: NOTE_ID, type: 'file', size: note.text.length, mtimeMs: 0, atimeMs: 0, ctimeMs: 0, nlink: 1 };
  }

  /** Runs `f` on the slot's open volume; the reader's errors on `path` (in the volume) become EIO, logged once. */
  private async within<T>(slot: Slot, path: string, f: (opened: Opened) => Promise<T>): Promise<T> {
    slot.busy++;
    try {
      return await f(await this.opened(slot));
    } catch (e) {
      if (e instanceof FuseError) throw e;
      const line = `${slot.image.file.dir}/${slot.image.name}${path}: ${e instanceof Error ? e.message : String(e)}`;
      if (!this.logged.has(line)) {
        this.logged.add(line);
        this.log(line);
      }
      // A corrupt structure, data no decoder reads, a volume gone: EIO for what depends on it.
      throw new FuseError(errno.EIO, line);
    } finally {
      this.idle(slot);
    }
  }

  private opened(slot: Slot): Promise<Opened> {
    this.openSlots.set(slot.index, slot);
    slot.evicted = false;
    if (!slot.opened) {
      slot.opened = openImageFiles(slot.image.image.raw, slot.image.image.letter).then((o) => this.shown(slot, o));
      slot.opened.catch(() => (slot.opened = undefined));
    }
    return slot.opened;
  }

  private shown(slot: Slot, o: OpenedImage): Opened {
    if (o.kind === 'files') return { kind: 'files', fs: o.fs, close: () => o.volume.close() };
    const note = unreadableNote(o, slot.image.file.name);
    this.log(`${slot.image.file.dir}/${slot.image.name}: its files are not shown: ${o.fsName}: ${o.why}`);
    return { kind: 'note', ...note };
  }

  private evict(slot: Slot): void {
    slot.evicted = true;
    if (slot.busy === 0) this.close(slot);
  }

  private idle(slot: Slot): void {
    if (--slot.busy === 0 && slot.evicted) this.close(slot);
  }

  private close(slot: Slot): void {
    const opened = slot.opened;
    slot.opened = undefined;
    void opened?.then((o) => (o.kind === 'files' ? o.close() : undefined), () => undefined);
  }

  /** `/a/b` of a held node, from its parents ('' for an image folder itself): for log lines and handle keys. */
  private pathOf(ino: number): string {
    const parts: string[] = [];
    for (let h = this.held.get(ino), i = 0; h && i < MAX_PATH_DEPTH; h = this.held.get(h.parent), i++) parts.unshift(h.name);
    return parts.map((p) => `/${p}`).join('');
  }
}

/** A listing's entry, with its attributes for READDIRPLUS and the node given() holds when the kernel takes it. */
class ListedEntry implements Dirent {
  readonly ino: number;
  readonly mode: number;

  constructor(
    readonly attr: Attr,
    readonly name: string,
    readonly slot: Slot,
    readonly node: FsNode,
    readonly parent: number,
  ) {
    this.ino = attr.ino;
    this.mode = TYPE_BITS[node.type];
  }
}

const parentIno = (parent: ImageNode | number): number => (typeof parent === 'number' ? parent : parent.ino);

/** All `size` bytes of an open file, or undefined when they cannot be read now (its READs then say why). */
async function wholeFile(handle: ReadableHandle, size: number): Promise<Buffer | undefined> {
  const buf = Buffer.allocUnsafe(size);
  const n = await handle.read(0, buf, size).catch(() => -1);
  return n === size ? buf : undefined;
}

function noteData(text: Buffer): FileData {
  return { kind: 'layout', layout: { size: text.length, segments: [{ kind: 'bytes', start: 0, length: text.length, data: text }] } };
}
