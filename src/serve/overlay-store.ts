// Where writers' private overlays live (--overlay-dir) and how much they may take together
// (--overlay-limit): docs/overlays.md §2.
import { constants } from 'node:fs';
import { chmod, type FileHandle, lstat, mkdir, open, statfs } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Bytes } from '../base/units.js';

/** O_TMPFILE, <asm-generic/fcntl.h> (__O_TMPFILE | O_DIRECTORY): an unlinked file, gone with its last descriptor. */
const O_TMPFILE = 0o20200000;
/** The default limit's share of the folder's free space at start: the rest stays for whatever else lives there (the storage's filesystem, often). */
const DEFAULT_FREE_SHARE = 0.25;
/** Where overlays live without a cache folder: a disk-backed temporary folder (/tmp may be RAM). */
const DEFAULT_DIR = '/var/tmp/synthvhd-overlays';
/** The folder's own name under --cache-dir. */
const CACHE_SUBDIR = 'overlays';

/** The default --overlay-dir: a folder of synthvhd's own, under the cache folder when there is one. */
export function defaultOverlayDir(cacheDir: string | undefined): string {
  return cacheDir ? join(cacheDir, CACHE_SUBDIR) : DEFAULT_DIR;
}

export class OverlayStore {
  private used: Bytes = 0;
  private loggedFull = false;

  private constructor(readonly dir: string, readonly limit: Bytes, private readonly log: (line: string) => void) {}

  /**
   * Makes the folder (0700, ours, not a link) and checks it can hold unlinked files; `limit`
   * defaults to a share of its free space.
   */
  static async open(dir: string, limit: Bytes | undefined, log: (line: string) => void): Promise<OverlayStore> {
    try {
      await makeFolders(dir);
    } catch (e) {
      throw new Error(`--overlay-dir ${dir}: cannot make the folder: ${(e as Error).message}`, { cause: e });
    }
    const st = await lstat(dir);
    if (!st.isDirectory()) throw new Error(`--overlay-dir ${dir}: not a folder`);
    if (st.uid !== process.getuid?.()) throw new Error(`--overlay-dir ${dir}: owned by uid ${st.uid}, not by synthvhd's user`);
    await chmod(dir, 0o700);
    const store = new OverlayStore(dir, limit ?? (await defaultLimit(dir)), log);
    await (await store.create()).close();
    return store;
  }

  /** A new overlay file: unlinked, in the folder. */
  create(): Promise<FileHandle> {
    return createUnlinked(this.dir);
  }

  /** What the limit leaves for writes now. */
  get remaining(): Bytes {
    return Math.max(0, this.limit - this.used);
  }

  /** Counts `bytes` more against the limit; false past it (logged once until space is given back). */
  take(bytes: Bytes): boolean {
    if (this.reserve(bytes)) return true;
    if (!this.loggedFull) this.log(`overlays in ${this.dir} reached their limit (${this.limit} bytes): writes fail with ENOSPC until a disk open for writing is closed`);
    this.loggedFull = true;
    return false;
  }

  /** Counts `bytes` more if the limit leaves them, silently: the caller has another way. */
  reserve(bytes: Bytes): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: Bytes): void {
    this.used -= bytes;
    if (bytes > 0) this.loggedFull = false;
  }
}

/**
 * mkdir -p, one level at a time (0700): Node's recursive mkdir never returns where mkdir fails
 * with ENOENT below a folder that exists (/proc). Bounded by the path's depth.
 */
async function makeFolders(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = resolve(dir); !(await lstat(d).then(() => true, () => false)); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) await mkdir(d, { mode: 0o700 });
}

/** A new unlinked file in `dir` (O_TMPFILE): nothing of it is left after a crash or kill -9. */
export async function createUnlinked(dir: string): Promise<FileHandle> {
  try {
    return await open(dir, O_TMPFILE | constants.O_RDWR, 0o600);
  } catch (e) {
    // By number: Node names errno 95 ENOTSUP, not EOPNOTSUPP. A kernel without O_TMPFILE sees O_DIRECTORY: EISDIR.
    const errno = -((e as NodeJS.ErrnoException).errno ?? 0);
    const why = errno === osConstants.errno.EOPNOTSUPP || errno === osConstants.errno.EISDIR ? 'its filesystem cannot make unlinked files (O_TMPFILE)' : (e as Error).message;
    throw new Error(`--overlay-dir ${dir}: ${why}`, { cause: e });
  }
}

/** The default --overlay-limit of a folder with `free` bytes available to synthvhd. */
export function defaultOverlayLimit(free: Bytes): Bytes {
  return Math.floor(free * DEFAULT_FREE_SHARE);
}

async function defaultLimit(dir: string): Promise<Bytes> {
  const s = await statfs(dir);
  return defaultOverlayLimit(s.bavail * s.bsize);
}
