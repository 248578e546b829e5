// The files inside each backup's volume, under its image folder (issue 22; docs/browsing.md).
// Nothing is read until someone looks inside an image folder; volumes are opened on demand and
// at most OPEN_VOLUMES stay open; a node is kept from the LOOKUP that gives it to the kernel to
// the FORGET that takes it back, so what is held follows what the kernel holds.
import { constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { LRUCache } from 'lru-cache';
import type { DirEntry, FileData, FsNode, VolumeFileSystem } from '../filesystem/volume-fs.js';
import { FuseError, type OpenOffers } from '../fuse/fuse-fs.js';
import { STORE_MAX } from '../fuse/offers.js';
import type { Attr, Dirent } from '../fuse/protocol.js';
import type { Access } from './access.js';
import { afterRelease, DecodedFile, type ReadableHandle } from './browse-handle.js';
import { DOSATTRIB_XATTR, dosAttrib } from './dos-attrib.js';
import { type OpenedImage, openImageFiles, unreadableNote } from './image-volume.js';
import type { ImageNode } from './namespace.js';
import { worthCloning } from './file-clone.js';
import { type FileOpener, openLayout, type OpenFile } from './open-file.js';

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
/** Parents walked to name a node in a log line. */
const MAX_PATH_DEPTH = 4096;
/**
 * Files after an opened one in its folder's listing that are offered to the request workers, which
 * then answer their OPENs themselves (fuse/offers.ts; docs/browsing.md §3): a copy of a folder
 * opens its files one after another in the listing's order.
 */
const OFFER_AHEAD = 64;
/** Offers at once, at most: each holds its sources' descriptors until it is opened or withdrawn. */
const MAX_OFFERS = 256;
/** Folders whose listing order is kept for offering ahead (8 bytes an entry). */
const LISTINGS_KEPT = 64;
/**
 * Listings read ahead and not asked for yet: a walk (find, cp -r, robocopy) opens a folder's
 * subfolders next, or else the folders after it (docs/browsing.md §3). Each one ready before its
 * OPENDIR is answered by a request worker; more of them in flight hide more of the storage's
 * latency (docs/performance.md §9).
 */
const LISTINGS_AHEAD = 4;

/**
 * A listing read ahead is offered to a request worker only up to this many entries; a larger one
 * waits for its OPENDIR on the main thread. An offer holds the entries encoded, in this thread
 * and in shared memory, until the folder is released or the offer taken back: offering the ext4
 * walk's folders of 1000 entries raised serve's peak RSS over it from 221-230 to 244-252 MiB
 * (docs/performance.md §9).
 */
const OFFERED_ENTRIES = 512;

/** A volume's open state: its files, or the note that says why they cannot be shown. */
type Opened = { readonly kind: 'files'; readonly fs: VolumeFileSystem; close(): Promise<void> } | { readonly kind: 'note'; readonly name: string; readonly text: Buffer };

/** A listing read ahead: what list() will give (undefined: reading it failed, and list() then says why), and whether its OPENDIR was offered to a request worker. */
interface Ahead {
  readonly listed: Promise<readonly Dirent[] | undefined>;
  offered: boolean;
}

/** A file offered to the request workers: the handle it becomes when one opens it. */
interface Offer {
  readonly handle: OpenFile;
}

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
  /** Open handles by inode, opens under way included: a file's bytes are stored at open only where no other handle of it is open (OpenHandle.contents). */
  private readonly opens = new Map<number, number>();
  /** The mounted session's offers to its request workers; none before it is mounted. */
  offers: OpenOffers | undefined;
  /** Files offered, oldest first. */
  private readonly offered = new Map<number, Offer>();
  private readonly preparing = new Set<number>();
  /** Opens waiting for a worker's open of the same file to reach this thread, by inode. */
  private readonly adoptions = new Map<number, (() => void)[]>();
  /**
   * The inode numbers of recent listings in their order, by folder, and where the last file
   * offered after lies: numbers, not the entries, which a walk would otherwise keep alive.
   */
  private readonly listings = new LRUCache<number, { readonly inos: Float64Array; at: number; ahead: number; folderAt: number }>({ max: LISTINGS_KEPT });
  /** The listings of folders a walk is expected to open next, by folder (a folder pushed out has its offer taken back). */
  private readonly readAhead = new LRUCache<number, Ahead>({ max: LISTINGS_AHEAD, dispose: (a, ino, reason) => reason === 'evict' && this.withdrawAhead(ino, a) });

  constructor(
    private readonly opener: FileOpener,
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
    return this.within(slot, this.pathOf(self), async (opened) => {
      const entries = async (): Promise<readonly DirEntry[]> => (opened.kind === 'note' ? [{ name: opened.name, node: this.noteNode(opened) }] : opened.fs.list(dir ?? (await opened.fs.root())));
      const listed = (await this.takeAhead(self)) ?? this.listedOf(slot, self, await entries());
      this.openedAt(slot, self, listed);
      return listed;
    });
  }

  /** What list() gives for folder `self` of the slot's volume, whose entries are `entries`. */
  private listedOf(slot: Slot, self: number, entries: readonly DirEntry[]): readonly Dirent[] {
    const access = this.accessOf(slot.image);
    const head: Dirent[] = [
      { ino: self, name: '.', mode: constants.S_IFDIR },
      { ino: self, name: '..', mode: constants.S_IFDIR },
    ];
    return [...head, ...entries.filter((e) => e.node.id < SLOT_SPAN).map((e) => new ListedEntry(this.attr(slot, e.node, access), e.name, slot, e.node, self))];
  }

  /** Folder `self` was opened with `listed`: keeps its order (offerAfter) and reads ahead the listing a walk opens next. */
  private openedAt(slot: Slot, self: number, listed: readonly Dirent[]): void {
    this.listings.set(self, { inos: Float64Array.from(listed, (e) => e.ino), at: 0, ahead: 0, folderAt: 0 });
    for (const next of this.foldersNext(self, listed)) this.listAhead(slot, next.ino, next.node);
  }

  /** The listing of folder `self` if it was read ahead (undefined: read it now), its offer taken back. */
  private async takeAhead(self: number): Promise<readonly Dirent[] | undefined> {
    const ahead = this.readAhead.peek(self);
    if (!ahead) return undefined;
    this.readAhead.delete(self);
    this.withdrawAhead(self, ahead);
    return ahead.listed;
  }

  /** Takes back the offer of a listing read ahead; a worker that answered its OPENDIR already is heard of in adoptDir(). */
  private withdrawAhead(ino: number, ahead: Ahead): void {
    if (ahead.offered) this.offers?.withdrawListing(ino);
    ahead.offered = false;
  }

  /** A request worker answered the OPENDIR of folder `ino` with `listed`, offered when it was read ahead. */
  adoptDir(ino: number, listed: readonly Dirent[]): void {
    const slot = this.held.get(ino)?.slot;
    this.readAhead.delete(ino);
    if (slot) this.openedAt(slot, ino, listed);
  }

  /**
   * The folders a walk opens after folder `self` (just opened with `listed`), at most
   * LISTINGS_AHEAD: its subfolders, then the folders after it in its parent's listing (the kernel
   * holds the parent's entries).
   */
  private foldersNext(self: number, listed: readonly Dirent[]): { ino: number; node: FsNode }[] {
    const out: { ino: number; node: FsNode }[] = [];
    for (const e of listed) if (out.length < LISTINGS_AHEAD && e instanceof ListedEntry && e.node.type === 'dir') out.push(e);
    const parent = this.held.get(self)?.parent;
    const listing = parent === undefined ? undefined : this.listings.get(parent);
    if (!listing || out.length === LISTINGS_AHEAD) return out;
    const { inos } = listing;
    let at = inos.indexOf(self, listing.folderAt);
    if (at < 0) at = inos.indexOf(self);
    if (at < 0) return out;
    listing.folderAt = at;
    for (let i = at + 1; i < inos.length && out.length < LISTINGS_AHEAD; i++) {
      const node = this.held.get(inos[i]!)?.node;
      if (node?.type === 'dir') out.push({ ino: inos[i]!, node });
    }
    return out;
  }

  /**
   * Starts reading the listing of folder `ino` of the slot's volume, unless it is read ahead
   * already; once read, a request worker may answer the folder's OPENDIR with it (fuse/offers.ts).
   */
  private listAhead(slot: Slot, ino: number, node: FsNode): void {
    if (this.readAhead.has(ino)) return;
    slot.busy++;
    const listed = this.opened(slot)
      .then(async (o) => (o.kind === 'files' ? this.listedOf(slot, ino, await o.fs.list(node)) : undefined))
      .catch(() => undefined)
      .finally(() => this.idle(slot));
    const ahead: Ahead = { listed, offered: false };
    this.readAhead.set(ino, ahead);
    void listed.then((l) => {
      if (l && l.length <= OFFERED_ENTRIES && this.readAhead.peek(ino) === ahead) ahead.offered = this.offers?.offerListing(ino, l) ?? false;
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

  /**
   * An open handle of file `ino`, and, for a small file no other handle has open, its bytes
   * (OpenHandle.contents); then the files after it are offered ahead.
   */
  async open(ino: number): Promise<{ handle: ReadableHandle; contents: Buffer | undefined }> {
    const h = this.heldOrFail(ino);
    if (h.node.type === 'dir') throw new FuseError(errno.EISDIR);
    // A worker's open of it is on its way (and may be putting its bytes into the page cache): after it.
    if (this.takeBack(ino)) await this.heardOf(ino);
    // Counted from here: a file offered meanwhile could be opened by a worker beside this open.
    const alone = !this.opens.has(ino);
    this.opens.set(ino, (this.opens.get(ino) ?? 0) + 1);
    let inner: ReadableHandle;
    let size: number;
    try {
      const data = await this.within(h.slot, this.pathOf(ino), async (opened): Promise<FileData> => (opened.kind === 'note' ? noteData(opened.text) : opened.fs.data(h.node)));
      size = data.kind === 'layout' ? data.layout.size : data.size;
      if (data.kind === 'layout') inner = await this.opener.openInner(this.keyOf(h.slot, ino), this.keyOf(h.slot, undefined), data.layout);
      else {
        h.slot.busy++;
        inner = new DecodedFile(this.keyOf(h.slot, ino), data, () => this.idle(h.slot));
      }
    } catch (e) {
      this.closed(ino);
      throw e;
    }
    const handle = afterRelease(inner, () => this.closed(ino));
    setImmediate(() => this.offerAfter(ino));
    return { handle, contents: alone && size > 0 && size <= STORE_MAX ? await wholeFile(handle, size) : undefined };
  }

  /**
   * A request worker opened offered file `ino` (fuse/offers.ts): its handle; undefined when it was
   * never offered, or, with `opened` false, when the worker that claimed it ended first.
   */
  adopt(ino: number, opened: boolean): ReadableHandle | undefined {
    const offer = this.offered.get(ino);
    this.offered.delete(ino);
    if (offer && opened) this.opens.set(ino, (this.opens.get(ino) ?? 0) + 1);
    else offer?.handle.release();
    for (const heard of this.adoptions.get(ino) ?? []) heard();
    this.adoptions.delete(ino);
    if (!offer || !opened) return undefined;
    setImmediate(() => this.offerAfter(ino));
    return afterRelease(offer.handle, () => this.closed(ino));
  }

  /** Until a worker's open of `ino` reached this thread (adopt()): the ring of opens is read every millisecond. */
  private async heardOf(ino: number): Promise<void> {
    const heard = new Promise<void>((done) => this.adoptions.set(ino, [...(this.adoptions.get(ino) ?? []), done]));
    for (;;) {
      this.offers?.heard();
      if (!this.adoptions.has(ino)) return;
      await Promise.race([heard, new Promise((tick) => setTimeout(tick, 1))]);
    }
  }

  /** Withdraws the offer of `ino`; true when a worker opened it already (adopt() is on its way). */
  private takeBack(ino: number): boolean {
    const offer = this.offered.get(ino);
    if (!offer) return false;
    if (!this.offers?.withdraw(ino)) return true;
    this.offered.delete(ino);
    offer.handle.release();
    return false;
  }

  /** Offers the files after `ino` in its folder's listing that are not open, offered or being prepared. */
  private offerAfter(ino: number): void {
    const parent = this.held.get(ino)?.parent;
    const listing = parent === undefined ? undefined : this.listings.get(parent);
    if (!this.offers || !listing) return;
    // Files are usually opened in the listing's order: look from the last place first.
    const { inos } = listing;
    let at = inos.indexOf(ino, listing.at);
    if (at < 0) at = inos.indexOf(ino);
    if (at < 0) return;
    listing.at = at;
    // Each file once: one that could not be offered (a compressed file, say) is not tried again at every open.
    const end = Math.min(inos.length, at + 1 + OFFER_AHEAD);
    const from = Math.max(at + 1, listing.ahead);
    listing.ahead = Math.max(listing.ahead, end);
    for (let i = from; i < end; i++) {
      const next = inos[i]!;
      const h = this.held.get(next);
      if (h?.node.type === 'file' && !this.offered.has(next) && !this.preparing.has(next) && !this.opens.has(next)) void this.prepare(next, h);
    }
  }

  /** Opens file `ino` as an offer; anything that fails is left to its own open, which reports it. */
  private async prepare(ino: number, h: Held): Promise<void> {
    this.preparing.add(ino);
    try {
      const opened = await this.opened(h.slot);
      const data = opened.kind === 'files' ? await opened.fs.data(h.node) : undefined;
      // A large file's open is a small part of reading it, and in reflink mode it is cloned (file-clone.ts).
      if (data?.kind !== 'layout' || worthCloning(data.layout)) return;
      const handle = await openLayout({ key: this.keyOf(h.slot, ino) }, data.layout, this.opener.fds);
      if (!this.offers || this.opens.has(ino) || !this.held.has(ino) || !this.offers.offer(ino, handle.copy())) return handle.release();
      this.offered.set(ino, { handle });
      this.trimOffers();
    } catch {
      // The file's own open says what is wrong with it.
    } finally {
      this.preparing.delete(ino);
    }
  }

  /** Withdraws the oldest offers past MAX_OFFERS (one a worker opened stays until adopted). */
  private trimOffers(): void {
    for (const ino of [...this.offered.keys()]) {
      if (this.offered.size <= MAX_OFFERS) return;
      this.takeBack(ino);
    }
  }

  /** Names file `ino` of the slot's volume, or with none the volume itself. */
  private keyOf(slot: Slot, ino: number | undefined): string {
    return `${slot.image.file.dir}/${slot.image.name}${ino === undefined ? '' : this.pathOf(ino)}`;
  }

  private closed(ino: number): void {
    const n = this.opens.get(ino)! - 1;
    if (n > 0) this.opens.set(ino, n);
    else this.opens.delete(ino);
  }

  forget(ino: number, nlookup: number): void {
    const h = this.held.get(ino);
    if (h && (h.refs -= nlookup) <= 0) {
      this.held.delete(ino);
      this.takeBack(ino);
    }
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
