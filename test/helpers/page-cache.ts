// How much of a file the kernel's page cache holds, without reading it.
import { closeSync, openSync } from 'node:fs';
import { syscall } from '../../src/sys/libc.js';

/** Bytes of `path` in the page cache. */
export function cachedBytes(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return cachedBytesOf(fd, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * The same through an open descriptor: for a file of a FUSE mount served by this very process,
 * whose synchronous open would wait for the main thread it blocks. cachestat(2) nr_cache (Linux
 * 6.5; struct cachestat_range: offset 0, length 0 for the whole file; struct cachestat).
 */
export function cachedBytesOf(fd: number, what = `descriptor ${fd}`): number {
  const NR_CACHESTAT = 451;
  const range = Buffer.alloc(16);
  const stats = Buffer.alloc(40);
  if (syscall(NR_CACHESTAT, 'uint', fd, 'void *', range, 'void *', stats, 'uint', 0) !== 0) throw new Error(`cachestat ${what} failed`);
  return Number(stats.readBigUInt64LE(0)) * 4096;
}
