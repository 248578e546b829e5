// The overlays of the files open for writing: one per file and user, shared by that user's
// read-write handles of the file while any is open, dropped with the last (docs/overlays.md §1).
import type { Bytes } from '../base/units.js';
import { cloneFile, ReflinkError } from '../sys/reflink.js';
import type { OpenFile } from './open-file.js';
import { Overlay } from './overlay.js';
import type { OverlayStore } from './overlay-store.js';

interface Shared {
  readonly ino: number;
  readonly overlay: Promise<Overlay>;
  /** The handle the overlay reads pristine bytes through, released with the overlay. */
  readonly pristine: OpenFile;
  handles: number;
}

export class Overlays {
  private readonly byWriter = new Map<string, Shared>();
  /** Open writers per inode: their attributes differ by caller. */
  private readonly writers = new Map<number, number>();
  private loggedClone = false;

  constructor(readonly store: OverlayStore, private readonly log: (line: string) => void) {}

  /** Whether some user has `ino` open for writing. */
  writing(ino: number): boolean {
    return this.writers.has(ino);
  }

  /**
   * The overlay of `uid`'s writes to `ino`, made from `open` (kept as its pristine reader) when it
   * is the first; a later handle's `open` is released at once. Resolves the key to release with,
   * the pristine reader the overlay keeps, and whether this is the overlay's first handle.
   */
  async acquire(ino: number, uid: number, open: OpenFile, size: Bytes): Promise<{ key: string; overlay: Overlay; pristine: OpenFile; first: boolean }> {
    const key = `${ino}:${uid}`;
    let s = this.byWriter.get(key);
    if (s) open.release();
    else this.byWriter.set(key, (s = { ino, overlay: this.make(open, size), pristine: open, handles: 0 }));
    const first = ++s.handles === 1;
    this.writers.set(ino, (this.writers.get(ino) ?? 0) + 1);
    try {
      return { key, overlay: await s.overlay, pristine: s.pristine, first };
    } catch (e) {
      await this.release(key);
      throw e;
    }
  }

  /** Drops a handle; with the last one of its writer the overlay goes. Resolves true when `ino` has no writer left. */
  async release(key: string): Promise<boolean> {
    const s = this.byWriter.get(key);
    if (!s) return false;
    const left = this.writers.get(s.ino)! - 1;
    if (left > 0) this.writers.set(s.ino, left);
    else this.writers.delete(s.ino);
    if (--s.handles === 0) {
      this.byWriter.delete(key);
      s.pristine.release();
      await s.overlay.then((o) => o.close(), () => undefined);
    }
    return left === 0;
  }

  /** A built disk starts the view as its reflinked clone (no copy, no space); anything else as an empty overlay over the layout. */
  private async make(open: OpenFile, size: Bytes): Promise<Overlay> {
    const file = await this.store.create();
    if (open.wholeFileFd !== undefined) {
      try {
        cloneFile(open.wholeFileFd, file.fd);
        return new Overlay(file, undefined, size, this.store);
      } catch (e) {
        if (!(e instanceof ReflinkError)) {
          await file.close();
          throw e;
        }
        if (!this.loggedClone) this.log(`overlays in ${this.store.dir} cannot be reflinked clones of the built disks (${e.message}): writes are kept as overlays over them`);
        this.loggedClone = true;
      }
    }
    return new Overlay(file, open, size, this.store);
  }
}
