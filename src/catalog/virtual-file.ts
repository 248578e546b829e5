// What the FUSE filesystem shows: one virtual disk file per backup, produced by a Catalog.
import type { Layout, SourceFile } from '../disk/layout.js';
import type { Bytes } from '../base/units.js';

export interface VirtualFile {
  /** Client folder name: one directory level under the mount. */
  readonly dir: string;
  /** File name inside `dir`, e.g. 230520-0143_Image_C.vhdx. */
  readonly name: string;
  /** Exact, constant st_size. */
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

export interface Catalog {
  scan(): Promise<{ files: VirtualFile[]; warnings: string[] }>;
}
