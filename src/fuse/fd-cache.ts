// Read-only descriptors of backing files, shared between open handles and kept for reuse.
import { close, constants } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { openReadOnlyFd } from '../io/read-only-open.js';

/** A descriptor shared by every handle that reads the same path. */
export interface FdLease {
  readonly path: string;
  readonly fd: number;
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

/** Opens without updating atime (backup storage is never written); O_NOATIME needs ownership. */
async function openReadOnly(path: string): Promise<number> {
  try {
    return await openReadOnlyFd(path, constants.O_NOATIME);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    return await openReadOnlyFd(path);
  }
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
        if (entry.refs === 0) closeQuietly(entry.fd);
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
    const entry: Entry = { path, fd: await openReadOnly(path), refs: 1, evicted: false };
    this.lru.set(path, entry);
    return entry;
  }

  release(lease: FdLease): void {
    const entry = lease as Entry;
    if (--entry.refs === 0 && entry.evicted) closeQuietly(entry.fd);
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
