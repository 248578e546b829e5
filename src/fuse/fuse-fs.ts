// What a filesystem served over FUSE implements (session.ts answers the kernel's requests with it).
import type { SharedLayout } from '../io/shared-layout.js';
import type { Attr, Dirent, Statfs } from './protocol.js';

/** A request refused with an errno: the session answers it with that errno and logs nothing. */
export class FuseError extends Error {
  override name = 'FuseError';
  constructor(readonly errno: number, message = `errno ${errno}`) {
    super(message);
  }
}

export interface OpenHandle {
  readonly fh: number;
  /**
   * A descriptor whose bytes are exactly the virtual file's, from offset 0: the kernel may then
   * read it itself (passthrough) and this handle's reads never reach read().
   */
  readonly wholeFileFd?: number;
  /** The file's layout in shared memory, made when asked: the request workers answer its cached reads themselves. */
  readonly share?: () => SharedLayout;
  /**
   * The whole file, put into the kernel's page cache before the open is answered
   * (FUSE_NOTIFY_STORE): its reads never reach the server. Only where no READ of the inode can be
   * waiting: the store locks the inode's pages, which such a READ holds until it is answered.
   */
  readonly contents?: Buffer;
  /**
   * Reads and writes of this handle go to the filesystem, never through the inode's page cache
   * (FOPEN_DIRECT_IO): a writer's private bytes (docs/overlays.md §3).
   */
  readonly direct?: boolean;
  /** A writer's view that the kernel may read and write itself (passthrough, docs/overlays.md §4). */
  readonly kernelView?: KernelView;
}

export interface KernelView {
  /** A descriptor of the whole view, from offset 0. */
  readonly fd: number;
  /** Whose view it is, by identity: the handles of one writer share it while any is open. */
  readonly owner: object;
  /** Hands the view to the kernel; false where it must stay with the filesystem (its overlay limit). */
  claim(): boolean;
}

/** A SETATTR: the fuse_setattr_in fields this filesystem looks at. */
export interface AttrChange {
  /** fuse_setattr_in.valid (Fattr bits). */
  readonly valid: number;
  /** Set when the change comes through an open handle (ftruncate). */
  readonly fh: number | undefined;
  readonly size: number;
}

/**
 * A filesystem by inode number whose tree never changes through FUSE; files may be opened for
 * writing into private views. Lookups are answered on the main thread, at once where they can
 * be; a folder whose entries must be read first (the files inside a backup's volume,
 * docs/browsing.md) answers with a promise.
 */
export interface FuseFs {
  /** A promise's attributes count as one lookup of the inode, which forget() gives back. */
  lookup(parent: number, name: string): Attr | undefined | Promise<Attr | undefined>;
  /** `fh` is set when the kernel asks through an open handle (fstat). */
  getattr(ino: number, fh: number | undefined): Attr | undefined;
  /** Entries of a directory, "." and ".." included; undefined when it is not a directory. */
  list(ino: number): readonly Dirent[] | undefined | Promise<readonly Dirent[] | undefined>;
  /** A symlink's target; rejects with FuseError (EINVAL: no symlink). */
  readlink?(ino: number): Promise<string>;
  /** An extended attribute's value, or undefined for none (ENODATA). */
  getxattr?(ino: number, name: string): Buffer | undefined;
  /** READDIRPLUS gave the kernel an entry of `list(dir)` that carries its attributes: one more lookup of it. */
  given?(dir: number, entry: Dirent): void;
  /** The kernel let go of `nlookup` lookups of `ino` (FORGET). */
  forget?(ino: number, nlookup: number): void;
  /** `uid`: the caller's. Rejects with FuseError. */
  open(ino: number, flags: number, uid: number): Promise<OpenHandle>;
  /** Fills `into` from `offset`; resolves the byte count (short only at end of file). */
  read(fh: number, offset: number, size: number, into: Buffer): Promise<number>;
  /** Writes `data` at `offset` through a handle opened for writing; resolves the byte count. Rejects with FuseError. Without it: EROFS. */
  write?(fh: number, offset: number, data: Buffer): Promise<number>;
  /** Changes what a SETATTR asks; resolves the attributes after it. Rejects with FuseError. Without it: EROFS. */
  setattr?(ino: number, change: AttrChange): Promise<Attr>;
  /** Whether `ino`'s attributes differ by caller now, so a READDIRPLUS must not give them (Attr.uncached). */
  uncached?(ino: number): boolean;
  release(fh: number): void;
  statfs(): Statfs;
  /** lseek(2) SEEK_DATA / SEEK_HOLE on an open handle; rejects with FuseError (ENXIO past the data). */
  lseek?(fh: number, offset: number, whence: number): Promise<number>;
  /**
   * A request worker opened offered file `ino` as handle `fh` and answered (OpenOffers): keep the
   * handle as open() would. `fh` undefined: the worker that claimed the offer ended before it could.
   */
  adopt?(ino: number, fh: number | undefined): void;
  /** A request worker answered an OPENDIR of folder `ino` with `list`, offered (OpenOffers.offerListing): what list() does at an open, but the listing. */
  adoptDir?(ino: number, list: readonly Dirent[]): void;
}

/** Files and folders offered to the request workers, which then answer an OPEN (OPENDIR) of one themselves (offers.ts). */
export interface OpenOffers {
  /** Offers `ino`, read through `layout` (a copy is posted); false when as many offers as can be are out. */
  offer(ino: number, layout: SharedLayout): boolean;
  /** Takes the offer of `ino` back: false when a worker opened it already (adopt() is on its way). */
  withdraw(ino: number): boolean;
  /** Takes in the opens the workers answered so far (adopt() for each), as every hand-over does first. */
  heard(): void;
  /**
   * Offers the OPENDIR of folder `ino`, whose listing `list` (what list(ino) gives) was read
   * ahead; false when it cannot be (an entry without its own attributes, no slot free).
   */
  offerListing(ino: number, list: readonly Dirent[]): boolean;
  /** Takes the offer of folder `ino` back: false when a worker opened it already (adoptDir() is on its way). */
  withdrawListing(ino: number): boolean;
}
