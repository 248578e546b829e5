// Reading bytes that are already in the page cache without leaving the calling thread:
// preadv2(2) with RWF_NOWAIT, which Node's fs module lacks, through koffi.
import type { Bytes } from '../disk/layout.js';
import { preadv2 } from './libc.js';

/** RWF_NOWAIT, <linux/fs.h>: fail with EAGAIN rather than wait for I/O (Linux 4.14). */
const RWF_NOWAIT = 8;

/**
 * Copies what the page cache already holds of `len` bytes at `pos` of `fd` into `buf` at `off`,
 * stopping at the first byte that would need I/O. Returns the bytes copied: 0 when none were
 * cached, at end of file, or when the filesystem does not support RWF_NOWAIT (errors are left
 * to the ordinary read that follows).
 */
export function readCached(fd: number, buf: Buffer, off: Bytes, len: Bytes, pos: Bytes): Bytes {
  const n = preadv2(fd, [{ iov_base: buf.subarray(off, off + len), iov_len: len }], 1, pos, RWF_NOWAIT);
  return n > 0 ? n : 0;
}
