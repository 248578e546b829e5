// Reading bytes that are already in the page cache without leaving the calling thread:
// preadv2(2) with RWF_NOWAIT, which Node's fs module lacks, through koffi; and asking whether a
// range is cached at all without touching it (cachestat(2)).
import type { Bytes } from '../base/units.js';
import { IOVEC_SIZE, iovecAt, lastErrno, preadv2, syscall } from './libc.js';

/** RWF_NOWAIT, <linux/fs.h>: fail with EAGAIN rather than wait for I/O (Linux 4.14). */
const RWF_NOWAIT = 8;
/** One struct iovec, reused: each thread has its own module instance, and a call fills it and reads at once. */
const iov = Buffer.alloc(IOVEC_SIZE);

/**
 * Copies what the page cache already holds of `len` bytes at `pos` of `fd` into `buf` at `off`,
 * stopping at the first byte that would need I/O. Returns the bytes copied: 0 when none were
 * cached, at end of file, or when the filesystem does not support RWF_NOWAIT (errors are left
 * to the ordinary read that follows).
 */
export function readCached(fd: number, buf: Buffer, off: Bytes, len: Bytes, pos: Bytes): Bytes {
  if (off < 0 || len < 0 || off + len > buf.length) throw new RangeError(`readCached: ${len} bytes at ${off} do not fit a buffer of ${buf.length}`);
  iovecAt(iov, 0, buf, off, len);
  const n = preadv2(fd, iov, 1, pos, RWF_NOWAIT);
  return n > 0 ? n : 0;
}

/** __NR_cachestat on x86_64 and arm64 (Linux 6.5, include/uapi/asm-generic/unistd.h). */
const NR_CACHESTAT = 451;
/** struct cachestat_range { __u64 off, len; } and struct cachestat (five __u64, nr_cache first). */
const range = Buffer.alloc(16);
const stats = Buffer.alloc(40);
/** SYNTHVHD_KERNEL_WITHOUT=cachestat (a comma list) acts as a kernel before 6.5: the tests' way to run the fallback. */
let cachestatWorks = !(process.env['SYNTHVHD_KERNEL_WITHOUT'] ?? '').split(',').includes('cachestat');

/**
 * Whether this kernel has cachestat(2) (Linux 6.5). Asked with an invalid descriptor: EBADF
 * says the call exists, ENOSYS that it does not.
 */
export function hasCachestat(): boolean {
  if (cachestatWorks && syscall(NR_CACHESTAT, 'uint', -1, 'void *', range, 'void *', stats, 'uint', 0) !== 0 && lastErrno().code === 'ENOSYS') cachestatWorks = false;
  return cachestatWorks;
}

/**
 * Whether none of [pos, +len) of `fd` is in the page cache, asked without starting readahead
 * (a RWF_NOWAIT read that misses starts it). Undefined when the kernel cannot tell (before 6.5).
 */
export function nothingCached(fd: number, pos: Bytes, len: Bytes): boolean | undefined {
  if (!cachestatWorks) return undefined;
  range.writeBigUInt64LE(BigInt(pos), 0);
  range.writeBigUInt64LE(BigInt(len), 8);
  if (syscall(NR_CACHESTAT, 'uint', fd, 'void *', range, 'void *', stats, 'uint', 0) !== 0) {
    cachestatWorks = false;
    return undefined;
  }
  return stats.readBigUInt64LE(0) === 0n;
}
