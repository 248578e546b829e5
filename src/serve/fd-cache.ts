// Read-only descriptors of backing files, shared between open handles and kept for reuse.
import { close, constants } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { openReadOnlyFdNoAtime } from '../sys/read-only-open.js';

/** Descriptors shared by every handle that reads the same path. */
export interface FdLease {
  readonly path: string;
  readonly fd: number;
  /** The same file opened O_DIRECT, for large reads of data not in the page cache (absent where the filesystem refuses it). */
  readonly direct: number | undefined;
}

interface Entry extends FdLease {
  refs: number;
  /** Left the cache while still in use: closed by the last release. */
  evicted: boolean;
}

/** How many idle-or-busy descriptors the cache keeps; leases in use are never closed. */
export const DEFAULT_MAX_FDS = 256;

function closeQuietly(fd: number): void {
  close(fd, () => undefined);
}

function closeEntry(entry: FdLease): void {
  closeQuietly(entry.fd);
  if (entry.direct !== undefined) closeQuietly(entry.direct);
}

/** O_DIRECT where the filesystem takes it (btrfs, XFS, ext4; not tmpfs or overlayfs). */
function openDirect(path: string): Promise<number | undefined> {
  return openReadOnlyFdNoAtime(path, constants.O_DIRECT).catch(() => undefined);
}

/**
 * A bounded LRU of O_RDONLY descriptors with reference counts: an entry pushed out of the
 * LRU (or evicted because its file changed) stays open until its last lease is released.
 */
export class FdCache {
  private readonly lru: LRUCache<string, Entry>;

  constructor(max = DEFAULT_MAX_FDS) {
    this.lru = new LRUCache<string, Entry>({
      max,
      dispose: (entry) => {
        entry.evicted = true;
        if (entry.refs === 0) closeEntry(entry);
      },
    });
  }

  /** A lease on an open descriptor of `path`; give it back with release(). */
  async acquire(path: string): Promise<FdLease> {
    const cached = this.lru.get(path);
    if (cached) {
      cached.refs++;
      return cached;
    }
    const fd = await openReadOnlyFdNoAtime(path);
    const entry: Entry = { path, fd, direct: await openDirect(path), refs: 1, evicted: false };
    this.lru.set(path, entry);
    return entry;
  }

  release(lease: FdLease): void {
    const entry = lease as Entry;
    if (--entry.refs === 0 && entry.evicted) closeEntry(entry);
  }

  /** Stops handing out the cached descriptor of `path` (the file was replaced or removed). */
  evict(path: string): void {
    this.lru.delete(path);
  }

  /** Closes every descriptor not in use; the rest close on release. */
  clear(): void {
    this.lru.clear();
  }
}
