// Open directories: a snapshot of each one's entries per handle, and their READDIRPLUS entries
// encoded once (docs/fuse-protocol.md §5, OPENDIR and READDIRPLUS).
import { Handles } from './handles.js';
import { type Attr, type Dirent, type DirentsPlus, encodeDirentsPlus } from './protocol.js';

export interface OpenDir {
  readonly ino: number;
  readonly list: readonly Dirent[];
}

export class Directories {
  /** A snapshot per open directory, so a rescan between two READDIRs cannot skip or repeat names. */
  private readonly open = new Handles<OpenDir>();
  /**
   * READDIRPLUS entries per snapshot, encoded once: an entry's attributes do not change while
   * its folder's snapshot is the same (a changed file is a new node in a new snapshot).
   */
  private readonly plus = new WeakMap<readonly Dirent[], DirentsPlus>();
  /** The entries of a snapshot by inode number, for telling the filesystem which were given. */
  private readonly byIno = new WeakMap<readonly Dirent[], ReadonlyMap<number, Dirent>>();

  /** Folders whose OPENDIR the first request worker may answer (offers.ts), by inode: their snapshot. */
  private readonly offered = new Map<number, OpenDir>();

  opened(dir: OpenDir): number {
    return this.open.add(dir);
  }

  offer(dir: OpenDir): void {
    this.offered.set(dir.ino, dir);
  }

  withdraw(ino: number): void {
    this.offered.delete(ino);
  }

  /** A request worker answered an OPENDIR of offered folder `ino` as handle `fh`: its snapshot, now open. */
  adopted(ino: number, fh: number): OpenDir | undefined {
    const dir = this.offered.get(ino);
    this.offered.delete(ino);
    if (dir) this.open.set(fh, dir);
    return dir;
  }

  get(fh: number): OpenDir | undefined {
    return this.open.get(fh);
  }

  released(fh: number): void {
    this.open.delete(fh);
  }

  /** The snapshot's entry with inode number `ino` (hard links: any of its names). */
  entry(dir: OpenDir, ino: number): Dirent | undefined {
    let m = this.byIno.get(dir.list);
    if (!m) this.byIno.set(dir.list, (m = new Map(dir.list.map((e) => [e.ino, e]))));
    return m.get(ino);
  }

  /** The snapshot's READDIRPLUS entries; `attrOf` gives an entry's lookup, undefined for none. */
  plusOf(dir: OpenDir, attrOf: (e: Dirent) => Attr | undefined, entrySeconds: number, attrSeconds: number): DirentsPlus {
    let plus = this.plus.get(dir.list);
    if (!plus) this.plus.set(dir.list, (plus = encodeDirentsPlus(dir.list, attrOf, entrySeconds, attrSeconds)));
    return plus;
  }
}
