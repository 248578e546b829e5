// How much of a file the kernel's page cache holds, without reading it.
import { closeSync, openSync } from 'node:fs';
import { syscall } from '../../src/sys/libc.js';

/** Bytes of `path` in the page cache, of [offset, +length) or (length 0) to its end: cachestat(2) nr_cache (Linux 6.5; struct cachestat_range, struct cachestat). */
export function cachedBytes(path: string, offset = 0, length = 0): number {
  const NR_CACHESTAT = 451;
  const range = Buffer.alloc(16);
  range.writeBigUInt64LE(BigInt(offset), 0);
  range.writeBigUInt64LE(BigInt(length), 8);
  const stats = Buffer.alloc(40);
  const fd = openSync(path, 'r');
  try {
    if (syscall(NR_CACHESTAT, 'uint', fd, 'void *', range, 'void *', stats, 'uint', 0) !== 0) throw new Error(`cachestat ${path} failed`);
  } finally {
    closeSync(fd);
  }
  return Number(stats.readBigUInt64LE(0)) * 4096;
}
