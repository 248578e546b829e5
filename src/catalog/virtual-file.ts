// What the FUSE filesystem shows: one virtual disk file per backup, produced by a Catalog.
import type { Layout, SourceFile } from '../disk/layout.js';
import type { Bytes } from '../base/units.js';
import type { FileIdentity } from '../sys/file-identity.js';
import type { ImageFolder } from '../urbackup/storage.js';

/** Owner, group and st_mode (type bits included) of a file or folder in the storage. */
export interface Ownership {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

/**
 * Who could read a disk's sources directly: the ownership of every folder a reader must pass
 * and of every file the disk is read from. Each list is ordered from `/` down; serve/access.ts
 * turns them into the attributes the mount shows.
 */
export interface SourceAccess {
  /** The folders from `/` to the storage folder (last; listing it shows the client names). */
  readonly storage: readonly Ownership[];
  /** The folders from `/` to the client folder (last; listing it shows the backups). */
  readonly client: readonly Ownership[];
  /** Every folder on the way to the disk's image files, then each `.raw` and `.raw.mbr`. */
  readonly disk: readonly Ownership[];
}

export interface VirtualFile {
  /** Client folder name: one directory level under the mount. */
  readonly dir: string;
  /** File name inside `dir`, e.g. 230520-0143_Image_C.vhdx. */
  readonly name: string;
  /**
   * Exact, constant st_size; may be computed on the first call (a dynamic kind's maps its `.raw`
   * files' data: blocking I/O), then kept. Throws an Error naming the file it cannot read.
   */
  computeSize(): Bytes;
  /** The largest size writers may legitimately give it (a dynamic disk with every block stored); absent: computeSize's. */
  fullSize?(): Bytes;
  /** False while computeSize would still do that work; absent means true. */
  readonly sizeKnown?: boolean;
  /** The backing files whose data maps computeSize would still compute (none once known). */
  readonly sizeSources?: readonly (SourceFile & { readonly identity: FileIdentity })[];
  /** Backup time, shown as st_mtime. */
  readonly mtime: Date;
  /** Stable identity across scans and restarts, e.g. "client1/230520-0143_Image_C.vhdx". */
  readonly key: string;
  /**
   * Changes whenever the file's bytes would (a backup replaced under the same name, partners
   * regrouped): a file with a new version is shown under a new inode number, so the kernel's
   * cached pages of the old one can never mix into it.
   */
  readonly version: string;
  /** The backing .raw files the layout reads. */
  readonly sources: readonly SourceFile[];
  /** Ownership of the storage files and folders it is assembled from. */
  readonly access: SourceAccess;
  /** Built on open; throws an Error with a clear message for a bad backup (the open fails EIO). */
  layout(): Layout;
  /**
   * The partition images the disk is assembled from (the main one first, then its SYSVOL/ESP
   * partners), each of whose volumes is browsable beside the disk file (issue 22, docs/browsing.md).
   */
  readonly images?: readonly ImageFolder[];
}

export interface CatalogScan {
  readonly files: VirtualFile[];
  readonly warnings: string[];
}

export interface Catalog {
  /**
   * What is shown now. `changed` names folders the watcher saw change: only those are read
   * again. Without it, every folder is checked, and read again when its mtime moved.
   */
  /** `restat`: also stat every source again, for owners and modes that change without any folder's mtime. */
  scan(changed?: ReadonlySet<string>, restat?: boolean): Promise<CatalogScan>;
  /**
   * Folders whose changes change what is shown, each with whether writes to files in it
   * matter (true) or only names coming and going (false). A catalog without it is rescanned on a timer.
   */
  watchedDirs?(): ReadonlyMap<string, boolean>;
}
