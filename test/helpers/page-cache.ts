// How much of a file the kernel's page cache holds, without reading it.
import { closeSync, openSync } from 'node:fs';
import { syscall } from '../../src/sys/libc.js';

/** Bytes of `path` in the page cache, of [offset, +length) or (length 0) to its end. */
export function cachedBytes(path: string, offset = 0, length = 0): number {
  const fd = openSync(path, 'r');
  try {
    return cachedBytesOf(fd, offset, length, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * The same through an open descriptor: for a file of a FUSE mount served by this very process,
 * whose synchronous open would wait for the main thread it blocks. cachestat(2) nr_cache (Linux
 * 6.5; struct cachestat_range, struct cachestat).
 */
export function cachedBytesOf(fd: number, offset = 0, length = 0, what = `descriptor ${fd}`): number {
  const NR_CACHESTAT = 451;
  const range = Buffer.alloc(16);
  range.writeBigUInt64LE(BigInt(offset), 0);
  range.writeBigUInt64LE(BigInt(length), 8);
  const stats = Buffer.alloc(40);
  if (syscall(NR_CACHESTAT, 'uint', fd, 'void *', range, 'void *', stats, 'uint', 0) !== 0) throw new Error(`cachestat ${what} failed`);
  return Number(stats.readBigUInt64LE(0)) * 4096;
}
