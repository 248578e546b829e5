// What the FUSE filesystem shows: one virtual disk file per backup, produced by a Catalog.
import type { Layout, SourceFile } from '../disk/layout.js';
import type { Bytes } from '../base/units.js';

export interface VirtualFile {
  /** Client folder name: one directory level under the mount. */
  readonly dir: string;
  /** File name inside `dir`, e.g. 230520-0143_Image_C.vhdx. */
  readonly name: string;
  /** Exact, constant st_size; may be computed when first read (a listing reads it), then kept. */
  readonly size: Bytes;
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
  /** Built on open; throws an Error with a clear message for a bad backup (the open fails EIO). */
  layout(): Layout;
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
  scan(changed?: ReadonlySet<string>): Promise<CatalogScan>;
  /**
   * Folders whose changes change what is shown, each with whether writes to files in it
   * matter (true) or only names coming and going (false). A catalog without it is rescanned on a timer.
   */
  watchedDirs?(): ReadonlyMap<string, boolean>;
}
