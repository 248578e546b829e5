// Reflink mode for the files inside a backup: a large file is cloned at its open into an unlinked
// file of the cache folder, which the kernel then reads itself, as it reads a built disk
// (FUSE passthrough; docs/browsing.md §3).
import { type FileHandle, open } from 'node:fs/promises';
import type { Bytes } from '../base/units.js';
import type { Layout } from '../disk/layout.js';
import { fillFile } from '../io/materialize.js';
import { readLayout } from '../io/layout-reader.js';
import { seekLayout } from '../io/layout-seek.js';
import { type SharedLayout, shareLayout } from '../io/shared-layout.js';
import type { SEEK_DATA, SEEK_HOLE } from '../sys/sparse.js';
import type { ReadableHandle } from './browse-handle.js';

/**
 * Files at least this large are cloned: below it, reading through the server costs less than a
 * clone's calls and the metadata it writes to the storage's filesystem (docs/browsing.md §3).
 */
export const CLONE_MIN: Bytes = 8 * 2 ** 20;
/** Files in more pieces than this are read through the server: a clone at open must stay quick (one ioctl a piece). */
export const CLONE_MAX_SEGMENTS = 4096;
/** open(2) O_TMPFILE (__O_TMPFILE | O_DIRECTORY, <asm-generic/fcntl.h>): a file with no name, gone with its last descriptor. */
const O_TMPFILE_RDWR = 0o20200000 | 0o2;

/** Whether `layout` is worth cloning (its pieces may still refuse: cloneLayout then throws). */
export function worthCloning(layout: Layout): boolean {
  return layout.size >= CLONE_MIN && layout.segments.length <= CLONE_MAX_SEGMENTS;
}

/**
 * The clones of the files open now, one per file: every open of a file shares it (the kernel
 * backs an inode with one file anyway), and the last release closes it.
 */
export class OpenClones {
  private readonly open = new Map<string, Promise<ClonedFile>>();

  constructor(private readonly dir: string) {}

  /**
   * The clone of file `key` (`layout`) in the cache folder, with no name: every whole block of
   * its file pieces shares the source's extents (FICLONERANGE); throws (ReflinkError) when one cannot.
   */
  async clone(key: string, layout: Layout): Promise<ReadableHandle> {
    const pending = this.open.get(key);
    // Retained in the microtask that follows the clone's making: no release can come between.
    if (pending) return (await pending).retain();
    const made = cloneLayout(key, layout, this.dir, () => this.open.get(key) === made && this.open.delete(key));
    this.open.set(key, made);
    made.catch(() => this.open.get(key) === made && this.open.delete(key));
    return made;
  }
}

async function cloneLayout(key: string, layout: Layout, dir: string, closed: () => void): Promise<ClonedFile> {
  const out = await open(dir, O_TMPFILE_RDWR, 0o600);
  try {
    await fillFile(layout, out, `${dir} (a clone of ${key})`, { reflink: 'always' });
  } catch (e) {
    await out.close();
    throw e;
  }
  return new ClonedFile(key, out, layout.size, dir, closed);
}

/** An open clone: one descriptor holding the file's exact bytes, the kernel's backing file. */
class ClonedFile implements ReadableHandle {
  private readonly whole: Layout;
  private shared: SharedLayout | undefined;
  private readonly backing: { readonly fd: number };
  readonly wholeFileFd: number;
  /** Opens holding it. */
  private refs = 1;

  /** Holds `file` (a FileHandle left to the collector would close its descriptor) until the last release. */
  constructor(readonly key: string, private readonly file: FileHandle, size: Bytes, dir: string, private readonly closed: () => void) {
    this.wholeFileFd = file.fd;
    this.whole = { size, segments: size > 0 ? [{ kind: 'file', start: 0, length: size, source: { path: `${dir} (a clone of ${key})` }, offset: 0 }] : [] };
    this.backing = { fd: file.fd };
  }

  retain(): this {
    this.refs++;
    return this;
  }

  /** Reads that still come to the server (a kernel without passthrough) go to the request workers. */
  share(): SharedLayout {
    return (this.shared ??= shareLayout(this.whole, () => this.wholeFileFd));
  }

  read(pos: Bytes, buf: Buffer, length: Bytes): Promise<number> {
    return readLayout(this.whole, pos, buf, length, () => this.backing);
  }

  seek(offset: Bytes, whence: typeof SEEK_DATA | typeof SEEK_HOLE): Bytes | undefined {
    return seekLayout(this.whole, () => this.wholeFileFd, offset, whence);
  }

  /** The kernel holds its own reference to a backing file: closing ours frees the clone only once it lets go. */
  release(): void {
    if (--this.refs > 0) return;
    this.closed();
    void this.file.close();
  }
}
